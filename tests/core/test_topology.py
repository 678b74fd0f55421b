"""topology.yaml validation (errors name the field and the fix) and idempotent apply with drift reports."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import yaml

from riskstream.core.topology import DEFAULT_PATH, TopologyError, load_topology, parse_topology
from riskstream.ops.topology_apply import apply_topology


def doc():
    return yaml.safe_load(DEFAULT_PATH.read_text())


def test_the_repository_topology_is_valid():
    topo = load_topology()
    assert "riskstream.deadletter" in topo.topics
    assert set(topo.agents) >= {"ingest", "score", "trainer", "actuator", "control", "market"}


def test_typo_in_config_key_is_named_with_a_fix(tmp_path):
    d = doc()
    d["topics"]["riskstream.decisions"]["configs"]["retention.mss"] = "1000"
    bad = tmp_path / "topology.yaml"
    bad.write_text(yaml.safe_dump(d))
    res = subprocess.run([sys.executable, "-m", "riskstream", "topology", "check", "--file", str(bad)],
                         capture_output=True, text=True)
    print(res.stderr.strip())
    assert res.returncode == 2
    assert "topics.riskstream.decisions.configs.retention.mss" in res.stderr
    assert "Did you mean 'retention.ms'?" in res.stderr and str(bad) in res.stderr


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["topics"]["riskstream.labels"].update(partitions=0), "topics.riskstream.labels.partitions"),
    (lambda d: d["topics"]["riskstream.labels"]["configs"].update({"cleanup.policy": "compacted"}),
     "topics.riskstream.labels.configs.cleanup.policy"),
    (lambda d: d["agents"]["score"].update(reads=["riskstream.events.vlaid"]), "agents.score.reads"),
    (lambda d: d["agents"]["ingest"].update(reads=["riskstream.events.behaviour", "riskstream.events.market"]),
     "agents.ingest.reads"),
    (lambda d: d["topics"]["riskstream.commands"].pop("key"), "topics.riskstream.commands.key"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_errors_name_the_field(mutate, field):
    d = doc()
    mutate(d)
    with pytest.raises(TopologyError) as exc:
        parse_topology(d, "t.yaml")
    assert exc.value.field == field and str(exc.value).startswith(f"t.yaml: {field}: ") and ". Fix: " in str(exc.value)


def test_apply_is_idempotent_and_reports_drift(broker):
    d = doc()
    d["app"]["topic_prefix"] = f"topo{uuid.uuid4().hex[:6]}."
    topo = parse_topology(d)
    first = apply_topology(topo, broker.bootstrap)
    assert len(first.created) == len(topo.topics) and not first.drift
    second = apply_topology(topo, broker.bootstrap)
    assert not second.created and len(second.ok) == len(topo.topics) and not second.drift
    d["topics"]["riskstream.decisions"]["partitions"] = 8
    d["topics"]["riskstream.labels"]["configs"]["retention.ms"] = "1000"
    drift = apply_topology(parse_topology(d), broker.bootstrap)
    print(drift)
    assert any("riskstream.decisions: partitions 4 != 8" in x for x in drift.drift)
    if broker.kind == "kafka":  # Tansu does not report topic configs faithfully
        assert any("retention.ms=7776000000 != 1000" in x for x in drift.drift)
