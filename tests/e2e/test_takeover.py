"""No record is skipped when a restarted worker and actuator take over partitions with a backlog after their
committed offsets, even when the seek to those offsets is slow (`riskstream.stream.resume`).

Faust resumed the partitions of the agents *before* its end-of-recovery seek to the committed offsets, and cleared
the agents' queues *after* it. On a loaded machine the seek takes seconds, and the records fetched in that window
were then thrown away with the queues while Faust's read-offset bookkeeping counted them as read: the partition
started a few records after its commit (a silent skip when Faust committed over them), or never committed again.

Here the seek is made slow on purpose (tests/e2e/slowseek/sitecustomize.py, 2 s before and after it), so that
window is certain instead of rare. Every agent of both apps is on the path: ingest (upstream topic), score (valid
topic, `accounts` table) and actuator (decisions topic, `lines` table).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_actuator_e2e import committed_offsets, downstream_of, publish, two_waves  # noqa: F401 (fixture)
from tests.support import REVIEW_POLICY, wait_for

pytestmark = pytest.mark.slow

SLOW_SEEK_DIR = Path(__file__).resolve().parent / "slowseek"
SLOW_SEEK_S = 2.0


def slowseek_env(**hooks: str) -> dict:
    """Environment for a riskstream process with the test hooks of tests/e2e/slowseek (sitecustomize) loaded."""
    path = os.pathsep.join(p for p in (str(SLOW_SEEK_DIR), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **hooks}


def all_committed(bootstrap: str, reads: list[tuple[str, str]]) -> bool:
    """True when every (group, topic) has committed the end of each partition that holds records."""
    for group, topic in reads:
        for committed, end in committed_offsets(bootstrap, group, topic).values():
            if end and (committed is None or committed < end):
                return False
    return True


@pytest.mark.kafka
def test_restarted_pipeline_skips_no_record_when_its_seek_is_slow(kafka_pipeline, downstream_of, tmp_path):
    pipeline = kafka_pipeline
    topo = pipeline.topology
    policy = tmp_path / "review.yaml"
    policy.write_text(REVIEW_POLICY)
    wave1, wave2, expected, expected1 = two_waves(policy, "TKA", "TKB", rounds1=2, rounds2=10)

    worker_group = topo.topic_prefix + topo.agents["score"].group
    actuator_group = topo.topic_prefix + topo.agents["actuator"].group
    reads = [(worker_group, pipeline.topic("riskstream.events.behaviour")),
             (worker_group, pipeline.topic("riskstream.events.valid")),
             (actuator_group, pipeline.topic("riskstream.decisions"))]

    # Phase 1: wave 1 through a worker and an actuator, every offset committed, both stopped. Their tables'
    # changelogs now hold records, so the restarted processes go through table recovery.
    worker = pipeline.start("worker", "--policy", str(policy), name="worker-1")
    actuator = pipeline.start("actuator", name="actuator-1")
    down = downstream_of(pipeline)
    worker.wait_ready(timeout=120)
    actuator.wait_ready(timeout=120)
    publish(pipeline, wave1)
    wait_for("wave 1 commands downstream", lambda: expected1 <= down.ids(), timeout=120)
    wait_for("wave 1 committed", lambda: all_committed(pipeline.bootstrap, reads), timeout=60, every=1.0)
    actuator.stop()
    worker.stop()

    # Phase 2: wave 2 is a backlog after the committed offsets of every agent's partitions.
    publish(pipeline, wave2)
    before = {f"{g[len(topo.topic_prefix):]}/{t[len(topo.topic_prefix):]}": committed_offsets(pipeline.bootstrap, g, t)
              for g, t in reads}

    # Phase 3: a new worker and actuator take the partitions over, with a slow seek to the committed offsets.
    env = slowseek_env(RISKSTREAM_TEST_SLOW_SEEK_S=str(SLOW_SEEK_S))
    worker = pipeline.start("worker", "--policy", str(policy), name="worker-2", env=env)
    actuator = pipeline.start("actuator", name="actuator-2", env=env)
    worker.wait_ready(timeout=120)
    actuator.wait_ready(timeout=120)
    for proc in (worker, actuator):
        assert "riskstream test hook: seek_to_committed waits" in proc.log_text(), f"{proc.name}: hook not loaded"
    try:
        wait_for("all commands downstream", lambda: expected <= down.ids(), timeout=120, every=0.5)
        wait_for("everything committed", lambda: all_committed(pipeline.bootstrap, reads), timeout=60, every=1.0)
    finally:
        missing = expected - down.ids()
        after = {f"{g[len(topo.topic_prefix):]}/{t[len(topo.topic_prefix):]}": committed_offsets(pipeline.bootstrap, g, t)
                 for g, t in reads}
        print(f"wave 1 {len(wave1)} events, wave 2 {len(wave2)} events (backlog); commands expected {len(expected)}, "
              f"received {len(down.ids() & expected)}, missing {len(missing)}")
        for name in before:
            print(f"  {name}: (committed, end) per partition at restart {before[name]} -> now {after[name]}")
    assert down.ids() == expected
    assert down.duplicates()[1] == 0
    assert worker.alive() and actuator.alive()
