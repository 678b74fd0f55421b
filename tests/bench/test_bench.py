"""Smoke test of the benchmark: it runs end to end with tiny sizes and prints JSON with every documented key.

No timing assertion: figures come from `./scripts/bench` (one run, compare ratios), never from unit tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson

from bench.run import KEYS, SIZES, main, run

ROOT = Path(__file__).resolve().parents[2]


def _check(out: dict) -> None:
    assert sorted(out) == sorted(KEYS)
    c = out["contracts"]
    assert {"decode_only_ev_s", "decode_validate_ev_s", "ratio"} <= set(c)
    s = out["state"]
    assert {"state_bytes_per_account_mean", "state_bytes_per_account_p99", "feature_update_ev_s"} <= set(s)
    assert {"score_learn_ev_s"} <= set(out["models"])
    p = out["pipeline"]
    assert {"events", "ev_s", "ev_s_wall", "record_bytes_per_account_mean", "record_bytes_per_account_p99",
            "record_parts_bytes", "outputs"} <= set(p)
    assert set(p["record_parts_bytes"]) == {"state", "policy_memory", "label_snapshots", "cashflow"}
    # the pipeline really ran: every record went somewhere and accounts were written
    assert p["outputs"]["valid"] + p["outputs"]["dead"] > 0 and p["accounts"] > 0
    assert p["record_bytes_per_account_mean"] > 0 and p["record_parts_bytes"]["state"]["mean"] > 0
    prof = out["pipeline_profile"]
    assert 1 <= len(prof["top_cumulative"]) <= 5
    assert all({"function", "share", "calls"} <= set(row) for row in prof["top_cumulative"])
    assert {"validate_vs_decode", "pipeline_vs_decode"} <= set(out["ratios"])
    env = out["environment"]
    assert {"python", "cpu_count", "date", "git_commit", "openblas_coretype_set"} <= set(env)
    assert set(out["sections"]) == {"contracts", "state", "models", "pipeline", "pipeline_profile"}


def test_bench_tiny_in_process():
    out = run(SIZES["tiny"])
    _check(out)
    print(f"bench tiny: validate/decode = {out['ratios']['validate_vs_decode']}, "
          f"pipeline = {out['pipeline']['ev_s']} ev/s, top = {out['pipeline_profile']['top_cumulative'][0]}")


def test_bench_cli_writes_the_same_json_it_prints(tmp_path, monkeypatch, capsys):
    """`python -m bench.run --out FILE` prints one JSON object and writes it to FILE (tiny sizes)."""
    import bench.run as bench

    monkeypatch.setitem(bench.SIZES, "quick", bench.SIZES["tiny"])  # keep the CLI path, shrink the work
    target = tmp_path / "bench.json"
    assert main(["--quick", "--out", str(target)]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == orjson.loads(target.read_bytes())
    _check(printed)


def test_scripts_bench_help():
    """The wrapper runs the module (argparse --help: fast, no benchmark)."""
    proc = subprocess.run([str(ROOT / "scripts" / "bench"), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--out" in proc.stdout
