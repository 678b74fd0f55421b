"""Prometheus alert rules: promtool unit tests pass, every alert is tested both ways, every alert is documented."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

try:
    from tests.promql import exported_series_names, metric_names_in
except ImportError:  # tests/ on sys.path instead of the repo root
    from promql import exported_series_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "docker" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def alert_rules():
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_unit_tests_pass():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed; .ci/run installs Debian's prometheus package")
    check = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [promtool, "test", "rules", ALERTS_TEST.name],
        cwd=PROM_DIR, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"promtool: {len(alert_rules())} alerts, unit tests {run.stdout.strip().splitlines()[-1].strip()}")


def test_every_alert_has_a_firing_and_a_quiet_case():
    fires, quiet = set(), set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts without a test where they fire"
    assert names - quiet == set(), "alerts without a test where they stay quiet"
    assert (fires | quiet) - names == set(), "tests for alerts that do not exist"


def test_required_alerts_exist():
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "RiskstreamPipelineStalled",
        "RiskstreamConsumerLagGrowing",
        "RiskstreamDeadLetterRateHigh",
        "RiskstreamDecisionLatencyP99High",
        "RiskstreamBreakerTripped",
        "RiskstreamModelDrift",
        "RiskstreamNoLabelsArriving",
        "RiskstreamPolicyReloadRefused",
        "RiskstreamModelSnapshotTampered",
    } <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_shape(rule):
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "every alert needs a `for` duration"
    assert rule["labels"]["severity"] in {"page", "ticket", "info"}
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"].get(key), f"annotation {key} missing"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_documented_in_operations_md(rule):
    anchor = rule["alert"].lower()
    assert f"docs/operations.md#{anchor}" in rule["annotations"]["runbook"]
    headings = {
        line.lstrip("#").strip().lower()
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/operations.md needs a heading '### {rule['alert']}'"


def test_alerts_use_only_exported_metrics():
    exported = exported_series_names() | {"up"}
    for rule in alert_rules():
        unknown = metric_names_in(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']} uses series riskstream does not export: {sorted(unknown)}"
