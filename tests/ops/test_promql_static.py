"""Every PromQL expression of alerts.yml and the Grafana dashboard is accepted by a real Prometheus.

No pipeline: Prometheus scrapes a tiny HTTP server that exposes `riskstream.stream.metrics.registry`, so the series names
exist and the rules file is loaded by the real server too.
"""

import re

import pytest

try:
    from tests import promql
except ImportError:  # tests/ on sys.path instead of the repo root
    import promql

from riskstream.stream import metrics

pytestmark = pytest.mark.prometheus


def test_dashboard_and_alerts_use_only_exported_metrics():
    exported = promql.exported_series_names() | {"up"}
    expressions = promql.all_expressions()
    unknown = {
        source: sorted(promql.metric_names_in(expr) - exported)
        for source, expr in expressions
        if promql.metric_names_in(expr) - exported
    }
    assert unknown == {}
    assert len(expressions) >= 30


def test_every_expression_is_accepted_by_prometheus(tmp_path):
    if promql.prometheus_binary() is None:
        pytest.skip("prometheus not installed; .ci/run installs Debian's prometheus package")
    # A few values so that some expressions return data, not only parse.
    metrics.EVENTS_CONSUMED.labels(topic="riskstream.events.behaviour", type="login").inc(3)
    metrics.PROCESSING_LATENCY.labels(stage="event_to_decision").observe(0.02)
    metrics.LAST_EVENT_TIMESTAMP.labels(topic="riskstream.events.behaviour").set(1.0)

    server, _thread = metrics.start_metrics_server(0, addr="127.0.0.1")
    proc, port = promql.start_prometheus(
        [f"127.0.0.1:{server.server_port}"], tmp_path, rule_files=[promql.ALERTS]
    )
    try:
        promql.wait_for_targets_up(port, 1)
        expressions = promql.all_expressions()
        errors = promql.check_expressions(port, expressions)
        assert errors == []
        # the scrape really carried riskstream series
        answer = promql.query(port, "sum(riskstream_events_consumed_total)")
        assert answer["status"] == "success" and answer["data"]["result"]
        # and the real server loaded every alert rule
        rules = promql.query_api(port, "/api/v1/rules")["data"]["groups"]
        loaded = sum(len(group["rules"]) for group in rules)
        print(f"prometheus accepted {len(expressions)} expressions; loaded {loaded} alert rules")
    finally:
        promql.stop_prometheus(proc)
        server.shutdown()
        server.server_close()


def _dashboard_panels():
    import json

    tree = json.loads((promql.DASHBOARDS / "riskstream.json").read_text())
    panels = []
    for panel in tree["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return tree, panels


def test_dashboard_shows_every_metric_of_the_catalogue():
    used = set()
    for source, expr in promql.all_expressions():
        if source.startswith("riskstream.json"):
            used |= promql.metric_names_in(expr)
    families = set()
    for name in promql.exported_series_names():
        families.add(re.sub(r"_(total|created|bucket|sum|count|info)$", "", name))
    shown = {re.sub(r"_(total|created|bucket|sum|count|info)$", "", name) for name in used}
    assert families - shown == set(), "metrics without a dashboard panel"


def test_dashboard_layout_is_consistent():
    tree, panels = _dashboard_panels()
    assert tree["uid"] == "riskstream"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] not in {"row", "alertlist"}:
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "prometheus"
