"""The bundled champion's intent (riskstream/data/policies/default.yaml, tuned with the backtest: docs/backtest.md).

PD alone restricts no credit line, nor does one missed due date: a limit cut needs a payment 10 days past due and a
PD above the limit line (or a payment still unpaid 25 days after its due date), a close needs 45 days past due, and a
facility is judged on its DSCR and covenants, never its PD.
The challenger has the same rules with tighter cutoffs.
"""

import pytest

from riskstream.core.policy import decide, load_policy
from riskstream.core.outcomes import RESTRICTIVE_COMMANDS
from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY

CHAMP = load_policy(DEFAULT_POLICY)
CHALL = load_policy(CHALLENGER_POLICY)
CTX = {"account_id": "a1", "event_id": "e1", "event_time": 0, "model_version": "m", "feature_hash": "h"}


def line(**f):
    return {"product": "credit_line", "segment": "retail", "pd": 0.0, "missed_payments_90d": 0,
            "partial_payments_90d": 0, "days_past_due": 0, **f}


def facility(**f):
    return {"product": "project_facility", "segment": "energy", "pd": 0.0, "dscr": 0.0, "covenant_headroom": 0.0,
            "cashflow_deviation": 0.0, "covenant_breach_in_periods": -1, **f}


def action(policy, facts):
    d, _ = decide(policy, facts, [], CTX, {})
    return None if d is None else d.action


@pytest.mark.parametrize("pd", [0.2, 0.5, 0.99])
def test_pd_alone_restricts_no_line(pd):
    assert action(CHAMP, line(pd=pd)) not in RESTRICTIVE_COMMANDS
    assert action(CHAMP, line(pd=pd, utilisation=0.95, drawdown_velocity_ratio=5.0)) == "REVIEW"


def test_a_payment_10_days_late_and_pd_cut_the_limit():
    assert action(CHAMP, line(pd=0.5, missed_payments_90d=1, days_past_due=10)) == "REDUCE_LIMIT"
    assert action(CHAMP, line(pd=0.49, missed_payments_90d=1, days_past_due=10)) == "WARN"  # below the limit line
    assert action(CHAMP, line(pd=0.05, missed_payments_90d=1, days_past_due=10)) is None   # a good customer, late


def test_one_missed_due_date_or_a_partial_payment_only_warns():
    # Most good customers who miss a due date pay within two weeks (docs/backtest.md).
    assert action(CHAMP, line(pd=0.99, missed_payments_90d=1, days_past_due=9)) == "WARN"
    assert action(CHAMP, line(pd=0.99, partial_payments_90d=1)) == "WARN"
    assert action(CHAMP, line(pd=0.99, missed_payments_90d=1, days_past_due=0)) == "WARN"   # paid since


def test_a_payment_unpaid_25_days_after_due_cuts_the_limit_whatever_the_pd():
    assert action(CHAMP, line(pd=0.01, missed_payments_90d=1, days_past_due=25)) == "REDUCE_LIMIT"
    assert action(CHAMP, line(pd=0.01, missed_payments_90d=1, days_past_due=24)) is None


def test_close_needs_45_days_past_due_and_waits_out_its_grace():
    d, _ = decide(CHAMP, line(pd=0.7, missed_payments_90d=2, days_past_due=45), [], CTX, {})
    assert (d.action, d.rule_id, d.immediate, d.params["grace_ms"]) == ("CLOSE", "pd-close", False, 72 * 3_600_000)
    assert action(CHAMP, line(pd=0.99, missed_payments_90d=2, days_past_due=44)) == "REDUCE_LIMIT"
    assert action(CHAMP, line(pd=0.5, missed_payments_90d=2, days_past_due=60)) == "REDUCE_LIMIT"


def test_fraud_and_takeover():
    d, _ = decide(CHAMP, line(fraud_confirmed=1), [], CTX, {})
    assert (d.action, d.immediate) == ("CLOSE", True)
    assert action(CHAMP, line(failed_logins_24h=5, new_device_before_drawdown=1)) == "FREEZE"
    assert action(CHAMP, line(failed_logins_24h=2, new_device_before_drawdown=1, drawdown_velocity_ratio=3.0)) == \
        "FREEZE"
    assert action(CHAMP, line(failed_logins_24h=2, new_device_before_drawdown=1)) is None


def test_facilities_are_judged_on_cover_and_covenants_not_pd():
    assert action(CHAMP, facility(pd=0.99)) is None                     # no statement yet: dscr 0 is "unknown"
    assert action(CHAMP, facility(dscr=1.3)) is None
    assert action(CHAMP, facility(dscr=0.9)) == "REPAYMENT_PLAN"
    assert action(CHAMP, facility(dscr=0.7, covenant_headroom=-0.4)) == "CLOSE"
    assert action(CHAMP, facility(dscr=1.3, covenant_headroom=-0.1)) == "WARN"
    assert action(CHAMP, facility(dscr=1.3, covenant_breach_in_periods=1)) == "WARN"


def test_challenger_same_rules_tighter_cutoffs():
    assert [r.id for r in CHAMP.rules] == [r.id for r in CHALL.rules]
    for key, value in CHAMP.thresholds["credit_line"].items():
        assert CHALL.thresholds["credit_line"][key] < value
    facts = line(pd=0.32, missed_payments_90d=1, days_past_due=12)
    assert (action(CHAMP, facts), action(CHALL, facts)) == ("WARN", "REDUCE_LIMIT")
