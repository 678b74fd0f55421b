"""Faust's consumer hands each record to the agents' queues without four tasks per record, when nothing blocks.

`faust.transport.consumer.Consumer._drain_messages` delivers every record with
`await self.wait_first(callback(message), self.suspend_flow.wait())`: `mode.Service.wait_first` wraps each of
those two, plus the consumer's `stopped` and `crashed` events, in a task, runs `asyncio.wait` on them and cancels
the three losers. That was ~15% of a worker's time (py-spy under `bench.live`), paid once per record and agent. The
callback (`Conductor` on_message: decode, `queue.put_nowait`) almost never suspends: only when the flow is held,
the producer buffer is over its limit, or a queue is full.

`install()` gives Faust's consumer a `wait_first` that, for that call only (two coroutines, no timeout, the flow not
suspended, the consumer neither stopped nor crashed), first runs the callback inline. If it finishes without
suspending, the record is delivered and nothing else happens (the `suspend_flow.wait()` coroutine is closed, never
started). If it suspends, the rest of it runs as a task raced against the flow's suspension exactly as before (the
task is cancelled if the flow is suspended first). In every other case (flow suspended, consumer stopping) Faust's
own `wait_first` runs, unchanged.

`tests/stream/test_deliver.py` checks Faust still calls `wait_first` that way, and only there.
"""

from __future__ import annotations

import asyncio
import inspect

__all__ = ["install", "resumed", "fast_wait_first"]


class _Resumed:
    """Awaitable that goes on driving a coroutine that has already been stepped once and yielded `first`."""

    __slots__ = ("coro", "first")

    def __init__(self, coro, first):
        self.coro, self.first = coro, first

    def __await__(self):
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation thrown in by the task: pass it on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def resumed(coro, first):
    return await _Resumed(coro, first)


async def fast_wait_first(self, *coros, timeout=None):
    from mode.services import Service, WaitResults

    if (timeout is None and len(coros) == 2 and inspect.iscoroutine(coros[0]) and inspect.iscoroutine(coros[1])
            and not (self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set())):
        deliver, suspended = coros
        try:
            first = deliver.send(None)
        except StopIteration as stop:
            suspended.close()
            return WaitResults([deliver], [stop.value], False)
        except BaseException:
            suspended.close()
            raise
        return await Service.wait_first(self, asyncio.ensure_future(resumed(deliver, first)), suspended)
    return await Service.wait_first(self, *coros, timeout=timeout)


fast_wait_first.riskstream_deliver = True


def install() -> None:
    """Patch Faust's consumer once per process (idempotent)."""
    from faust.transport.consumer import Consumer

    if getattr(Consumer.wait_first, "riskstream_deliver", False):
        return
    Consumer.wait_first = fast_wait_first
