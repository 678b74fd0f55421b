"""Engine and actuator together on the bundled champion: a line deep in arrears with a high PD is warned, then
closed after the grace; a close never comes without a warning at least the grace earlier."""

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.actuator import ActuatorConfig, step
from riskstream.data import DEFAULT_POLICY
from riskstream.core.policy import decide, load_policy

POLICY = load_policy(DEFAULT_POLICY)
HOUR = 3_600_000


def run(pds, gap, dpd0=45.0):
    """One event every `gap` ms with the given PDs; the line is `dpd0` days past due at the first and stays unpaid."""
    mem, line, commands = {}, None, []
    for i, pd in enumerate(pds):
        t = i * gap
        ctx = {"account_id": "a1", "event_id": f"e{i}", "event_time": t, "model_version": "m", "feature_hash": "h"}
        facts = {"product": "credit_line", "segment": "retail", "pd": pd, "missed_payments_90d": 1,
                 "days_past_due": dpd0 + t / (24 * HOUR)}
        d, mem = decide(POLICY, facts, [], ctx, mem)
        if d is not None:
            line, cmds, _ = step(line, {"kind": "decision", **d.to_dict()}, t, ActuatorConfig())
            commands += [(t, c["action"]) for c in cmds]
    return line, commands


def test_persistently_bad_account_is_warned_then_closed():
    line, commands = run([0.6] * 20, 12 * HOUR)
    # while the close waits out the grace, the next-ranked rule cuts the limit; the repeat WARN sends nothing
    assert [a for _, a in commands] == ["WARN", "REDUCE_LIMIT", "CLOSE"]
    (tw, _), _, (tc, _) = commands
    assert tc - tw >= 72 * HOUR and line.state == "CLOSED"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.integers(HOUR, 48 * HOUR), st.floats(0.0, 90.0))
def test_no_close_without_warning_and_few_commands(pds, gap, dpd0):
    line, commands = run(pds, gap, dpd0)
    warned = None
    for t, a in commands:
        if a == "WARN":
            warned = t
        if a == "CLOSE":
            assert warned is not None and t - warned >= 72 * HOUR
    # cooldowns bound the command rate: at most a handful per week of events
    span_weeks = len(pds) * gap / (7 * 24 * HOUR) + 1
    assert len(commands) <= 8 * span_weeks
