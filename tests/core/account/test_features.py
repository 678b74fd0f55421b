"""Features: the name contract, each definition, product applicability, hash stability, docs in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskstream.core.account.features import FEATURES, compute_features, feature_hash, features_markdown
from riskstream.core.account.state import apply_event
from riskstream.core.durations import DAY, HOUR, MINUTE
from riskstream.core.windows import default_config

REQUIRED = [
    "drawdown_sum_1h", "drawdown_count_1h", "drawdown_sum_30d", "drawdown_velocity_ratio", "utilisation",
    "failed_logins_24h", "distinct_devices_7d", "new_device_before_drawdown", "days_past_due", "missed_payments_90d",
    "partial_payments_90d", "payment_to_due_ratio_90d", "days_since_last_payment", "bureau_inquiries_30d",
    "external_delinquencies_90d", "new_debt_sum_90d", "dscr", "cashflow_deviation", "milestone_slippage_days",
    "covenant_headroom", "market_index_change_7d", "market_rate_change_30d_bp", "market_unemployment", "market_shock",
]

FAMILY = {"financial_statement": "project", "cashflow_actual": "project", "milestone_report": "project",
          "covenant_test": "project", "statement_issued": "repayment", "payment_received": "repayment",
          "payment_partial": "repayment", "payment_missed": "repayment", "bureau_inquiry": "credit",
          "external_delinquency": "credit", "new_debt": "credit"}

_ids = iter(range(10**9))


def ev(t: int, etype: str, **payload) -> dict:
    return {"event_id": f"e{next(_ids)}", "type": etype, "schema_version": 1,
            "family": FAMILY.get(etype, "behaviour"), "entity": "a", "event_time": t, "producer_time": t,
            "source": "test", "payload": payload}


def account(*events, product="credit_line", limit=1000.0):
    state, _ = apply_event(None, ev(0, "account_opened", product=product, segment="retail", limit=limit))
    for e in events:
        state, outcome = apply_event(state, e)
        assert outcome == "applied", e
    return state


def feats(state, as_of=None):
    return compute_features(state, as_of=state.watermark if as_of is None else as_of, market=None)


def test_names_are_the_contract():
    f = feats(account())
    assert list(FEATURES) == REQUIRED
    assert list(f) == REQUIRED
    assert all(isinstance(v, float) for v in f.values())


def test_fresh_account_defaults():
    f = feats(account(), as_of=3 * DAY)
    assert f["payment_to_due_ratio_90d"] == 1.0
    assert f["days_since_last_payment"] == 3.0
    assert all(v == 0.0 for k, v in f.items() if k not in ("payment_to_due_ratio_90d", "days_since_last_payment"))


def test_drawdown_features_and_velocity_floor():
    floor = default_config().velocity_baseline_floor
    s = account(ev(DAY, "drawdown", amount=300.0), ev(40 * DAY, "drawdown", amount=200.0),
                ev(40 * DAY + 10 * MINUTE, "drawdown", amount=100.0))
    f = feats(s)
    assert f["drawdown_sum_1h"] == 300.0 and f["drawdown_count_1h"] == 2.0
    assert f["drawdown_sum_30d"] == 300.0                     # the day-1 drawdown is 39 days old
    assert f["drawdown_velocity_ratio"] == pytest.approx(300.0 / floor)
    assert f["utilisation"] == pytest.approx(0.6)
    busy = account(*[ev(d * DAY, "drawdown", amount=7200.0) for d in range(1, 30)],
                   ev(30 * DAY, "drawdown", amount=1000.0), limit=10**6)
    baseline = (29 * 7200.0 + 1000.0) / 720    # as of day 30 the 30d window is days (0, 30]: all of them
    assert baseline > floor
    assert feats(busy)["drawdown_velocity_ratio"] == pytest.approx(1000.0 / baseline)


def test_behaviour_features():
    s = account(ev(HOUR, "login_failed", device_fingerprint_hash="d1", ip_hash="i"),
                ev(2 * HOUR, "login_failed", device_fingerprint_hash="d2", ip_hash="i"),
                ev(3 * HOUR, "login", device_fingerprint_hash="d2", ip_hash="i"),
                ev(4 * HOUR, "device_change", device_fingerprint_hash="d3"),
                ev(20 * HOUR, "drawdown", amount=10.0))
    f = feats(s)
    assert f["failed_logins_24h"] == 2.0
    assert f["distinct_devices_7d"] == 3.0
    assert f["new_device_before_drawdown"] == 1.0              # change 16h before the drawdown
    s, _ = apply_event(s, ev(30 * HOUR, "drawdown", amount=10.0))
    assert feats(s)["new_device_before_drawdown"] == 0.0       # 26h: outside the 24h look-back
    assert feats(s)["failed_logins_24h"] == 0.0
    s, _ = apply_event(s, ev(30 * HOUR - 1, "contact_change", field="phone"))
    assert feats(s)["new_device_before_drawdown"] == 1.0


def test_repayment_features():
    s = account(ev(DAY, "statement_issued", statement_id="s1", amount_due=200.0, due_date=21 * DAY, balance=200.0),
                ev(22 * DAY, "payment_missed", statement_id="s1", days_past_due=1, amount_due=200.0),
                ev(25 * DAY, "payment_partial", amount=50.0, amount_due=200.0))
    f = feats(s, as_of=30 * DAY)
    assert f["days_past_due"] == 1.0 + 8                       # still unpaid: 8 more whole days
    assert f["missed_payments_90d"] == 1.0 and f["partial_payments_90d"] == 1.0
    assert f["payment_to_due_ratio_90d"] == pytest.approx(0.25)
    assert f["days_since_last_payment"] == pytest.approx(5.0)
    s, _ = apply_event(s, ev(31 * DAY, "payment_received", amount=150.0))
    f = feats(s)
    assert f["days_past_due"] == 0.0 and f["payment_to_due_ratio_90d"] == pytest.approx(1.0)
    assert feats(s, as_of=200 * DAY)["missed_payments_90d"] == 0.0


def test_credit_record_features():
    s = account(ev(DAY, "bureau_inquiry", bureau="b", inquiry_kind="hard"),
                ev(2 * DAY, "external_delinquency", days_past_due=30, amount=10.0),
                ev(3 * DAY, "new_debt", amount=5000.0, lender_kind="bank"))
    f = feats(s)
    assert (f["bureau_inquiries_30d"], f["external_delinquencies_90d"], f["new_debt_sum_90d"]) == (1.0, 1.0, 5000.0)


def test_project_features_and_applicability():
    events = [ev(DAY, "financial_statement", period="Q1", revenue=10.0, ebitda=150.0, debt_service=100.0, cash=1.0),
              ev(2 * DAY, "cashflow_actual", period="Q1", actual=80.0, plan=100.0),
              ev(3 * DAY, "milestone_report", milestone="m", planned_date=DAY, actual_date=None, pct_complete=40.0),
              ev(3 * DAY, "covenant_test", covenant="dscr_min", value=1.5, threshold=1.2, direction="min"),
              ev(3 * DAY, "covenant_test", covenant="leverage_max", value=4.5, threshold=5.0, direction="max")]
    f = feats(account(*events, product="project_facility"), as_of=5 * DAY)
    assert f["dscr"] == 1.5
    assert f["cashflow_deviation"] == pytest.approx(-0.2)
    assert f["milestone_slippage_days"] == 4.0
    assert f["covenant_headroom"] == pytest.approx(min(0.3 / 1.2, 0.5 / 5.0))
    g = feats(account(*[dict(e, event_id=e["event_id"] + "x") for e in events], product="credit_line"))
    assert (g["dscr"], g["cashflow_deviation"], g["milestone_slippage_days"], g["covenant_headroom"]) == (0, 0, 0, 0)


def test_feature_hash_is_stable_and_sensitive():
    f = feats(account(ev(HOUR, "drawdown", amount=10.0)))
    h = feature_hash(f)
    assert len(h) == 16 and h == feature_hash(dict(reversed(list(f.items()))))
    assert feature_hash({**f, "utilisation": f["utilisation"] + 1e-9}) == h       # below the rounding
    assert feature_hash({**f, "utilisation": f["utilisation"] + 1e-3}) != h
    assert feature_hash({**f, "dscr": -0.0}) == feature_hash({**f, "dscr": 0.0})


def test_docs_table_is_generated_from_the_registry():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "features.md").read_text()
    assert features_markdown() in docs
