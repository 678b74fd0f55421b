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
    requires: tuple = ()    # (path, minimum): the figure counts only if the run was that big (e.g. 100k accounts)


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
           "restart after SIGKILL with 100k accounts -> a new event processed",
           requires=(("live", "recovery", "table", "accounts"), 100_000)),
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
        note = ""
        if t.requires:
            size = lookup(doc, t.requires[0])
            if size is None or size < t.requires[1]:
                note = f"measured with {size} (not {t.requires[1]:g}) {t.requires[0][-1]}"
        if figure is None or note:
            status = "not measured"
        elif (figure >= t.value) if t.op == ">=" else (figure <= t.value):
            status = "met"
        else:
            status = "short"
        rows.append({"name": t.name, "what": t.what, "figure": figure, "target": f"{t.op} {t.value:g} {t.unit}",
                     "status": status, "path": ".".join(t.path), "note": note})
    return rows


def report(rows: list[dict]) -> str:
    width = max(len(r["what"]) for r in rows)
    lines = ["targets (issue 14), from one run:"]
    for r in rows:
        fig = "-" if r["figure"] is None else f"{r['figure']:g}"
        mark = {"met": "met", "short": "SHORT", "not measured": "not measured"}[r["status"]]
        lines.append(f"  {mark:<12} {r['what']:<{width}}  {fig:>10}  (target {r['target']})"
                     + (f" - {r['note']}" if r.get("note") else ""))
    short = [r["name"] for r in rows if r["status"] == "short"]
    missing = [r["name"] for r in rows if r["status"] == "not measured"]
    lines.append(f"short of {len(short)} target(s)" + (f": {', '.join(short)}" if short else "")
                 + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return "\n".join(lines)


def _fmt(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer():
        text = f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"
    else:
        text = f"{int(x):,}"
    return text + unit


def markdown(doc: dict, command: str = "./scripts/bench --live --check --out bench.json") -> str:
    """A README "Performance" snippet (markdown) with the live figures of one run and the target status."""
    live = doc.get("live", doc)
    env = live.get("environment") or {}
    g = lambda *p: lookup(live, p)  # noqa: E731
    tp = live.get("throughput") or {}
    lines = ["### Live, on the embedded Apache Kafka (`bench/live.py`)", "",
             f"Run {env.get('date', '?')}, commit `{env.get('git_commit', '?')}`"
             f"{' (dirty tree)' if env.get('git_dirty') else ''}, CPython {env.get('python', '?')}, "
             f"{env.get('cpu_count', '?')} cores, {env.get('java', 'java ?')}; load average "
             f"{(env.get('load_avg_start') or ['?'])[0]} at the start, {(env.get('load_avg_end') or ['?'])[0]} at "
             f"the end; a busy loop got {env.get('cpu_share_probe', '?')} of a core (event counts "
             f"x{(live.get('budget') or {}).get('size_factor', '?')}). Command: `{command}` "
             f"({_fmt(live.get('elapsed_s'), ' s')} for the live part). One run on a shared machine: "
             f"compare the ratios, not the absolute figures.", "",
             "| What | Figure | Unit / note |", "|---|---:|---|"]
    row = lambda what, fig, note: lines.append(f"| {what} | {fig} | {note} |")  # noqa: E731
    n = tp.get("events_upstream")
    row("Faust pass-through agent, decode only", _fmt(g("throughput", "passthrough", "ev_s")),
        f"ev/s; {_fmt(g('throughput', 'passthrough', 'cpu_us_per_event'))} µs CPU/event; "
        f"{_fmt(n)} pre-loaded events on the 4 upstream topics")
    cut = " (partial: out of time)" if (tp.get("worker") or {}).get("partial") else ""
    row("Full worker, same messages" + cut, _fmt(g("throughput", "worker", "ev_s")),
        f"ev/s; {_fmt(g('throughput', 'worker', 'cpu_us_per_event'))} µs CPU/event = "
        f"{_fmt(g('throughput', 'worker', 'ev_s_per_cpu_s'))} ev/s per CPU second (target ≥ 15,000)")
    row("**Worker / pass-through**", f"**{_fmt(g('throughput', 'ratio_worker_vs_passthrough', 'ev_s'))}**",
        f"× (ev/s); {_fmt(g('throughput', 'ratio_worker_vs_passthrough', 'cpu_us_per_event'))} × by CPU per "
        f"event; target ≥ 0.9")
    runs = (live.get("latency") or {}).get("runs") or {}
    for key, label in (("1k", "1,000"), ("highest_held", None), ("5k", "5,000")):
        r = runs.get(key) or {}
        e = r.get("event_to_command_ms") or {}
        if not e:
            if key == "highest_held":
                row("Highest rate held", "none", "no rate tried held (see JSON `latency.runs.highest_held.tried`)")
            continue
        rate = label or _fmt(r.get("offered_ev_s"))
        hops = r.get("hops_of_commanded_events_ms") or {}
        hop = ", ".join(f"{name} {_fmt((hops.get(k) or {}).get('p50'))}/{_fmt((hops.get(k) or {}).get('p99'))}"
                        for name, k in (("producer", "producer_to_upstream"), ("ingest", "ingest_upstream_to_valid"),
                                        ("score", "score_valid_to_decision"),
                                        ("actuator", "actuate_decision_to_command")))
        row(f"Event → command at {rate} ev/s offered"
            + (" (highest held)" if key == "highest_held" else ""),
            f"{_fmt(e.get('p50'))} / {_fmt(e.get('p99'))} / {_fmt(e.get('p99_9'))}",
            f"ms p50/p99/p99.9, n={_fmt(e.get('n'))}; {'held' if r.get('held') else 'NOT held'} "
            f"(achieved {_fmt(r.get('achieved_ev_s'))} ev/s, "
            f"max lag {_fmt((r.get('lag') or {}).get('max_second_half'))}); "
            f"hops p50/p99 ms: {hop}")
    row("Worker start → first event validated / scored",
        f"{_fmt(g('throughput', 'startup', 'worker_start_to_first_validated_s'))} / "
        f"{_fmt(g('throughput', 'startup', 'worker_start_to_first_scored_s'))}", "s (target ≤ 5 s for scored)")
    rec = live.get("recovery") or {}
    row(f"Restart after SIGKILL, {_fmt(g('recovery', 'table', 'accounts'))} accounts in the table → new event "
        f"validated / scored",
        f"{_fmt(rec.get('restart_to_new_event_validated_s'))} / {_fmt(rec.get('restart_to_new_event_scored_s'))}",
        "s (target ≤ 30 s); includes the 6 s session timeout of the killed member")
    sc = live.get("scale") or {}
    r1, r2 = (sc.get("runs") or {}).get("1_worker") or {}, (sc.get("runs") or {}).get("2_workers") or {}
    cut = " (partial: out of time)" if r1.get("partial") or r2.get("partial") else ""
    row(f"1 → 2 workers, {sc.get('partitions', 8)} partitions{cut}",
        f"{_fmt(r1.get('ev_s'))} → {_fmt(r2.get('ev_s'))}",
        f"ev/s, ×{_fmt(sc.get('speedup_2_vs_1'))} (target ≥ 1.6); CPU share {_fmt(r1.get('cpu_share'))} → "
        f"{_fmt(r2.get('cpu_share'))} of a core: 2 cores shared with the broker and the rest of the machine")
    prof = tp.get("worker_profile") or {}
    if prof.get("samples"):
        share = lambda d: ", ".join(f"{k} {v:.0%}" for k, v in d.items())  # noqa: E731
        lines += ["", f"Where the live worker's CPU goes in this run (`throughput.worker_profile`, py-spy, "
                      f"{_fmt(prof['samples'])} busy samples; the profiler itself took "
                      f"{_fmt(prof.get('profiler_cpu_s'))} CPU s):", "",
                  f"* by layer, own time: {share(prof['own_by_layer'])}",
                  f"* by layer, inclusive: {share(prof['inclusive_by_layer'])}",
                  f"* riskstream functions, inclusive: "
                  f"{share(dict(list(prof['top_inclusive_riskstream'].items())[:10]))}",
                  f"* top functions, own time: {share(dict(list(prof['top_own'].items())[:10]))}"]
    lines += ["", "Targets, from this run (`--check`):", ""]
    for r in check(doc):
        status = {"met": "met", "short": "**short**", "not measured": "not measured"}[r["status"]]
        lines.append(f"* {r['what']}: {_fmt(r['figure'])} (target {r['target']}) — {status}"
                     + (f" ({r['note']})" if r.get("note") else ""))
    for key in ("throughput", "latency", "recovery", "scale"):
        sec = live.get(key) or {}
        if "error" in sec or "skipped" in sec:
            lines.append(f"* section `{key}`: {sec.get('error') or sec.get('skipped')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="JSON of ./scripts/bench or of python -m bench.live")
    ap.add_argument("--markdown", action="store_true", help="print a README Performance snippet on stdout too")
    args = ap.parse_args(argv)
    try:
        doc = orjson.loads(Path(args.file).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"bench.check: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    print(report(check(doc)), file=sys.stderr)
    if args.markdown:
        sys.stdout.write(markdown(doc if isinstance(doc, dict) else {}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
