"""The pure steps: determinism (live/replay parity), crash-replay exactness, dead letters, idempotency, breaker."""

from __future__ import annotations

import orjson
import pytest

from riskstream.core.contracts import encode_event, make_event, read_dead_letter
from riskstream.core.account.record import AccountRecord
from riskstream.core.actuator import SentCommands
from riskstream.core.names import COMMANDS as T_COMMANDS, DEAD as T_DEAD, DECISIONS as T_DECISIONS
from riskstream.core.steps import (Context, Decision, PipelineConfig, Source, account_one, actuate_batch,
                                   breaker_key, ingest, tick_record)
from riskstream.offline.replay import replay
from riskstream.ops.simulator import SimConfig, Simulator

NOW = 1_790_000_000_000


@pytest.fixture(scope="module")
def records():
    sim = Simulator(SimConfig(accounts=60, facilities=6, seed=11, start_ms=NOW - 3 * 86_400_000, step_ms=20_000,
                              malformed_share=0.05))
    return list(sim.wire(4000))


@pytest.fixture(scope="module")
def pipeline_shared():
    return Context()


def ids(outs, field):
    return [orjson.loads(o.value)[field] for o in outs]


def test_replay_is_deterministic(records):
    a = replay(records, now_ms=NOW)
    b = replay(records, now_ms=NOW)
    assert a.decisions and a.commands, "the simulated stream should trigger decisions"
    assert [o.value for o in a.decisions] == [o.value for o in b.decisions]
    assert ids(a.commands, "command_id") == ids(b.commands, "command_id")
    assert a.consumed == len(a.valid) + len(a.market) + sum(1 for d in a.dead
                                                             if read_dead_letter(d.value)["source_topic"] != "riskstream.events.valid")


def test_every_command_id_is_unique(records):
    res = replay(records, now_ms=NOW)
    cids = ids(res.commands, "command_id")
    assert len(cids) == len(set(cids))


def test_account_record_roundtrip():
    rec = AccountRecord(b"", b"abc", bytes(range(256)), b"x")
    assert AccountRecord.decode(rec.encode()) == rec


def _open(acc, t):
    return encode_event(make_event("account_opened", acc, {"product": "credit_line", "segment": "retail",
                                                           "limit": 1000.0, "currency": "EUR"}, event_time=t))


def _valid(p, raw):
    out = ingest(p.config, raw, Source("riskstream.events.behaviour", 0, 0, NOW))
    assert out.topic == "riskstream.events.valid"
    return out.value


def test_crash_replay_is_exact(pipeline_shared):
    """Events at or below the record's last offset are skipped; replaying from an older record repeats the ids."""
    p = pipeline_shared
    t0 = NOW - 3_600_000
    events = [_valid(p, _open("CR1", t0))] + [
        _valid(p, encode_event(make_event("drawdown", "CR1", {"amount": 300.0}, event_time=t0 + 60_000 * i)))
        for i in range(1, 8)]
    rec, outs_all = None, []
    checkpoints = []
    for off, v in enumerate(events):
        checkpoints.append(rec)
        new, outs = account_one(p, rec, v, offset=off)
        rec = new if new is not None else rec
        outs_all.append(outs)
    # Redelivery after the state was written: nothing happens again.
    for off, v in enumerate(events):
        new, outs = account_one(p, rec, v, offset=off)
        assert new is None and outs == []
    # State lost back to checkpoint 4 (last commit): the same outputs come again, with the same ids.
    rec2 = checkpoints[4]
    for off in range(4, len(events)):
        new, outs = account_one(p, rec2, events[off], offset=off)
        rec2 = new if new is not None else rec2
        assert [o.value for o in outs if o.topic == T_DECISIONS] == \
               [o.value for o in outs_all[off] if o.topic == T_DECISIONS]
    assert AccountRecord.decode(rec2).state == AccountRecord.decode(rec).state


def test_state_rejections_are_dead_lettered(pipeline_shared):
    p = pipeline_shared
    t0 = NOW - 12 * 3_600_000
    new, outs = account_one(p, None, _valid(p, encode_event(make_event("login", "NOPE", {
        "device_fingerprint": "fp", "ip": "198.51.100.1"}, event_time=t0))), offset=0)
    assert new is None and [read_dead_letter(o.value)["reason"] for o in outs] == ["unknown_account"]

    rec, _ = account_one(p, None, _valid(p, _open("DL1", t0)), offset=0)
    dd = _valid(p, encode_event(make_event("drawdown", "DL1", {"amount": 10.0}, event_time=t0 + 10 * 3_600_000)))
    rec, _ = account_one(p, rec, dd, offset=1)
    again, outs = account_one(p, rec, dd, offset=2)
    assert [read_dead_letter(o.value)["reason"] for o in outs if o.topic == T_DEAD] == ["duplicate"]
    late = _valid(p, encode_event(make_event("drawdown", "DL1", {"amount": 11.0}, event_time=t0 + 60_000)))
    _, outs = account_one(p, again, late, offset=3)
    dead = [read_dead_letter(o.value) for o in outs if o.topic == T_DEAD]
    assert [d["reason"] for d in dead] == ["late"] and dead[0]["original"] == late


def test_actuator_is_idempotent(records):
    res = replay(records, now_ms=NOW)
    cfg = PipelineConfig()
    live = [d for d in res.decisions if orjson.loads(d.value).get("mode") == "live"]
    assert live
    lines, sent = {}, []
    for _ in range(2):  # every decision delivered twice, with nothing remembered across but the lines
        for i, d in enumerate(live):
            r = actuate_batch(cfg, lines.get, [Decision(d.key, d.value, 0, i)], SentCommands())
            lines.update(r.dirty)
            sent += [o for o in r.outs if o.topic == T_COMMANDS]
    cids = ids(sent, "command_id")
    assert len(cids) == len(set(cids)) > 0


def test_sent_commands_are_never_sent_again():
    """A crash between publishing and saving the lines: the same decisions again, with the ids already sent."""
    cfg = PipelineConfig()
    d = {"decision_id": "d1", "account_id": "a1", "action": "WARN", "params": {}, "mode": "live",
         "policy_version": 1, "event_time": 5, "active_accounts": 100}
    batch = [Decision(b"a1", orjson.dumps(d), 0, 0)]
    first = actuate_batch(cfg, {}.get, batch, SentCommands())
    sent = SentCommands()
    sent.update(first.sent_ids)
    again = actuate_batch(cfg, {}.get, batch, sent)  # lines lost, ids remembered
    assert first.outs and again.outs == [] and again.counts["duplicates_suppressed"] == 1


def _close(i, t, account=None):
    return {"decision_id": f"d{i}", "account_id": account or f"a{i}", "action": "CLOSE", "params": {},
            "immediate": True, "mode": "live", "policy_version": 1, "event_time": t, "active_accounts": 40}


def test_breaker_is_per_partition_and_its_state_is_in_the_table():
    """One breaker per decisions partition, kept under breaker_key(p): a restarted actuator (or another process
    taking the partition over) reads it back, waiting and held commands included; a drop reset undoes each held
    command."""
    cfg = PipelineConfig(breaker_max_count=8, partitions=4)  # 2 per partition (the share needs 10: not reached)
    table, sent = {}, SentCommands()
    closes = [Decision(f"a{i}".encode(), orjson.dumps(_close(i, 1000 + i)), 1, i) for i in range(5)]
    r1 = actuate_batch(cfg, table.get, closes[:3], sent)
    table.update(r1.dirty)
    sent.update(r1.sent_ids)
    # the third CLOSE in the minute trips it: the two waiting are held with it, none has left
    assert [o.label for o in r1.outs] == ["breaker_trip"] and r1.breakers == {1: (1, 3, 0)}
    assert r1.counts["breaker_tripped"] == 1 and r1.counts["breaker_held"] == 3
    # Another partition has its own breaker: its CLOSE waits a minute of event time, then leaves.
    other = actuate_batch(cfg, table.get, [Decision(b"b1", orjson.dumps(_close(9, 1000, "b1")), 2, 0)], sent)
    table.update(other.dirty)
    assert other.outs == [] and other.breakers == {2: (0, 0, 1)}
    later = actuate_batch(cfg, table.get, [tick_record(2, 1000 + cfg.breaker_hold_ms)], sent)
    table.update(later.dirty)
    assert [o.label for o in later.outs] == ["CLOSE"] and not orjson.loads(table[breaker_key(2)])["waiting"]
    # "Restart": a fresh call with only the table: still tripped, more held.
    r2 = actuate_batch(cfg, table.get, closes[3:], sent)
    table.update(r2.dirty)
    assert r2.outs == [] and orjson.loads(table[breaker_key(1)])["tripped"] and r2.breakers == {1: (1, 5, 0)}
    reset = {"kind": "breaker_reset", "how": "drop", "control_id": "r1", "time": 2000, "by": "ops"}
    r3 = actuate_batch(cfg, table.get, [Decision(b"__breaker__", orjson.dumps(reset), 1, 5)], sent)
    table.update(r3.dirty)
    assert r3.outs == [] and {b"a0", b"a1", b"a2", b"a3", b"a4"} <= set(r3.dirty)
    # The same reset again (redelivered) does nothing.
    r4 = actuate_batch(cfg, table.get, [Decision(b"__breaker__", orjson.dumps(reset), 1, 5)], sent)
    assert r4.audit == []


def test_a_control_input_neither_waits_nor_moves_the_breaker_clock():
    """A person's CLOSE (routed from the control topic, stamped by a wall clock) leaves at once; the clock the
    policy's CLOSE wait on stays in event time."""
    cfg = PipelineConfig(breaker_max_count=40, partitions=4)
    table, sent = {}, SentCommands()
    r1 = actuate_batch(cfg, table.get, [Decision(b"a1", orjson.dumps(_close(1, 1000)), 0, 0)], sent)
    table.update(r1.dirty)
    manual = {"kind": "manual", "account_id": "m1", "control_id": "c1", "action": "CLOSE", "by": "ops",
              "time": 10 ** 13}
    r2 = actuate_batch(cfg, table.get, [Decision(b"m1", orjson.dumps(manual), 0, 1)], sent)
    table.update(r2.dirty)
    assert [o.label for o in r2.outs] == ["CLOSE"] and orjson.loads(r2.outs[0].value)["account_id"] == "m1"
    assert orjson.loads(table[breaker_key(0)])["clock"] == 1000 and orjson.loads(table[breaker_key(0)])["waiting"]


def test_a_trip_in_one_partition_holds_closes_in_every_partition():
    """The tripped partition announces it on the control topic; routed to every partition, it trips them all."""
    from riskstream.core.names import CONTROL
    from riskstream.core.steps import route_control

    cfg = PipelineConfig(breaker_max_count=8, partitions=4)
    table, sent = {}, SentCommands()
    r1 = actuate_batch(cfg, table.get, [Decision(f"a{i}".encode(), orjson.dumps(_close(i, 1000 + i)), 1, i)
                                        for i in range(3)], sent)
    table.update(r1.dirty)
    trip = [o for o in r1.outs if o.topic == CONTROL]
    assert len(trip) == 1
    routed = route_control(cfg, trip[0].value)
    assert routed.refused is None, "the actuator signs the trips it announces"
    r2 = actuate_batch(cfg, table.get, [Decision(o.key, o.value, o.partition, 10) for o in routed.outs], sent)
    table.update(r2.dirty)
    assert {p for p, (open_, _, _) in r2.breakers.items() if open_} == {0, 1, 2, 3}
    r3 = actuate_batch(cfg, table.get, [Decision(b"b1", orjson.dumps(_close(9, 1100, "b1")), 2, 11)], sent)
    assert [o.label for o in r3.outs] == [] and r3.breakers[2] == (1, 1, 0)


def test_a_batch_re_run_after_a_crash_decides_with_the_versions_written_ahead(records):
    """The account step's `ahead` keys (the versions record) are made durable before its decisions go out. A
    worker that crashes after publishing them, losing every other write, and has loaded a new policy by the time
    it re-reads the batch, decides the batch again with the policy it used the first time: the same decision ids.
    Without the versions record it would decide them with the new policy: other ids, the first ones orphaned."""
    from riskstream.core.partitioner import partition_for
    from riskstream.core.steps import Valid, account_batch
    from riskstream.data import DEFAULT_POLICY

    ctx = Context()
    valid, offsets = [], {}
    for i, (topic, _, raw) in enumerate(records):
        out = ingest(ctx.config, raw, Source(topic, 0, i, NOW))
        if out.topic == "riskstream.events.valid":
            p = partition_for(out.key, ctx.config.partitions)
            offsets[p] = offsets.get(p, -1) + 1
            valid.append(Valid(out.key, out.value, p, offsets[p]))
    table: dict = {}
    head, batch = valid[:-1500], valid[-1500:]
    for i in range(0, len(head), 200):
        table.update(account_batch(ctx, table.get, head[i:i + 200]).dirty)

    def decided(res):
        return sorted((d["decision_id"], d["policy_version"]) for d in
                      (orjson.loads(o.value) for o in res.outs if o.topic == T_DECISIONS) if "decision_id" in d)

    first = account_batch(ctx, table.get, batch)
    assert decided(first) and set(first.ahead) == {b"\x00versions/%d" % p for p in {r.partition for r in batch}}
    crashed = {**table, **{k: first.dirty[k] for k in first.ahead}}  # only the writes made ahead survived
    text = DEFAULT_POLICY.read_text().replace("\nversion: 1\n", "\nversion: 2\n")
    assert ctx.offer_policy(text, "test")[0] and ctx.versions()["policy_version"] == 2
    assert decided(account_batch(ctx, crashed.get, batch)) == decided(first)
    without = account_batch(ctx, table.get, batch)  # the race `ahead` closes: the champion's decisions at version 2
    assert {d["policy_version"] for d in map(orjson.loads, (o.value for o in without.outs if o.topic == T_DECISIONS))
            if d.get("role") == "champion"} == {2}
