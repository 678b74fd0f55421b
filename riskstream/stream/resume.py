"""Agents' partitions stay paused until Faust's end-of-recovery seek is done (a Faust race that skipped records).

Faust ends table recovery in `faust.tables.recovery.Recovery.on_recovery_completed` (`_resume_streams` when the app
has no table) with, in this order:

1. `consumer.resume_partitions(<the agents' partitions>)`: the fetcher starts delivering them to the agents'
   queues at once, because the flow is already running (the changelogs were read with it);
2. `await consumer.perform_seek()`: aiokafka seeks each partition to its committed offset, one OffsetFetch round
   trip per partition in the consumer thread, then `Consumer._read_offset[tp]` is set to that offset;
3. `app.flow_control.resume()`: empties every agent's queue (`FlowControlQueue(clear_on_resume=True)`).

Step 2 took 0.7-1.5 s on a loaded machine, and records kept arriving during it:

* records delivered before the aiokafka seek advance `_read_offset`; after the seek aiokafka returns them again
  and `Consumer._drain_messages` drops them as already read (offset < `_read_offset`);
* once `_read_offset` is reset to the commit C, the next record of a batch fetched *before* the seek, at X > C + 1,
  is taken for a hole in the log: `Consumer._add_gap(C + 1 .. X)` marks those offsets committable without an ack;
* step 3 then throws away whatever those deliveries left in the queues, never acked.

So the queued records were never processed. Where the false gap covers them, Faust commits over them: a silent
skip (seen: 1 and 31 decisions without a command; `_new_offset` also lets a hole of exactly one record at the head
through, as `min(acked) - committed > 1`). Where it does not, the first acked offset lies past the commit and
`Consumer._new_offset` never commits that partition again: a stall, logged by `riskstream.stream.watch` as
"no batch in 10 s with N records waiting" while the committed offset stays put. Every agent of both apps was
exposed; the actuator most, since its first batch waits for the commands topic tail (`SentCommands.load_tail`).

`install()` holds back the resume of step 1 for non-changelog partitions until the method has returned, that is
after the seek has completed and the queues were emptied. Nothing of those partitions is fetched before the seek,
so nothing is dropped, and the first record an agent gets is the one at its committed offset. If the method is
interrupted by a new rebalance (`RebalanceAgain`), the held partitions stay paused: the next recovery resumes them.
If the seek timed out or recovery stopped (`ServiceStopped`), they are resumed as Faust would have done.

`tests/stream/test_resume.py` runs Faust's own method against a recording consumer and fails if Faust changes
that order (fixed upstream: this module may go) or our hold stops seeing it; `tests/e2e/test_takeover.py` restarts
a worker and an actuator with a slow seek and checks that every agent processed every record.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("riskstream.stream")

__all__ = ["install", "hold_resumes"]


def hold_resumes(method):
    """Wrap a `Recovery` coroutine method so that the agents' partitions it resumes are resumed after it returns."""
    from faust.tables.recovery import RebalanceAgain, ServiceStopped

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        consumer = self.app.consumer
        held: set = set()

        def resume_partitions(tps) -> None:
            tps = set(tps)
            streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
            held.update(streams)
            if tps - streams:
                type(consumer).resume_partitions(consumer, tps - streams)

        # An instance attribute shadows the method for the duration of this call only.
        consumer.resume_partitions = resume_partitions
        resume = False
        try:
            result = await method(self, *args, **kwargs)
            resume = True
            return result
        except ServiceStopped:
            resume = not self.should_stop  # the seek timed out: resume them, as Faust would have
            raise
        except RebalanceAgain:
            raise  # a new rebalance pauses every partition; its recovery resumes them
        finally:
            del consumer.resume_partitions
            if resume and held:
                tps = held & set(consumer.assignment())
                consumer.resume_partitions(tps)
                log.debug("%d agent partition(s) resumed after the end-of-recovery seek", len(tps))

    wrapper.riskstream_resume = True
    return wrapper


def install() -> None:
    """Patch Faust's recovery once per process (idempotent)."""
    from faust.tables.recovery import Recovery

    if getattr(Recovery.on_recovery_completed, "riskstream_resume", False):
        return
    Recovery.on_recovery_completed = hold_resumes(Recovery.on_recovery_completed)
    Recovery._resume_streams = hold_resumes(Recovery._resume_streams)
