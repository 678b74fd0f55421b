"""The composed pure steps: determinism (live/replay parity), crash-replay exactness, dead letters, idempotency."""

from __future__ import annotations

import orjson
import pytest

from riskstream.core.contracts import encode_event, make_event, read_dead_letter
from riskstream.core.steps.pipeline import T_COMMANDS, T_DEAD, T_DECISIONS, Pipeline, pack, unpack
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
    return Pipeline()


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


def test_pack_roundtrip():
    parts = [b"", b"abc", bytes(range(256))]
    assert unpack(pack(*parts), 3) == parts


def _open(acc, t):
    return encode_event(make_event("account_opened", acc, {"product": "credit_line", "segment": "retail",
                                                           "limit": 1000.0, "currency": "EUR"}, event_time=t))


def _valid(p, raw):
    out = p.ingest(raw, topic="riskstream.events.behaviour", family="behaviour", partition=0, offset=0,
                   now_ms=NOW)
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
        new, outs = p.account(rec, v, offset=off)
        rec = new if new is not None else rec
        outs_all.append(outs)
    # Redelivery after the state was written: nothing happens again.
    for off, v in enumerate(events):
        new, outs = p.account(rec, v, offset=off)
        assert new is None and outs == []
    # State lost back to checkpoint 4 (last commit): the same outputs come again, with the same ids.
    rec2 = checkpoints[4]
    for off in range(4, len(events)):
        new, outs = p.account(rec2, events[off], offset=off)
        rec2 = new if new is not None else rec2
        assert [o.value for o in outs if o.topic == T_DECISIONS] == \
               [o.value for o in outs_all[off] if o.topic == T_DECISIONS]
    assert unpack(rec2, 4)[0] == unpack(rec, 4)[0]


def test_state_rejections_are_dead_lettered(pipeline_shared):
    p = pipeline_shared
    t0 = NOW - 12 * 3_600_000
    new, outs = p.account(None, _valid(p, encode_event(make_event("login", "NOPE", {
        "device_fingerprint": "fp", "ip": "198.51.100.1"}, event_time=t0))), offset=0)
    assert new is None and [read_dead_letter(o.value)["reason"] for o in outs] == ["unknown_account"]

    rec, _ = p.account(None, _valid(p, _open("DL1", t0)), offset=0)
    dd = _valid(p, encode_event(make_event("drawdown", "DL1", {"amount": 10.0}, event_time=t0 + 10 * 3_600_000)))
    rec, _ = p.account(rec, dd, offset=1)
    again, outs = p.account(rec, dd, offset=2)
    assert [read_dead_letter(o.value)["reason"] for o in outs if o.topic == T_DEAD] == ["duplicate"]
    late = _valid(p, encode_event(make_event("drawdown", "DL1", {"amount": 11.0}, event_time=t0 + 60_000)))
    _, outs = p.account(again, late, offset=3)
    dead = [read_dead_letter(o.value) for o in outs if o.topic == T_DEAD]
    assert [d["reason"] for d in dead] == ["late"] and dead[0]["original"] == late


def test_actuator_is_idempotent(records):
    res = replay(records, now_ms=NOW)
    p = Pipeline()
    live = [d for d in res.decisions if orjson.loads(d.value).get("mode") == "live"]
    assert live
    lines, sent = {}, []
    for _ in range(2):  # every decision delivered twice
        for d in live:
            line, outs, _ = p.actuate(lines.get(d.key), d.value, active_accounts=100)
            if line is not None:
                lines[d.key] = line
            sent += [o for o in outs if o.topic == T_COMMANDS]
    cids = ids(sent, "command_id")
    assert len(cids) == len(set(cids)) > 0
