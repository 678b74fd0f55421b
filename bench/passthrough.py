"""Faust's own ceiling: an agent that only decodes (``orjson.loads``), configured like riskstream's worker.

``python -m bench.passthrough --bootstrap HOST:PORT --topics A,B,C,D --warmup W --expect N --out FILE``

It reads the topics in batches exactly as riskstream's agents do (``stream.take_events(500, within=0.05)``) with
the same Faust settings (memory store, at-least-once, 6 s session, 1 s commit interval, earliest reset), decodes
each value and does nothing else. It writes FILE (one JSON object) when it has read the ``W`` warm-up events
(``warm``), and when it has read ``N`` more (``first``: the arrival of the first batch after the warm-up, before
it is decoded; ``last``: after the N-th is decoded), each mark with the wall clock and the process's utime+stime
from /proc/self/stat, so ``bench.live`` can compute ev/s and CPU per event over exactly "first to last event
consumed". It runs until it is terminated.

The app comes from riskstream's own ``make_app`` (the same settings, and the same ``rewind``/``resume`` fixes), so
the only difference from the worker is the work done per event.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import faust
import orjson

from riskstream.stream.app import BATCH_MAX, BATCH_WITHIN_S, StreamSettings, make_app

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5), after "pid (comm)"


def build(bootstrap: str, topics: list[str], warmup: int, expect: int, out: str, app_id: str) -> faust.App:
    # The worker's own Faust settings and recovery fixes, so the two differ only in what the agent does per event.
    app = make_app(app_id, StreamSettings(bootstrap=bootstrap,
                                          data_dir=tempfile.mkdtemp(prefix="bench-passthrough-")))
    source = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    state: dict = {"n": 0, "warm": None if warmup > 0 else {"wall": time.time(), "cpu_s": proc_cpu_s()},
                   "first": None}

    def write() -> None:
        tmp = out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(state))
        os.replace(tmp, out)

    def mark() -> dict:
        return {"wall": time.time(), "cpu_s": proc_cpu_s()}

    @app.agent(source, name="passthrough")
    async def passthrough(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            if state["warm"] is not None and state["first"] is None:
                state["first"] = mark()  # the first batch after the warm-up: clock starts before decoding it
                state["n_at_first"] = state["n"]
            for ev in batch:
                orjson.loads(ev.message.value)
            before = state["n"]
            state["n"] += len(batch)
            if before < warmup <= state["n"]:
                state["warm"] = mark()
                write()
            if state["first"] is not None and before < warmup + expect <= state["n"]:
                state["last"] = mark()
                write()

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True, help="comma-separated topic names")
    ap.add_argument("--warmup", type=int, default=0, help="events read before the clock starts")
    ap.add_argument("--expect", type=int, required=True, help="events to decode after the warm-up")
    ap.add_argument("--out", required=True, help="result file (JSON)")
    ap.add_argument("--app-id", default="bench-passthrough", help="Faust app id = consumer group")
    args = ap.parse_args(argv)
    app = build(args.bootstrap, args.topics.split(","), args.warmup, args.expect, args.out, args.app_id)
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
