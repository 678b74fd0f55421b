"""Compare the figures of ONE benchmark run with the targets of issue 14 and say what falls short.

``python -m bench.check FILE`` (``./scripts/bench --check`` runs it on the run it just made)

FILE is the JSON of ``./scripts/bench`` (the pure-core sections at the top level, the live ones under ``live``)
or of ``python -m bench.live`` alone. Each target is reported as ``met``, ``SHORT`` or ``not measured``. The exit
status is 0 whatever the figures are: this is a report for a noisy, shared machine, not a regression gate (issue
14: no timed gates). It is 2 only when FILE cannot be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import orjson


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    path: tuple[str, ...]   # into the run's JSON; a path starting with "live" falls back to a bench.live-only file
    op: str                 # ">=" or "<="
    value: float
    unit: str
    what: str


TARGETS = (
    Target("worker_one_core", ("live", "throughput", "worker", "ev_s_per_cpu_s"), ">=", 15_000, "ev/s per CPU s",
           "full worker on one core (events per CPU second of the worker process)"),
    Target("worker_vs_passthrough", ("live", "throughput", "ratio_worker_vs_passthrough", "ev_s"), ">=", 0.9, "x",
           "full worker / Faust pass-through ev/s, same messages, same run"),
    Target("replay", ("pipeline", "ev_s"), ">=", 100_000, "ev/s", "replay (pure core, offline driver) on one core"),
    Target("latency_5k_p99", ("live", "latency", "runs", "5k", "event_to_command_ms", "p99"), "<=", 50, "ms",
           "p99 event -> command at 5,000 ev/s offered"),
    Target("startup", ("live", "throughput", "startup", "worker_start_to_first_scored_s"), "<=", 5.0, "s",
           "worker start -> first event processed (applied by the score step)"),
    Target("recovery", ("live", "recovery", "restart_to_new_event_scored_s"), "<=", 30.0, "s",
           "restart after SIGKILL with 100k accounts -> a new event processed"),
    Target("scale_2_workers", ("live", "scale", "speedup_2_vs_1"), ">=", 1.6, "x",
           "2 workers / 1 worker on 8 partitions (2 shared cores here)"),
    Target("record_bytes", ("pipeline", "record_bytes_per_account_mean"), "<=", 2048, "B",
           "whole table record per account, mean (1M accounts in <= 2 GiB)"),
    Target("validate_vs_decode", ("ratios", "validate_vs_decode"), "<=", 2.0, "x",
           "validate + PII hashing / orjson decode, same events"),
)


def lookup(doc: dict, path: tuple[str, ...]):
    """The value at `path`, or None. A "live" path also works on a bench.live-only document."""
    candidates = [path]
    if path and path[0] == "live" and "live" not in doc:
        candidates.append(path[1:])
    for p in candidates:
        cur = doc
        for key in p:
            if not isinstance(cur, dict) or key not in cur:
                cur = None
                break
            cur = cur[key]
        if isinstance(cur, (int, float)) and not isinstance(cur, bool):
            return cur
    return None


def check(doc: dict, targets=TARGETS) -> list[dict]:
    """One row per target: name, figure, target, status ("met", "short" or "not measured")."""
    rows = []
    for t in targets:
        figure = lookup(doc, t.path)
        if figure is None:
            status = "not measured"
        elif (figure >= t.value) if t.op == ">=" else (figure <= t.value):
            status = "met"
        else:
            status = "short"
        rows.append({"name": t.name, "what": t.what, "figure": figure, "target": f"{t.op} {t.value:g} {t.unit}",
                     "status": status, "path": ".".join(t.path)})
    return rows


def report(rows: list[dict]) -> str:
    width = max(len(r["what"]) for r in rows)
    lines = ["targets (issue 14), from one run:"]
    for r in rows:
        fig = "-" if r["figure"] is None else f"{r['figure']:g}"
        mark = {"met": "met", "short": "SHORT", "not measured": "not measured"}[r["status"]]
        lines.append(f"  {mark:<12} {r['what']:<{width}}  {fig:>10}  (target {r['target']})")
    short = [r["name"] for r in rows if r["status"] == "short"]
    missing = [r["name"] for r in rows if r["status"] == "not measured"]
    lines.append(f"short of {len(short)} target(s)" + (f": {', '.join(short)}" if short else "")
                 + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="JSON of ./scripts/bench or of python -m bench.live")
    args = ap.parse_args(argv)
    try:
        doc = orjson.loads(Path(args.file).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"bench.check: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    print(report(check(doc)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
