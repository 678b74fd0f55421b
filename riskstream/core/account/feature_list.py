"""The declared feature list: the one place a feature is named, defined, explained and given to the models.

Each :class:`Feature` has its name, its definition (docs/features.md), the reason-code text the PD scorer shows
when the feature raises risk, and whether the anomaly model learns from it. Everything else derives from
:data:`FEATURE_LIST`: the policy fact vocabulary (``riskstream.core.policy.vocabulary.FEATURE_FACTS``), the scorer's
reason texts (``riskstream.core.models.scorer.FEATURE_TEXT``), the anomaly inputs (:data:`BEHAVIOUR_FEATURES`,
which models.yaml's ``anomaly.limits`` must match) and the docs table; ``riskstream.core.account.features``
checks at import that ``compute_features`` emits exactly :data:`FEATURE_NAMES`, the PD model's inputs.

The list is code, not operator data: adding a feature means writing its computation in
``riskstream.core.account.features`` too.

>>> FEATURES["drawdown_sum_30d"]
'sum of drawdown amounts in the last 30 days (1-day buckets)'
>>> REASON_TEXT["days_past_due"], "utilisation" in BEHAVIOUR_FEATURES, "dscr" in BEHAVIOUR_FEATURES
('days past due', True, False)
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BEHAVIOUR_FEATURES", "FEATURES", "FEATURE_LIST", "FEATURE_NAMES", "Feature", "REASON_TEXT",
           "features_markdown"]


class Feature(NamedTuple):
    name: str
    definition: str
    reason: str  # plain words, phrased for a value that RAISES risk
    anomaly: bool = False  # the behaviour anomaly model learns from it


FEATURE_LIST: tuple[Feature, ...] = (
    Feature("drawdown_sum_1h", "sum of drawdown amounts in the last hour (5-min buckets)",
            "large drawdowns in the last hour", anomaly=True),
    Feature("drawdown_count_1h", "number of drawdowns in the last hour (5-min buckets)",
            "many drawdowns in the last hour", anomaly=True),
    Feature("drawdown_sum_30d", "sum of drawdown amounts in the last 30 days (1-day buckets)",
            "large drawdowns in the last 30 days"),
    Feature("drawdown_velocity_ratio", "drawdown_sum_1h / max(drawdown_sum_30d / 720, velocity_baseline_floor): "
            "last hour versus the account's hourly baseline",
            "drawdowns much faster than usual", anomaly=True),
    Feature("utilisation", "max(outstanding balance estimate, 0) / limit (0 when limit is 0); balance = drawdowns "
            "+ purchases - payments",
            "credit line utilisation", anomaly=True),
    Feature("failed_logins_24h", "number of login_failed events in the last 24 hours (1-hour buckets)",
            "failed logins in the last 24 hours", anomaly=True),
    Feature("distinct_devices_7d", "distinct device fingerprint hashes in login, login_failed and device_change "
            "over 7 days",
            "many different devices in the last 7 days", anomaly=True),
    Feature("new_device_before_drawdown", "1 if a device_change or contact_change happened within "
            "new_device_lookback (24h) before (or at) the latest drawdown, else 0",
            "a drawdown right after a new device appeared", anomaly=True),
    Feature("days_past_due", "days past due of the latest payment_missed plus whole days since it, 0 once a later "
            "payment clears the due amount (payment_received, or payment_partial with amount >= amount_due)",
            "days past due"),
    Feature("missed_payments_90d", "number of payment_missed events in the last 90 days",
            "missed payments in the last 90 days"),
    Feature("partial_payments_90d", "number of payment_partial events in the last 90 days",
            "partial payments in the last 90 days"),
    Feature("payment_to_due_ratio_90d", "payments (received + partial) over 90 days / statement amounts due over "
            "90 days, capped at 10; 1 when nothing was due",
            "share of amounts due actually paid (90 days)"),
    Feature("days_since_last_payment", "days since the latest payment (since the account was opened if never paid)",
            "time since the last payment"),
    Feature("bureau_inquiries_30d", "number of bureau_inquiry events in the last 30 days",
            "credit bureau inquiries in the last 30 days"),
    Feature("external_delinquencies_90d", "number of external_delinquency events in the last 90 days",
            "delinquencies at other lenders (90 days)"),
    Feature("new_debt_sum_90d", "sum of new_debt amounts in the last 90 days",
            "new debt taken elsewhere (90 days)"),
    Feature("dscr", "project facilities: ebitda / debt_service of the latest financial_statement (0 without one)",
            "debt service coverage ratio"),
    Feature("cashflow_deviation", "project facilities: (actual - plan) / |plan| of the latest cashflow_actual "
            "(0 without one or when plan is 0)",
            "cash flow deviating from plan"),
    Feature("milestone_slippage_days", "project facilities: days the latest milestone_report is behind plan: "
            "actual_date - planned_date, or as_of - planned_date while not reached; never below 0",
            "project milestones slipping"),
    Feature("covenant_headroom", "project facilities: smallest (value - threshold) / |threshold| over the latest "
            "test of each covenant, sign flipped for 'max' covenants (0 without tests)",
            "covenant headroom"),
    Feature("market_index_change_7d", "sector index of the account's segment as of as_of / its value 7 days before "
            "- 1 (0 if either is unknown)",
            "sector index move over 7 days"),
    Feature("market_rate_change_30d_bp", "change of the segment's (else the benchmark 'all') rate over 30 days, in "
            "basis points",
            "interest rate rise over 30 days"),
    Feature("market_unemployment", "macro_indicator|unemployment as of as_of, percent (0 if unknown)",
            "unemployment rate"),
    Feature("market_shock", "1 if the segment's sector index as of as_of is >= shock_drop (20%) below its highest "
            "value in the preceding 7 days, else 0",
            "a market shock in force"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURE_LIST)
#: name -> definition
FEATURES: dict[str, str] = {f.name: f.definition for f in FEATURE_LIST}
#: name -> reason-code text
REASON_TEXT: dict[str, str] = {f.name: f.reason for f in FEATURE_LIST}
#: The behaviour features the anomaly model learns from (sampled behaviour events on the labels topic).
BEHAVIOUR_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURE_LIST if f.anomaly)

if len(set(FEATURE_NAMES)) != len(FEATURE_NAMES):
    raise ValueError(f"{__name__}: a feature is declared twice")


def features_markdown() -> str:
    """The feature table of docs/features.md, generated from :data:`FEATURE_LIST`."""
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731
    rows = ["| feature | definition | reason text | anomaly input |", "|---|---|---|---|"]
    rows += [f"| `{f.name}` | {cell(f.definition)} | {cell(f.reason)} | {'yes' if f.anomaly else ''} |"
             for f in FEATURE_LIST]
    return "\n".join(rows) + "\n"
