"""The words a policy file may use: facts, operators, actions and durations.

The feature facts are the declared feature list (:mod:`riskstream.core.account.feature_list`); durations are the
one grammar of :mod:`riskstream.core.durations`.

>>> "drawdown_sum_30d" in NUMERIC_FACTS, "pd" in NUMERIC_FACTS, "segment" in STRING_FACTS
(True, True, True)
>>> parse_duration("1d12h") == parse_duration("36h") == 129_600_000
True
"""

from __future__ import annotations

from riskstream.core.account.feature_list import FEATURE_NAMES
from riskstream.core.durations import parse_duration

#: Numeric facts the feature layer computes per account or facility: every declared feature.
FEATURE_FACTS = FEATURE_NAMES
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
