"""Golden check: the same inputs through a base revision and through this tree give the same decisions and commands.

``python -m bench.golden [--base REV]`` (or ``./scripts/golden_check``) extracts REV with ``git archive`` into a
cache directory, then runs two fixed scenarios through both trees, each in its own process with that tree first on
``PYTHONPATH``:

* ``population`` - ``riskstream simulate --population`` (2,000 lines, 40 facilities, 180 days, seed 5: ~61k
  events), through the offline driver with learning on (the train step publishes ~11 model versions);
* ``dense`` - the demo simulator's stream (150 accounts, 8 facilities, 6 min apart: many events per account, so
  the windows fill and the label snapshots reach their steady number), learning on.

Both trees read the champion and challenger policy files of the BASE revision, so a change to a bundled policy
does not show as a difference; only the code does. Every decision (by ``decision_id``) and command (by
``command_id``) must be there on both sides with byte-identical JSON. Exit status 1 on any difference.
The base's outputs are cached (by commit) so a rerun costs one run of this tree.

>>> _diff({b"1": b"a"}, {b"1": b"a"})
(0, 0, 0)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "7aad833"  # main before the batch-native hot path (issue 14 point 2)
CACHE = Path(os.environ.get("RISKSTREAM_GOLDEN_CACHE", "/tmp/riskstream-golden"))
POPULATION = ["--accounts", "2000", "--facilities", "40", "--days", "180", "--seed", "5"]
DENSE = {"accounts": 150, "facilities": 8, "step_ms": 360_000, "seed": 7, "events": 20_000}

# Runs inside the tree under test: only APIs both sides have (the offline driver, the replay file reader).
_RUNNER = r"""
import sys, time, orjson
from pathlib import Path
from riskstream.core.names import COMMANDS, DECISIONS
from riskstream.core.steps import Context, PipelineConfig
from riskstream.offline.driver import OfflineDriver
scenario, out, champion, challenger = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
ctx = Context(PipelineConfig(policy_path=champion, challenger_paths=(challenger,)))
dec, com = (out / "decisions.jsonl").open("wb"), (out / "commands.jsonl").open("wb")
def keep(o):
    if o.topic == DECISIONS:
        dec.write(o.value + b"\n")
    elif o.topic == COMMANDS:
        com.write(o.value + b"\n")
driver = OfflineDriver(ctx, learn=True, on_output=keep)
cpu = time.process_time()
if scenario == "population":
    from riskstream.offline.replay import read_events
    for topic, raw, ts in read_events(Path(sys.argv[5])):
        driver.feed(topic, raw, timestamp_ms=ts)
else:
    from riskstream.ops.simulator import SimConfig, Simulator
    cfg = orjson.loads(sys.argv[5])
    n = cfg.pop("events")
    sim = Simulator(SimConfig(**cfg))
    records = list(sim.wire(n))
    cpu = time.process_time()
    for topic, _key, value in records:
        driver.feed(topic, value, timestamp_ms=sim.t)
dec.close(); com.close()
print(orjson.dumps({"events": driver.counts["consumed"], "cpu_s": round(time.process_time() - cpu, 2),
                    "model_versions": driver.published_versions}).decode())
"""


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _extract(rev: str) -> tuple[str, Path]:
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = CACHE / sha / "tree"
    if not (tree / "riskstream").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return sha, tree


def _run(tree: Path, scenario: str, out: Path, policies: tuple[Path, Path], arg: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, "-c", _RUNNER, scenario, str(out), *map(str, policies), arg],
                          cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"golden: {scenario} in {tree} failed:\n{proc.stderr[-3000:]}")
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


def _load(path: Path, id_field: str) -> dict[bytes, bytes]:
    rows: dict[bytes, bytes] = {}
    for line in path.read_bytes().splitlines():
        row = orjson.loads(line)
        # a cure record on the decisions topic has no decision id: it is named by its account and event
        key = str(row.get(id_field) or f"{row.get('kind')}/{row.get('account_id')}/{row.get('event_id')}").encode()
        if key in rows and rows[key] != line:
            raise SystemExit(f"golden: {path}: id {key.decode()} appears twice with different content")
        rows[key] = line
    return rows


def _diff(base: dict, head: dict) -> tuple[int, int, int]:
    """(missing in head, extra in head, same id with different content)."""
    return (len(base.keys() - head.keys()), len(head.keys() - base.keys()),
            sum(1 for k in base.keys() & head.keys() if base[k] != head[k]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.golden", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=DEFAULT_BASE, help="revision to compare with (default %(default)s)")
    ap.add_argument("--only", choices=("population", "dense"), help="run one scenario")
    ap.add_argument("--head", metavar="REV", help="compare this committed revision instead of the working tree "
                                                  "(so edits made while it runs do not leak in)")
    args = ap.parse_args(argv)
    sha, base_tree = _extract(args.base)
    work = CACHE / sha
    policies = (base_tree / "riskstream/data/policies/default.yaml",
                base_tree / "riskstream/data/policies/challenger.yaml")
    events = work / "population.jsonl"
    if not events.exists():
        env = dict(os.environ, PYTHONPATH=str(base_tree))
        subprocess.run([sys.executable, "-m", "riskstream", "simulate", "--population", *POPULATION,
                        "--out-events", str(events), "--out-truth", str(work / "truth.jsonl"), "--quiet"],
                       cwd=base_tree, env=env, check=True, capture_output=True)
    if args.head:
        head_sha, head_tree = _extract(args.head)
        report: dict = {"base": sha[:10], "head": head_sha[:10]}
    else:
        head_tree = ROOT
        head_dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        report = {"base": sha[:10], "head": _git("rev-parse", "--short=10", "HEAD") + ("+dirty" if head_dirty else "")}
    failed = False
    for scenario, arg in (("population", str(events)), ("dense", orjson.dumps(DENSE).decode())):
        if args.only and scenario != args.only:
            continue
        base_out = work / f"base-{scenario}"
        if not (base_out / "done.json").exists():
            stats = _run(base_tree, scenario, base_out, policies, arg)
            (base_out / "done.json").write_bytes(orjson.dumps(stats))
        base_stats = orjson.loads((base_out / "done.json").read_bytes())
        head_out = CACHE / "head" / sha / report["head"] / scenario
        t0 = time.monotonic()
        head_stats = _run(head_tree, scenario, head_out, policies, arg)
        row = {"events": head_stats["events"], "cpu_s_base": base_stats["cpu_s"], "cpu_s_head": head_stats["cpu_s"],
               "wall_s_head": round(time.monotonic() - t0, 1),
               "same_model_versions": base_stats["model_versions"] == head_stats["model_versions"]}
        for name, field in (("decisions", "decision_id"), ("commands", "command_id")):
            b = _load(base_out / f"{name}.jsonl", field)
            h = _load(head_out / f"{name}.jsonl", field)
            missing, extra, differ = _diff(b, h)
            row[name] = {"base": len(b), "head": len(h), "missing": missing, "extra": extra, "differ": differ}
            failed |= bool(missing or extra or differ)
        failed |= not row["same_model_versions"] or base_stats["events"] != head_stats["events"]
        report[scenario] = row
    report["identical"] = not failed
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
