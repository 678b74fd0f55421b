"""Metrics from what the steps return: bounded labels carried on the records, never a re-parse of published JSON.

>>> from riskstream.core.steps import Out
>>> ingested([Out("riskstream.deadletter", b"", b"", "undecodable")], "riskstream.events.behaviour", ("login",))
"""

from __future__ import annotations

from riskstream.core.names import COMMANDS, DEAD, DECISIONS
from riskstream.stream import metrics

_DUPLICATE_REASONS = {"duplicate": "ingest"}  # dead-letter reasons that are also suppressed duplicates, by stage
_ACTUATOR_COUNTS = {
    "breaker_tripped": metrics.BREAKER_TRIPS,
    "breaker_held": metrics.COMMANDS_HELD_TOTAL,
}


def ingested(outs, topic: str, event_types) -> None:
    for o in outs:
        if o.topic == DEAD:
            metrics.DEAD_LETTERS.labels(reason=o.label).inc()
            metrics.EVENTS_CONSUMED.labels(topic=topic, type="invalid").inc()
        else:
            metrics.EVENTS_CONSUMED.labels(topic=topic, type=metrics.bounded(o.label, event_types)).inc()


def scored(outs, now_ms: int) -> None:
    for o in outs:
        if o.topic == DECISIONS:
            role, _, action = o.label.partition("/")
            action = metrics.bounded(action, metrics.ACTIONS)
            metrics.POLICY_DECISIONS.labels(role=role, action=action).inc()
            if role == "champion":
                metrics.DECISIONS.labels(action=action, reason_code=o.rule or "other").inc()
                metrics.PROCESSING_LATENCY.labels(stage="event_to_decision").observe(
                    max(0.0, (now_ms - o.at_ms) / 1000))
        elif o.topic == DEAD:
            metrics.DEAD_LETTERS.labels(reason=o.label).inc()
            if o.label in _DUPLICATE_REASONS:
                metrics.DUPLICATES_SUPPRESSED.labels(stage=_DUPLICATE_REASONS[o.label]).inc()


def trained(report: dict) -> None:
    metrics.LABELS_LEARNED.inc(report["learned"])
    for delay in report["label_delays_s"]:
        metrics.LABEL_DELAY.observe(delay)
    if report["drifts"]:
        metrics.DRIFT_EVENTS.labels(detector=report["detector"]).inc(report["drifts"])
    if "auc" in report:
        metrics.MODEL_AUC.set(report["auc"])
    if "log_loss" in report:
        metrics.MODEL_LOG_LOSS.set(report["log_loss"])


def actuated(result, breakers: dict, latencies) -> None:
    """`breakers` keeps the last (open, held) of every partition this process has touched, for the gauges."""
    for o in result.outs:
        if o.topic == COMMANDS:
            metrics.COMMANDS_SENT.labels(action=metrics.bounded(o.label, metrics.COMMAND_ACTIONS)).inc()
    for name, n in result.counts.items():
        if name in _ACTUATOR_COUNTS:
            _ACTUATOR_COUNTS[name].inc(n)
    if result.counts.get("duplicates_suppressed"):
        metrics.DUPLICATES_SUPPRESSED.labels(stage="actuator").inc(result.counts["duplicates_suppressed"])
    breakers.update(result.breakers)
    metrics.BREAKER_OPEN.set(1 if any(open_ for open_, _ in breakers.values()) else 0)
    metrics.COMMANDS_HELD.set(sum(held for _, held in breakers.values()))
    for x in latencies:
        metrics.PROCESSING_LATENCY.labels(stage="decision_to_command").observe(x)
