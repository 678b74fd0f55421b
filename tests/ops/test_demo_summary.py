"""The demo's account of the close mechanism (`riskstream.ops.demo.close_mechanism`), without a broker."""

import doctest
import re

import riskstream.ops.demo as demo
from riskstream.ops.demo import close_mechanism

DAY = 86_400_000


def dec(did, account, t, rule="pd-close"):
    return {"decision_id": did, "account_id": account, "event_time": t, "rule_id": rule,
            "reasons": ["rule reason", "days past due: 50 (raises the PD)"]}


def warn(did, account, t, grace=3 * DAY):
    return {"decision_id": did, "account_id": account, "action": "WARN", "issued_at": t,
            "params": {"close_pending": True, "grace_until": t + grace}}


def cmd(did, account, action, t):
    return {"decision_id": did, "account_id": account, "action": action, "issued_at": t, "params": {}}


def test_doctests():
    result = doctest.testmod(demo)
    assert result.failed == 0 and result.attempted > 0


def test_pending_lapsed_cured_and_the_example_path():
    decisions = [dec("a1", "ACC1", 0), dec("a2", "ACC1", 2 * DAY, "still-past-due"), dec("a3", "ACC1", 4 * DAY),
                 dec("b1", "ACC2", 0),                          # warned, never closed, grace long over: lapsed
                 dec("c1", "ACC3", 9 * DAY),                    # warned near the end: pending
                 dec("d1", "ACC4", 1 * DAY)]                    # warned, then cured
    commands = [warn("a1", "ACC1", 0), cmd("a2", "ACC1", "REDUCE_LIMIT", 2 * DAY), cmd("a3", "ACC1", "CLOSE", 4 * DAY),
                warn("b1", "ACC2", 0), warn("c1", "ACC3", 9 * DAY), warn("d1", "ACC4", 1 * DAY),
                cmd("cure-x", "ACC4", "REINSTATE", 2 * DAY)]
    m = close_mechanism(decisions, commands)
    assert (m["close_warnings"], m["closed"], m["closed_after_warning"], m["pending_in_grace"], m["lapsed"]) == \
        (4, 1, 1, 1, 1)
    ex = m["example"]
    assert re.fullmatch(r"[0-9a-f]{16}", ex["account_pseudonym"]) and "ACC1" not in str(ex)
    assert [(s["day"], s["action"], s["rule"], s["close_pending"]) for s in ex["path"]] == [
        (0.0, "WARN", "pd-close", True), (2.0, "REDUCE_LIMIT", "still-past-due", False), (4.0, "CLOSE", "pd-close", False)]
    assert ex["path"][0]["reason_code"] == "days_past_due"


def test_an_immediate_close_is_no_example():
    m = close_mechanism([dec("f1", "ACC9", 5, "fraud-confirmed")], [cmd("f1", "ACC9", "CLOSE", 5)])
    assert (m["closed"], m["closed_after_warning"], m["example"]) == (1, 0, None)
