"""Test helpers: collect every PromQL expression riskstream ships, and check them against a real Prometheus.

Used by tests/test_promql_static.py (scrapes only the metrics registry) and by the live pipeline test (scrapes
running workers). Not a test module itself.

Typical use::

    proc, port = start_prometheus(["127.0.0.1:9100"], tmp_path)
    try:
        wait_for_targets_up(port, 1)
        assert check_expressions(port) == []
    finally:
        stop_prometheus(proc)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "docker" / "grafana" / "dashboards"

# Grafana's built-in variables, replaced by plausible values so the expression is plain PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "1h",
    "${__range}": "1h",
}


def _grafana_to_promql(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def _dashboard_targets(node, path: str):
    """Yield (panel title path, expr) for every target in a dashboard JSON tree (rows nest panels)."""
    if isinstance(node, dict):
        title = node.get("title")
        here = f"{path} / {title}" if title and "targets" in node else path
        for target in node.get("targets", []) or []:
            if isinstance(target, dict) and target.get("expr"):
                yield here, target["expr"]
        for key, value in node.items():
            if key != "targets":
                yield from _dashboard_targets(value, here if key == "panels" else path)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_targets(item, path)


def all_expressions(root: Path = ROOT) -> list[tuple[str, str]]:
    """Every PromQL expression of alerts.yml and the Grafana dashboards, as ``(source, expr)``."""
    found = []
    alerts = root / "docker" / "prometheus" / "alerts.yml"
    for group in yaml.safe_load(alerts.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found.append((f"alerts.yml:{name}", rule["expr"].strip()))
    for dashboard in sorted((root / "docker" / "grafana" / "dashboards").glob("*.json")):
        tree = json.loads(dashboard.read_text())
        for where, expr in _dashboard_targets(tree, dashboard.name):
            found.append((where, _grafana_to_promql(expr)))
    return found


def metric_names_in(expr: str) -> set[str]:
    """Names of riskstream series an expression reads (label values and strings are ignored)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(r"\b(riskstream_[a-z0-9_]+)\b", without_strings))


def exported_series_names() -> set[str]:
    """Every series name riskstream.stream.metrics can expose (counters' _total, histograms' _bucket/_sum/_count...)."""
    from prometheus_client import Counter, Gauge, Histogram, Info

    from riskstream.stream import metrics

    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            names |= {metric._name + "_total", metric._name + "_created"}
        elif isinstance(metric, Histogram):
            names |= {metric._name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
        elif isinstance(metric, Info):
            names.add(metric._name + "_info")
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


# --- a real Prometheus ---------------------------------------------------------------------------------------------


def prometheus_binary() -> str | None:
    """Path of the prometheus server binary, or None."""
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def start_prometheus(
    scrape_targets: list[str],
    workdir,
    rule_files: list[Path] | tuple = (),
    timeout_s: float = 60.0,
) -> tuple[subprocess.Popen, int]:
    """Start Prometheus on a free loopback port, scraping ``host:port`` targets every second; returns (proc, port).

    Config, TSDB and log live in ``workdir``; the call returns once ``/-/ready`` answers 200.
    """
    binary = prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus binary not found (Debian package: prometheus)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "riskstream", "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    if rule_files:
        config["rule_files"] = [str(Path(path).resolve()) for path in rule_files]
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))

    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        log = open(workdir / "prometheus.log", "wb")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if _get(port, "/-/ready", timeout=1.0)[0] == 200:
                    return proc, port
            except OSError:
                pass
            time.sleep(0.2)
        last_error = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
        stop_prometheus(proc)
    raise RuntimeError(f"prometheus did not become ready; log tail:\n{last_error}")


def stop_prometheus(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def query(port: int, expr: str) -> dict:
    """Run an instant query; returns the decoded API answer (``status``, ``data`` or ``error``)."""
    status, body = _get(port, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    try:
        return json.loads(body)
    except ValueError:
        return {"status": "error", "error": f"HTTP {status}: {body[:200]!r}"}


def wait_for_targets_up(port: int, expected: int, timeout_s: float = 30.0) -> None:
    """Block until ``expected`` scrape targets report ``up == 1`` (raises TimeoutError otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = query(port, "sum(up)")
        result = answer.get("data", {}).get("result", [])
        if result and float(result[0]["value"][1]) >= expected:
            return
        time.sleep(0.5)
    raise TimeoutError(f"fewer than {expected} scrape targets up after {timeout_s}s")


def check_expressions(port: int, expressions: list[tuple[str, str]] | None = None) -> list[str]:
    """Run each expression through ``/api/v1/query``; returns one error line per expression Prometheus rejects."""
    errors = []
    for source, expr in expressions if expressions is not None else all_expressions():
        answer = query(port, expr)
        if answer.get("status") != "success":
            errors.append(f"{source}: {answer.get('errorType', '')} {answer.get('error', '')}: {expr}")
    return errors


def query_api(port: int, path: str) -> dict:
    """GET any Prometheus API path (e.g. ``/api/v1/rules``) and decode the JSON answer."""
    _status, body = _get(port, path)
    return json.loads(body)
