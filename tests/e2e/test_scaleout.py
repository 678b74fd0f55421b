"""Scale-out by a second worker in the group: every record is processed and every partition is fetched again, even
when the new member's rebalance interrupts the first worker's end-of-recovery seek (`riskstream.stream.resume`).

`riskstream.stream.resume` holds the agents' partitions paused while Faust seeks them to their committed offsets
at the end of table recovery. When a rebalance interrupts that seek it leaves them paused in Faust, for the
recovery of the new generation to resume. Here that interruption is made certain: worker A is held in its seek
(tests/e2e/slowseek/sitecustomize.py, a gate file) until worker B has joined and A has received the new
assignment. A partition left paused would keep its records after its committed offset, so the test publishes to
every partition after each rebalance and waits until the group has committed the end of every partition of every
topic the worker reads: after B joins (A's interrupted recovery), and after B leaves (A takes B's partitions over
and keeps its own across the rebalance).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from riskstream.ops.orchestrate import read_topic
from tests.e2e.test_actuator_e2e import Accounts, committed_offsets, publish
from tests.e2e.test_takeover import slowseek_env
from tests.support import wait_for

pytestmark = pytest.mark.slow

INTERRUPTED = "end-of-recovery seek interrupted by a new rebalance"


def worker_reads(pipeline) -> list[tuple[str, str]]:
    """(group, physical topic) of everything the worker app's agents read."""
    topo = pipeline.topology
    group = topo.agents["score"].group
    return sorted({(topo.topic_prefix + group, pipeline.topic(t))
                   for a in topo.agents.values() if a.group == group for t in a.reads})


def behind(pipeline, reads) -> dict[str, dict[int, tuple]]:
    """{topic: {partition: (committed, end)}} of the partitions whose records are not all committed."""
    out = {}
    for group, topic in reads:
        late = {p: ce for p, ce in committed_offsets(pipeline.bootstrap, group, topic).items()
                if ce[1] and (ce[0] is None or ce[0] < ce[1])}
        if late:
            out[topic[len(pipeline.topology.topic_prefix):]] = late
    return out


def validated(pipeline) -> set[str]:
    return {orjson.loads(r.value)["event_id"]
            for r in read_topic(pipeline.bootstrap, pipeline.topic("riskstream.events.valid"), idle_s=1.0)
            if not r.key.startswith(b"\x00")}  # watermark records (docs/time.md)


def event_ids(records) -> set[str]:
    return {orjson.loads(v)["event_id"] for _, _, v in records}


def generations(proc) -> int:
    """Recoveries Faust started in `proc` (one per generation of the group it was assigned in)."""
    return proc.log_text().count("faust.tables.recovery\", \"msg\": \"generation id")


@pytest.mark.kafka
def test_two_workers_fetch_every_partition_after_a_join_interrupts_recovery(kafka_pipeline, tmp_path):
    pipeline = kafka_pipeline
    reads = worker_reads(pipeline)
    acc = Accounts(40, "SCO")
    sent: set[str] = set()

    def wave(records, what: str) -> None:
        publish(pipeline, records)
        sent.update(event_ids(records))
        try:
            wait_for(f"{what}: every event validated", lambda: sent <= validated(pipeline), timeout=120, every=1.0)
            wait_for(f"{what}: every partition committed to its end", lambda: not behind(pipeline, reads),
                     timeout=60, every=1.0)
        except AssertionError:
            print(f"{what}: sent {len(sent)}, validated {len(sent & validated(pipeline))}, "
                  f"(committed, end) of the partitions behind: {behind(pipeline, reads)}")
            raise
        print(f"{what}: {len(sent)} events validated, every partition committed")

    # Phase 1: one worker, wave 1 committed; the accounts table's changelog now holds records to recover.
    first = pipeline.start("worker", name="worker-0")
    first.wait_ready(timeout=120)
    wave(acc.opened() + acc.events("drawdown", rounds=2), "wave 1")
    first.stop()

    # Phase 2: a backlog after the committed offsets; worker A recovers and is held in its end-of-recovery seek.
    backlog = acc.events("drawdown", rounds=5)
    publish(pipeline, backlog)
    sent.update(event_ids(backlog))
    gate = tmp_path / "seek-gate"
    env = slowseek_env(RISKSTREAM_TEST_SEEK_GATE=str(gate))
    a = pipeline.start("worker", name="worker-a", env=env)
    seeks = Path(str(gate) + ".seeks")
    wait_for("worker A in its end-of-recovery seek", seeks.exists, timeout=120, every=0.2)
    assert "and first for the gate" in a.log_text(), "worker A: test hook not loaded"

    # Phase 3: B joins; A gets the new generation while held; then A's seek is let go.
    b = pipeline.start("worker", name="worker-b")
    wait_for("worker A assigned in a second generation", lambda: generations(a) >= 2, timeout=120, every=0.2)
    time.sleep(1.0)  # A's main thread has started handling that assignment (pause + recovery signal)
    gate.touch()
    a.wait_ready(timeout=120)
    b.wait_ready(timeout=120)
    wave(acc.events("drawdown", rounds=2), "after B joined")  # every partition, on both workers

    # Phase 4: B leaves; A takes its partitions over and keeps its own across the rebalance.
    b.stop()
    wave(acc.events("drawdown", rounds=2), "after B left")
    assert a.alive()
    assert INTERRUPTED in a.log_text(), "A's end-of-recovery seek was not interrupted: the test missed its case"
    print(f"worker A: {generations(a)} recoveries, {a.log_text().count(INTERRUPTED)} interrupted, "
          f"{len(seeks.read_text().splitlines())} seeks")


STALE_END = "Missing sensor state for rebalance"  # Faust: a rebalance's end was reported by a stale recovery


def seek_ended_inside_the_join(proc) -> bool:
    """The first generation's rewind (riskstream.stream.rewind) logged after its partitions were revoked."""
    text = proc.log_text()
    revoked = text.find("Revoking previously assigned partitions frozenset(")
    return revoked >= 0 and text.find("without a committed offset read again from their beginning", revoked) >= 0


@pytest.mark.kafka
def test_a_join_during_the_first_recovery_of_a_new_group_skips_nothing(kafka_pipeline, tmp_path):
    """A brand-new group over a backlog (no committed offset anywhere): worker A's first end-of-recovery seek ends
    inside the rebalance of B's join, after A's partitions were revoked and before A's next recovery is signalled
    (tests/e2e/slowseek/sitecustomize.py, RISKSTREAM_TEST_SEEK_AFTER_REVOKE). Faust finished that stale recovery: it
    resumed the flow and (through riskstream.stream.resume) the agents' partitions in the middle of the new rebalance,
    and reported that rebalance's end. A's agents then fetched and processed records before their generation had
    recovered, and that recovery threw away what was queued (tests/faults scenario 2: the first fetch of every
    upstream partition cut short after offset 0, its other records read only at a later rebalance, out of order).
    """
    pipeline = kafka_pipeline
    reads = worker_reads(pipeline)
    acc = Accounts(400, "NEW")
    backlog = acc.opened() + acc.events("drawdown", rounds=6)
    publish(pipeline, backlog)
    sent = event_ids(backlog)

    hook = tmp_path / "after-revoke"
    env = slowseek_env(RISKSTREAM_TEST_SEEK_AFTER_REVOKE=str(hook))
    a = pipeline.start("worker", name="worker-a", env=env)
    seeks = Path(str(hook) + ".seeks")
    wait_for("worker A in its first end-of-recovery seek", seeks.exists, timeout=120, every=0.2)
    assert "waits for a revocation" in a.log_text(), "worker A: test hook not loaded"
    b = pipeline.start("worker", name="worker-b")
    a.wait_ready(timeout=120)
    b.wait_ready(timeout=120)
    try:
        wait_for("every event validated", lambda: sent <= validated(pipeline), timeout=120, every=1.0)
        wait_for("every partition committed to its end", lambda: not behind(pipeline, reads), timeout=60,
                 every=1.0)
    except AssertionError:
        print(f"sent {len(sent)}, validated {len(sent & validated(pipeline))}, (committed, end) of the partitions "
              f"behind: {behind(pipeline, reads)}")
        raise
    assert a.alive() and b.alive()
    assert generations(a) >= 2 and seek_ended_inside_the_join(a), "A's seek did not end inside B's join: case missed"
    assert STALE_END not in a.log_text(), "A completed its first generation's recovery inside the next rebalance"
    print(f"worker A: {generations(a)} recoveries, {a.log_text().count(INTERRUPTED)} interrupted; "
          f"{len(sent)} events validated, every partition committed")
