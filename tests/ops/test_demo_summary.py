"""The demo's account of the close mechanism (`riskstream.ops.demo.close_mechanism`), without a broker."""

import doctest
import re

import riskstream.ops.demo as demo
from riskstream.ops.demo import close_mechanism

DAY = 86_400_000


def dec(did, account, t, rule="pd-close", action="CLOSE"):
    return {"decision_id": did, "account_id": account, "event_time": t, "rule_id": rule, "action": action,
            "reasons": ["rule reason", "days past due: 50 (raises the PD)"]}


def warn(did, account, t, grace=3 * DAY):
    return {"decision_id": did, "account_id": account, "action": "WARN", "issued_at": t,
            "params": {"close_pending": True, "grace_until": t + grace}}


def cmd(did, account, action, t):
    return {"decision_id": did, "account_id": account, "action": action, "issued_at": t, "params": {}}


def test_doctests():
    result = doctest.testmod(demo)
    assert result.failed == 0 and result.attempted > 0


def test_pending_grace_over_and_the_example_path():
    decisions = [dec("a1", "ACC1", 0), dec("a2", "ACC1", 2 * DAY, "still-past-due", "REDUCE_LIMIT"),
                 dec("a3", "ACC1", 4 * DAY),
                 dec("b1", "ACC2", 0),                          # close deferred, grace long over, no CLOSE
                 dec("c1", "ACC3", 9 * DAY),                    # close deferred near the end: pending
                 dec("d0", "ACC5", 0, "pd-warn", "WARN"),       # an ordinary warning counts as the close's warning
                 dec("d1", "ACC5", 8 * DAY), dec("w1", "ACC6", 1 * DAY, "pd-warn", "WARN")]
    commands = [warn("a1", "ACC1", 0), cmd("a2", "ACC1", "REDUCE_LIMIT", 2 * DAY), cmd("a3", "ACC1", "CLOSE", 4 * DAY),
                warn("b1", "ACC2", 0), warn("c1", "ACC3", 9 * DAY),
                dict(warn("d0", "ACC5", 0), params={"grace_until": 3 * DAY}), cmd("d1", "ACC5", "CLOSE", 8 * DAY),
                dict(warn("w1", "ACC6", 1 * DAY), params={"grace_until": 4 * DAY})]   # only warned: not counted
    m = close_mechanism(decisions, commands)
    assert (m["closed"], m["closed_after_warning"], m["close_warnings"], m["pending_in_grace"], m["grace_over"]) == \
        (2, 2, 3, 1, 1)
    ex = m["example"]
    assert re.fullmatch(r"[0-9a-f]{16}", ex["account_pseudonym"]) and "ACC1" not in str(ex)
    assert [(s["day"], s["action"], s["rule"], s["close_pending"]) for s in ex["path"]] == [
        (0.0, "WARN", "pd-close", True), (2.0, "REDUCE_LIMIT", "still-past-due", False), (4.0, "CLOSE", "pd-close", False)]
    assert ex["path"][0]["reason_code"] == "days_past_due"


def test_an_immediate_close_is_no_example():
    m = close_mechanism([dict(dec("f1", "ACC9", 5, "fraud-confirmed"), immediate=True)],
                        [cmd("f1", "ACC9", "CLOSE", 5)])
    assert (m["closed"], m["closed_after_warning"], m["example"]) == (1, 0, None)
