"""Property tests of the credit-line state machine over random input sequences."""

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.actuator import ActuatorConfig, LineState, decode_line, encode_line, step
from riskstream.core.actuator.commands import command_id

HOUR = 3_600_000
CFG = ActuatorConfig(cure_cycles=2, grace_ms=72 * HOUR, manual_pin_ms=48 * HOUR)
POLICY_ACTIONS = ["CLOSE", "FREEZE", "REDUCE_LIMIT", "REPAYMENT_PLAN", "REPRICE", "WARN", "REVIEW"]


def decision(did, action, immediate=False, mode="live"):
    return {"kind": "decision", "decision_id": did, "account_id": "a1", "action": action, "params": {},
            "immediate": immediate and action == "CLOSE", "mode": mode, "policy_version": 1, "rule_id": "r"}


inputs = st.one_of(
    st.builds(decision, st.sampled_from([f"d{i}" for i in range(25)]), st.sampled_from(POLICY_ACTIONS),
              st.sampled_from([False, False, False, True]),
              st.sampled_from(["live", "live", "live", "shadow"])),
    st.builds(lambda i, c: {"kind": "cure", "account_id": "a1", "event_id": f"c{i}", **({"cycles": c} if c else {})},
              st.integers(0, 30), st.sampled_from([None, None, 1, 2, 3])),
    st.builds(lambda k, on, i: {"kind": k, "account_id": "a1", "on": on, "control_id": f"k{i}"},
              st.sampled_from(["legal_hold", "allow_list"]), st.booleans(), st.integers(0, 10**6)),
    st.builds(lambda a, i: {"kind": "manual", "account_id": "a1", "action": a, "control_id": f"m{i}", "by": "ops"},
              st.sampled_from(POLICY_ACTIONS + ["REINSTATE"]), st.integers(0, 10**6)),
)
steps = st.lists(st.tuples(st.integers(0, 40 * HOUR), inputs), min_size=1, max_size=50)


def run(seq, line=None, t=0):
    """Feed the sequence; yield (now, input, line_before, line_after, commands, audit)."""
    for dt, inp in seq:
        t += dt
        before = line
        line, cmds, audit = step(line, inp, t, CFG)
        yield t, inp, before, line, cmds, audit


@settings(max_examples=300, deadline=None)
@given(steps)
def test_no_close_without_prior_warn_unless_immediate(seq):
    last_warn = None
    for now, inp, before, line, cmds, audit in run(seq):
        for c in cmds:
            if c["action"] == "CLOSE" and inp["kind"] == "decision":
                if inp["immediate"]:
                    continue
                assert last_warn is not None, "CLOSE without any warning"
                assert now - last_warn >= CFG.grace_ms, "CLOSE inside the grace"
            if c["action"] == "WARN":
                last_warn = now
            if c["action"] == "REINSTATE":
                last_warn = None
        if inp["kind"] == "cure" and before is not None and f"cure:{inp['event_id']}" not in before.handled:
            last_warn = None  # a cure answers the warning: a later close needs a new one
        if inp["kind"] == "decision" and inp["mode"] == "shadow":
            assert cmds == []


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 40 * HOUR))
def test_cure_reinstates(seq, gap):
    line, t = None, 0
    for t, inp, before, line, cmds, audit in run(seq):
        pass
    if line is None or line.closed_at is not None or line.legal_hold:
        return
    restricted = line.state in ("WARNED", "LIMITED", "FROZEN")
    issued = []
    for k in range(CFG.cure_cycles):
        t += gap
        line, cmds, _ = step(line, {"kind": "cure", "account_id": "a1", "event_id": f"fresh{k}"}, t, CFG)
        issued += cmds
    assert line.state in ("REINSTATED", "OPEN")
    if restricted:
        assert line.state == "REINSTATED" or line.frozen_until is None
        assert [c["action"] for c in issued] in (["REINSTATE"], [])


def test_cure_within_grace_prevents_close():
    line, cmds, _ = step(None, decision("d1", "CLOSE"), 0, CFG)
    assert [c["action"] for c in cmds] == ["WARN"]
    line, cmds, _ = step(line, {"kind": "cure", "account_id": "a1", "event_id": "c1"}, HOUR, CFG)
    assert cmds == [] and line.grace_until is None
    line, cmds, _ = step(line, decision("d2", "CLOSE"), 100 * HOUR, CFG)
    assert [c["action"] for c in cmds] == ["WARN"], "a cured warning must not lead straight to a close"


@settings(max_examples=300, deadline=None)
@given(steps)
def test_overrides_always_win(seq):
    for now, inp, before, line, cmds, audit in run(seq):
        if before is None:
            continue
        if inp["kind"] == "decision" and inp["mode"] == "live" and inp["decision_id"] not in before.handled:
            pinned = before.manual_until is not None and now < before.manual_until
            if before.legal_hold or before.allow_listed or pinned:
                assert cmds == []
                assert any(a["kind"] == "override" for a in audit)
        if inp["kind"] == "cure" and before.legal_hold:
            assert cmds == []
        if inp["kind"] == "manual" and f"ctl:{inp['control_id']}" not in before.handled:
            assert [c["action"] for c in cmds] == [inp["action"]]
            assert any(a["kind"] == "override" and a["payload"].get("event") == "manual" for a in audit)
            if inp["action"] == "REINSTATE":
                assert line.state == "REINSTATED"
            if inp["action"] == "CLOSE":
                assert line.state == "CLOSED"


@settings(max_examples=300, deadline=None)
@given(steps, st.data())
def test_redelivery_makes_no_second_command(seq, data):
    seen_ids = []
    line, t = None, 0
    for t, inp, before, line, cmds, audit in run(seq):
        for c in cmds:
            assert c["command_id"] not in seen_ids, "same command twice"
            seen_ids.append(c["command_id"])
    # redeliver any earlier input: nothing new happens
    _, again = data.draw(st.sampled_from(seq))
    line2, cmds, audit = step(line, again, t + HOUR, CFG)
    assert cmds == [] and audit == []


@settings(max_examples=200, deadline=None)
@given(steps)
def test_line_state_roundtrip(seq):
    for now, inp, before, line, cmds, audit in run(seq):
        assert decode_line(encode_line(line)) == line
        assert len(encode_line(line)) < 2048


def test_warn_then_close_after_grace_and_command_ids():
    line, cmds, _ = step(None, decision("d1", "WARN"), 0, CFG)
    assert line.state == "WARNED" and cmds[0]["command_id"] == command_id("d1", "WARN")
    line, cmds, _ = step(line, decision("d2", "CLOSE"), HOUR, CFG)
    assert cmds == [] and line.state == "WARNED"  # grace still running
    line, cmds, _ = step(line, decision("d3", "CLOSE"), 73 * HOUR, CFG)
    assert [c["action"] for c in cmds] == ["CLOSE"] and line.state == "CLOSED"
    assert set(cmds[0]) == {"command_id", "decision_id", "account_id", "action", "params", "issued_at",
                            "policy_version"}
    line, cmds, _ = step(line, decision("d4", "WARN"), 74 * HOUR, CFG)
    assert cmds == []


def test_immediate_close_and_freeze_lapse():
    line, cmds, _ = step(None, decision("d1", "FREEZE"), 0, CFG)
    assert line.state == "FROZEN"
    line, cmds, _ = step(line, decision("d2", "REVIEW"), CFG.freeze_ms + 1, CFG)
    assert line.state == "OPEN"
    line, cmds, _ = step(line, decision("d3", "CLOSE", immediate=True), CFG.freeze_ms + 2, CFG)
    assert [c["action"] for c in cmds] == ["CLOSE"] and line.state == "CLOSED"


def test_dropped_close_is_undone():
    line, _, _ = step(None, decision("d1", "CLOSE", immediate=True), 10, CFG)
    line2, cmds, _ = step(None, decision("d1", "CLOSE", immediate=True), 10, CFG)
    line, cmds, audit = step(line, {"kind": "dropped", "command": cmds[0]}, 20, CFG)
    assert line.state == "OPEN" and cmds == [] and audit[0]["kind"] == "breaker"


def test_unknown_kind_is_audited_not_fatal():
    line, cmds, audit = step(LineState("a1"), {"kind": "gossip", "account_id": "a1"}, 0, CFG)
    assert cmds == [] and audit[0]["payload"]["event"] == "ignored"


def test_with_is_dataclasses_replace():
    import dataclasses

    import pytest

    from riskstream.core.actuator.line import LineState, _with

    line = LineState("a1", limited=True, handled=("d1",))
    new = _with(line, {"state": "FROZEN", "frozen_until": 9})
    assert new == dataclasses.replace(line, state="FROZEN", frozen_until=9) and line.state == "OPEN"
    assert hash(new) == hash(dataclasses.replace(line, state="FROZEN", frozen_until=9))
    with pytest.raises(TypeError):
        _with(line, {"no_such_field": 1})
