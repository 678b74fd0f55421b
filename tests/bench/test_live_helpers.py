"""The pure helpers of the live benchmark and of `scripts/bench --check` (no broker, no timing)."""

import sys
from pathlib import Path

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import check as chk  # noqa: E402
from bench import live  # noqa: E402


def test_percentile_is_nearest_rank():
    v = list(range(1, 101))  # 1..100
    assert live.percentile(v, 50) == 50
    assert live.percentile(v, 99) == 99
    assert live.percentile(v, 99.9) == 100
    assert live.percentile(v, 100) == 100
    assert live.percentile([7], 99.9) == 7
    assert live.percentile([], 50) is None


def test_summarize():
    s = live.summarize([5, 1, 3, 2, 4])
    assert s == {"n": 5, "p50": 3, "p99": 5, "p99_9": 5, "max": 5, "mean": 3.0}
    assert live.summarize([]) == {"n": 0}


def test_interpolate():
    samples = [(0.0, 0.0), (1.0, 10.0), (3.0, 10.0), (4.0, 20.0)]
    assert live.interpolate(samples, 0.5) == 5.0
    assert live.interpolate(samples, 2.0) == 10.0
    assert live.interpolate(samples, 3.5) == 15.0
    assert live.interpolate(samples, -1) == 0.0      # clamped at both ends
    assert live.interpolate(samples, 9) == 20.0
    assert live.interpolate([], 1) is None


def test_topology_variant_and_names():
    doc = yaml.safe_load((ROOT / "topology.yaml").read_text())
    v = live.topology_variant(doc, "s2.", partitions=8)
    assert v["app"]["topic_prefix"] == "s2."
    assert all(t["configs"]["message.timestamp.type"] == "LogAppendTime" for t in v["topics"].values())
    parts = {name: t.get("partitions") for name, t in v["topics"].items()}
    assert parts["riskstream.events.valid"] == 8 and parts["riskstream.events.behaviour"] == 8
    assert parts["riskstream.events.market"] == 1 and parts["riskstream.labels"] == 1  # single stays single
    assert doc["app"].get("topic_prefix", "") == ""  # the original is untouched
    n = live.Names.of(v)
    assert n.valid == "s2.riskstream.events.valid" and n.worker_group == "s2.riskstream"
    assert n.actuator_group == "s2.riskstream-actuator"
    assert n.changelog == "s2.riskstream-accounts-changelog"
    assert len(n.upstream) == 4 and n.market not in n.upstream
    same = live.topology_variant(doc, "tp.")
    assert {t.get("partitions") for t in same["topics"].values()} == {t.get("partitions")
                                                                       for t in doc["topics"].values()}


def test_hop_latencies_join_by_event_and_decision():
    names = live.Names.of(live.topology_variant(yaml.safe_load((ROOT / "topology.yaml").read_text()), "x."))
    j = orjson.dumps
    records = [
        (names.upstream[0], 0, 0, 1010, b"A", j({"event_id": "e1", "producer_time": 1000})),
        (names.upstream[1], 0, 0, 1012, b"B", j({"event_id": "e2", "producer_time": 1001})),
        (names.valid, 0, 0, 1060, b"A", j({"event_id": "e1", "producer_time": 1000})),
        (names.valid, 1, 0, 1070, b"B", j({"event_id": "e2", "producer_time": 1001})),
        (names.decisions, 0, 0, 1100, b"A", j({"decision_id": "d1", "event_id": "e1", "producer_time": 1000,
                                               "role": "champion", "mode": "live"})),
        (names.decisions, 0, 1, 1100, b"A", j({"decision_id": "d1s", "event_id": "e1", "producer_time": 1000,
                                               "role": "challenger", "mode": "shadow"})),
        (names.decisions, 1, 0, 1110, b"B", j({"kind": "cure", "event_id": "e2", "event_time": 990})),
        (names.commands, 0, 0, 1150, b"A", j({"command_id": "c1", "decision_id": "d1"})),
        (names.commands, 1, 0, 1130, b"B", j({"command_id": "c2", "decision_id": "cure:e2"})),
        (names.commands, 1, 1, 1140, b"B", j({"command_id": "c3", "decision_id": "from-before"})),
        (names.valid, 2, 0, 1200, b"C", b"not json"),
    ]
    out = live.hop_latencies(*live.parse_run(records, names))
    assert out["event_to_command_ms"]["n"] == 2 and out["event_to_command_ms"]["max"] == 150
    assert out["event_to_decision_ms"]["n"] == 2          # the shadow decision is left out
    assert out["event_to_valid_ms"] == live.summarize([60, 69])
    hops = out["hops_of_commanded_events_ms"]
    assert hops["producer_to_upstream"]["max"] == 11       # 1012 - 1001 (e2), 1010 - 1000 (e1)
    assert hops["ingest_upstream_to_valid"]["max"] == 58
    assert hops["score_valid_to_decision"]["max"] == 40
    assert hops["actuate_decision_to_command"]["max"] == 50
    assert out["commands_not_traced"] == 1


def _doc(**over):
    doc = {"pipeline": {"ev_s": 3000, "record_bytes_per_account_mean": 1500},
           "ratios": {"validate_vs_decode": 1.9},
           "live": {"throughput": {"worker": {"ev_s_per_cpu_s": 2000},
                                   "ratio_worker_vs_passthrough": {"ev_s": 0.15},
                                   "startup": {"worker_start_to_first_scored_s": 3.1}},
                    "latency": {"runs": {"5k": {"event_to_command_ms": {"p99": 9000}}}},
                    "recovery": {"restart_to_new_event_scored_s": 12.0, "table": {"accounts": 100_000}},
                    "scale": {"speedup_2_vs_1": None}}}
    doc.update(over)
    return doc


def test_check_reports_met_short_and_missing():
    rows = {r["name"]: r["status"] for r in chk.check(_doc())}
    assert rows["validate_vs_decode"] == "met" and rows["record_bytes"] == "met"
    assert rows["startup"] == "met" and rows["recovery"] == "met"
    assert rows["replay"] == "short" and rows["worker_one_core"] == "short"
    assert rows["worker_vs_passthrough"] == "short" and rows["latency_5k_p99"] == "short"
    assert rows["scale_2_workers"] == "not measured"
    text = chk.report(chk.check(_doc()))
    assert "SHORT" in text and "short of 4 target(s)" in text and "not measured: scale_2_workers" in text


def test_check_reads_a_live_only_document_and_a_core_only_one():
    live_only = _doc()["live"]
    rows = {r["name"]: r for r in chk.check(live_only)}
    assert rows["recovery"]["figure"] == 12.0
    assert rows["replay"]["status"] == "not measured"
    core_only = {k: v for k, v in _doc().items() if k != "live"}
    assert {r["status"] for r in chk.check(core_only) if r["path"].startswith("live")} == {"not measured"}


@pytest.mark.parametrize("bad, status", [(b"{", 2), (b"[]", 0)])
def test_check_main_exit_status(tmp_path, bad, status, capsys):
    f = tmp_path / "run.json"
    f.write_bytes(orjson.dumps(_doc()))
    assert chk.main([str(f)]) == 0                          # short targets never fail the command
    assert "SHORT" in capsys.readouterr().err
    f.write_bytes(bad)
    assert chk.main([str(f)]) == status                     # unreadable: 2; readable but empty: all "not measured"
    assert chk.main([str(tmp_path / "missing.json")]) == 2


def test_load_factor():
    assert live.load_factor(0.95) == 1.0
    assert live.load_factor(0.8) == 1.0
    assert live.load_factor(0.4) == 0.5
    assert live.load_factor(0.01) == 0.2      # never below the floor


def test_check_recovery_counts_only_with_100k_accounts():
    doc = _doc()
    doc["live"]["recovery"]["table"]["accounts"] = 10_000
    row = next(r for r in chk.check(doc) if r["name"] == "recovery")
    assert row["status"] == "not measured" and "10000" in row["note"]


def test_markdown_snippet_has_the_figures():
    text = chk.markdown(_doc())
    assert "| **Worker / pass-through** | **0.15** |" in text
    assert "restart after SIGKILL with 100k accounts" in text and "— met" in text
