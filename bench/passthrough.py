"""Faust's own ceiling: an agent that only decodes (``orjson.loads``), configured like riskstream's worker.

``python -m bench.passthrough --bootstrap HOST:PORT --topics A,B,C,D --warmup W --expect N --out FILE``

It reads the topics in batches exactly as riskstream's agents do (``stream.take_events(500, within=0.05)``) with
the same Faust settings (memory store, at-least-once, 6 s session, 1 s commit interval, earliest reset), decodes
each value and does nothing else. It writes FILE (one JSON object) when it has read the ``W`` warm-up events
(``warm``), and when it has read ``N`` more (``first``: the arrival of the first batch after the warm-up, before
it is decoded; ``last``: after the N-th is decoded), each mark with the wall clock and the process's utime+stime
from /proc/self/stat, so ``bench.live`` can compute ev/s and CPU per event over exactly "first to last event
consumed". It runs until it is terminated.

Like riskstream (its ``stream/rewind.py``), partitions of a fresh group are sent back to their beginning after a
rebalance, so no record fetched before the group settled is skipped; the code is repeated here (a few lines)
rather than imported, so this agent does not depend on riskstream's internals.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time

import faust
import orjson

BATCH_MAX = 500          # riskstream.stream.app.BATCH_MAX
BATCH_WITHIN_S = 0.05    # riskstream.stream.app.BATCH_WITHIN_S
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5), after "pid (comm)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_rewind() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    async def seek(consumer):
        committed = await consumer.seek_to_committed()
        fresh = [tp for tp, off in committed.items() if not (off and off > 0)]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        return committed

    async def seek_to_committed(self):
        return await self.call_thread(seek, self._ensure_consumer())

    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed


def build(bootstrap: str, topics: list[str], warmup: int, expect: int, out: str, app_id: str) -> faust.App:
    _install_rewind()
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=10,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=True,
        web_port=_free_port(),
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        datadir=tempfile.mkdtemp(prefix="bench-passthrough-"),
        stream_wait_empty=False,
    )
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
