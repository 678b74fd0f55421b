"""One benchmark run of the whole pure core, printed as one JSON object: ``python -m bench.run [--quick]``.

Everything is measured in ONE process and ONE run, so the ratios between the sections (validate vs decode, pipeline
vs decode) are comparable even on a noisy shared machine; absolute events/s are not, across machines or runs.

* ``contracts`` - `bench.contracts.bench_parse`: orjson.loads alone vs decode + validate (+ PII hashing)
  on the same events (CPU time of this thread, best of `repeat` per chunk).
* ``state``     - `bench.state.bench_state`: bytes of encoded state per active account (mean, p99) at the
  default horizons, and apply_event + compute_features events/s.
* ``models``    - `bench.models.bench_models`: predict_one + learn_one events/s of the default PD model.
* ``pipeline``  - `riskstream.offline.replay.replay` of simulator records: ingest + state + features + model + policy +
  actuator end to end (the Pipeline is built before the clock starts), and the size of the full per-account table
  record (state + policy memory + label snapshots + cash-flow model), total and per part.
* ``pipeline_profile`` - cProfile of a shorter replay: where the time goes.
* ``environment`` and ``ratios``.

`tests/test_bench.py` runs it with tiny sizes and checks the keys (no timing assertion anywhere).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import os
import platform
import pstats
import subprocess
import sys
import time
from pathlib import Path

import orjson

__all__ = ["KEYS", "SIZES", "run", "main"]

KEYS = ("contracts", "state", "models", "pipeline", "pipeline_profile", "cpu_estimates", "ratios", "environment",
        "clocks", "sections", "sizes", "elapsed_s")

SIZES: dict[str, dict] = {
    # Full run: < 3 minutes on a shared 2-core VM.
    "full": {"parse_n": 200_000, "parse_repeat": 5, "parse_chunk": 5_000,
             "state_accounts": 10_000, "state_events": 200_000,
             "models_n": 20_000,
             # 20k events at a mean gap of 6 min span ~79 days of event time: every account reaches its steady
             # number of weekly label snapshots (max_open_per_entity) and most of its 90d windows fill.
             "pipeline_events": 20_000, "pipeline_accounts": 1_000, "pipeline_facilities": 50,
             "pipeline_step_ms": 360_000, "profile_events": 5_000},
    "quick": {"parse_n": 20_000, "parse_repeat": 3, "parse_chunk": 5_000,
              "state_accounts": 1_000, "state_events": 20_000,
              "models_n": 2_000,
              "pipeline_events": 3_000, "pipeline_accounts": 150, "pipeline_facilities": 8,
              "pipeline_step_ms": 360_000, "profile_events": 1_000},
    # Smoke test only: checks the shape of the output, the figures mean nothing.
    "tiny": {"parse_n": 300, "parse_repeat": 1, "parse_chunk": 300,
             "state_accounts": 20, "state_events": 200,
             "models_n": 100,
             "pipeline_events": 200, "pipeline_accounts": 10, "pipeline_facilities": 2,
             "pipeline_step_ms": 360_000, "profile_events": 100},
}

_DAY_MS = 86_400_000
_RECORD_PARTS = ("state", "policy_memory", "label_snapshots", "cashflow")  # the fields of AccountRecord


def _p99(sorted_values: list[int]) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(0.99 * len(sorted_values)))] if sorted_values else 0


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 1) if values else 0.0


def _records(sizes: dict, n: int):
    from riskstream.ops.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(accounts=sizes["pipeline_accounts"], facilities=sizes["pipeline_facilities"],
                              step_ms=sizes["pipeline_step_ms"], seed=7))
    records = list(sim.wire(n))
    return sim, records


def bench_pipeline(sizes: dict) -> dict:
    """End-to-end ev/s of the pure pipeline (offline replay) and the size of the per-account table record."""
    from riskstream.core.account.record import AccountRecord
    from riskstream.core.steps import Context
    from riskstream.offline.replay import replay

    sim, records = _records(sizes, sizes["pipeline_events"])
    pipeline = Context()  # loads River, the model and the policies: not part of the per-event cost
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    result = replay(records, now_ms=sim.t, pipeline=pipeline)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    n = len(records)
    accounts = {k: v for k, v in result.accounts.items() if not k.startswith(b"\x00")}
    full = sorted(len(v) for v in accounts.values())
    parts = [AccountRecord.decode(v) for v in accounts.values()]
    by_part = {}
    for i, name in enumerate(_RECORD_PARTS):
        sizes_i = sorted(len(p[i]) for p in parts)
        by_part[name] = {"mean": _mean(sizes_i), "p99": _p99(sizes_i)}
    return {
        "events": n,
        "accounts": len(accounts),
        "simulated_days": round((sim.t - sim.c.start_ms) / _DAY_MS, 1),
        "ev_s": round(n / cpu) if cpu > 0 else None,            # CPU time of this thread (as contracts)
        "ev_s_wall": round(n / wall) if wall > 0 else None,
        "us_per_event": round(cpu / n * 1e6, 1),
        "outputs": {"valid": len(result.valid), "dead": len(result.dead), "decisions": len(result.decisions),
                    "commands": len(result.commands), "other": len(result.other)},
        "record_bytes_per_account_mean": _mean(full),
        "record_bytes_per_account_p99": _p99(full),
        "record_parts_bytes": by_part,
    }


def profile_pipeline(sizes: dict, top: int = 5) -> dict:
    """cProfile of a replay: the `top` functions by cumulative time (the driver itself left out) and by own time."""
    from riskstream.core.steps import Context
    from riskstream.offline.replay import replay

    sim, records = _records(sizes, sizes["profile_events"])
    pipeline = Context()
    prof = cProfile.Profile()
    prof.enable()
    replay(records, now_ms=sim.t, pipeline=pipeline)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (cc, nc, tottime, cumtime, callers)
    total = max((v[3] for k, v in stats.items() if k[2] == "replay"), default=0.0) or \
        sum(v[2] for v in stats.values())

    def name(key) -> str:
        file, line, func = key
        if file == "~":
            return func  # a builtin, e.g. <built-in method orjson.loads>
        path = Path(file)
        try:
            mod = ".".join(path.with_suffix("").relative_to(Path(__file__).resolve().parent.parent).parts)
        except ValueError:
            mod = path.stem
        return f"{mod}:{func}"

    skip = {"replay", "disable"}
    rows = [(k, v) for k, v in stats.items() if k[2] not in skip]
    cum = sorted(rows, key=lambda kv: kv[1][3], reverse=True)[:top]
    own = sorted(rows, key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "events": len(records),
        "profiled_s": round(total, 3),
        "top_cumulative": [{"function": name(k), "share": round(v[3] / total, 3), "calls": v[1]} for k, v in cum],
        "top_self": [{"function": name(k), "share": round(v[2] / total, 3), "calls": v[1]} for k, v in own],
    }


def environment() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "git_dirty": dirty,
        "openblas_coretype_set": coretype is not None,
        "openblas_coretype": coretype,
    }


def run(sizes: dict) -> dict:
    """All sections, in one process, in one run."""
    from bench.state import bench_state
    from bench.contracts import bench_parse
    from bench.models import bench_models

    started = time.perf_counter()
    sections: dict[str, dict] = {}

    def timed(name, fn, *args, **kwargs):
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        # cpu_share well below 1 = this process waited for a core (other load on the machine) during the section.
        sections[name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                          "cpu_share": round(cpu / wall, 2) if wall > 0 else None}
        return out

    contracts = timed("contracts", bench_parse, sizes["parse_n"], repeat=sizes["parse_repeat"],
                      chunk=sizes["parse_chunk"])
    state = timed("state", bench_state, sizes["state_accounts"], sizes["state_events"])
    models = timed("models", bench_models, sizes["models_n"])
    pipeline = timed("pipeline", bench_pipeline, sizes)
    profile = timed("pipeline_profile", profile_pipeline, sizes)
    decode = contracts["decode_only_ev_s"]

    def per_decode(ev_s):  # cost of one event in units of one orjson.loads of an upstream event
        return round(decode / ev_s, 2) if ev_s else None

    # Every section now times itself in CPU seconds of its thread; kept for the JSON's shape.
    cpu_estimates = {"feature_update_ev_s": state["feature_update_ev_s"],
                     "score_learn_ev_s": models["score_learn_ev_s"]}
    ratios = {
        "validate_vs_decode": contracts["ratio"],                          # target <= 2.0
        "feature_update_vs_decode": per_decode(state["feature_update_ev_s"]),
        "score_learn_vs_decode": per_decode(models["score_learn_ev_s"]),
        "pipeline_vs_decode": per_decode(pipeline["ev_s"]),
        "pipeline_vs_validate": round(contracts["decode_validate_ev_s"] / pipeline["ev_s"], 2)
        if pipeline["ev_s"] else None,
        "record_vs_state_bytes": round(pipeline["record_bytes_per_account_mean"]
                                       / pipeline["record_parts_bytes"]["state"]["mean"], 2)
        if pipeline["record_parts_bytes"]["state"]["mean"] else None,
    }
    return {
        "contracts": contracts,
        "state": state,
        "models": models,
        "pipeline": pipeline,
        "pipeline_profile": profile,
        "cpu_estimates": cpu_estimates,
        "ratios": ratios,
        "environment": environment(),
        # Every throughput is per CPU second of the measuring thread, so ratios hold on a shared machine.
        "clocks": {"contracts": "thread_time", "pipeline": "thread_time", "state": "thread_time",
                   "models": "thread_time"},
        "sections": sections,
        "sizes": dict(sizes),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run",
                                 description="Benchmark the pure core in one run and print one JSON object.")
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds, for a sanity check)")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    args = ap.parse_args(argv)
    emit(run(SIZES["quick" if args.quick else "full"]), args.out)
    return 0


def emit(doc: dict, out: str | None) -> None:
    """Print a bench's JSON on stdout, and also write it to `out` if given."""
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    if out:
        Path(out).write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
