"""Live benchmark of riskstream on the embedded Apache Kafka: one run, one JSON on stdout, progress on stderr.

``python -m bench.live [--quick] [--core CORE.json] [--out FILE] [--keep]``  (``./scripts/bench --live`` runs it)

riskstream is driven only through its command line (``riskstream broker|topology|worker|actuator``) and Kafka
clients (confluent-kafka); the only riskstream module imported is the simulator (see `make_simulator`). Every
section gets its own topic prefix and consumer groups, from a temporary copy of topology.yaml in which every topic
has ``message.timestamp.type=LogAppendTime``, so each record carries the time the broker appended it: the
hop-by-hop latencies below are differences of broker clocks (one machine, one clock).

Sections (keys of the JSON):

* ``throughput`` - the same ~60k simulator events pre-loaded on the upstream topics are read by (a) a Faust agent
  that only decodes (`bench.passthrough`) and (b) one full ``riskstream worker``. ev/s is events / wall seconds
  from the first to the last event; CPU per event is the process's utime+stime (/proc/<pid>/stat) over the same
  span. For the worker the span runs from the broker time of its first validated record to that of its last
  output record (valid, dead letter, decision, label, table changelog); "done" is its consumer group having
  committed the end offsets of every topic it reads.
* ``latency`` - the same worker plus an actuator; events offered at fixed rates (1k ev/s, 5k ev/s and the highest
  rate the worker holds); p50/p99/p99.9 from an event's ``producer_time`` to its command on the commands topic,
  and each hop: producer -> upstream topic, ingest -> valid topic, score -> decisions topic, actuator -> commands
  topic.
* ``startup`` and ``recovery`` - worker process start to its first validated and first scored event; with 100k
  accounts in the table: SIGKILL, restart, time until a new event is validated and applied to its account.
* ``scale`` - 1 vs 2 workers on 8-partition topics, the events produced once every worker has joined the group.

Absolute figures depend on the machine and its load; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import gc
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import orjson
import yaml

from bench import profile as profiling

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "topology.yaml"
RISKSTREAM = [sys.executable, "-m", "riskstream"]           # the command line, nothing else of the package
PASSTHROUGH = [sys.executable, "-m", "bench.passthrough"]


# -- the only riskstream imports: repoint them here when the package moves ------------------------------------------
def make_simulator(*, accounts: int, facilities: int, seed: int, start_ms: int, step_ms: int, clock=None):
    """A deterministic `riskstream.ops.simulator.Simulator`; `.wire(n)` yields (topic, key bytes, value bytes)."""
    from riskstream.ops.simulator import SimConfig, Simulator

    return Simulator(SimConfig(accounts=accounts, facilities=facilities, seed=seed, start_ms=start_ms,
                               step_ms=step_ms), producer_clock=clock)


# -- sizes ----------------------------------------------------------------------------------------------------------
SIZES = {
    # ~6-7 minutes on a 2-core machine with the worker at ~2k ev/s.
    "full": {"tp_events": 60_000, "tp_accounts": 2_000, "tp_facilities": 50, "tp_step_ms": 50,
             "rate_low": 1_000, "rate_high": 5_000, "low_s": 15.0, "high_s": 8.0, "held_s": 10.0,
             "held_fractions": (0.9, 0.7, 0.5), "recovery_accounts": 100_000,
             "scale_events": 40_000, "scale_min_events": 8_000, "scale_seconds": 20, "scale_partitions": 8},
    # A sanity run of the machinery (a minute or two); the figures mean little.
    "quick": {"tp_events": 8_000, "tp_accounts": 500, "tp_facilities": 10, "tp_step_ms": 50,
              "rate_low": 1_000, "rate_high": 5_000, "low_s": 4.0, "high_s": 3.0, "held_s": 4.0,
              "held_fractions": (0.7,), "recovery_accounts": 10_000,
              "scale_events": 8_000, "scale_min_events": 4_000, "scale_seconds": 10, "scale_partitions": 8},
}

# Seconds each section leaves for the sections after it when the time budget is short (quiet machine: unused).
RESERVE = {"throughput": 210.0, "latency": 150.0, "recovery": 80.0, "scale": 30.0}
# The least time worth starting a section with.
NEED = {"latency": 45.0, "recovery": 60.0, "scale": 75.0}
HELD_LAG_S = 2.0     # "held": lag (committed offsets) in the second half of the run <= 2 s of traffic ...
HELD_DRAIN_S = 5.0   # ... and everything committed within 5 s after the last event was offered
TARGETS_NOTE = "targets of issue 14; `python -m bench.check FILE` compares a run with them"


def log(msg: str) -> None:
    print(f"[live {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- pure helpers (unit-tested in tests/bench) -----------------------------------------------------------------------
def percentile(sorted_values: list, q: float):
    """Nearest-rank percentile of an ascending list (q in 0..100): the smallest value with >= q % at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(values: Iterable[float]) -> dict:
    """n, p50, p99, p99.9, max and mean of latencies (ms)."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99), "p99_9": percentile(v, 99.9),
            "max": v[-1], "mean": round(sum(v) / len(v), 1)}


def interpolate(samples: list[tuple[float, float]], t: float) -> float | None:
    """Value at time t of a series of (time, value) samples sorted by time (linear between neighbours)."""
    if not samples:
        return None
    if t <= samples[0][0]:
        return samples[0][1]
    if t >= samples[-1][0]:
        return samples[-1][1]
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if samples[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, v0), (t1, v1) = samples[lo], samples[hi]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def cpu_share_probe(seconds: float = 1.0) -> float:
    """Share of one core this process gets for a busy loop (CPU time of the thread / wall time): 1.0 on an idle
    machine, ~0.3 when the 2 cores are shared by six busy processes."""
    t0, c0 = time.perf_counter(), time.thread_time()
    x = 0
    while time.perf_counter() - t0 < seconds:
        for i in range(10_000):
            x += i
    return round((time.thread_time() - c0) / (time.perf_counter() - t0), 2)


def load_factor(share: float, full_at: float = 0.8, floor: float = 0.2) -> float:
    """How much of the full event counts to use: 1 when the probe got >= `full_at` of a core, else in proportion
    (never below `floor`), so that a run on a crowded machine still ends within its time budget."""
    return round(min(1.0, max(floor, share / full_at)), 2)


def topology_variant(doc: dict, prefix: str, partitions: int | None = None) -> dict:
    """A copy of a topology document with a topic prefix, LogAppendTime on every topic and, if given, every topic
    that has the default partition count set to `partitions` (single-partition topics stay single)."""
    out = yaml.safe_load(yaml.safe_dump(doc))
    out.setdefault("app", {})["topic_prefix"] = prefix
    default = (out.get("defaults") or {}).get("partitions", 4)
    for spec in out["topics"].values():
        spec.setdefault("configs", {})
        spec["configs"] = dict(spec["configs"] or {}, **{"message.timestamp.type": "LogAppendTime"})
        if partitions is not None and spec.get("partitions", default) == default:
            spec["partitions"] = partitions
    if partitions is not None:
        out.setdefault("defaults", {})["partitions"] = partitions
    return out


@dataclasses.dataclass(frozen=True)
class Names:
    """Physical topic and group names of one topology variant (read from the topology file, not hard-coded)."""
    prefix: str
    upstream: tuple[str, ...]
    market: str
    valid: str
    decisions: str
    commands: str
    deadletter: str
    labels: str
    changelog: str
    worker_group: str
    actuator_group: str

    @classmethod
    def of(cls, doc: dict) -> "Names":
        p = (doc.get("app") or {}).get("topic_prefix", "") or ""
        agents, topics = doc["agents"], doc["topics"]

        def one(agent: str, field: str, contains: str) -> str:
            return next(t for t in agents[agent][field] if contains in t)

        changelog = next(t for t in topics if t.endswith("accounts-changelog"))
        return cls(
            prefix=p,
            upstream=tuple(p + t for t in agents["ingest"]["reads"]),
            market=p + agents["market"]["reads"][0],
            valid=p + agents["score"]["reads"][0],
            decisions=p + one("score", "writes", "decisions"),
            commands=p + one("actuator", "writes", "commands"),
            deadletter=p + one("ingest", "writes", "deadletter"),
            labels=p + one("score", "writes", "labels"),
            changelog=p + changelog,
            worker_group=p + agents["score"]["group"],
            actuator_group=p + agents["actuator"]["group"],
        )

    @property
    def worker_reads(self) -> tuple[str, ...]:
        return (*self.upstream, self.market, self.valid, self.labels)

    @property
    def worker_outputs(self) -> tuple[str, ...]:
        return (self.valid, self.deadletter, self.decisions, self.labels, self.changelog)


def hop_latencies(upstream: dict, valid: dict, decisions: dict, commands: list) -> dict:
    """Join one run's records by event and decision id; every time is epoch ms (broker append times).

    upstream:  event_id -> append time on the upstream topic
    valid:     event_id -> (producer_time, append time on the valid topic)
    decisions: decision_id -> (event_id, producer_time or None, append time on the decisions topic); champion
               decisions in live mode, and cures under the id the actuator gives their commands ("cure:<event>",
               producer_time then from the valid record)
    commands:  [(decision_id, append time on the commands topic)]
    """
    hops = {"producer_to_upstream": [], "ingest_upstream_to_valid": [], "score_valid_to_decision": [],
            "actuate_decision_to_command": []}
    to_command, to_decision, unmatched = [], [], 0
    to_valid = [vt - pt for pt, vt in valid.values()]

    def producer_time(eid, pt):
        return pt if pt is not None else (valid[eid][0] if eid in valid else None)

    for eid, pt, dt in decisions.values():
        pt = producer_time(eid, pt)
        if pt is not None:
            to_decision.append(dt - pt)
    for did, ct in commands:
        d = decisions.get(did)
        pt = producer_time(d[0], d[1]) if d else None
        if pt is None:
            unmatched += 1  # its decision came before this run (a backlog), or cannot be traced to an event
            continue
        eid, _, dt = d
        to_command.append(ct - pt)
        hops["actuate_decision_to_command"].append(ct - dt)
        if eid in valid and eid in upstream:
            ut, vt = upstream[eid], valid[eid][1]
            hops["producer_to_upstream"].append(ut - pt)
            hops["ingest_upstream_to_valid"].append(vt - ut)
            hops["score_valid_to_decision"].append(dt - vt)
    return {"event_to_command_ms": summarize(to_command), "event_to_decision_ms": summarize(to_decision),
            "event_to_valid_ms": summarize(to_valid),
            "hops_of_commanded_events_ms": {k: summarize(v) for k, v in hops.items()},
            "commands_not_traced": unmatched}


def parse_run(records: list[tuple], names: "Names") -> tuple[dict, dict, dict, list]:
    """(upstream, valid, decisions, commands) of `hop_latencies` from (topic, partition, offset, ts, key, value)."""
    upstream_t, valid, decisions, commands = {}, {}, {}, []
    up = set(names.upstream)
    for topic, _p, _o, ts, _k, value in records:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        if topic in up:
            if "event_id" in doc:
                upstream_t[doc["event_id"]] = ts
        elif topic == names.valid:
            if "event_id" in doc and "producer_time" in doc:
                valid[doc["event_id"]] = (doc["producer_time"], ts)
        elif topic == names.decisions:
            if doc.get("kind") == "cure" and doc.get("event_id"):
                decisions[f"cure:{doc['event_id']}"] = (doc["event_id"], None, ts)
            elif "decision_id" in doc and doc.get("role", "champion") == "champion" \
                    and doc.get("mode", "live") == "live":
                decisions[doc["decision_id"]] = (doc.get("event_id"), doc.get("producer_time"), ts)
        elif topic == names.commands and "decision_id" in doc:
            commands.append((doc["decision_id"], ts))
    return upstream_t, valid, decisions, commands


# -- processes --------------------------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's ended and waited-for children (here: the profiler)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all threads) in seconds, from /proc/<pid>/stat; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


class Proc:
    """A child in its own session (so stopping it stops its children), logging to a file."""

    live: list["Proc"] = []

    def __init__(self, name: str, cmd: list[str], log_dir: Path, cwd: Path, env: dict | None = None):
        self.name, self.log_path = name, log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.started = time.time()
        self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.popen.pid
        Proc.live.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _signal(self, sig) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash would."""
        self._signal(signal.SIGKILL)
        self.popen.wait()
        self._close()

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)   # whatever is left in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._close()

    def _close(self) -> None:
        if self in Proc.live:
            Proc.live.remove(self)
        self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        for p in list(reversed(cls.live)):
            p.stop()


class CpuSampler:
    """Samples utime+stime of some processes every `interval` s in a thread: (wall time, cpu s) per pid."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.samples: dict[int, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        with self._lock:
            self.samples.setdefault(pid, [])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                pids = list(self.samples)
            for pid in pids:
                cpu = proc_cpu_s(pid)
                if cpu is not None:
                    self.samples[pid].append((time.time(), cpu))

    def between(self, pid: int, t0: float, t1: float) -> float | None:
        s = self.samples.get(pid) or []
        a, b = interpolate(s, t0), interpolate(s, t1)
        return None if a is None or b is None else round(b - a, 3)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


# -- Kafka ---------------------------------------------------------------------------------------------------------
class Kafka:
    """confluent-kafka clients on one bootstrap: offsets, committed offsets, reading ranges, producing."""

    def __init__(self, bootstrap: str):
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._meta = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-live-meta",
                               "enable.auto.commit": False})
        self._parts: dict[str, int] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._meta.close()

    def partitions(self, topic: str) -> int:
        if topic not in self._parts:
            md = self.admin.list_topics(topic, timeout=10)
            self._parts[topic] = len(md.topics[topic].partitions)
        return self._parts[topic]

    def tps(self, topics: Iterable[str]) -> list[tuple[str, int]]:
        return [(t, p) for t in topics for p in range(self.partitions(t))]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(low, high) offsets; retried for a while: a topic just created may not have its leader yet."""
        from confluent_kafka import KafkaException, TopicPartition

        deadline = time.monotonic() + 20
        while True:
            try:
                return self._meta.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def ends(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        return {(t, p): self.watermarks(t, p)[1] for t, p in self.tps(topics)}

    def committed(self, group: str, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])
        fut = self.admin.list_consumer_group_offsets([req])[group]
        res = fut.result(timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in res.topic_partitions}

    def lag(self, group: str, topics: Iterable[str]) -> int:
        committed = self.committed(group, self.tps(topics))  # committed first, ends after: never a false "done"
        ends = self.ends(topics)
        return sum(max(0, ends[tp] - committed.get(tp, 0)) for tp in ends)

    def members(self, group: str) -> tuple[str, int]:
        fut = self.admin.describe_consumer_groups([group])[group]
        d = fut.result(timeout=10)
        return str(d.state).rsplit(".", 1)[-1], len(d.members)

    def wait_caught_up(self, group: str, topics: Iterable[str], timeout: float, what: str,
                       poll: float = 0.25, alive=None) -> float:
        """Wall time at which `group` had committed the end offset of every partition of `topics`."""
        topics = tuple(topics)
        deadline = time.monotonic() + timeout
        last_log = 0.0
        from confluent_kafka import KafkaException

        while time.monotonic() < deadline:
            try:
                n = self.lag(group, topics)
            except KafkaException as exc:  # e.g. the group coordinator is still loading
                n = f"? ({exc})"
            if n == 0:
                return time.time()
            if alive is not None and not alive():
                raise RuntimeError(f"{what}: process exited with {n} records still to process")
            if time.monotonic() - last_log > 10:
                log(f"  {what}: {n} records to go")
                last_log = time.monotonic()
            time.sleep(poll)
        raise TimeoutError(f"{what}: not caught up after {timeout:.0f} s")

    def read(self, ranges: dict[tuple[str, int], tuple[int, int]], timeout: float = 60) -> list[tuple]:
        """Records [start, end) of each partition: (topic, partition, offset, timestamp ms, key, value)."""
        from confluent_kafka import Consumer, TopicPartition

        todo = {tp: se for tp, se in ranges.items() if se[1] > se[0]}
        if not todo:
            return []
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench-live-reader",
                      "enable.auto.commit": False, "fetch.max.bytes": 16 * 1024 * 1024})
        out = []
        try:
            c.assign([TopicPartition(t, p, s) for (t, p), (s, _) in todo.items()])
            deadline = time.monotonic() + timeout
            while todo and time.monotonic() < deadline:
                for m in c.consume(10_000, timeout=0.5):
                    if m.error():
                        continue
                    tp = (m.topic(), m.partition())
                    end = todo.get(tp, (0, -1))[1]
                    if m.offset() < end:
                        out.append((tp[0], tp[1], m.offset(), m.timestamp()[1], m.key(), m.value()))
                    if m.offset() >= end - 1:
                        todo.pop(tp, None)
        finally:
            c.close()
        return out

    def edges(self, topics: Iterable[str], which: str) -> list[tuple]:
        """The first (`which="first"`) or last record of every non-empty partition of `topics`."""
        ranges = {}
        for (t, p) in self.tps(topics):
            low, high = self.watermarks(t, p)
            if high > low:
                ranges[(t, p)] = (low, low + 1) if which == "first" else (high - 1, high)
        return self.read(ranges, timeout=30)

    def producer(self, **conf):
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all",
                         "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1_048_576,
                         **conf})

    def produce_all(self, records: Iterable[tuple[str, bytes, bytes]], prefix: str) -> int:
        """Send every record as fast as possible and wait for every ack."""
        p = self.producer(**{"linger.ms": 20, "batch.size": 1_000_000})
        n = 0
        for topic, key, value in records:
            while True:
                try:
                    p.produce(prefix + topic, value, key)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            if n % 10_000 == 0:
                p.poll(0)
        if p.flush(60):
            raise RuntimeError("records not acknowledged after 60 s")
        return n


# -- the bench ------------------------------------------------------------------------------------------------------
class Live:
    def __init__(self, sizes: dict, work: Path, budget_s: float = 560.0, factor: float = 1.0):
        self.sz, self.work = sizes, work
        self.deadline = time.monotonic() + budget_s
        self.factor = factor
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.base_doc = yaml.safe_load(TOPOLOGY.read_text())
        self.cpu = CpuSampler()
        self.kafka: Kafka | None = None
        self.broker_dir = work / "broker"
        self.bootstrap = ""
        self.started_broker = False

    def left(self, reserve: float = 0.0, cap: float = 600.0, floor: float = 20.0) -> float:
        """Seconds a wait may take: what the budget leaves after `reserve` (for later sections), within bounds."""
        return max(floor, min(cap, self.deadline - time.monotonic() - reserve))

    # -- broker and topology ----------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 180) -> str:
        r = subprocess.run([*RISKSTREAM, *args], capture_output=True, text=True, timeout=timeout, cwd=self.work)
        if r.returncode != 0:
            raise RuntimeError(f"riskstream {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r.stdout.strip()

    def start_broker(self) -> dict:
        t0 = time.monotonic()
        self.started_broker = True  # stop even if start fails half way
        out = self.cli("broker", "start", "--kind", "kafka", "--state-dir", str(self.broker_dir), timeout=600)
        self.bootstrap = out.splitlines()[-1].strip()
        self.kafka = Kafka(self.bootstrap)
        status = self.cli("broker", "status", "--state-dir", str(self.broker_dir))
        return {"kind": "kafka", "bootstrap": self.bootstrap, "ready_s": round(time.monotonic() - t0, 1),
                "status": status}

    def stop_broker(self) -> None:
        if self.kafka:
            self.kafka.close()
            self.kafka = None
            gc.collect()  # the admin client and producers go with their last reference
        if self.started_broker:
            with contextlib.suppress(Exception):
                self.cli("broker", "stop", "--state-dir", str(self.broker_dir), timeout=60)

    def topology(self, prefix: str, partitions: int | None = None) -> tuple[Path, Names]:
        doc = topology_variant(self.base_doc, prefix, partitions)
        path = self.work / f"topology-{prefix.strip('.') or 'default'}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.cli("topology", "apply", "--file", str(path), "--bootstrap", self.bootstrap, timeout=120)
        return path, Names.of(doc)

    def worker(self, name: str, topo: Path, role: str = "worker") -> Proc:
        cmd = [*RISKSTREAM, role, "--bootstrap", self.bootstrap, "--topology", str(topo), "--metrics-port", "0",
               "--data-dir", str(self.work / "faust"), "--audit-log", str(self.work / "audit" / f"{name}.jsonl"),
               "--log-level", "WARNING"]
        p = Proc(name, cmd, self.logs, cwd=self.work)
        self.cpu.watch(p.pid)
        return p

    # -- events -----------------------------------------------------------------------------------------------------
    def tp_records(self, n: int, seed: int = 7) -> list[tuple[str, bytes, bytes]]:
        """n simulator events whose event time ends a minute ago (so none is too far in the future or late)."""
        step = self.sz["tp_step_ms"]
        start = int(time.time() * 1000) - 60_000 - int(n * (step + 0.5))
        sim = make_simulator(accounts=self.sz["tp_accounts"], facilities=self.sz["tp_facilities"], seed=seed,
                             start_ms=start, step_ms=step)
        return list(sim.wire(n))

    # -- 1. throughput ----------------------------------------------------------------------------------------------
    def split_warmup(self, records: list) -> tuple[list, list]:
        """The simulator's account openings come first: they warm a consumer up (the worker builds its pipeline,
        imports River and loads the model on start); the clock runs over the rest only."""
        n_open = self.sz["tp_accounts"] + self.sz["tp_facilities"]
        return records[:n_open], records[n_open:]

    @staticmethod
    def upstream_count(records: list, names: Names) -> int:
        upstream = {n[len(names.prefix):] for n in names.upstream}
        return sum(1 for t, _, _ in records if t in upstream)

    def throughput(self) -> dict:
        n_open = self.sz["tp_accounts"] + self.sz["tp_facilities"]
        records = self.tp_records(n_open + int((self.sz["tp_events"] - n_open) * self.factor))
        warm, rest = self.split_warmup(records)
        pt_topo, pt_names = self.topology("tpp.")
        topo, names = self.topology("tp.")
        self.tp = (topo, names)
        n_up = self.upstream_count(rest, names)
        result = {"events_upstream": n_up, "events_market": len(rest) - n_up, "warmup_events": len(warm),
                  "simulator": {"accounts": self.sz["tp_accounts"], "facilities": self.sz["tp_facilities"],
                                "step_ms": self.sz["tp_step_ms"]},
                  "method": "each consumer first reads the warm-up (the account openings) with the rest not yet "
                            "published; then the rest is published at once (~100x faster than it is consumed) "
                            "and the clock runs from the first to the last of the rest"}
        result["passthrough"] = self.passthrough(pt_names, warm, rest, self.upstream_count(warm, pt_names), n_up)
        log(f"throughput: pass-through {result['passthrough'].get('ev_s')} ev/s; starting the worker")
        self.kafka.produce_all(warm, names.prefix)   # waiting for the worker, as after an outage
        worker = self.worker("tp-worker", topo)
        self.tp_worker = worker
        w = self.warm_then_measure([worker], names, warm, rest, reserve=RESERVE["throughput"], profile=True)
        result["worker_profile"] = w.pop("profile")
        result["worker"] = w
        pt = result["passthrough"]
        result["ratio_worker_vs_passthrough"] = {
            "ev_s": round(w["ev_s"] / pt["ev_s"], 3) if w.get("ev_s") and pt.get("ev_s") else None,
            "cpu_us_per_event": round(pt["cpu_us_per_event"] / w["cpu_us_per_event"], 3)
            if w.get("cpu_us_per_event") and pt.get("cpu_us_per_event") else None,
        }
        result["startup"] = w.pop("startup")
        log(f"throughput: worker {w.get('ev_s')} ev/s, {w.get('cpu_us_per_event')} us/event; ratio "
            f"{result['ratio_worker_vs_passthrough']['ev_s']}")
        return result

    def passthrough(self, names: Names, warm: list, rest: list, n_warm: int, expect: int) -> dict:
        out = self.work / "passthrough.json"
        cmd = [*PASSTHROUGH, "--bootstrap", self.bootstrap, "--topics", ",".join(names.upstream),
               "--warmup", str(n_warm), "--expect", str(expect), "--out", str(out), "--app-id", "bench-passthrough"]
        self.kafka.produce_all(warm, names.prefix)
        p = Proc("passthrough", cmd, self.logs, cwd=self.work, env={"PYTHONPATH": str(ROOT)})
        self.cpu.watch(p.pid)
        try:
            def wait(key: str, timeout: float) -> dict:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if out.exists():
                        doc = orjson.loads(out.read_bytes())
                        if doc.get(key):
                            return doc
                    if not p.alive():
                        raise RuntimeError(f"pass-through exited: {p.tail()}")
                    time.sleep(0.05)
                raise TimeoutError(f"pass-through: no '{key}' mark in {timeout:.0f} s: {p.tail()}")

            warm_doc = wait("warm", self.left(RESERVE["throughput"] + 60, cap=120))
            self.kafka.produce_all(rest, names.prefix)
            doc = wait("last", self.left(RESERVE["throughput"] + 60, cap=180))
        finally:
            p.stop()
        first, last = doc["first"], doc["last"]
        wall, cpu = last["wall"] - first["wall"], last["cpu_s"] - first["cpu_s"]
        n = doc["n"] - doc["n_at_first"]
        return {"events": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "ev_s": round(n / wall) if wall > 0 else None,
                "cpu_us_per_event": round(cpu / n * 1e6, 1) if n else None,
                "ev_s_per_cpu_s": round(n / cpu) if cpu > 0 else None,
                "cpu_share": round(cpu / wall, 2) if wall > 0 else None,
                "start_to_warmup_read_s": round(warm_doc["warm"]["wall"] - p.started, 2)}

    def warm_then_measure(self, procs: list[Proc], names: Names, warm: list, rest: list,
                          reserve: float = 0.0, profile: bool = False) -> dict:
        """The procs (already started) read `warm` (published before); then `rest` is published and timed.
        With `profile`, py-spy samples the first process from outside while it works (bench/profile.py)."""
        t_spawn = min(p.started for p in procs)
        alive = lambda: all(p.alive() for p in procs)  # noqa: E731
        self.kafka.wait_caught_up(names.worker_group, names.worker_reads, self.left(reserve, cap=180), "warm-up",
                                  alive=alive)
        startup = self.startup_figures(names, t_spawn)
        start = self.kafka.ends(names.worker_outputs)
        sampler, spy_cpu0 = None, 0.0
        if profile:
            spy_cpu0 = children_cpu_s()
            sampler = profiling.Sampler(procs[0].pid, self.left(reserve=reserve, cap=300),
                                        self.work / f"{procs[0].name}.pyspy.txt")
        self.kafka.produce_all(rest, names.prefix)
        m = self.measure_workers(procs, names, self.upstream_count(rest, names), start,
                                 timeout=self.left(reserve=reserve))
        m["startup"] = startup
        if sampler is not None:
            sampler.stop()
            m["profile"] = sampler.result()
            m["profile"]["profiler_cpu_s"] = round(children_cpu_s() - spy_cpu0, 2)
            m["profile"]["note"] = ("sampled while the worker read the measured events; py-spy runs in its own "
                                    "process and does not stop the worker, but it takes CPU on a 2-core machine")
        return m

    def startup_figures(self, names: Names, t_spawn: float) -> dict:
        first_valid = self.kafka.edges([names.valid], "first")
        first_scored = self.kafka.edges([names.changelog], "first")
        return {"worker_start_to_first_validated_s":
                round(min(r[3] for r in first_valid) / 1000 - t_spawn, 2) if first_valid else None,
                "worker_start_to_first_scored_s":
                round(min(r[3] for r in first_scored) / 1000 - t_spawn, 2) if first_scored else None,
                "how": "events published before the worker started; from process start to the broker append time "
                       "of the first validated record and of the first table (changelog) write",
                "target_s": 5.0}

    def measure_workers(self, procs: list[Proc], names: Names, n_up: int, start: dict, timeout: float) -> dict:
        """Wait until the group has committed everything, then time first validated -> last output record after
        the `start` offsets of the output topics. Out of time, the figures are those of the events done so far
        (`partial`: validated records the score step has committed, plus dead letters)."""
        partial = False
        try:
            t_done = self.kafka.wait_caught_up(names.worker_group, names.worker_reads, timeout, "worker",
                                               alive=lambda: all(p.alive() for p in procs))
        except TimeoutError:
            partial, t_done = True, time.time()
            log(f"  out of time: figures of the events processed in {timeout:.0f} s")
        end = self.kafka.ends(names.worker_outputs)
        first = self.kafka.read({tp: (start[tp], start[tp] + 1) for tp in start
                                 if tp[0] in (names.valid, names.deadletter) and end[tp] > start[tp]})
        first_scored = self.kafka.read({tp: (start[tp], start[tp] + 1) for tp in start
                                        if tp[0] == names.changelog and end[tp] > start[tp]})
        last = self.kafka.read({tp: (end[tp] - 1, end[tp]) for tp in end if end[tp] > start[tp]})
        dead = self.kafka.read({tp: (start[tp], end[tp]) for tp in end if tp[0] == names.deadletter})
        reasons: dict[str, int] = {}
        for r in dead:
            with contextlib.suppress(Exception):
                reason = str(orjson.loads(r[5]).get("reason"))
                reasons[reason] = reasons.get(reason, 0) + 1
        t_first = min(r[3] for r in first) / 1000
        t_last = max(r[3] for r in last) / 1000
        wall = t_last - t_first
        cpus = [self.cpu.between(p.pid, t_first, t_last) for p in procs]
        cpu = sum(c for c in cpus if c is not None)
        counts = {}
        for key, topic in (("valid", names.valid), ("deadletter", names.deadletter), ("decisions", names.decisions),
                           ("labels", names.labels), ("changelog", names.changelog)):
            counts[key] = sum(end[tp] - start[tp] for tp in end if tp[0] == topic)
        n = n_up
        if partial:
            committed = self.kafka.committed(names.worker_group, self.kafka.tps([names.valid]))
            n = max(0, sum(committed.get(tp, 0) - start[tp] for tp in start if tp[0] == names.valid)
                    + counts["deadletter"])
        return {"events": n, "events_offered": n_up, "partial": partial, "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3), "cpu_s_per_process": cpus,
                "ev_s": round(n / wall) if wall > 0 and n else None,
                "cpu_us_per_event": round(cpu / n * 1e6, 1) if cpu and n else None,
                "ev_s_per_cpu_s": round(n / cpu) if cpu > 0 and n else None,
                "cpu_share": round(cpu / wall, 2) if wall > 0 else None,
                "first_scored_after_first_validated_s": round(min(r[3] for r in first_scored) / 1000 - t_first, 3)
                if first_scored else None,
                "done_detected_after_last_output_s": round(t_done - t_last, 2),
                "outputs": counts, "deadletter_reasons": reasons}

    # -- 2. latency -------------------------------------------------------------------------------------------------
    def latency(self, capacity: float | None) -> dict:
        topo, names = self.tp
        if not (getattr(self, "tp_worker", None) and self.tp_worker.alive()):
            raise RuntimeError("the throughput worker is not running")
        try:
            self.kafka.wait_caught_up(names.worker_group, names.worker_reads, self.left(RESERVE["latency"], cap=60),
                                      "worker backlog")
        except TimeoutError:
            raise RuntimeError("the worker still has a backlog from the throughput run (a crowded machine): "
                               "latencies would measure that backlog") from None
        actuator = self.worker("tp-actuator", topo, role="actuator")
        self.tp_actuator = actuator
        t0 = time.monotonic()
        self.kafka.wait_caught_up(names.actuator_group, [names.decisions], self.left(RESERVE["latency"], cap=300),
                                  "actuator catching up", alive=actuator.alive)
        log(f"latency: actuator has caught up with the throughput run's decisions in {time.monotonic() - t0:.1f} s")
        # A second simulator over the same accounts (new seed = new event ids); its openings are skipped, the
        # accounts exist. 1 ms mean gap: event time never runs ahead of the wall clock by the 5 min the
        # validator allows, and nothing is late.
        now = int(time.time() * 1000)
        sim = make_simulator(accounts=self.sz["tp_accounts"], facilities=self.sz["tp_facilities"], seed=8,
                             start_ms=now - 180_000, step_ms=1, clock=lambda: int(time.time() * 1000))
        gen = sim.wire(10**9)
        for _ in range(self.sz["tp_accounts"] + self.sz["tp_facilities"]):
            next(gen)
        producer = self.kafka.producer()  # an upstream system: linger 5 ms, acks=all
        runs = {}
        runs["1k"] = self.offer(gen, producer, names, self.sz["rate_low"], self.sz["low_s"])
        held = None
        if capacity:
            tried = []
            for frac in self.sz["held_fractions"]:
                rate = int(capacity * frac // 100 * 100)
                if rate <= self.sz["rate_low"] and runs["1k"]["held"]:
                    break  # the low rate held: the highest held rate is above it or unknown
                if rate < 100:
                    break
                if self.deadline - time.monotonic() < RESERVE["latency"] + 2 * self.sz["held_s"]:
                    tried.append({"rate": rate, "skipped": "time budget"})
                    break
                r = self.offer(gen, producer, names, rate, self.sz["held_s"])
                tried.append({"rate": rate, "held": r["held"], "max_lag": r["lag"]["max_second_half"],
                              "drain_s": r["drain_s"], "event_to_command_p99_ms": r["event_to_command_ms"].get("p99")})
                if r["held"]:
                    held = r
                    break
            runs["highest_held"] = held or {"held": False, "note": "no rate above the low rate held",
                                            "tried": tried}
            if held:
                held["tried"] = tried
        runs["5k"] = self.offer(gen, producer, names, self.sz["rate_high"], self.sz["high_s"])
        producer.flush(10)
        del producer  # librdkafka would keep reconnecting to the broker after it stops
        return {"runs": runs,
                "setup": {"upstream_producer": "confluent-kafka, linger.ms=5, acks=all",
                          "riskstream_batches": "take_events(500, within=0.05 s) per agent; Faust producer "
                                                "linger 5 ms; outputs acked before the table write",
                          "clock": "broker LogAppendTime of each hop's record; producer_time stamped by the "
                                   "bench when it generates the event, just before produce()",
                          "held_rule": f"lag of the worker's group (committed offsets, 1 s commit interval) in the "
                                       f"second half of the run <= {HELD_LAG_S:g} s of traffic, and all committed "
                                       f"<= {HELD_DRAIN_S:g} s after the last event",
                          "worker_processes": 1, "actuator_processes": 1}}

    def offer(self, gen: Iterator, producer, names: Names, rate: int, seconds: float) -> dict:
        log(f"latency: offering {rate} ev/s for {seconds:.0f} s")
        k = self.kafka
        topics = [*names.upstream, names.market, names.valid, names.decisions, names.commands]
        start = k.ends(topics)
        n_target = int(rate * seconds)
        sent, lags = 0, []
        t0 = time.perf_counter()
        next_lag = t0 + 1.0
        while sent < n_target:
            now = time.perf_counter()
            due = min(n_target, int((now - t0) * rate) + 1)
            while sent < due:
                topic, key, value = next(gen)
                try:
                    producer.produce(names.prefix + topic, value, key)
                except BufferError:
                    producer.poll(0.01)
                    producer.produce(names.prefix + topic, value, key)
                sent += 1
            producer.poll(0)
            if now >= next_lag:
                lags.append((round(now - t0, 2), k.lag(names.worker_group, [*names.upstream, names.valid]),
                             k.lag(names.actuator_group, [names.decisions])))
                next_lag += 1.0
            time.sleep(0.001)
        offered_s = time.perf_counter() - t0
        producer.flush(30)
        t_end = time.monotonic()
        try:
            k.wait_caught_up(names.worker_group, [*names.upstream, names.valid],
                             self.left(RESERVE["latency"], cap=120), "worker draining")
            k.wait_caught_up(names.actuator_group, [names.decisions], self.left(RESERVE["latency"], cap=60),
                             "actuator draining")
            drained = round(time.monotonic() - t_end, 2)
        except TimeoutError as exc:
            drained = None
            log(f"latency: {exc}")
        end = k.ends(topics)
        recs = k.read({tp: (start[tp], end[tp]) for tp in end}, timeout=120)
        second_half = [x for x in lags if x[0] >= seconds / 2]
        max_lag = max((w for _, w, _ in second_half), default=0)
        # Committed offsets trail what is processed by up to the 1 s commit interval, so a worker that keeps up
        # shows a lag of about one second of traffic; a backlog that grows shows more, and takes long to drain.
        held = max_lag <= HELD_LAG_S * rate and drained is not None and drained <= HELD_DRAIN_S
        out = {"offered_ev_s": rate, "achieved_ev_s": round(sent / offered_s), "events": sent,
               "seconds": round(offered_s, 1), "held": held,
               "lag": {"max_second_half": max_lag, "at_end": lags[-1][1] if lags else None,
                       "actuator_max": max((a for _, _, a in lags), default=0),
                       "samples": [[t, w, a] for t, w, a in lags]},
               "drain_s": drained, **hop_latencies(*parse_run(recs, names))}
        e2c = out["event_to_command_ms"]
        log(f"latency: {rate} ev/s -> held={held}, event->command p50 {e2c.get('p50')} p99 {e2c.get('p99')} "
            f"ms (n={e2c.get('n')}), max lag {max_lag}")
        return out

    def stop_tp(self) -> None:
        for attr in ("tp_actuator", "tp_worker"):
            p = getattr(self, attr, None)
            if p is not None:
                p.stop()

    # -- 3. recovery ------------------------------------------------------------------------------------------------
    def recovery(self) -> dict:
        topo, names = self.topology("rc.")
        n = self.sz["recovery_accounts"]
        sim = make_simulator(accounts=n, facilities=0, seed=11, start_ms=int(time.time() * 1000) - 60_000,
                             step_ms=1000)
        t0 = time.monotonic()
        self.kafka.produce_all(sim.wire(n), names.prefix)
        log(f"recovery: {n} account openings produced in {time.monotonic() - t0:.1f} s; worker applies them")
        start = self.kafka.ends(names.worker_outputs)
        w1 = self.worker("rc-worker-1", topo)
        m = self.measure_workers([w1], names, n, start, timeout=self.left(RESERVE["recovery"]))
        table = {"accounts": m["events"], "changelog_records": m["outputs"]["changelog"],
                 "apply_ev_s": m["ev_s"], "apply_cpu_us_per_event": m["cpu_us_per_event"]}
        if m["partial"]:
            # Out of time budget (a crowded machine): a restart would first re-read the backlog, so the time to a
            # new event would measure that backlog, not the recovery.
            table.update(accounts_offered=n, partial=True, startup=self.startup_figures(names, w1.started))
            w1.stop()
            return {"table": table, "skipped": f"only {table['accounts']} of {n} accounts applied within the time "
                                              f"budget (a crowded machine): no SIGKILL/restart measured"}
        table["startup"] = self.startup_figures(names, w1.started)
        log(f"recovery: {table['accounts']} accounts in the table; SIGKILL and restart")
        before = self.kafka.ends([names.valid, names.changelog])
        w1.kill()
        t_kill = time.time()
        w2 = self.worker("rc-worker-2", topo)
        t_restart = w2.started
        # A new event for an account the table holds, published as the restarted worker starts.
        probe_sim = make_simulator(accounts=1, facilities=0, seed=12, start_ms=int(time.time() * 1000) - 1000,
                                   step_ms=1, clock=lambda: int(time.time() * 1000))
        topic, key, value = next((t, k, v) for t, k, v in probe_sim.wire(50)
                                 if t.endswith("behaviour") and b"account_opened" not in v)
        event_id = orjson.loads(value)["event_id"]
        p = self.kafka.producer()
        p.produce(names.prefix + topic, value, key)
        p.flush(10)
        seen = self.wait_for_probe(names, before, key, event_id, w2,
                                   timeout=self.left(RESERVE["recovery"], cap=150, floor=45))
        w2.stop()
        out = {"table": table, "kill_to_restart_s": round(t_restart - t_kill, 2),
               "restart_to_new_event_validated_s": round(seen["valid"] - t_restart, 2) if seen.get("valid") else None,
               "restart_to_new_event_scored_s": round(seen["scored"] - t_restart, 2) if seen.get("scored") else None,
               "note": "the new event is published right after the restart; 'scored' = its account's table "
                       "record rewritten (state, features, model, policy ran). Includes the dead member's "
                       "session timeout (6 s) before the group rebalances."}
        log(f"recovery: new event scored {out['restart_to_new_event_scored_s']} s after the restart")
        return out

    def wait_for_probe(self, names: Names, start: dict, key: bytes, event_id: str, proc: Proc,
                       timeout: float) -> dict:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench-live-probe",
                      "enable.auto.commit": False})
        seen: dict[str, float] = {}
        try:
            c.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(seen) < 2:
                if not proc.alive():
                    raise RuntimeError(f"restarted worker exited: {proc.tail()}")
                for m in c.consume(5000, timeout=0.5):
                    if m.error():
                        continue
                    if m.topic() == names.valid and event_id.encode() in (m.value() or b""):
                        seen.setdefault("valid", m.timestamp()[1] / 1000)
                    elif m.topic() == names.changelog and m.key() == key and "valid" in seen:
                        seen.setdefault("scored", m.timestamp()[1] / 1000)
        finally:
            c.close()
        if len(seen) < 2:
            raise TimeoutError(f"the new event was not processed {timeout:.0f} s after the restart "
                               f"(seen: {sorted(seen)}): {proc.tail()}")
        return seen

    # -- 4. scale ---------------------------------------------------------------------------------------------------
    def scale(self, capacity: float | None) -> dict:
        parts = self.sz["scale_partitions"]
        # About `scale_seconds` of work for one worker at the capacity measured above (bounded both ways).
        n = int(min(self.sz["scale_events"], max(self.sz["scale_min_events"],
                                                   (capacity or 0) * self.sz["scale_seconds"])))
        warm, rest = self.split_warmup(self.tp_records(n, seed=21))
        out = {"partitions": parts, "events": None, "warmup_events": len(warm), "runs": {},
               "method": "k workers start and join the group; they read the warm-up (account openings); then the "
                         "rest is published at once and timed from the first validated to the last output record"}
        for k in (1, 2):
            topo, names = self.topology(f"s{k}.", partitions=parts)
            out["events"] = self.upstream_count(rest, names)
            procs = [self.worker(f"s{k}-worker-{i}", topo) for i in range(k)]
            key = f"{k}_worker" + ("s" if k > 1 else "")
            try:
                t_join = self.wait_group(names.worker_group, k, procs, timeout=self.left(cap=90))
                log(f"scale: {k} worker(s) joined in {t_join:.1f} s; warm-up, then {len(rest)} events")
                self.kafka.produce_all(warm, names.prefix)
                m = self.warm_then_measure(procs, names, warm, rest, reserve=RESERVE["scale"] if k == 1 else 0.0)
                m.pop("startup", None)  # the events came after the join: not a start-up figure
                m["group_join_s"] = round(t_join, 1)
                with contextlib.suppress(Exception):
                    m["group_after_run"] = dict(zip(("state", "members"), self.kafka.members(names.worker_group)))
                out["runs"][key] = m
                log(f"scale: {k} worker(s): {m['ev_s']} ev/s, cpu share {m['cpu_share']}")
            except (TimeoutError, RuntimeError) as exc:
                # e.g. a worker that stops taking batches ("no batch in 10 s with N records waiting"): keep the
                # other run's figures and what the workers said.
                log(f"scale: {k} worker(s) FAILED: {exc}")
                out["runs"][key] = {"error": f"{type(exc).__name__}: {exc}"[:1000],
                                    "worker_warnings": {p.name: [ln for ln in p.tail(20_000).splitlines()
                                                                 if "riskstream.stream" in ln][-3:]
                                                        for p in procs}}
            finally:
                for p in procs:
                    p.stop()
        r1, r2 = out["runs"].get("1_worker", {}), out["runs"].get("2_workers", {})
        out["speedup_2_vs_1"] = round(r2["ev_s"] / r1["ev_s"], 2) if r1.get("ev_s") and r2.get("ev_s") else None
        out["note"] = ("2 cores are shared by the broker (JVM), the workers and this bench, and by anything else "
                       "on the machine: 2 workers can use at most the CPU the broker leaves; see cpu_share.")
        return out

    def wait_group(self, group: str, members: int, procs: list[Proc], timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited: {p.tail()}")
            with contextlib.suppress(Exception):
                state, n = self.kafka.members(group)
                if state.upper() == "STABLE" and n == members:
                    return time.monotonic() - t0
            time.sleep(0.25)
        raise TimeoutError(f"group {group} did not reach {members} stable members in {timeout:.0f} s")


def environment() -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    java = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        java = (r.stderr or r.stdout).splitlines()[0] if (r.stderr or r.stdout) else None
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": git("rev-parse", "--short", "HEAD") or None,
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "java": java, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}


SECTIONS = ("throughput", "latency", "recovery", "scale")


def run(sizes: dict, keep: bool = False, budget_s: float = 560.0, only: Iterable[str] = SECTIONS) -> dict:
    """All sections (or `only` these; latency needs throughput) in one run within about `budget_s` (the
    cleanup comes on top)."""
    only = tuple(only)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="riskstream-live-"))
    share = cpu_share_probe()
    factor = load_factor(share)
    log(f"work dir {work}; this process got {share} of a core for a busy loop: event counts x{factor}")
    bench = Live(sizes, work, budget_s=budget_s, factor=factor)
    out: dict = {"environment": dict(environment(), cpu_share_probe=share), "sizes": dict(sizes),
                 "sections_run": list(only),
                 "budget": {"seconds": budget_s, "size_factor": factor,
                            "rule": "throughput events x size_factor = min(1, probe share / 0.8); every wait is "
                                    "bounded by what the budget leaves for the sections after it"}}
    out["sizes"]["held_fractions"] = list(sizes["held_fractions"])
    sections: dict[str, float] = {}

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def section(name: str, fn, *args):
        t0 = time.monotonic()
        if name in NEED and bench.deadline - t0 < NEED[name]:
            log(f"{name}: skipped, the time budget is spent")
            out[name] = {"skipped": "time budget spent (a crowded machine?)"}
            sections[name] = 0.0
            return out[name]
        try:
            out[name] = fn(*args)
        except Exception as exc:  # one failed section must not lose the others
            log(f"{name}: FAILED: {exc}")
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        sections[name] = round(time.monotonic() - t0, 1)
        return out[name]

    try:
        section("broker", bench.start_broker)
        if "error" not in out["broker"]:
            capacity = None
            if "throughput" in only:
                tp = section("throughput", bench.throughput)
                capacity = (tp.get("worker") or {}).get("ev_s")
                if "latency" in only:
                    section("latency", bench.latency, capacity)
                bench.stop_tp()
            if "recovery" in only:
                section("recovery", bench.recovery)
            if "scale" in only:
                section("scale", bench.scale, capacity)
    finally:
        Proc.stop_all()
        bench.stop_broker()
        bench.cpu.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    tp = out.get("throughput") or {}
    out["startup"] = dict(tp.get("startup") or {}, target_s=5.0)
    out["ratios"] = {
        "worker_vs_passthrough_ev_s": (tp.get("ratio_worker_vs_passthrough") or {}).get("ev_s"),
        "worker_vs_passthrough_cpu": (tp.get("ratio_worker_vs_passthrough") or {}).get("cpu_us_per_event"),
        "scale_2_vs_1_workers": (out.get("scale") or {}).get("speedup_2_vs_1"),
    }
    out["environment"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["sections_s"] = sections
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    out["note"] = ("one run on a shared, noisy machine: compare the ratios of this run, not absolute figures "
                   "across runs; " + TARGETS_NOTE)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: checks the machinery, figures mean little")
    ap.add_argument("--core", metavar="FILE", help="JSON of the pure-core bench: print it with this run under 'live'")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, broker data)")
    ap.add_argument("--sections", metavar="A,B", help=f"run only these sections (of {','.join(SECTIONS)}); "
                                                       "the figures of a run are comparable only within it")
    ap.add_argument("--budget", type=float, default=560.0, metavar="S",
                    help="time budget in seconds (default 560: with the core bench, ./scripts/bench --live "
                         "stays within 10 minutes)")
    args = ap.parse_args(argv)

    only = tuple(args.sections.split(",")) if args.sections else SECTIONS
    unknown = set(only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    if "latency" in only and "throughput" not in only:
        only = ("throughput", *only)  # latency runs on the throughput run's worker
    live = run(SIZES["quick" if args.quick else "full"], keep=args.keep, budget_s=args.budget, only=only)
    doc = live
    if args.core:
        doc = orjson.loads(Path(args.core).read_bytes())
        doc["live"] = live
    from bench.run import emit

    emit(doc, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
