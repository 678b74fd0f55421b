"""``./scripts/bench --live`` / ``--check``: the pure-core bench, then the live one, one JSON; then the check.

``python -m bench.suite [--quick] [--out FILE] [--live] [--check]``

1. the pure-core bench (`CORE_BENCH`, a subprocess, as ``./scripts/bench`` without these flags runs it);
2. with ``--live``, `bench.live` on an embedded Apache Kafka; its JSON goes under the key ``live``;
3. the JSON on stdout (and in FILE);
4. with ``--check``, `bench.check` prints on stderr which targets the run falls short of (exit status still 0).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
CORE_BENCH = [sys.executable, "-m", "bench.run"]
TOTAL_BUDGET_S = 600.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (core and live)")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    ap.add_argument("--live", action="store_true", help="also run the live benchmark (a few minutes)")
    ap.add_argument("--check", action="store_true", help="print the targets the run falls short of")
    args = ap.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="riskstream-bench-") as tmp:
        core = Path(tmp) / "core.json"
        print("[bench] pure core ...", file=sys.stderr, flush=True)
        subprocess.run([*CORE_BENCH, *(["--quick"] if args.quick else []), "--out", str(core)], cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=True)
        doc = orjson.loads(core.read_bytes())
        if args.live:
            from . import live

            print("[bench] live, on an embedded Apache Kafka ...", file=sys.stderr, flush=True)
            # The whole of ./scripts/bench --live within 10 minutes: the live part gets what the core left, less
            # ~60 s for the waits' minimum lengths, the broker's shutdown and the cleanup after its budget.
            budget = max(240.0, TOTAL_BUDGET_S - (time.monotonic() - started) - 60)
            doc["live"] = live.run(live.SIZES["quick" if args.quick else "full"], budget_s=budget)
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if args.check:
        from .check import check, report

        print(report(check(doc)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
