"""Every Prometheus metric of riskstream, in one catalogue.

All metrics live in a dedicated :data:`registry` (not the process-global default one), so tests can render exactly
what riskstream exports and nothing else. Importing this module only creates metric objects: no server is started,
no file is read, no clock is read.

Label values always come from small fixed sets (topic names from topology.yaml, event types, reason codes, actions,
states), never from account or facility ids. :func:`bounded` folds anything unexpected into ``"other"`` so a bug
or a hostile input can never blow up the series count.

>>> from riskstream.stream import metrics
>>> metrics.EVENTS_CONSUMED.labels(topic="riskstream.events.behaviour", type="login").inc()
>>> b"riskstream_events_consumed_total" in metrics.render()
True
>>> metrics.bounded("CLOSE", metrics.ACTIONS)
'CLOSE'
>>> metrics.bounded("acct-123", metrics.ACTIONS)
'other'
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)

__all__ = [
    "registry",
    "render",
    "start_metrics_server",
    "bounded",
    "OTHER",
]

registry = CollectorRegistry(auto_describe=True)

# --- fixed label-value sets ------------------------------------------------------------------------------------

OTHER = "other"
#: Stages of the latency histogram.
STAGES = ("event_to_decision", "decision_to_command")
#: Actions of decisions and commands (policy vocabulary + the actuator's REINSTATE); tests keep them aligned with
#: riskstream.core.policy.vocabulary.ACTIONS and riskstream.core.actuator.commands.COMMAND_ACTIONS.
ACTIONS = ("CLOSE", "FREEZE", "REDUCE_LIMIT", "REPAYMENT_PLAN", "REPRICE", "WARN", "REVIEW", "REINSTATE")
COMMAND_ACTIONS = ACTIONS
#: Dead-letter reason codes; aligned with riskstream.core.contracts.REASONS by tests.
DEAD_LETTER_REASONS = (
    "oversized", "undecodable", "not_an_object", "missing_field", "wrong_type", "invalid_value", "unknown_type",
    "unsupported_version", "schema_incompatible", "future_timestamp", "stale_timestamp", "late", "unknown_account",
    "duplicate",
)
DRIFT_DETECTORS = ("adwin", "page_hinkley")
#: Horizons (in reporting periods) of the DSCR breach forecast gauge: facilities expected to breach within N periods.
DSCR_HORIZONS = (1, 2, 4)
POLICY_ROLES = ("champion", "challenger")
POLICY_RELOAD_RESULTS = ("accepted", "refused")
SNAPSHOT_RESULTS = ("accepted", "tampered", "broken")
CONTROL_REFUSED_REASONS = ("undecodable", "unsigned", "unknown_key", "bad_signature", "needs_checker")  # core.signing.REASONS
#: Where a duplicate was recognised: re-sent input event, or a decision the actuator had already executed.
DUPLICATE_STAGES = ("ingest", "actuator")


def bounded(value: object, allowed: Iterable[str], other: str = OTHER) -> str:
    """Return ``value`` as a label value if it is in ``allowed``, else ``other``.

    >>> bounded("champion", POLICY_ROLES)
    'champion'
    >>> bounded(None, POLICY_ROLES)
    'other'
    """
    text = str(value) if value is not None else ""
    return text if text in set(allowed) else other


# --- ingestion ---------------------------------------------------------------------------------------------------

EVENTS_CONSUMED = Counter(
    "riskstream_events_consumed",
    "Records read from Kafka, by source topic and event type; rejected records count too (type 'other' when "
    "unreadable), so dead letters / consumed is the rejection ratio.",
    ["topic", "type"],
    registry=registry,
)
DEAD_LETTERS = Counter(
    "riskstream_dead_letters",
    "Input rejected to riskstream.deadletter, by reason code.",
    ["reason"],
    registry=registry,
)
DUPLICATES_SUPPRESSED = Counter(
    "riskstream_duplicates_suppressed",
    "Re-delivered events or decisions recognised by id and not processed twice.",
    ["stage"],
    registry=registry,
)
LAST_EVENT_TIMESTAMP = Gauge(
    "riskstream_last_event_timestamp_seconds",
    "Wall-clock time (unix seconds) at which the last event of a topic was processed; drives the stall alert.",
    ["topic"],
    registry=registry,
)
CONSUMER_LAG = Gauge(
    "riskstream_consumer_lag",
    "Messages between the committed offset and the end of the partition.",
    ["topic", "partition"],
    registry=registry,
)

# --- latency -----------------------------------------------------------------------------------------------------

PROCESSING_LATENCY = Histogram(
    "riskstream_processing_latency_seconds",
    "Wall-clock latency of a pipeline stage: event_to_decision (producer_time to decision), "
    "decision_to_command (decision to command sent).",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=registry,
)

# --- state -------------------------------------------------------------------------------------------------------

ACTIVE_ACCOUNTS = Gauge(
    "riskstream_active_accounts",
    "Accounts and facilities held in this worker's state table.",
    registry=registry,
)
STATE_BYTES = Gauge(
    "riskstream_state_bytes",
    "Approximate serialised size of this worker's state table in bytes.",
    registry=registry,
)

# --- decisions and policy ----------------------------------------------------------------------------------------

DECISIONS = Counter(
    "riskstream_decisions",
    "Decisions published, by action and reason code (the policy rule id, or 'other').",
    ["action", "reason_code"],
    registry=registry,
)
POLICY_DECISIONS = Counter(
    "riskstream_policy_decisions",
    "Decisions by policy role: the champion acts, the challenger is only recorded (shadow mode).",
    ["role", "action"],
    registry=registry,
)
POLICY_INFO = Info(
    "riskstream_policy",
    "Name and version of the champion policy in force.",
    registry=registry,
)
POLICY_RELOADS = Counter(
    "riskstream_policy_reloads",
    "Policy versions received on riskstream.control: accepted, or refused as invalid.",
    ["result"],
    registry=registry,
)
CONTROL_REFUSED = Counter(
    "riskstream_control_refused",
    "Control messages refused because they were unsigned, tampered, signed by an unknown key, not JSON, or a policy "
    "version short of its signers (reason).",
    ["reason"],
    registry=registry,
)

# --- actuator ----------------------------------------------------------------------------------------------------

COMMANDS_SENT = Counter(
    "riskstream_commands_sent",
    "Commands published to riskstream.commands, by action.",
    ["action"],
    registry=registry,
)
COMMANDS_HELD = Gauge(
    "riskstream_commands_held_current",
    "Commands currently held back by the open mass-close breaker, awaiting a manual reset.",
    registry=registry,
)
COMMANDS_HELD_TOTAL = Counter(
    "riskstream_commands_held",
    "Commands ever held back by the mass-close breaker.",
    registry=registry,
)
COMMANDS_WAITING = Gauge(
    "riskstream_commands_waiting_current",
    "CLOSE/FREEZE commands waiting their window of event time in the mass-close breaker before they leave.",
    registry=registry,
)
BREAKER_OPEN = Gauge(
    "riskstream_breaker_open",
    "1 while the mass-close circuit breaker is open (commands held), else 0.",
    registry=registry,
)
BREAKER_TRIPS = Counter(
    "riskstream_breaker_trips",
    "Times the mass-close circuit breaker opened.",
    registry=registry,
)

# --- models ------------------------------------------------------------------------------------------------------

MODEL_INFO = Info(
    "riskstream_model",
    "Version of the model snapshot used for scoring.",
    registry=registry,
)
MODEL_SNAPSHOT_LOADS = Counter(
    "riskstream_model_snapshot_loads",
    "Model snapshots received on riskstream.models: accepted, or refused because the HMAC signature did not verify.",
    ["result"],
    registry=registry,
)
MODEL_AUC = Gauge(
    "riskstream_model_rolling_auc",
    "Rolling ROC AUC of the scoring model on delayed labels (0..1).",
    registry=registry,
)
MODEL_LOG_LOSS = Gauge(
    "riskstream_model_rolling_log_loss",
    "Rolling log-loss of the scoring model on delayed labels.",
    registry=registry,
)
LABELS_LEARNED = Counter(
    "riskstream_labels_learned",
    "Delayed labels the trainer has learned from.",
    registry=registry,
)
LABEL_DELAY = Histogram(
    "riskstream_label_delay_seconds",
    "Event-time delay between a feature snapshot and the outcome label that arrives for it.",
    buckets=(3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400),
    registry=registry,
)
DRIFT_EVENTS = Counter(
    "riskstream_drift_events",
    "Concept-drift detections, by detector (e.g. adwin, page_hinkley).",
    ["detector"],
    registry=registry,
)
ANOMALY_SCORE = Histogram(
    "riskstream_anomaly_score",
    "Anomaly score (0..1) of scored events.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
    registry=registry,
)

# --- project finance ---------------------------------------------------------------------------------------------

DSCR_BREACH_FORECAST = Gauge(
    "riskstream_dscr_breach_forecast_facilities",
    "Facilities whose forecast debt-service coverage ratio breaches its covenant within the horizon (periods).",
    ["horizon_periods"],
    registry=registry,
)


def _initialise_fixed_series() -> None:
    # A labelled series appears only when first touched, and `increase()` cannot see the first increment of a
    # series that starts at 1; creating every fixed combination at 0 lets alerts fire on the very first event.
    for stage in STAGES:
        PROCESSING_LATENCY.labels(stage=stage)
    for result in POLICY_RELOAD_RESULTS:
        POLICY_RELOADS.labels(result=result)
    for reason in CONTROL_REFUSED_REASONS:
        CONTROL_REFUSED.labels(reason=reason)
    for result in SNAPSHOT_RESULTS:
        MODEL_SNAPSHOT_LOADS.labels(result=result)
    for stage in DUPLICATE_STAGES:
        DUPLICATES_SUPPRESSED.labels(stage=stage)
    for reason in DEAD_LETTER_REASONS:
        DEAD_LETTERS.labels(reason=reason)
    for detector in DRIFT_DETECTORS:
        DRIFT_EVENTS.labels(detector=detector)
    for horizon in DSCR_HORIZONS:
        DSCR_BREACH_FORECAST.labels(horizon_periods=str(horizon))
    for action in COMMAND_ACTIONS:
        COMMANDS_SENT.labels(action=action)
    for action in ACTIONS:
        for role in POLICY_ROLES:
            POLICY_DECISIONS.labels(role=role, action=action)


_initialise_fixed_series()


def render() -> bytes:
    """The current exposition text of :data:`registry` (what a scrape returns)."""
    return generate_latest(registry)


def start_metrics_server(port: int, addr: str | None = None):
    """Serve :data:`registry` on ``http://addr:port/metrics`` from a daemon thread; returns ``(server, thread)``.

    ``addr`` defaults to ``$RISKSTREAM_METRICS_ADDR`` or ``127.0.0.1``; containers set the variable to ``0.0.0.0``
    so Prometheus in a neighbouring container can scrape. ``port=0`` picks a free port
    (read it back from ``server.server_port``).
    """
    host = addr if addr is not None else os.environ.get("RISKSTREAM_METRICS_ADDR", "127.0.0.1")
    return start_http_server(port, addr=host, registry=registry)
