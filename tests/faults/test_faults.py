"""The fault-injection suite (issue 13, point 3): each scenario runs the same seeded workload on Apache Kafka with
one fault and compares what it left on the broker with a clean run (tests/faults/harness.py).

The workload (8 h of event time across every upstream topic) is published before the processes start, so each
scenario also reads a backlog, as a pipeline does after any outage; the faults strike while it is read.

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
def dense_load():
    """Scenario 6's workload: its closes come as densely in event time as in the 50,000-event workload (accounts
    and span both scale with RS_FAULT_EVENTS), so a policy closing every line is the same flood against the
    breaker's limit of POISON_MAX a minute at any size. Over 8 h, 10,000 events made ~1 close a minute: under the
    limit, and those closes rightly left."""
    return workload(N_EVENTS, accounts=ACCOUNTS, facilities=FACILITIES, seed=SEED,
                    span_ms=8 * harness.HOUR * N_EVENTS // 50_000)


@pytest.fixture(scope="module")
def published(kafka_broker, tmp_path_factory, load) -> harness.Published:
    """The workload published once, as an upstream service would (a burst: many equal-ms CreateTimes across
    topics), and read back: every scenario re-publishes exactly these records."""
    run = run_on(kafka_broker, tmp_path_factory.mktemp("published"))
    try:
        t0 = time.monotonic()
        run.produce(load.records)
        pub = harness.Published.of(upstream_records(run.bootstrap, run.topic))
        print(f"\nworkload: {len(pub.records):,} records published and read back in {time.monotonic() - t0:.0f} s")
    finally:
        run.close()
    assert len(pub.records) == len(load.records)
    return pub


@pytest.fixture(scope="module")
def reference(published, closer_policy, tmp_path_factory) -> harness.Outcome:
    """The clean run of scenarios 1-5, computed once: the offline driver over the published records in
    publication order (broker timestamp, source, offset; docs/time.md)."""
    model_config = tmp_path_factory.mktemp("reference") / "models.yaml"
    model_config.write_text(harness.FIXED_MODEL)
    t0 = time.monotonic()
    clean = clean_outcome(list(published.records), model_config=model_config, policy_path=closer_policy,
                          breaker_max_count=BREAKER_MAX)
    print(f"\nclean reference: {len(clean.decisions):,} decisions, {len(clean.commands):,} commands in "
          f"{time.monotonic() - t0:.0f} s")
    return clean


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


def judge(name: str, run, published: harness.Published, clean: harness.Outcome, recovery_s: float | None,
          started: float, note: str = "") -> harness.Row:
    up = upstream_records(run.bootstrap, run.topic)
    published.check(up)
    live = live_outcome(run.bootstrap, run.topic, up)
    broken = harness.broken_marks(run.bootstrap, run.topic)
    if broken:
        first = sorted(broken)[0]
        print(f"{name}: {first} on the valid topic (source offsets): "
              f"{harness.source_runs(run.bootstrap, run.topic, first)}")
        note = f"{note}; " if note else ""
        note += f"events below their source's watermark {sum(broken.values())} {broken}"
    waited = sum(p.log_text().count("reader not caught up") for p in run.cluster.procs)
    if waited:
        note = f"{note}; " if note else ""
        note += f"{waited} context readers not caught up after 30 s"
    r = row(name, live, clean, recovery_s, note)
    r.wall_s = round(time.monotonic() - started, 1)
    for i in harness.differing(live.decisions, clean.decisions)[:6]:
        print(f"differs {i}: live {live.decisions.get(i)}\n    clean {clean.decisions.get(i)}")
    print(f"\n{name}: dead letters live {live.dead_by_reason}, clean {clean.dead_lettered}; commands live "
          f"{live.commands_by_action}, clean {clean.commands_by_action}")
    ROWS.append(r)
    print(f"\n{name}: {r}")
    return r


def assert_clean(r: harness.Row) -> None:
    assert r.lost == 0, r
    assert r.duplicate_command_ids == 0, r
    assert r.differing_decisions == 0, r
    assert r.processed + r.dead_lettered == r.events_in, r
    assert "below their source's watermark" not in r.note, r   # the alignment's promise (docs/time.md) held


def start_pipeline(run, published, policy, actuator: str = "actuator"):
    """Publish the workload into the run's topics, start one worker and one actuator, wait until both are ready."""
    published.publish(run.bootstrap, run.topic)
    worker = run.start("worker", "--policy", str(policy), name="worker")
    actuator_proc = run.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name=actuator)
    worker.wait_ready(90)
    actuator_proc.wait_ready(90)
    return worker, actuator_proc


# -- 1: worker SIGKILL at a random point, then a restart ----------------------------------------------------------
def test_worker_sigkill_and_restart(kafka_broker, tmp_path, load, closer_policy, published, reference):
    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    kill_share = random.Random(SEED).uniform(0.2, 0.7)
    try:
        pol = ("--policy", str(closer_policy))
        started = time.monotonic()
        published.publish(run.bootstrap, run.topic)
        worker = run.start("worker", *pol, name="worker-1")
        actuator = run.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name="actuator")
        worker.wait_ready(90)
        actuator.wait_ready(90)
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
    finally:
        prog.close()
        run.close()
    assert_clean(judge(f"1 worker SIGKILL at {kill_share:.0%}", run, published, reference, recovery, started))


# -- 2: two workers, one SIGKILLed: the survivor takes its partitions over ----------------------------------------
def test_two_workers_one_sigkilled(kafka_broker, tmp_path, load, closer_policy, published, reference):
    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    kill_share = random.Random(SEED + 2).uniform(0.2, 0.7)
    try:
        pol = ("--policy", str(closer_policy))
        started = time.monotonic()
        published.publish(run.bootstrap, run.topic)
        survivor = run.start("worker", *pol, name="worker-a")
        victim = run.start("worker", *pol, name="worker-b")
        actuator = run.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name="actuator")
        for p in (survivor, victim, actuator):
            p.wait_ready(120)
        wait_for(f"{kill_share:.0%} of valid records committed",
                 lambda: prog.valid_committed() >= kill_share * len(load.rest), timeout=600, every=0.2)
        victim.kill()
        t0 = time.monotonic()
        before = prog.valid_committed()
        wait_for("progress after the rebalance", lambda: prog.valid_committed() > before, timeout=180, every=0.2)
        recovery = time.monotonic() - t0
        finish(run, prog, survivor, 0)
    finally:
        prog.close()
        run.close()
    assert_clean(judge(f"2 two workers, one SIGKILLed at {kill_share:.0%}", run, published, reference, recovery,
                       started))


# -- 3: actuator SIGKILL during a wave of closes ------------------------------------------------------------------
def test_actuator_sigkill_during_a_wave_of_closes(kafka_broker, tmp_path, load, closer_policy, published, reference):
    from tests.e2e.test_actuator_e2e import Downstream

    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    down = Downstream(run.bootstrap, run.topic("riskstream.commands"))
    try:
        started = time.monotonic()
        worker, actuator = start_pipeline(run, published, closer_policy, actuator="actuator-1")
        # the kill strikes mid-wave: once 40 CLOSE are out, or a third of the clean run's CLOSE on a smaller workload
        wave = min(40, reference.commands_by_action.get("CLOSE", 0) // 3)
        assert wave > 0, "the clean run has no CLOSE commands: the workload is too small for this scenario"
        wait_for(f"a wave of CLOSE commands downstream ({wave})", lambda: down.count("CLOSE") >= wave, timeout=600,
                 every=0.2)
        actuator.kill()
        t0 = time.monotonic()
        sent_before = down.count()
        actuator = run.start("actuator", "--breaker-max-count", str(BREAKER_MAX), name="actuator-2")
        actuator.wait_ready(90)
        wait_for("commands flow again", lambda: down.count() > sent_before, timeout=180, every=0.2)
        recovery = time.monotonic() - t0
        finish(run, prog, worker, 0)
        down.wait_quiet(5)
        dup_deliveries, dup_effects = down.duplicates()
    finally:
        down.close()
        prog.close()
        run.close()
    r = judge("3 actuator SIGKILL during a wave of closes", run, published, reference, recovery, started,
              note=f"downstream duplicate deliveries {dup_deliveries}, duplicate effects {dup_effects}")
    assert_clean(r)
    assert dup_deliveries == 0 and dup_effects == 0


# -- 4: the broker stopped for 30 s mid-run, then started again --------------------------------------------------
def test_broker_outage_of_30_seconds(tmp_path, load, closer_policy, published, reference):
    from riskstream.ops.broker import manager

    state = tmp_path / "broker"
    info = manager.start("kafka", state_dir=state, progress=lambda m: None)
    run = run_on(info, tmp_path)
    prog = Progress(run)
    try:
        started = time.monotonic()
        worker, actuator = start_pipeline(run, published, closer_policy)
        wait_for("40% of valid records committed", lambda: prog.valid_committed() >= 0.4 * len(load.rest),
                 timeout=600, every=0.2)
        prog.close()
        manager.stop(state)
        time.sleep(30)
        manager.restart_kafka(state)
        t0 = time.monotonic()
        prog = Progress(run)
        before = prog.valid_committed()
        wait_for("progress after the broker is back", lambda: prog.valid_committed() > before, timeout=300, every=0.5)
        recovery = time.monotonic() - t0
        assert worker.alive() and actuator.alive(), "a process exited during the outage (a manual step)"
        finish(run, prog, worker, 0)
        r = judge("4 broker stopped for 30 s", run, published, reference, recovery, started,
                  note=f"processes alive after the outage: worker {worker.alive()}, actuator {actuator.alive()}")
    finally:
        prog.close()
        run.close()
        manager.stop(state)
    assert_clean(r)


# -- 5: a slow downstream: the command consumer pauses for a minute -----------------------------------------------
def test_slow_downstream_loses_nothing(kafka_broker, tmp_path, load, closer_policy, published, reference):
    import confluent_kafka
    import orjson

    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    got: list[str] = []
    consumer = confluent_kafka.Consumer({"bootstrap.servers": run.bootstrap, "group.id": "slow-downstream",
                                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([run.topic("riskstream.commands")])
    try:
        started = time.monotonic()
        worker, actuator = start_pipeline(run, published, closer_policy)
        while len(got) < 20:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(orjson.loads(msg.value())["command_id"])
        paused_at = len(got)
        time.sleep(60)     # the downstream service stalls; the pipeline keeps going
        t0 = time.monotonic()
        finish(run, prog, worker, 0)
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 5:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(orjson.loads(msg.value())["command_id"])
                idle_since = time.monotonic()
        recovery = time.monotonic() - t0
    finally:
        consumer.close()
        prog.close()
        run.close()
    r = judge("5 downstream paused for 60 s", run, published, reference, recovery, started,
              note=f"downstream received {len(got):,} commands ({paused_at} before the pause)")
    assert_clean(r)
    assert len(set(got)) == r.commands and len(got) == len(set(got)), (len(got), len(set(got)), r.commands)


# -- 6: a poison policy that would close everyone, and model snapshots that must not load -------------------------
POISON_MAX = 20   # CLOSE/FREEZE per minute and decisions partition before the breaker trips


def test_poison_policy_and_unloadable_model(kafka_broker, tmp_path, dense_load):
    import orjson
    import yaml

    from riskstream.core.models.snapshot import _HEADER, MAGIC, _mac, model_key
    from riskstream.ops import control
    from tests.support import metric

    poison = yaml.safe_dump({
        "name": "faults-poison", "version": 9, "mode": "live",
        "segments": {"credit_line": {"thresholds": {"warn_pd": 0.1, "limit_pd": 0.2, "close_pd": 0.4}}},
        "actions": {"CLOSE": {"cooldown": "0s", "hysteresis": False, "grace": "72h"}},
        "rules": [{"id": "close-everyone", "product": "credit_line", "when": [{"fact": "pd", "op": ">=", "value": 0}],
                   "action": "CLOSE", "immediate": True, "reason": "a poison policy (fault suite)"}]},
        sort_keys=False)
    broken = b"signed, but not a pickle"
    signed_broken = _HEADER.pack(MAGIC, 99, len(broken), _mac(model_key(), 99, broken)) + broken
    tampered = bytearray(signed_broken)
    tampered[-1] ^= 1

    run = run_on(kafka_broker, tmp_path)
    prog = Progress(run)
    from riskstream.ops.broker.manager import free_port

    wport, aport = free_port(), free_port()
    try:
        worker = run.start("worker", name="worker", metrics_port=wport)
        actuator = run.start("actuator", "--breaker-max-count", str(POISON_MAX), name="actuator", metrics_port=aport)
        worker.wait_ready(90)
        actuator.wait_ready(90)
        run.produce(dense_load.first + dense_load.rest[: len(dense_load.rest) // 4])
        wait_for("a quarter committed", lambda: prog.valid_committed() >= 0.2 * len(dense_load.rest), timeout=600,
                 every=0.2)
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=run.bootstrap, acks="all")
        for blob in (bytes(tampered), signed_broken):
            producer.send(run.topic("riskstream.models"), key=b"pd", value=blob).get(timeout=30)
        producer.close()
        wait_for("both snapshots refused", lambda: metric(wport, "riskstream_model_snapshot_loads_total",
                                                          result="tampered") >= 1 and
                 metric(wport, "riskstream_model_snapshot_loads_total", result="broken") >= 1, timeout=60)
        control.publish(run.bootstrap, control.message("policy", text=poison), topic=run.topic("riskstream.control"))
        run.produce(dense_load.rest[len(dense_load.rest) // 4:])
        finish(run, prog, worker, 0)
        trips = metric(aport, "riskstream_breaker_trips_total")
        alive = worker.alive() and actuator.alive()
    finally:
        prog.close()
        run.close()
    up = upstream_records(run.bootstrap, run.topic)
    live = live_outcome(run.bootstrap, run.topic, up)
    decisions = [orjson.loads(r.value) for r in harness.read_topic(run.bootstrap, run.topic(DECISIONS), timeout_s=120)]
    poison_ids = {d["decision_id"] for d in decisions if d.get("policy_name") == "faults-poison" and
                  d.get("role") == "champion" and "decision_id" in d}
    models = sorted({d.get("model_version") for d in decisions if d.get("model_version")})
    commands = [orjson.loads(r.value) for r in harness.read_topic(run.bootstrap, run.topic("riskstream.commands"),
                                                                   timeout_s=120)]
    closes_out = sum(1 for c in commands if c["action"] == "CLOSE" and c.get("decision_id") in poison_ids)
    poison_closes = sum(1 for d in decisions if d.get("decision_id") in poison_ids and d.get("action") == "CLOSE")
    r = harness.Row("6 poison policy + unloadable model", live.events_in, live.processed, live.dead_lettered,
                    len(live.decisions), len(live.commands), live.duplicate_command_ids, live.lost, None, None, None,
                    f"poison CLOSE decisions {poison_closes:,}, CLOSE commands sent under it {closes_out}, breaker "
                    f"trips {trips:.0f}; model versions in decisions {models}; processes alive {alive}")
    ROWS.append(r)
    print(f"\n{r}")
    assert alive and trips >= 1 and poison_closes > 100
    assert models == [models[0]] and "99" not in models[0], models
    assert r.lost == 0 and r.duplicate_command_ids == 0
    # A CLOSE waits one breaker window before it leaves, so the window that trips the breaker sends none of it.
    assert closes_out == 0, f"{closes_out} CLOSE commands left under the poison policy"
