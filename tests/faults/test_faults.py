"""The fault-injection suite (issue 13, point 3): each scenario runs the same seeded workload on Apache Kafka with
one fault and compares what it left on the broker with a clean run (tests/faults/harness.py).

Every scenario asserts lost events 0, duplicate command ids 0 and differing decisions 0 (scenario 6 asserts its
own figures), and adds a row to the table printed at the end of the session (and written to
``var/faults/table.md``): the README's Reliability section shows it. ``RS_FAULT_EVENTS`` sets the workload size
(default 50,000).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from riskstream.core.names import DECISIONS
from riskstream.data import DEFAULT_POLICY
from tests.e2e.test_recovery import Progress
from tests.faults import harness
from tests.faults.harness import clean_outcome, live_outcome, row, run_on, upstream_records, workload
from tests.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.faults]

N_EVENTS = int(os.environ.get("RS_FAULT_EVENTS", "50000"))
ACCOUNTS = max(100, N_EVENTS // 20)
FACILITIES = max(5, N_EVENTS // 1000)
SEED = 31
BREAKER_MAX = 100_000      # the wave of closes is legitimate here: only scenario 6 wants the breaker to hold
ROWS = harness.ROWS


@pytest.fixture(scope="module")
def load():
    return workload(N_EVENTS, accounts=ACCOUNTS, facilities=FACILITIES, seed=SEED)


@pytest.fixture(scope="module")
def closer_policy(tmp_path_factory) -> Path:
    """The bundled champion with an immediate pd-close: a run ends in a wave of CLOSE commands."""
    text = DEFAULT_POLICY.read_text().replace(
        "    action: CLOSE\n    reason: probability of default at or above the closing line",
        "    action: CLOSE\n    immediate: true\n    reason: probability of default at or above the closing line")
    assert "immediate: true\n    reason: probability of default" in text
    path = tmp_path_factory.mktemp("policy") / "closer.yaml"
    path.write_text(text.replace("name: retail-champion", "name: faults-closer"))
    return path


def actuator_done(run, prog: Progress) -> bool:
    group = run.prefix + "riskstream-actuator"
    committed = {tp: m.offset for tp, m in prog.admin.list_group_offsets({group: None}).get(group, {}).items()}
    return all(committed.get(tp, -1) >= end for tp, end in prog.end(DECISIONS).items() if end)


def finish(run, prog: Progress, worker, expected_valid: int, timeout: float = 600) -> None:
    prog.wait_done(worker, expected_valid, timeout=timeout)
    wait_for("the actuator has committed every decision", lambda: actuator_done(run, prog), timeout=300, every=1)


def judge(name: str, run, policy: Path, recovery_s: float | None, note: str = "", **clean_kw) -> harness.Row:
    up = upstream_records(run.bootstrap, run.topic)
    live = live_outcome(run.bootstrap, run.topic, up)
    clean = clean_outcome(up, model_config=run.model_config, policy_path=policy, breaker_max_count=BREAKER_MAX,
                          **clean_kw)
    r = row(name, live, clean, recovery_s, note)
    print(f"\n{name}: dead letters live {live.dead_by_reason}, clean {clean.dead_lettered}; commands live "
          f"{live.commands_by_action}, clean {clean.commands_by_action}")
    ROWS.append(r)
    print(f"\n{name}: {r}")
    return r


def assert_clean(r: harness.Row) -> None:
    assert r.lost == 0, r
    assert r.duplicate_command_ids == 0, r
    assert r.differing_decisions == 0, r
    assert r.processed + r.dead_lettered >= r.events_in - 0, r


# -- 1: worker SIGKILL at a random point, then a restart ----------------------------------------------------------
def test_worker_sigkill_and_restart(kafka_broker, tmp_path, load, closer_policy):
    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    kill_share = random.Random(SEED).uniform(0.2, 0.7)
    try:
        pol = ("--policy", str(closer_policy))
        worker = run.start("worker", *pol, name="worker-1")
        actuator = run.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name="actuator")
        worker.wait_ready(90)
        actuator.wait_ready(90)
        run.produce(load.records)
        n_valid = len(load.records)
        wait_for(f"{kill_share:.0%} of valid records committed",
                 lambda: prog.valid_committed() >= kill_share * len(load.rest), timeout=600, every=0.2)
        worker.kill()
        t0 = time.monotonic()
        worker = run.start("worker", *pol, name="worker-2")
        before = prog.valid_committed()
        worker.wait_ready(90)
        wait_for("progress after the restart", lambda: prog.valid_committed() > before, timeout=120, every=0.2)
        recovery = time.monotonic() - t0
        finish(run, prog, worker, 0)
        del n_valid
    finally:
        prog.close()
        run.close()
    assert_clean(judge(f"1 worker SIGKILL at {kill_share:.0%}", run, closer_policy, recovery))
