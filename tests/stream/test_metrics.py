"""The metrics catalogue: names, bounded labels, rendering, the HTTP endpoint."""

import doctest
import re
import urllib.request

from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.parser import text_string_to_metric_families

from riskstream.stream import metrics

# Label names that would carry unbounded, identifying values.
FORBIDDEN_LABELS = {"account", "account_id", "facility", "facility_id", "entity", "event_id", "id", "key", "user"}


def catalogue():
    return {
        name: value
        for name, value in vars(metrics).items()
        if isinstance(value, (Counter, Gauge, Histogram, Info))
    }


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


def test_every_metric_is_prefixed_and_in_the_dedicated_registry():
    names = {family.name for family in metrics.registry.collect()}
    for attr, metric in catalogue().items():
        assert metric._name.startswith("riskstream_"), attr
        assert metric._name in names, f"{attr} is not registered in metrics.registry"
    assert len(catalogue()) >= 25


def test_no_identifying_labels():
    for attr, metric in catalogue().items():
        assert not FORBIDDEN_LABELS & set(metric._labelnames), attr


def test_required_series_exist():
    text = metrics.render().decode()
    for name in [
        "riskstream_events_consumed_total",
        "riskstream_dead_letters_total",
        "riskstream_processing_latency_seconds",
        "riskstream_consumer_lag",
        "riskstream_active_accounts",
        "riskstream_state_bytes",
        "riskstream_decisions_total",
        "riskstream_policy_decisions_total",
        "riskstream_commands_sent_total",
        "riskstream_commands_held_current",
        "riskstream_commands_held_total",
        "riskstream_commands_waiting_current",
        "riskstream_duplicates_suppressed_total",
        "riskstream_breaker_open",
        "riskstream_breaker_trips_total",
        "riskstream_policy_info",
        "riskstream_policy_reloads_total",
        "riskstream_model_info",
        "riskstream_model_snapshot_loads_total",
        "riskstream_model_rolling_auc",
        "riskstream_model_rolling_log_loss",
        "riskstream_label_delay_seconds",
        "riskstream_labels_learned_total",
        "riskstream_drift_events_total",
        "riskstream_anomaly_score",
        "riskstream_dscr_breach_forecast_facilities",
        "riskstream_last_event_timestamp_seconds",
    ]:
        assert re.search(rf"^# TYPE {name} ", text, re.M), name


def test_render_is_valid_exposition_text_with_values():
    metrics.EVENTS_CONSUMED.labels(topic="riskstream.events.repayment", type="payment_missed").inc()
    metrics.PROCESSING_LATENCY.labels(stage="event_to_decision").observe(0.042)
    metrics.POLICY_INFO.info({"name": "default", "version": "7"})
    metrics.MODEL_INFO.info({"version": "12"})
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["riskstream_processing_latency_seconds"].type == "histogram"
    policy = [s for s in families["riskstream_policy_info"].samples if s.name == "riskstream_policy_info"]
    assert policy[0].labels == {"name": "default", "version": "7"}


def test_bounded_folds_unknown_values():
    assert metrics.bounded("FREEZE", metrics.ACTIONS) == "FREEZE"
    assert metrics.bounded("ACC-0001", metrics.ACTIONS) == "other"
    assert metrics.bounded("accepted", metrics.SNAPSHOT_RESULTS) == "accepted"
    assert metrics.bounded(None, metrics.STAGES, other="unknown") == "unknown"


def test_metrics_server_serves_the_registry():
    server, _thread = metrics.start_metrics_server(0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read()
        assert b"riskstream_breaker_open" in body
        # the process-global default registry (python_gc_*, process_*) is not mixed in
        assert b"python_gc_objects_collected_total" not in body
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_addr_from_environment(monkeypatch):
    monkeypatch.setenv("RISKSTREAM_METRICS_ADDR", "127.0.0.1")
    server, _thread = metrics.start_metrics_server(0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_label_sets_match_the_core_vocabularies():
    from riskstream.core.actuator.commands import COMMAND_ACTIONS
    from riskstream.core.contracts import REASONS
    from riskstream.core.policy.vocabulary import ACTIONS as POLICY_ACTIONS

    assert set(metrics.COMMAND_ACTIONS) == set(COMMAND_ACTIONS)
    assert set(POLICY_ACTIONS) <= set(metrics.ACTIONS)
    assert set(metrics.DEAD_LETTER_REASONS) == set(REASONS)


def test_fixed_series_exist_at_zero_before_first_use():
    # so that increase() in alerts sees the first refusal / tampered snapshot / dead letter
    text = metrics.render().decode()
    assert 'riskstream_policy_reloads_total{result="refused"} 0.0' in text
    assert 'riskstream_model_snapshot_loads_total{result="tampered"} 0.0' in text
    assert 'riskstream_dead_letters_total{reason="undecodable"}' in text
