"""Shared fixtures: one real broker for the whole session (never a mock), and isolated pipelines on it.

The broker is Apache Kafka (KRaft) when Java >= 17 and Maven are present, else Tansu; RISKSTREAM_TEST_BROKER=kafka
makes a missing Kafka an error instead of a fallback (CI sets it). Each pipeline test gets its own topic prefix and
consumer groups, so tests share the broker without seeing each other's records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path

import pytest
import yaml

from riskstream.ops.broker import manager
from riskstream.ops.orchestrate import Cluster
from riskstream.core.topology import DEFAULT_PATH, load_topology
from riskstream.ops.topology_apply import apply_topology

ROOT = Path(__file__).resolve().parent.parent


def _start(kind: str, tmp_path_factory) -> manager.BrokerInfo:
    state = tmp_path_factory.mktemp(f"broker-{kind}")
    return manager.start(kind, state_dir=state, progress=lambda m: print(m))


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The session's broker (Apache Kafka unless Java/Maven are missing)."""
    wanted = os.environ.get("RISKSTREAM_TEST_BROKER", "auto")
    kind, why = manager.choose_kind(wanted)
    info = _start(kind, tmp_path_factory)
    print(f"test broker: {info.kind} at {info.bootstrap} ({why})")
    yield info
    manager.stop(Path(info.state_dir))


@pytest.fixture(scope="session")
def kafka_broker(broker):
    """Apache Kafka specifically: recovery and kill tests are never trusted to Tansu."""
    if broker.kind != "kafka":
        pytest.skip("needs Apache Kafka (Java >= 17 + Maven); Tansu's ListOffsets bug makes recovery claims void")
    return broker


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory):
    try:
        manager.tansu_binary()
    except manager.BrokerError as exc:
        pytest.skip(str(exc))
    info = _start("tansu", tmp_path_factory)
    yield info
    manager.stop(Path(info.state_dir))


def isolated_topology(tmp_path: Path, **app_overrides) -> Path:
    """A copy of topology.yaml with a unique topic prefix (and so unique consumer groups)."""
    doc = yaml.safe_load(DEFAULT_PATH.read_text())
    doc["app"]["topic_prefix"] = f"t{uuid.uuid4().hex[:8]}."
    doc["app"].update(app_overrides)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Pipeline:
    """A running pipeline on the session broker: its own topics, workers and actuator, stopped at teardown."""

    def __init__(self, broker: manager.BrokerInfo, tmp_path: Path):
        self.topology_path = isolated_topology(tmp_path)
        self.topology = load_topology(self.topology_path)
        self.prefix = self.topology.topic_prefix
        self.cluster = Cluster(tmp_path / "run", bootstrap=broker.bootstrap)
        apply_topology(self.topology, broker.bootstrap)
        self.bootstrap = broker.bootstrap

    def topic(self, logical: str) -> str:
        return self.topology.name(logical)

    def start(self, role: str, *extra: str, **kw):
        return self.cluster.start(role, "--topology", str(self.topology_path), *extra, **kw)

    def close(self):
        self.cluster.close()


@pytest.fixture
def pipeline(broker, tmp_path):
    p = Pipeline(broker, tmp_path)
    yield p
    p.close()


@pytest.fixture
def kafka_pipeline(kafka_broker, tmp_path):
    p = Pipeline(kafka_broker, tmp_path)
    yield p
    p.close()


# In CI a missing Prometheus, Apache Kafka or chromium (the console's browser test) is a failure, not a skip
# (.ci/run installs them and sets these).
_STRICT_SKIPS = {
    "RISKSTREAM_REQUIRE_PROMETHEUS": ("prometheus", "promtool"),
    "RISKSTREAM_TEST_BROKER": ("needs Apache Kafka", "needs chromium"),
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        _attach_process_logs(item, report)
    if not report.skipped:
        return
    reason = str(report.longrepr)
    for env, needles in _STRICT_SKIPS.items():
        strict = os.environ.get(env) in ("1", "kafka")
        if strict and any(n in reason for n in needles):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI is a failure ({env} is set): {reason}"


def _attach_process_logs(item, report, lines: int = 60) -> None:
    """A failed end-to-end test shows the log tail of each process it started (CI output is all there is)."""
    for name in ("pipeline", "kafka_pipeline"):
        p = getattr(item, "funcargs", {}).get(name)
        for proc in getattr(getattr(p, "cluster", None), "procs", []):
            tail = []
            for line in proc.log_text().splitlines()[-lines:]:
                try:
                    rec = json.loads(line)
                    tail.append(f"{rec.get('ts', '')} {rec.get('level', '')} {rec.get('logger', '')}: "
                                f"{rec.get('msg', '')}"[:300])
                except ValueError:
                    tail.append(line[:300])
            report.sections.append((f"log tail of {proc.name} (alive={proc.alive()})", "\n".join(tail)))


# The slowest files first: with `-n 2 --dist loadfile` (scripts/test) a long file started last is the run's tail.
HEAVY_FIRST = ("tests/faults/", "tests/e2e/test_recovery.py", "tests/e2e/test_ingest_e2e.py", "tests/e2e/test_demo.py",
               "tests/e2e/test_console_e2e.py", "tests/e2e/test_parity_e2e.py", "tests/e2e/test_actuator_e2e.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(HEAVY_FIRST) if path.startswith(prefix)), len(HEAVY_FIRST))

    items.sort(key=rank)  # stable: within a rank, collection order


def pytest_sessionfinish(session):
    """An xdist worker hands its fault-suite rows to the controller, which prints the table."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        from tests.faults.harness import ROWS

        out["fault_rows"] = [dataclasses.asdict(r) for r in ROWS]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from tests.faults.harness import ROWS, Row

    ROWS.extend(Row(**r) for r in getattr(node, "workeroutput", {}).get("fault_rows", ()))


def pytest_terminal_summary(terminalreporter):
    """The fault suite's table of figures (tests/faults, and scenario 7 in test_ingest_e2e), kept in var/faults."""
    from tests.faults.harness import ROWS, format_table

    if not ROWS:
        return
    table = format_table(ROWS)
    terminalreporter.write_sep("=", "fault suite: figures of each scenario against its clean run")
    terminalreporter.write_line(table)
    out = Path("var/faults")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
