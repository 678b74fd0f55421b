"""The words a policy file may use: facts, operators, actions and durations.

>>> parse_duration("36h")
129600000
>>> parse_duration("1d12h") == parse_duration("36h")
True
"""

from __future__ import annotations

import re

#: Numeric facts the feature layer computes per account or facility.
FEATURE_FACTS = (
    "drawdown_sum_1h", "drawdown_count_1h", "drawdown_velocity_ratio", "utilisation",
    "failed_logins_24h", "distinct_devices_7d", "new_device_before_drawdown",
    "days_past_due", "missed_payments_90d", "partial_payments_90d", "payment_to_due_ratio_90d",
    "days_since_last_payment", "bureau_inquiries_30d", "external_delinquencies_90d", "new_debt_sum_90d",
    "dscr", "cashflow_deviation", "milestone_slippage_days", "covenant_headroom",
    "market_index_change_7d", "market_rate_change_30d_bp", "market_unemployment", "market_shock",
)
#: Numeric signals from the models and the outcome feeds.
SIGNAL_FACTS = (
    "pd", "score", "anomaly", "drift", "dscr_forecast", "covenant_breach_in_periods",
    "fraud_confirmed", "cured",
)
NUMERIC_FACTS = frozenset(FEATURE_FACTS + SIGNAL_FACTS)
STRING_FACTS = frozenset({"product", "segment"})
FACTS = NUMERIC_FACTS | STRING_FACTS

PRODUCTS = ("credit_line", "project_facility")

OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

#: Every action the engine may decide, most severe first (the default tie order).
ACTIONS = ("CLOSE", "FREEZE", "REDUCE_LIMIT", "REPAYMENT_PLAN", "REPRICE", "WARN", "REVIEW")

#: Parameters each action accepts in the policy's `actions` section, with their kind.
ACTION_PARAMS = {
    "CLOSE": {"grace": "duration"},
    "FREEZE": {"duration": "duration"},
    "REDUCE_LIMIT": {"reduce_pct": "fraction", "keep_headroom_pct": "fraction"},
    "REPAYMENT_PLAN": {"term_months": "count", "holiday_months": "count"},
    "REPRICE": {"bp": "number"},
    "WARN": {"grace": "duration"},
    "REVIEW": {"queue": "text"},
}

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text) -> int:
    """Milliseconds in a duration such as "90s", "24h", "7d" or "1d12h"; raises ValueError otherwise.

    A bare integer is taken as milliseconds. Zero ("0s") is allowed.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a duration: {text!r}")
    s = text.strip().replace(" ", "")
    pos, total = 0, 0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 24h, 7d, 1d12h)")
    return total
