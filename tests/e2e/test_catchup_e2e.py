"""Issue 13 point 2 / scenario 8 on Apache Kafka: a 1-day backlog across the upstream topics, read by one worker
started after the outage, decides exactly as the in-order run (docs/time.md).

1. A deterministic simulator stream spanning one day of event time (RS_CATCHUP_EVENTS, default 12,000; the
   acceptance figure is run with 60,000 over 5,000 accounts) is published to the four upstream topics and the
   market topic while no worker runs: the whole outage's backlog.
2. Then one worker and one actuator start. Each upstream partition is read at its own pace (the small topics are
   drained long before the big behaviour topic); the ingest step frames its batches with watermark records and
   the account step releases each valid partition's events in publication order.
3. The in-order run is the offline driver (the same steps) over the same upstream records, read back from the
   broker, in publication order: broker timestamp, then source topic, partition and offset (the order the
   alignment restores; records published within the same millisecond are ordered by source).

Printed and asserted: N, dead letters `late`/`unknown_account` 0, lost events 0 (every upstream event reaches the
valid topic and nothing stays pending), duplicate command ids 0, differing decisions 0 (by decision id: action,
rule, reasons, policy, model version) and differing commands 0 (by command id).
"""

from __future__ import annotations

import collections
import os
import time

import orjson
import pytest

from riskstream.core.contracts import read_dead_letter
from riskstream.core.names import COMMANDS, DEAD, DECISIONS, MARKET, VALID
from riskstream.ops.orchestrate import read_topic
from riskstream.ops.simulator import SimConfig, Simulator
from tests.e2e.test_parity_e2e import decision_fields, decision_key
from tests.e2e.test_recovery import CHANGELOG, Progress, produce, table

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

N_EVENTS = int(os.environ.get("RS_CATCHUP_EVENTS", "12000"))
DAY = 86_400_000
UPSTREAM = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
            "riskstream.events.project", MARKET)
MODEL_CONFIG = "trainer:\n  publish_every: 100000000\n"  # one model version: decisions cannot depend on load times


def backlog(n: int):
    start = (int(time.time() * 1000) // DAY - 2) * DAY
    sim = Simulator(SimConfig(accounts=max(50, n // 12), facilities=max(5, n // 600), seed=13, start_ms=start,
                              step_ms=DAY // n))
    records = list(sim.wire(n))
    span = sim.t - start
    assert 0.8 * DAY < span < 1.3 * DAY, span
    return records, span


def _event_id(letter: dict) -> str:
    return orjson.loads(letter["original"]).get("event_id", "?")


def wait_caught_up(prog: Progress, proc, n_valid: int, timeout: float, quiet: float = 8.0) -> float:
    """Until every upstream partition is committed to its end, the valid topic holds the events, the score agent
    is within the idle announcements of the end (they keep coming), and decisions and commands stopped growing."""
    start = time.monotonic()
    last, since = None, time.monotonic()
    behind = valid_behind = committed = None
    while time.monotonic() < start + timeout:
        assert proc.alive(), f"worker died:\n{proc.log_text()[-3000:]}"
        try:
            committed = prog.committed()
        except Exception:  # noqa: BLE001 - the group's coordinator is not there yet
            time.sleep(1.0)
            continue
        behind = [tp for t in UPSTREAM[:-1] for tp, end in prog.end(t).items() if end and committed.get(tp, -1) < end]
        valid_end = prog.end(VALID)
        valid_behind = [tp for tp, end in valid_end.items() if committed.get(tp, -1) < end - 8]
        now = (tuple(sorted(prog.end(DECISIONS).items())), tuple(sorted(prog.end(COMMANDS).items())))
        if now != last:
            last, since = now, time.monotonic()
        if not behind and not valid_behind and sum(valid_end.values()) >= n_valid \
                and time.monotonic() - since >= quiet:
            return time.monotonic() - start
        time.sleep(1.0)
    raise AssertionError(f"not caught up after {timeout}s: sources behind {behind[:6]}, valid behind "
                         f"{valid_behind[:6]} (committed {committed}), decisions/commands {last}\n"
                         f"{proc.log_text()[-3000:]}")


def test_one_day_backlog_decides_as_the_in_order_run(kafka_pipeline, tmp_path):
    p = kafka_pipeline
    records, span = backlog(N_EVENTS)
    t0 = time.monotonic()
    produce(p.bootstrap, p.topic, records)
    print(f"\nbacklog: {len(records)} events over {span / 3_600_000:.1f} h of event time published in "
          f"{time.monotonic() - t0:.1f} s with no worker running")
    model_cfg = tmp_path / "models.yaml"
    model_cfg.write_text(MODEL_CONFIG)
    n_valid = sum(1 for r in records if r[0] != MARKET)

    prog = Progress(p)
    try:
        t1 = time.monotonic()
        worker = p.start("worker", "--model-config", str(model_cfg), name="worker")
        actuator = p.start("actuator", name="actuator")
        took = wait_caught_up(prog, worker, n_valid, float(os.environ.get("RS_CATCHUP_TIMEOUT", "900")))
        assert actuator.alive(), actuator.log_text()[-3000:]
        print(f"caught up in {time.monotonic() - t1:.0f} s (worker start to all committed; wait {took:.0f} s)")
    finally:
        prog.close()

    upstream = [r for t in UPSTREAM for r in read_topic(p.bootstrap, p.topic(t), timeout_s=120)]
    valid = read_topic(p.bootstrap, p.topic(VALID), timeout_s=120)
    dead = [read_dead_letter(r.value) for r in read_topic(p.bootstrap, p.topic(DEAD), timeout_s=60)]
    live_decisions = [orjson.loads(r.value) for r in read_topic(p.bootstrap, p.topic(DECISIONS), timeout_s=120)]
    live_commands = [orjson.loads(r.value) for r in read_topic(p.bootstrap, p.topic(COMMANDS), timeout_s=120)]
    final = table(p.bootstrap, p.topic(CHANGELOG))
    models = read_topic(p.bootstrap, p.topic("riskstream.models"), timeout_s=30)

    # In-order reference: the offline driver over the same upstream records in publication order.
    from riskstream.core.steps import Context, PipelineConfig
    from riskstream.offline.driver import OfflineDriver

    ref_decisions, ref_commands, ref_dead, ref_stateful = {}, {}, collections.Counter(), set()

    def keep(o):
        if o.topic == DECISIONS:
            d = orjson.loads(o.value)
            ref_decisions[decision_key(d)] = decision_fields(d)
        elif o.topic == COMMANDS:
            c = orjson.loads(o.value)
            ref_commands[c["command_id"]] = (c["account_id"], c["action"], c.get("decision_id"))
        elif o.topic == DEAD:
            ref_dead[o.label] += 1
            if o.label in ("late", "unknown_account"):
                ref_stateful.add((o.label, _event_id(read_dead_letter(o.value))))

    driver = OfflineDriver(Context(PipelineConfig(model_config_path=model_cfg)), learn=False, on_output=keep)
    logical = {p.topic(t): t for t in UPSTREAM}
    order = sorted(upstream, key=lambda r: (r.timestamp, logical[r.topic], r.partition, r.offset))
    for r in order:
        driver.feed(logical[r.topic], r.value, timestamp_ms=r.timestamp)

    # Figures.
    reasons = collections.Counter(d["reason"] for d in dead)
    upstream_ids = collections.Counter(orjson.loads(r.value)["event_id"] for r in upstream if logical[r.topic] != MARKET)
    valid_ids = collections.Counter(orjson.loads(r.value)["event_id"] for r in valid if not r.key.startswith(b"\x00"))
    pending = [k for k in final if k.startswith(b"\x00pending/")]
    forced = sum(orjson.loads(v).get("forced", 0) for k, v in final.items() if k.startswith(b"\x00align/"))
    lost = sum((upstream_ids - valid_ids).values()) + len(pending)
    live = {decision_key(d): decision_fields(d) for d in live_decisions}
    differing = len(set(live) ^ set(ref_decisions)) + sum(1 for k in live.keys() & ref_decisions.keys()
                                                          if live[k] != ref_decisions[k])
    cmd_ids = collections.Counter(c["command_id"] for c in live_commands)
    duplicates = sum(n - 1 for n in cmd_ids.values() if n > 1)
    live_cmds = {c["command_id"]: (c["account_id"], c["action"], c.get("decision_id")) for c in live_commands}
    differing_cmds = len(set(live_cmds) ^ set(ref_commands)) + sum(
        1 for k in live_cmds.keys() & ref_commands.keys() if live_cmds[k] != ref_commands[k])
    marks = sum(1 for r in valid if r.key.startswith(b"\x00"))
    print(f"N={len(records)} upstream events ({n_valid} valid, {len(records) - n_valid} market); valid topic "
          f"{len(valid)} records ({marks} watermark records); dead letters {dict(reasons)} (in-order run "
          f"{dict(ref_dead)}); late {reasons['late']}, unknown_account {reasons['unknown_account']}; lost {lost} "
          f"(pending left {len(pending)}, released early by the bound {forced}); decisions live {len(live)} / "
          f"in order {len(ref_decisions)}, differing {differing}; commands live {len(live_commands)} / in order "
          f"{len(ref_commands)}, differing {differing_cmds}, duplicate command ids {duplicates}; "
          f"model snapshots {len(models)}")
    assert not models, "a model snapshot was published: decisions would depend on when it was loaded"
    # No false dead letter: exactly the events the in-order run dead-letters (the simulator's day has accounts whose
    # events really are more than the allowed lateness apart in publication order), none more.
    stateful = {(d["reason"], _event_id(d)) for d in dead if d["reason"] in ("late", "unknown_account")}
    false_late = len(stateful - ref_stateful)
    print(f"late/unknown_account beyond the in-order run's: {false_late} (in-order run: {len(ref_stateful)}, "
          f"backlog: {len(stateful)})")
    assert false_late == 0 and stateful == ref_stateful
    assert lost == 0
    assert live, "no decision at all: the comparison would prove nothing"
    assert differing == 0
    assert duplicates == 0
    assert differing_cmds == 0
