"""The words a policy file may use: facts, operators, actions and durations (the one grammar of
:mod:`riskstream.core.durations`).

>>> parse_duration("36h")
129600000
>>> parse_duration("1d12h") == parse_duration("36h")
True
"""

from __future__ import annotations

from riskstream.core.durations import parse_duration

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
