import argparse
import json

import pytest

from riskstream.offline import scenario
from riskstream.offline.scenario import apply_shocks, default_scorer, normalise_thresholds, run_scenario
from riskstream.core.models.snapshot import dump_snapshot, model_key
from riskstream.core.models.synthetic import synthetic_features

import random


@pytest.fixture(scope="module")
def scorer():
    return default_scorer(n=1500)


def _portfolio(n=60):
    rng = random.Random(1)
    rows = []
    for i in range(n):
        seg = ["energy", "retail"][i % 2]
        rows.append({"entity_pseudonym": f"p{i}", "product": "project_facility" if seg == "energy" else "credit_line",
                     "segment": seg, "exposure": 1000.0 * (i + 1), "features": synthetic_features(rng)})
    return rows


def test_shock_rules():
    x = {"dscr": 1.5, "utilisation": 0.5, "days_past_due": 0.0, "covenant_headroom": 0.2}
    out = apply_shocks(x, {"rate_bp": 100, "sector_index_pct": -10, "unemployment_pts": 2})
    assert out["market_rate_change_30d_bp"] == 100 and out["market_index_change_7d"] == -10
    assert out["market_unemployment"] == 2 and out["market_shock"] == 1.0
    assert out["dscr"] == pytest.approx(1.5 * (1 - 0.06 - 0.03))
    assert out["utilisation"] == pytest.approx(0.52) and out["days_past_due"] == 2.0
    assert out["covenant_headroom"] == pytest.approx(0.15)
    assert x["dscr"] == 1.5  # the input is not changed
    assert "dscr" not in apply_shocks({}, {"rate_bp": 100})  # derived features are not invented


def test_segment_shocks_override():
    shocks = {"sector_index_pct": -5, "segments": {"energy": {"sector_index_pct": -40}}, "retail.rate_bp": 50}
    assert apply_shocks({}, shocks, "energy")["market_index_change_7d"] == -40
    retail = apply_shocks({}, shocks, "retail")
    assert retail["market_index_change_7d"] == -5 and retail["market_rate_change_30d_bp"] == 50


def test_threshold_formats():
    policy = {"segments": {"credit_line": {"thresholds": {"watch": 0.05}}, "project_facility": {"thresholds":
                                                                                                {"watch": 0.1}}}}
    assert normalise_thresholds(policy) == {"credit_line": {"watch": 0.05}, "project_facility": {"watch": 0.1}}
    assert normalise_thresholds({"watch": 0.05, "decline": 0.2}) == {"*": {"watch": 0.05, "decline": 0.2}}
    with pytest.raises(ValueError):
        normalise_thresholds({"segments": {"x": {"thresholds": {"a": "high"}}}})


def test_adverse_shocks_raise_crossings(scorer):
    res = run_scenario(_portfolio(), {"rate_bp": 300, "unemployment_pts": 3}, {"watch": 0.05, "decline": 0.2}, scorer)
    for name in ("watch", "decline"):
        r = res["thresholds"][name]
        assert r["after"]["accounts"] >= r["before"]["accounts"]
        assert r["after"]["exposure"] >= r["before"]["exposure"]
    assert res["mean_pd_after"] > res["mean_pd_before"]
    assert res["thresholds"]["watch"]["newly_over"]["accounts"] > 0
    none = run_scenario(_portfolio(), {}, {"watch": 0.05}, scorer)
    assert none["thresholds"]["watch"]["before"] == none["thresholds"]["watch"]["after"]


def test_cli_writes_json_and_png(tmp_path, scorer, monkeypatch, capsys):
    monkeypatch.setenv("RISKSTREAM_MODEL_KEY", "k")
    port = tmp_path / "p.jsonl"
    port.write_text("\n".join(json.dumps(r) for r in _portfolio()) + "\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("segments:\n  credit_line:\n    thresholds: {watch: 0.05, decline: 0.2}\n"
                      "  project_facility:\n    thresholds: {watch: 0.04, decline: 0.15}\n")
    snap = tmp_path / "model.bin"
    snap.write_bytes(dump_snapshot(scorer, version=4, key=model_key()))
    parser = argparse.ArgumentParser(prog="riskstream")
    scenario.register(parser.add_subparsers())
    args = parser.parse_args(["scenario", "--portfolio", str(port), "--shock", "rate_bp=200", "--shock",
                              "energy.sector_index_pct=-30", "--policy", str(policy), "--model-snapshot", str(snap),
                              "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "out" / "scenario.json").read_text())
    assert out["shocks"] == {"rate_bp": 200.0, "segments": {"energy": {"sector_index_pct": -30.0}}}
    assert out["model_version"] == "logistic@4" and set(out["thresholds"]) == {"watch", "decline"}
    assert (tmp_path / "out" / "scenario.png").read_bytes()[:4] == b"\x89PNG"
    bad = parser.parse_args(["scenario", "--portfolio", str(port), "--shock", "rate=2", "--out", str(tmp_path)])
    assert bad.func(bad) == 2 and "rate_bp" in capsys.readouterr().err
    snap.write_bytes(snap.read_bytes()[:-3] + b"xyz")
    tampered = parser.parse_args(["scenario", "--portfolio", str(port), "--model-snapshot", str(snap),
                                  "--out", str(tmp_path / "o2")])
    assert tampered.func(tampered) == 2
