"""`riskstream.stream.deliver`: a record whose delivery does not block is delivered inline, with no task; one that
blocks is finished as a task raced against the flow's suspension, as Faust's `wait_first` does; with the flow
suspended, Faust's own `wait_first` runs. And Faust still calls `wait_first` the way the patch expects.
"""

from __future__ import annotations

import asyncio
import inspect

import faust.transport.consumer as faust_consumer
from mode.utils.locks import Event

from riskstream.stream.deliver import fast_wait_first, install


class Consumer:
    """The three events `wait_first` reads, and mode's own `wait_first` behind the patch."""

    def __init__(self):
        self.suspend_flow, self._stopped, self._crashed = Event(), Event(), Event()
        self.loop = asyncio.get_event_loop()


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_a_delivery_that_does_not_block_runs_inline_without_a_task():
    async def main():
        c, got = Consumer(), []

        async def deliver(x):
            got.append(x)
            return x

        tasks_before = len(asyncio.all_tasks())
        res = await fast_wait_first(c, deliver(1), c.suspend_flow.wait())
        return got, res, len(asyncio.all_tasks()) - tasks_before

    got, res, extra_tasks = run(main())
    assert got == [1] and res.results == [1] and not res.stopped and extra_tasks == 0


def test_a_delivery_that_blocks_finishes_as_a_task():
    async def main():
        c, got, gate = Consumer(), [], asyncio.Event()

        async def deliver(x):
            got.append(("start", x))
            await gate.wait()
            await asyncio.sleep(0)
            got.append(("end", x))
            return x

        asyncio.get_running_loop().call_later(0.01, gate.set)
        res = await fast_wait_first(c, deliver(2), c.suspend_flow.wait())
        return got, res

    got, res = run(main())
    assert got == [("start", 2), ("end", 2)] and res.results == [2]


def test_a_blocked_delivery_is_cancelled_when_the_flow_is_suspended_first():
    async def main():
        c, got = Consumer(), []

        async def deliver():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                got.append("cancelled")
                raise

        asyncio.get_running_loop().call_later(0.01, c.suspend_flow.set)
        res = await fast_wait_first(c, deliver(), c.suspend_flow.wait())
        await asyncio.sleep(0)
        return got, res

    got, res = run(main())
    assert got == ["cancelled"] and len(res.done) == 1 and inspect.iscoroutine(res.done[0])  # suspend_flow


def test_with_the_flow_suspended_faust_runs_its_own_wait_first(monkeypatch):
    from mode.services import Service

    calls = []
    own = Service.wait_first

    async def recording(self, *coros, timeout=None):
        calls.append(len(coros))
        return await own(self, *coros, timeout=timeout)

    monkeypatch.setattr(Service, "wait_first", recording)

    async def main():
        c, got = Consumer(), []
        c.suspend_flow.set()

        async def deliver():
            got.append("delivered")

        await fast_wait_first(c, deliver(), c.suspend_flow.wait())
        return got

    assert run(main()) == ["delivered"] and calls == [2]


def test_an_error_in_the_delivery_propagates():
    async def main():
        c = Consumer()

        async def deliver():
            raise ValueError("bad")

        try:
            await fast_wait_first(c, deliver(), c.suspend_flow.wait())
        except ValueError as exc:
            return str(exc)

    assert run(main()) == "bad"


def test_faust_calls_wait_first_only_to_deliver_a_record():
    src = inspect.getsource(faust_consumer)
    assert src.count("wait_first(") == 1
    drain = " ".join(inspect.getsource(faust_consumer.Consumer._drain_messages).split())
    assert "await self.wait_first( callback(message), self.suspend_flow.wait() )" in drain
    install()
    install()
    assert faust_consumer.Consumer.wait_first is fast_wait_first
