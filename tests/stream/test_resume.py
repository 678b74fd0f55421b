"""`riskstream.stream.resume`: Faust's own end-of-recovery methods, run against a consumer that records what
happens, resume the agents' partitions (in Faust and in aiokafka) only after the seek to their committed offsets
and after the queues were emptied.

The unpatched methods are run too: they resume first and seek afterwards (the race that skipped records). If Faust
changes that order, the test says so, and the patch may be dropped.
"""

from __future__ import annotations

import asyncio

import pytest
from faust.tables.recovery import RebalanceAgain, Recovery
from faust.types import TP

from riskstream.stream.resume import hold_resumes

STREAM = {TP("decisions", 0), TP("decisions", 1), TP("control", 0)}
CHANGELOG = {TP("app-lines-changelog", 0)}


class AIOKafka:
    """aiokafka's consumer, as seen from its thread: pause/resume only stop or restart fetching."""

    def __init__(self, events: list):
        self.events = events
        self.paused_tps: set = set()

    def assignment(self):
        from aiokafka import TopicPartition

        return {TopicPartition(tp.topic, tp.partition) for tp in STREAM | CHANGELOG}

    def pause(self, *tps):
        self.paused_tps.update(tps)
        self.events.append(("fetch paused", frozenset((tp.topic, tp.partition) for tp in tps)))

    def resume(self, *tps):
        self.paused_tps.difference_update(tps)
        self.events.append(("fetch resumed", frozenset((tp.topic, tp.partition) for tp in tps)))

    def paused(self):
        return set(self.paused_tps)


class Thread:
    reply_s = 0.0  # the consumer thread has done the call; its answer reaches the caller this much later

    def __init__(self, events: list):
        self.aio = AIOKafka(events)

    def _ensure_consumer(self):
        return self.aio

    async def call_thread(self, fun, *args):
        result = fun(*args)
        await asyncio.sleep(self.reply_s)
        return result


class Consumer:
    seek_s = 0.01
    revoke_in_seek = False  # a new rebalance begins (its revocation is counted) while the seek runs

    def __init__(self, events: list, app=None):
        self.events, self.app = events, app
        self._thread = Thread(events)
        self._buffered_partitions = {TP("decisions", 1)}
        self._paused_partitions: set = set()

    def assignment(self):
        return STREAM | CHANGELOG

    def pause_partitions(self, tps):
        self._paused_partitions.update(tps)
        self.events.append(("pause", frozenset(tps)))

    def resume_partitions(self, tps):
        self._paused_partitions.difference_update(tps)
        self.events.append(("resume", frozenset(tps)))

    async def perform_seek(self):  # as Faust's: seek in the consumer thread, then apply the offsets it returned
        await self.seek_to_committed()
        self.events.append("offsets applied")

    async def seek_to_committed(self):
        self.events.append("seek start")
        await asyncio.sleep(self.seek_s)  # records would be fetched here if the partitions were active
        if self.revoke_in_seek:
            self.app.rebalancing_count += 1  # the rebalance listener's `App.on_rebalance_start`, consumer thread
        self.events.append("seek done")
        return {}

    def resume_flow(self):
        self.events.append("resume flow")


class Recorder:
    def __init__(self, events: list, name: str):
        self.events, self.name = events, name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Recorder(self.events, f"{self.name}.{attr}")

    def __call__(self, *args, **kwargs):
        if self.name.endswith(("send", "maybe_start")):
            async def done():
                return None
            return done()
        if self.name.endswith(("flow_control.resume")):
            self.events.append("queues emptied")  # FlowControlEvent.resume clears every clear_on_resume queue
        if self.name.endswith("assigned_standbys"):
            return set()
        if self.name.endswith("values"):
            return []
        return None


class App(Recorder):
    def __init__(self, events):
        super().__init__(events, "app")
        self.consumer = Consumer(events, self)
        self.consumer_generation_id = 7
        self.rebalancing_count = 3
        self._riskstream_assigned = (7, 3)  # generation 7 was assigned in rebalance 3 (`note_assignments`)


class Tables(Recorder):
    changelog_topics = {"app-lines-changelog"}


class FakeRecovery:
    """Just what `Recovery.on_recovery_completed` and `Recovery._resume_streams` touch."""

    should_stop = False
    _is_changelog_tp = Recovery._is_changelog_tp
    _set_recovery_ended = staticmethod(lambda: None)

    def __init__(self, fail_seek_with: type[BaseException] | None = None):
        self.events: list = []
        self.app = App(self.events)
        self.tables = Tables(self.events, "tables")
        self.log = Recorder([], "log")
        self.completed = asyncio.Event()
        self.actives_for_table: dict = {}
        self.standbys_for_table: dict = {}
        self.fail_seek_with = fail_seek_with

    async def _wait(self, coro, timeout=None):
        await coro
        if self.fail_seek_with:
            raise self.fail_seek_with()


def original(name: str):
    method = getattr(Recovery, name)
    return getattr(method, "__wrapped__", method)  # resume.install() may have patched the class already


def stream_resumes(events: list) -> list[int]:
    return [i for i, e in enumerate(events) if isinstance(e, tuple) and e[0] == "resume" and e[1] & STREAM]


def first(events: list, kind: str) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, tuple) and e[0] == kind)


AIO_STREAM = frozenset((tp.topic, tp.partition) for tp in STREAM)


@pytest.mark.parametrize("name", ["on_recovery_completed", "_resume_streams"])
def test_faust_itself_resumes_the_agents_partitions_before_it_seeks(name):
    rec = FakeRecovery()
    asyncio.run(original(name)(rec, 7))
    ev = rec.events
    assert stream_resumes(ev) and stream_resumes(ev)[0] < ev.index("seek start"), (
        f"Faust {name} no longer resumes before its seek: riskstream.stream.resume may be dropped ({ev})")


@pytest.mark.parametrize("name", ["on_recovery_completed", "_resume_streams"])
def test_patched_the_agents_partitions_resume_after_the_seek_and_the_emptied_queues(name):
    rec = FakeRecovery()
    asyncio.run(hold_resumes(original(name))(rec, 7))
    ev = rec.events
    resumes = stream_resumes(ev)
    assert len(resumes) == 1, ev
    assert resumes[0] > ev.index("seek done") and resumes[0] > ev.index("queues emptied"), ev
    assert ev[resumes[0]] == ("resume", frozenset(STREAM))
    assert "resume_partitions" not in vars(rec.app.consumer)  # the hold is gone once the method returned
    # aiokafka fetches nothing of them from before the seek until after the Faust-side resume.
    assert ev[first(ev, "fetch paused")] == ("fetch paused", AIO_STREAM)
    assert first(ev, "fetch paused") < ev.index("seek start")
    assert ev[first(ev, "fetch resumed")] == ("fetch resumed", AIO_STREAM)
    assert first(ev, "fetch resumed") > resumes[0]
    # Paused in Faust too, and no longer delivered as "buffered" partitions while inactive.
    assert first(ev, "pause") < ev.index("seek start") and rec.app.consumer._buffered_partitions == set()


def test_interrupted_by_a_new_rebalance_the_partitions_stay_paused_for_the_next_recovery():
    rec = FakeRecovery(fail_seek_with=RebalanceAgain)
    with pytest.raises(RebalanceAgain):
        asyncio.run(hold_resumes(original("on_recovery_completed"))(rec, 7))
    assert stream_resumes(rec.events) == []
    assert "resume_partitions" not in vars(rec.app.consumer)
    # Fetching resumes in aiokafka (the revoke stopped Faust's flow; Faust's side stays paused for the next recovery).
    assert rec.events[-1] == ("fetch resumed", AIO_STREAM)


def test_changelog_partitions_are_never_held():
    rec = FakeRecovery()

    async def resumes_both(self, generation_id=0):
        self.app.consumer.resume_partitions(CHANGELOG | {TP("decisions", 0)})
        self.events.append("returned")

    asyncio.run(hold_resumes(resumes_both)(rec, 7))
    held = [e for e in rec.events if e == "returned" or e[0] == "resume"]
    assert held == [("resume", frozenset(CHANGELOG)), "returned", ("resume", frozenset({TP("decisions", 0)}))]


async def cancelled_after(rec: FakeRecovery, delay_s: float) -> None:
    """Run the held method until `delay_s`, then cancel it as `Recovery._restart_recovery`'s wait does when a new
    rebalance starts (`Service.wait_first` cancels the call it was waiting for)."""
    call = asyncio.ensure_future(hold_resumes(original("on_recovery_completed"))(rec, 7))
    await asyncio.sleep(delay_s)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


def assert_nothing_of_the_agents_paused(rec: FakeRecovery) -> None:
    consumer = rec.app.consumer
    assert not (consumer._paused_partitions & STREAM), consumer._paused_partitions
    assert consumer._thread.aio.paused() == set()
    assert "resume_partitions" not in vars(consumer)


def test_cancelled_while_the_consumer_thread_pauses_fetching_it_still_resumes_fetching():
    # The consumer thread has paused them, but its answer comes after the cancel: fetching must be resumed anyway
    # (else aiokafka keeps them paused until some later recovery happens to resume them).
    rec = FakeRecovery()
    rec.app.consumer._thread.reply_s = 0.05
    asyncio.run(cancelled_after(rec, 0.01))
    ev = rec.events
    assert ev[first(ev, "fetch paused")] == ("fetch paused", AIO_STREAM) and "seek start" not in ev
    assert ev[-1] == ("fetch resumed", AIO_STREAM), ev
    assert rec.app.consumer._thread.aio.paused() == set()
    assert "resume_partitions" not in vars(rec.app.consumer)


def test_a_recovery_interrupted_in_its_seek_leaves_nothing_paused_once_the_next_one_has_run(caplog):
    # Generation 7's seek is interrupted by a new rebalance; Faust pauses the whole new assignment (as
    # `App._on_partitions_assigned` does) and the recovery of that generation runs to its end.
    rec = FakeRecovery()
    rec.app.consumer.seek_s = 0.2
    with caplog.at_level("INFO", logger="riskstream.stream"):
        asyncio.run(cancelled_after(rec, 0.05))
    assert "seek start" in rec.events and "seek done" not in rec.events
    assert stream_resumes(rec.events) == [] and rec.events[-1] == ("fetch resumed", AIO_STREAM)
    assert "interrupted by a new rebalance" in caplog.text
    rec.app.consumer.pause_partitions(rec.app.consumer.assignment())
    rec.app.consumer.seek_s = 0.01
    asyncio.run(hold_resumes(original("on_recovery_completed"))(rec, 7))
    assert_nothing_of_the_agents_paused(rec)


def test_paused_agents_counts_neither_changelogs_nor_resumed_partitions():
    from riskstream.stream.resume import paused_agents

    rec = FakeRecovery()
    consumer = rec.app.consumer
    consumer.app = rec.app
    rec.app.tables = rec.tables
    consumer.pause_partitions(STREAM | CHANGELOG)
    asyncio.run(hold_resumes(original("on_recovery_completed"))(rec, 7))
    consumer.pause_partitions(CHANGELOG)  # as Faust leaves its active changelog partitions after recovery
    assert asyncio.run(paused_agents(consumer)) == (0, 0)
    consumer.pause_partitions({TP("decisions", 0)})
    consumer._thread.aio.pause(*consumer._thread.aio.assignment())
    assert asyncio.run(paused_agents(consumer)) == (1, 3)


@pytest.mark.parametrize("name", ["on_recovery_completed", "_resume_streams"])
def test_faust_itself_completes_a_recovery_whose_seek_ended_inside_a_new_rebalance(name):
    # The revocation of a new rebalance came during the seek; its recovery signal (what Faust's `_wait` checks)
    # comes later. Faust applies the seek's offsets and resumes the flow anyway, in the middle of that rebalance.
    rec = FakeRecovery()
    rec.app.consumer.revoke_in_seek = True
    asyncio.run(original(name)(rec, 7))
    assert "offsets applied" in rec.events and "resume flow" in rec.events, (
        f"Faust {name} now notices a rebalance begun during its seek: the check in hold_resumes may go "
        f"({rec.events})")


@pytest.mark.parametrize("name", ["on_recovery_completed", "_resume_streams"])
def test_patched_a_seek_ending_inside_a_new_rebalance_completes_nothing(name, caplog):
    rec = FakeRecovery()
    rec.app.consumer.revoke_in_seek = True
    with caplog.at_level("INFO", logger="riskstream.stream"), pytest.raises(RebalanceAgain):
        asyncio.run(hold_resumes(original(name))(rec, 7))
    ev = rec.events
    assert "seek done" in ev
    assert "offsets applied" not in ev and "resume flow" not in ev and "queues emptied" not in ev, ev
    assert stream_resumes(ev) == [], ev  # Faust's side stays paused: the new rebalance's recovery resumes them
    assert ev[-1] == ("fetch resumed", AIO_STREAM)
    assert not {"resume_partitions", "seek_to_committed"} & set(vars(rec.app.consumer))
    assert "interrupted by a new rebalance" in caplog.text


def test_patched_a_recovery_of_an_already_revoked_generation_does_not_start():
    rec = FakeRecovery()
    rec.app.rebalancing_count = 4  # revoked since generation 7 was assigned (rebalance 3), not yet reassigned
    with pytest.raises(RebalanceAgain):
        asyncio.run(hold_resumes(original("on_recovery_completed"))(rec, 7))
    assert rec.events == []


def test_patched_revoked_after_the_seek_the_agents_partitions_are_not_resumed():
    rec = FakeRecovery()

    async def revoked_at_the_end(self, generation_id=0):
        self.app.consumer.resume_partitions(STREAM)
        await self.app.consumer.perform_seek()
        self.app.rebalancing_count += 1  # revoked while the method finishes (it awaits the fetcher's start)

    asyncio.run(hold_resumes(revoked_at_the_end)(rec, 7))
    assert stream_resumes(rec.events) == [] and rec.events[-1] == ("fetch resumed", AIO_STREAM)


def test_the_rebalance_listener_notes_in_which_rebalance_each_generation_was_assigned():
    from types import SimpleNamespace

    from riskstream.stream.resume import assigned_in, note_assignments

    app = SimpleNamespace(rebalancing_count=5)
    coordinator = SimpleNamespace(generation=9)
    thread = SimpleNamespace(app=app, _ensure_consumer=lambda: SimpleNamespace(_coordinator=coordinator))
    seen = []

    async def on_partitions_assigned(self, assigned):
        seen.append(assigned)

    asyncio.run(note_assignments(on_partitions_assigned)(SimpleNamespace(_thread=thread), {"tp"}))
    assert seen == [{"tp"}] and app._riskstream_assigned == (9, 5)
    app.rebalancing_count = 6  # a revocation since
    assert assigned_in(app, 9) == 5
    assert assigned_in(app, 10) == 6  # unknown generation: the current count (nothing to compare with)
