"""Review verdicts on the line state machine: fraud closes once, clear and hold are audited only."""

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.actuator import ActuatorConfig, step
from riskstream.core.actuator.line import REVIEW_VERDICTS

HOUR = 3_600_000
CFG = ActuatorConfig(grace_ms=72 * HOUR, manual_pin_ms=48 * HOUR)


def review(cid, verdict, did="d1"):
    return {"kind": "review", "account_id": "a1", "control_id": cid, "decision_id": did, "verdict": verdict,
            "note": "checked", "by": "ann"}


def decision(did, action):
    return {"kind": "decision", "decision_id": did, "account_id": "a1", "action": action, "params": {},
            "immediate": False, "mode": "live", "policy_version": 1, "rule_id": "r"}


def test_fraud_closes_at_once_pins_the_line_and_audits_the_verdict():
    line, cmds, audit = step(None, decision("d1", "REVIEW"), 0, CFG)
    assert [c["action"] for c in cmds] == ["REVIEW"]
    line, cmds, audit = step(line, review("r1", "fraud"), HOUR, CFG)
    assert [(c["action"], c["decision_id"]) for c in cmds] == [("CLOSE", "review:r1")]
    assert line.state == "CLOSED" and line.manual_until == HOUR + CFG.manual_pin_ms
    [note] = audit
    assert note["kind"] == "override" and note["payload"]["event"] == "review"
    assert {k: note["payload"][k] for k in ("control_id", "decision_id", "verdict", "note", "by")} == \
        {"control_id": "r1", "decision_id": "d1", "verdict": "fraud", "note": "checked", "by": "ann"}
    assert step(line, review("r1", "fraud"), 2 * HOUR, CFG)[1:] == ([], []), "redelivered: nothing again"
    # pinned: the policy's next decision is suppressed
    assert step(line, decision("d2", "WARN"), 3 * HOUR, CFG)[1] == []


def test_fraud_beats_a_legal_hold_as_a_manual_close_does_and_says_so():
    line, _, _ = step(None, {"kind": "legal_hold", "account_id": "a1", "control_id": "h1", "on": True}, 0, CFG)
    line, cmds, audit = step(line, review("r1", "fraud"), 1, CFG)
    assert [c["action"] for c in cmds] == ["CLOSE"] and audit[0]["payload"]["legal_hold"] is True


def test_clear_and_hold_send_nothing_and_change_no_state():
    line, _, _ = step(None, decision("d1", "WARN"), 0, CFG)
    for i, verdict in enumerate(("clear", "hold")):
        after, cmds, audit = step(line, review(f"r{i}", verdict), 1, CFG)
        assert cmds == [] and after.state == line.state == "WARNED" and after.manual_until is None
        assert audit[0]["payload"]["verdict"] == verdict and "no command" in audit[0]["payload"]["outcome"]


def test_an_unknown_verdict_is_refused_in_the_audit():
    line, cmds, audit = step(None, review("r1", "maybe"), 0, CFG)
    assert cmds == [] and line.state == "OPEN" and audit[0]["payload"]["outcome"].startswith("refused")


def test_fraud_on_a_closed_line_sends_no_second_close():
    line, _, _ = step(None, review("r1", "fraud"), 0, CFG)
    assert step(line, review("r2", "fraud", did="d2"), 1, CFG)[1] == []


CIDS = [f"c{i}" for i in range(8)]  # few ids, so most sequences repeat some
inputs = st.one_of(
    st.builds(review, st.sampled_from(CIDS), st.sampled_from(REVIEW_VERDICTS)),
    st.builds(lambda c, a: {"kind": "manual", "account_id": "a1", "control_id": c, "action": a, "by": "ops"},
              st.sampled_from(CIDS), st.sampled_from(["CLOSE", "REINSTATE", "WARN", "FREEZE"])),
    st.builds(decision, st.sampled_from([f"d{i}" for i in range(8)]),
              st.sampled_from(["CLOSE", "WARN", "REVIEW", "FREEZE"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * HOUR), inputs), min_size=1, max_size=40))
def test_at_most_one_command_per_control_id(seq):
    line, t, by_control = None, 0, {}
    for dt, inp in seq:
        t += dt
        line, cmds, _ = step(line, inp, t, CFG)
        if inp["kind"] != "decision":
            by_control.setdefault(inp["control_id"], []).extend(c["command_id"] for c in cmds)
            assert all(c["decision_id"] == f"{inp['kind']}:{inp['control_id']}" for c in cmds)
    assert all(len(ids) <= 1 for ids in by_control.values()), by_control
