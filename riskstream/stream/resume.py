"""Agents' partitions are fetched only after Faust's end-of-recovery seek is done (a Faust race that skipped records).

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

`install()` wraps both methods. For their duration the agents' partitions are paused twice:

* in Faust: the resume of step 1 is held back (and a partition left active is paused), so that a record of a
  batch fetched before the seek is dropped by `Consumer.getmany` instead of being delivered after it;
* in aiokafka (`AIOKafkaConsumer.pause`, in the consumer thread): Faust passes its *live* set of active partitions
  to the consumer thread, and to aiokafka an empty set means "every partition". A fetch started while only the
  changelogs were active can end after they were paused, and return the agents' records; Faust then drops them
  as inactive, with aiokafka's position already past them. Before the seek that is repaired by the seek; after it
  (which Faust-level holding alone would allow) those records were lost: seen once in 21 slow runs beside a CPU
  hog, a restarted actuator that never got a batch. aiokafka hands nothing of a paused partition out.

When the method has returned (the seek is complete and the queues are empty) the partitions are resumed in Faust,
then in aiokafka: the first record an agent gets is the one at its committed offset. If the method is interrupted
by a new rebalance (Faust's `RebalanceAgain`, or `Recovery._restart_recovery` cancelling the call), fetching is
resumed in aiokafka and Faust's side stays paused: every generation's `App._on_partitions_assigned` pauses all
assigned partitions anyway and signals a recovery, whose `on_recovery_completed` resumes them (if it sees an even
newer generation it returns early, and that generation's recovery follows). If the seek timed out
(`ServiceStopped`), they are resumed as Faust would have done. `paused_agents` counts what is left paused (the
stall watch logs it: Faust's own paused set keeps its active changelog partitions after every recovery).

A rebalance can also begin *during* the seek without Faust noticing: its check (`Recovery._wait`) only sees the
new generation's recovery signal, set once the new assignment has reached `Recovery.on_rebalance`; the revocation
comes well before that. If the seek returns in between (seen: a second worker joining a new group while the first
one seeks, the rewind of `riskstream.stream.rewind` logged after "Revoking"), Faust finished the stale recovery: it
resumed the flow and then this module resumed the agents' partitions *in the middle of the new rebalance*, and called
`App.on_rebalance_end` for it ("Missing sensor state for rebalance"). The first fetch of each partition (offset 0
onwards, nothing committed yet) was then delivered before the new generation's own recovery, cut short by it, and
Faust never read the rest: its gap check (`Consumer._drain_messages`: `gap > 1 and r_offset`) ignores a jump from
offset 0, the commit stayed at 1 and the records were read only at a later rebalance, out of order. So the wrapper
knows the rebalance its generation was assigned in (`App.rebalancing_count`, noted by the rebalance listener in the
consumer thread, where revocations are counted too): when the seek returns inside a newer rebalance, it raises
`RebalanceAgain` before Faust applies the seek's offsets, and nothing of the stale recovery is resumed.

`tests/stream/test_resume.py` runs Faust's own methods against a recording consumer and fails if Faust changes
that order (fixed upstream: this module may go) or the hold stops seeing it; `tests/e2e/test_takeover.py` restarts
a worker and an actuator with a slow seek and checks that every agent processed every record;
`tests/e2e/test_scaleout.py` holds a worker in this seek while a second worker joins, then checks that both fetch
and commit every partition (and, over a new group, that the seek ending inside that join skips nothing).
"""

from __future__ import annotations

import asyncio
import functools
import logging

log = logging.getLogger("riskstream.stream")

__all__ = ["install", "hold_resumes", "assigned_in", "set_fetching", "paused_agents"]


def hold_resumes(method):
    """Wrap a `Recovery` coroutine method so that the agents' partitions are fetched again only after it returns."""
    from faust.tables.recovery import RebalanceAgain, ServiceStopped

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        app = self.app
        consumer = app.consumer
        rebalance = assigned_in(app, kwargs.get("generation_id", args[0] if args else 0))
        if app.rebalancing_count != rebalance:
            log.info("end-of-recovery seek skipped: a new rebalance has begun since its generation was assigned")
            raise RebalanceAgain()
        agents = {tp for tp in consumer.assignment() if not self._is_changelog_tp(tp)}
        consumer.pause_partitions(agents)  # normally paused already, since the assignment
        consumer._buffered_partitions.difference_update(agents)  # getmany delivers these even when inactive
        held: set = set()
        shadows = shadow_consumer(self, consumer, rebalance, held)
        resume = False
        try:
            # Inside the try: a call cancelled while the consumer thread pauses them still resumes them below.
            await set_fetching(consumer, agents, paused=True)
            result = await method(self, *args, **kwargs)
            resume = True
            return result
        except ServiceStopped:
            resume = not self.should_stop  # the seek timed out: resume them, as Faust would have
            raise
        except (RebalanceAgain, asyncio.CancelledError):
            # A new rebalance: Faust's own wait raised, or `Recovery._restart_recovery` cancelled this call. That
            # rebalance pauses every assigned partition in Faust and starts a recovery, which resumes them.
            if not self.should_stop:
                log.info("end-of-recovery seek interrupted by a new rebalance: %d agent partition(s) wait for "
                         "the next recovery", len(agents))
            raise
        finally:
            # Revoked after the seek: that rebalance's recovery resumes them.
            await restore(self, consumer, agents, held, shadows, resume and app.rebalancing_count == rebalance)

    wrapper.riskstream_resume = True
    return wrapper


def shadow_consumer(recovery, consumer, rebalance: int, held: set) -> dict:
    """Instance attributes that shadow two consumer methods for one recovery call: resumes of the agents'
    partitions are collected in `held`, and a seek that ends inside a newer rebalance raises `RebalanceAgain`."""
    from faust.tables.recovery import RebalanceAgain

    app = recovery.app

    def resume_partitions(tps) -> None:
        tps = set(tps)
        of_agents = {tp for tp in tps if not recovery._is_changelog_tp(tp)}
        held.update(of_agents)
        if tps - of_agents:
            type(consumer).resume_partitions(consumer, tps - of_agents)

    async def seek_to_committed():
        committed = await type(consumer).seek_to_committed(consumer)
        if app.rebalancing_count != rebalance:
            raise RebalanceAgain()  # the seek ended inside a newer rebalance: its offsets are not ours to apply
        return committed

    shadows = {"resume_partitions": resume_partitions, "seek_to_committed": seek_to_committed}
    for name, fn in shadows.items():
        setattr(consumer, name, fn)
    return shadows


async def restore(recovery, consumer, agents: set, held: set, shadows: dict, resume: bool) -> None:
    """Take the shadows away; resume the held agents' partitions (if `resume`) and their fetching."""
    for name, fn in shadows.items():
        if vars(consumer).get(name) is fn:
            delattr(consumer, name)
    if resume and held:
        tps = held & set(consumer.assignment())
        type(consumer).resume_partitions(consumer, tps)
        log.debug("%d agent partition(s) resumed after the end-of-recovery seek", len(tps))
    if not recovery.should_stop:
        try:
            await set_fetching(consumer, agents, paused=False)
        except Exception:  # never hide the method's own outcome
            log.warning("could not resume fetching %d partition(s) after recovery", len(agents), exc_info=True)


def assigned_in(app, generation_id: int) -> int:
    """`App.rebalancing_count` when `generation_id` was assigned (noted by `install()`'s rebalance listener), or the
    current count if that is unknown (another generation was assigned since, or the listener is not installed)."""
    noted = vars(app).get("_riskstream_assigned")
    if noted is not None and noted[0] == generation_id:
        return noted[1]
    return app.rebalancing_count


async def set_fetching(consumer, tps, *, paused: bool) -> None:
    """Pause or resume fetching `tps` in Faust's aiokafka consumer, in its own thread (aiokafka is not thread-safe:
    a pause creates a future of the consumer thread's loop)."""
    thread = getattr(consumer, "_thread", None)
    if not tps or thread is None:
        return
    from faust.transport.drivers.aiokafka import ensure_aiokafka_TPset

    def apply() -> None:
        aio = thread._ensure_consumer()
        assigned = aio.assignment()
        todo = [tp for tp in ensure_aiokafka_TPset(tps) if tp in assigned]
        (aio.pause if paused else aio.resume)(*todo)

    await thread.call_thread(apply)


async def paused_agents(consumer, timeout_s: float = 2.0) -> tuple[int, int | None]:
    """(agents' partitions paused in Faust, in aiokafka) of `consumer`: both 0 once a recovery has ended.

    Faust keeps its active changelog partitions paused after recovery, so its whole paused set is not the figure.
    The aiokafka count is None when the consumer thread does not answer in `timeout_s`.
    """
    changelogs = consumer.app.tables.changelog_topics
    in_faust = sum(1 for tp in getattr(consumer, "_paused_partitions", ()) if tp.topic not in changelogs)
    thread = getattr(consumer, "_thread", None)
    if thread is None:
        return in_faust, 0

    def count() -> int:
        return sum(1 for tp in thread._ensure_consumer().paused() if tp.topic not in changelogs)

    try:
        return in_faust, await asyncio.wait_for(thread.call_thread(count), timeout_s)
    except Exception:  # a diagnostic: never fail the caller
        return in_faust, None


def note_assignments(on_partitions_assigned):
    """Wrap Faust's aiokafka `ConsumerRebalanceListener.on_partitions_assigned` (consumer thread) so that the app
    knows in which rebalance (`App.rebalancing_count`, counted at each revocation) each generation was assigned."""

    @functools.wraps(on_partitions_assigned)
    async def wrapper(self, assigned):
        app = self._thread.app
        generation = self._thread._ensure_consumer()._coordinator.generation
        app._riskstream_assigned = (generation, app.rebalancing_count)
        return await on_partitions_assigned(self, assigned)

    return wrapper


def install() -> None:
    """Patch Faust's recovery once per process (idempotent)."""
    from faust.tables.recovery import Recovery
    from faust.transport.drivers.aiokafka import ConsumerRebalanceListener

    if getattr(Recovery.on_recovery_completed, "riskstream_resume", False):
        return
    ConsumerRebalanceListener.on_partitions_assigned = note_assignments(
        ConsumerRebalanceListener.on_partitions_assigned)
    Recovery.on_recovery_completed = hold_resumes(Recovery.on_recovery_completed)
    Recovery._resume_streams = hold_resumes(Recovery._resume_streams)
