"""Feature vector of one account as of an event time: a flat ``dict[str, float]`` with fixed names.

``compute_features(state, as_of=..., market=...)`` reads the account's windows (see riskstream.core.windows), its latest
values (riskstream.core.account.state) and the global market history (riskstream.core.market) as of ``as_of``. Pass the account's
watermark (``state.watermark``) as ``as_of``: then replay and any arrival order within the allowed lateness give the
same features. Features that do not apply to the account's product are 0.0. The names are declared once, in
:mod:`riskstream.core.account.feature_list`; importing this module checks that ``compute_features`` emits exactly
those names, in that order.

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
from riskstream.core.account.feature_list import BEHAVIOUR_FEATURES, FEATURE_NAMES, FEATURES, features_markdown
from riskstream.core.account.state import AccountState, open_account
from riskstream.core.durations import DAY, HOUR
from riskstream.core.windows.buckets import COUNT, KEYS, SUM, VALUE_SCALE
from riskstream.core.windows.spec import FeatureConfig, default_config

__all__ = ["BEHAVIOUR_FEATURES", "FEATURES", "FEATURE_NAMES", "compute_features", "feature_hash", "features_markdown"]

_PROJECT = "project_facility"
_VELOCITY_HOURS = 30 * 24
_RATIO_CAP = 10.0


def _sel(state: AccountState, cfg: FeatureConfig, name: str, horizon: int, as_of: int) -> list:
    """The buckets of window `name` inside `horizon` as of `as_of` (as `aggregate` selects them)."""
    buckets = state.windows.get(name)
    if not buckets:
        return []
    g = cfg.by_name[name].granularity
    hi = as_of // g
    lo = hi - horizon // g
    return [b for idx, b in buckets.items() if lo < idx <= hi]


# The few aggregates the features read, straight from the selected buckets: the same arithmetic as `aggregate`
# (exact integer sums, one division), without building its dict of every aggregate per call.
def _count(sel: list) -> int:
    return sum([b[COUNT] for b in sel])


def _sum(sel: list) -> float:
    return sum([b[SUM] for b in sel]) / VALUE_SCALE


def compute_features(state: AccountState, *, as_of: int, market: MarketHistory | None,
                     config: FeatureConfig | None = None) -> dict[str, float]:
    """Every declared feature (:data:`FEATURE_NAMES`) as a float, as of ``as_of`` (epoch ms; use the account watermark).

    Windows are exact for ``as_of >= state.watermark - allowed_lateness`` (older buckets have expired).
    """
    cfg = config or default_config()
    dd_1h = _sel(state, cfg, "drawdown_short", HOUR, as_of)
    dd_1h_sum = _sum(dd_1h)
    dd_sum_30d = _sum(_sel(state, cfg, "drawdown_long", 30 * DAY, as_of))
    paid_90d = _sum(_sel(state, cfg, "payments", 90 * DAY, as_of))
    due_90d = _sum(_sel(state, cfg, "amount_due", 90 * DAY, as_of))
    baseline = max(dd_sum_30d / _VELOCITY_HOURS, cfg.velocity_baseline_floor)
    devices = _sel(state, cfg, "devices", 7 * DAY, as_of)
    f: dict[str, float] = {
        "drawdown_sum_1h": float(dd_1h_sum),
        "drawdown_count_1h": float(_count(dd_1h)),
        "drawdown_sum_30d": float(dd_sum_30d),
        "drawdown_velocity_ratio": dd_1h_sum / baseline,
        "utilisation": max(state.balance, 0) / VALUE_SCALE / state.limit if state.limit > 0 else 0.0,
        "failed_logins_24h": float(_count(_sel(state, cfg, "login_failed", 24 * HOUR, as_of))),
        "distinct_devices_7d": float(len(set().union(*[b[KEYS] for b in devices]))),
        "new_device_before_drawdown": _new_device_before_drawdown(state, cfg),
        "days_past_due": _days_past_due(state, as_of),
        "missed_payments_90d": float(_count(_sel(state, cfg, "missed_payments", 90 * DAY, as_of))),
        "partial_payments_90d": float(_count(_sel(state, cfg, "partial_payments", 90 * DAY, as_of))),
        "payment_to_due_ratio_90d": min(paid_90d / due_90d, _RATIO_CAP) if due_90d > 0 else 1.0,
        "days_since_last_payment": max(as_of - (state.last_payment_time if state.last_payment_time is not None
                                                else state.opened_time), 0) / DAY,
        "bureau_inquiries_30d": float(_count(_sel(state, cfg, "bureau_inquiries", 30 * DAY, as_of))),
        "external_delinquencies_90d": float(_count(_sel(state, cfg, "external_delinquencies", 90 * DAY, as_of))),
        "new_debt_sum_90d": float(_sum(_sel(state, cfg, "new_debt", 90 * DAY, as_of))),
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


def check_emitted(config: FeatureConfig | None = None) -> None:
    """Raise if ``compute_features`` does not emit exactly the declared :data:`FEATURE_NAMES`, in their order.

    The names do not depend on the events (a feature that does not apply is 0.0), so one fresh account tells.
    """
    opened = {"event_id": "check", "type": "account_opened", "event_time": 0, "payload": {}}
    emitted = tuple(compute_features(open_account(opened, config=config), as_of=0, market=None, config=config))
    if emitted != FEATURE_NAMES:
        missing = [n for n in FEATURE_NAMES if n not in emitted]
        extra = [n for n in emitted if n not in FEATURE_NAMES]
        raise RuntimeError(f"compute_features and riskstream.core.account.feature_list disagree: not emitted "
                           f"{missing}, not declared {extra}" + ("" if missing or extra else ", or their order"))


check_emitted()
