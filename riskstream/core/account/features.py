"""Feature vector of one account as of an event time: a flat ``dict[str, float]`` with fixed names.

``compute_features(state, as_of=..., market=...)`` reads the account's windows (see riskstream.core.windows), its latest
values (riskstream.core.account.state) and the global market history (riskstream.core.market) as of ``as_of``. Pass the account's
watermark (``state.watermark``) as ``as_of``: then replay and any arrival order within the allowed lateness give the
same features. Features that do not apply to the account's product are 0.0. The names in :data:`FEATURES` are a
contract with the model and policy modules.

>>> from riskstream.core.account.state import apply_event
>>> ev = lambda i, t, type, **p: {"event_id": str(i), "type": type, "family": "behaviour", "entity": "a",
...                               "event_time": t, "payload": p}
>>> s, _ = apply_event(None, ev(0, 0, "account_opened", product="credit_line", segment="retail", limit=1000.0))
>>> s, _ = apply_event(s, ev(1, 60_000, "drawdown", amount=400.0))
>>> f = compute_features(s, as_of=s.watermark, market=None)
>>> f["drawdown_sum_1h"], f["utilisation"], f["dscr"]
(400.0, 0.4, 0.0)
>>> len(feature_hash(f))
16
"""

from __future__ import annotations

import hashlib
import math

import orjson

from riskstream.core.market import (
    INDEX_CHANGE_HORIZON,
    RATE_CHANGE_HORIZON,
    UNEMPLOYMENT_KEY,
    MarketHistory,
    max_between,
    rate_key,
    sector_key,
    value_as_of,
)
from riskstream.core.account.state import AccountState
from riskstream.core.durations import DAY, HOUR
from riskstream.core.windows.buckets import VALUE_SCALE, aggregate
from riskstream.core.windows.spec import FeatureConfig, default_config

__all__ = ["BEHAVIOUR_FEATURES", "FEATURES", "compute_features", "feature_hash", "features_markdown"]

FEATURES: dict[str, str] = {
    "drawdown_sum_1h": "sum of drawdown amounts in the last hour (5-min buckets)",
    "drawdown_count_1h": "number of drawdowns in the last hour (5-min buckets)",
    "drawdown_sum_30d": "sum of drawdown amounts in the last 30 days (1-day buckets)",
    "drawdown_velocity_ratio": "drawdown_sum_1h / max(drawdown_sum_30d / 720, velocity_baseline_floor): last hour "
                               "versus the account's hourly baseline",
    "utilisation": "max(outstanding balance estimate, 0) / limit (0 when limit is 0); balance = drawdowns + "
                   "purchases - payments",
    "failed_logins_24h": "number of login_failed events in the last 24 hours (1-hour buckets)",
    "distinct_devices_7d": "distinct device fingerprint hashes in login, login_failed and device_change over 7 days",
    "new_device_before_drawdown": "1 if a device_change or contact_change happened within new_device_lookback "
                                  "(24h) before (or at) the latest drawdown, else 0",
    "days_past_due": "days past due of the latest payment_missed plus whole days since it, 0 once a later payment "
                     "clears the due amount (payment_received, or payment_partial with amount >= amount_due)",
    "missed_payments_90d": "number of payment_missed events in the last 90 days",
    "partial_payments_90d": "number of payment_partial events in the last 90 days",
    "payment_to_due_ratio_90d": "payments (received + partial) over 90 days / statement amounts due over 90 days, "
                                "capped at 10; 1 when nothing was due",
    "days_since_last_payment": "days since the latest payment (since the account was opened if never paid)",
    "bureau_inquiries_30d": "number of bureau_inquiry events in the last 30 days",
    "external_delinquencies_90d": "number of external_delinquency events in the last 90 days",
    "new_debt_sum_90d": "sum of new_debt amounts in the last 90 days",
    "dscr": "project facilities: ebitda / debt_service of the latest financial_statement (0 without one)",
    "cashflow_deviation": "project facilities: (actual - plan) / |plan| of the latest cashflow_actual "
                          "(0 without one or when plan is 0)",
    "milestone_slippage_days": "project facilities: days the latest milestone_report is behind plan: actual_date "
                               "- planned_date, or as_of - planned_date while not reached; never below 0",
    "covenant_headroom": "project facilities: smallest (value - threshold) / |threshold| over the latest test of "
                         "each covenant, sign flipped for 'max' covenants (0 without tests)",
    "market_index_change_7d": "sector index of the account's segment as of as_of / its value 7 days before - 1 "
                              "(0 if either is unknown)",
    "market_rate_change_30d_bp": "change of the segment's (else the benchmark 'all') rate over 30 days, in basis "
                                 "points",
    "market_unemployment": "macro_indicator|unemployment as of as_of, percent (0 if unknown)",
    "market_shock": "1 if the segment's sector index as of as_of is >= shock_drop (20%) below its highest value in "
                    "the preceding 7 days, else 0",
}

#: The behaviour features the anomaly model learns from (sampled behaviour events on the labels topic).
BEHAVIOUR_FEATURES = ("drawdown_sum_1h", "drawdown_count_1h", "drawdown_velocity_ratio", "utilisation",
                      "failed_logins_24h", "distinct_devices_7d", "new_device_before_drawdown")
_PROJECT = "project_facility"
_VELOCITY_HOURS = 30 * 24
_RATIO_CAP = 10.0


def _agg(state: AccountState, cfg: FeatureConfig, name: str, horizon: int, as_of: int) -> dict:
    return aggregate(state.windows.get(name, {}), cfg.by_name[name], horizon, as_of)


def compute_features(state: AccountState, *, as_of: int, market: MarketHistory | None,
                     config: FeatureConfig | None = None) -> dict[str, float]:
    """All :data:`FEATURES` as floats, as of ``as_of`` (epoch ms; use the account watermark).

    Windows are exact for ``as_of >= state.watermark - allowed_lateness`` (older buckets have expired).
    """
    cfg = config or default_config()
    dd_1h = _agg(state, cfg, "drawdown_short", HOUR, as_of)
    dd_sum_30d = _agg(state, cfg, "drawdown_long", 30 * DAY, as_of)["sum"]
    paid_90d = _agg(state, cfg, "payments", 90 * DAY, as_of)["sum"]
    due_90d = _agg(state, cfg, "amount_due", 90 * DAY, as_of)["sum"]
    baseline = max(dd_sum_30d / _VELOCITY_HOURS, cfg.velocity_baseline_floor)
    f: dict[str, float] = {
        "drawdown_sum_1h": float(dd_1h["sum"]),
        "drawdown_count_1h": float(dd_1h["count"]),
        "drawdown_sum_30d": float(dd_sum_30d),
        "drawdown_velocity_ratio": dd_1h["sum"] / baseline,
        "utilisation": max(state.balance, 0) / VALUE_SCALE / state.limit if state.limit > 0 else 0.0,
        "failed_logins_24h": float(_agg(state, cfg, "login_failed", 24 * HOUR, as_of)["count"]),
        "distinct_devices_7d": float(_agg(state, cfg, "devices", 7 * DAY, as_of)["distinct"]),
        "new_device_before_drawdown": _new_device_before_drawdown(state, cfg),
        "days_past_due": _days_past_due(state, as_of),
        "missed_payments_90d": float(_agg(state, cfg, "missed_payments", 90 * DAY, as_of)["count"]),
        "partial_payments_90d": float(_agg(state, cfg, "partial_payments", 90 * DAY, as_of)["count"]),
        "payment_to_due_ratio_90d": min(paid_90d / due_90d, _RATIO_CAP) if due_90d > 0 else 1.0,
        "days_since_last_payment": max(as_of - (state.last_payment_time if state.last_payment_time is not None
                                                else state.opened_time), 0) / DAY,
        "bureau_inquiries_30d": float(_agg(state, cfg, "bureau_inquiries", 30 * DAY, as_of)["count"]),
        "external_delinquencies_90d": float(_agg(state, cfg, "external_delinquencies", 90 * DAY, as_of)["count"]),
        "new_debt_sum_90d": float(_agg(state, cfg, "new_debt", 90 * DAY, as_of)["sum"]),
    }
    f.update(_project_features(state, as_of))
    f.update(_market_features(state, as_of, market, cfg))
    return f


def _new_device_before_drawdown(state: AccountState, cfg: FeatureConfig) -> float:
    d = state.last_drawdown_time
    if d is None:
        return 0.0
    start = d - cfg.new_device_lookback
    return 1.0 if any(start <= c <= d for c in state.change_times) else 0.0


def _days_past_due(state: AccountState, as_of: int) -> float:
    if state.dpd is None:
        return 0.0
    t, clears, days = state.dpd
    if clears or days <= 0:
        return 0.0
    return float(days + max(as_of - t, 0) // DAY)


def _project_features(state: AccountState, as_of: int) -> dict[str, float]:
    out = {"dscr": 0.0, "cashflow_deviation": 0.0, "milestone_slippage_days": 0.0, "covenant_headroom": 0.0}
    if state.product != _PROJECT:
        return out
    if state.financials is not None and state.financials[2] > 0:
        out["dscr"] = state.financials[1] / state.financials[2]
    if state.cashflow is not None and state.cashflow[2] != 0:
        out["cashflow_deviation"] = (state.cashflow[1] - state.cashflow[2]) / abs(state.cashflow[2])
    if state.milestone is not None:
        _, planned, actual, _ = state.milestone
        reached = actual if actual != -1 else as_of
        out["milestone_slippage_days"] = max(reached - planned, 0) / DAY
    headrooms = []
    for _, value, threshold, is_max in state.covenants.values():
        scale = abs(threshold) if threshold != 0 else 1.0
        headroom = (value - threshold) / scale
        headrooms.append(-headroom if is_max else headroom)
    if headrooms:
        out["covenant_headroom"] = min(headrooms)
    return out


def _market_features(state: AccountState, as_of: int, market: MarketHistory | None,
                     cfg: FeatureConfig) -> dict[str, float]:
    out = {"market_index_change_7d": 0.0, "market_rate_change_30d_bp": 0.0, "market_unemployment": 0.0,
           "market_shock": 0.0}
    if market is None:
        return out
    sector = sector_key(state.segment)
    now = value_as_of(market, sector, as_of)
    before = value_as_of(market, sector, as_of - INDEX_CHANGE_HORIZON)
    if now is not None and before:
        out["market_index_change_7d"] = now / before - 1.0
    peak = max_between(market, sector, as_of - INDEX_CHANGE_HORIZON, as_of)
    if now is not None and peak and now <= peak * (1.0 - cfg.shock_drop):
        out["market_shock"] = 1.0
    rate = rate_key(market, state.segment)
    rate_now = value_as_of(market, rate, as_of)
    rate_before = value_as_of(market, rate, as_of - RATE_CHANGE_HORIZON)
    if rate_now is not None and rate_before is not None:
        out["market_rate_change_30d_bp"] = (rate_now - rate_before) * 100.0
    unemployment = value_as_of(market, UNEMPLOYMENT_KEY, as_of)
    if unemployment is not None:
        out["market_unemployment"] = unemployment
    return out


def feature_hash(features: dict[str, float]) -> str:
    """Stable 16-hex-digit hash of the feature values rounded to 6 decimals (names sorted)."""
    clean = {k: (round(v, 6) + 0.0 if math.isfinite(v) else 0.0) for k, v in features.items()}  # + 0.0: -0.0 → 0.0
    return hashlib.blake2b(orjson.dumps(clean, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def features_markdown() -> str:
    """The feature table of docs/features.md, generated from :data:`FEATURES`."""
    rows = ["| feature | definition |", "|---|---|"]
    rows += [f"| `{name}` | {definition} |" for name, definition in FEATURES.items()]
    return "\n".join(rows) + "\n"
