"""Metrics from what the steps return: bounded labels carried on the records, never a re-parse of published JSON.

>>> from riskstream.core.steps import Out
>>> ingested([Out("riskstream.deadletter", b"", b"", "undecodable")], "riskstream.events.behaviour", ("login",))
"""

from __future__ import annotations

from collections import Counter

from riskstream.core.names import COMMANDS, DEAD, DECISIONS
from riskstream.stream import metrics

_DUPLICATE_REASONS = {"duplicate": "ingest"}  # dead-letter reasons that are also suppressed duplicates, by stage
_ACTUATOR_COUNTS = {
    "breaker_tripped": metrics.BREAKER_TRIPS,
    "breaker_held": metrics.COMMANDS_HELD_TOTAL,
}


def ingested(outs, topic: str, event_types) -> None:
    """Count a batch's ingest outputs: one `inc(n)` per label set, not one per record."""
    dead, consumed = Counter(), Counter()
    for o in outs:
        (dead if o.topic == DEAD else consumed)[o.label] += 1
    for reason, n in dead.items():
        metrics.DEAD_LETTERS.labels(reason=reason).inc(n)
    if dead:
        metrics.EVENTS_CONSUMED.labels(topic=topic, type="invalid").inc(sum(dead.values()))
    for label, n in consumed.items():
        metrics.EVENTS_CONSUMED.labels(topic=topic, type=metrics.bounded(label, event_types)).inc(n)


def scored(outs, now_ms: int) -> None:
    counts = Counter()
    delays = []
    for o in outs:
        if o.topic == DECISIONS:
            counts[("decision", o.label, o.rule)] += 1
            if o.label.startswith("champion/"):
                delays.append(max(0.0, (now_ms - o.at_ms) / 1000))
        elif o.topic == DEAD:
            counts[("dead", o.label, "")] += 1
    for (what, label, rule), n in counts.items():
        if what == "dead":
            metrics.DEAD_LETTERS.labels(reason=label).inc(n)
            if label in _DUPLICATE_REASONS:
                metrics.DUPLICATES_SUPPRESSED.labels(stage=_DUPLICATE_REASONS[label]).inc(n)
            continue
        role, _, action = label.partition("/")
        action = metrics.bounded(action, metrics.ACTIONS)
        metrics.POLICY_DECISIONS.labels(role=role, action=action).inc(n)
        if role == "champion":
            metrics.DECISIONS.labels(action=action, reason_code=rule or "other").inc(n)
    if delays:
        histogram = metrics.PROCESSING_LATENCY.labels(stage="event_to_decision")
        for d in delays:
            histogram.observe(d)


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
    """`breakers` keeps the last (open, held, waiting) of every partition this process has touched, for the
    gauges."""
    for o in result.outs:
        if o.topic == COMMANDS:
            metrics.COMMANDS_SENT.labels(action=metrics.bounded(o.label, metrics.COMMAND_ACTIONS)).inc()
    for name, n in result.counts.items():
        if name in _ACTUATOR_COUNTS:
            _ACTUATOR_COUNTS[name].inc(n)
    if result.counts.get("duplicates_suppressed"):
        metrics.DUPLICATES_SUPPRESSED.labels(stage="actuator").inc(result.counts["duplicates_suppressed"])
    breakers.update(result.breakers)
    metrics.BREAKER_OPEN.set(1 if any(b[0] for b in breakers.values()) else 0)
    metrics.COMMANDS_HELD.set(sum(b[1] for b in breakers.values()))
    metrics.COMMANDS_WAITING.set(sum(b[2] for b in breakers.values()))
    for x in latencies:
        metrics.PROCESSING_LATENCY.labels(stage="decision_to_command").observe(x)
