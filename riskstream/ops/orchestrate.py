"""Start and stop riskstream processes (broker, workers, actuator) as one unit: for the demo and the tests.

Every process runs in its own session so that stopping it also stops its children; `Cluster` stops everything it
started on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from riskstream.ops.broker import manager


class Proc:
    """A riskstream subcommand in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen([sys.executable, "-m", "riskstream", *args], stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env={**os.environ, **(env or {})}, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60, marker: str = "]: Worker ready") -> float:
        """Seconds until the Faust worker reports ready (raises with the log tail if it dies or times out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log_text():
                return time.monotonic() - self.started_at
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        # Faust can leave helper children behind in its group; make sure none survive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


class Cluster:
    """A broker (started here, or an existing bootstrap) plus the processes started through it."""

    def __init__(self, work_dir: Path, *, kind: str = "auto", bootstrap: str | None = None, progress=print):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.bootstrap = bootstrap
        self.progress = progress
        self.procs: list[Proc] = []
        self.broker: manager.BrokerInfo | None = None
        self._port = 0

    def __enter__(self) -> "Cluster":
        if not self.bootstrap:
            self.broker = manager.start(self.kind, state_dir=self.work_dir / "broker", progress=self.progress)
            self.bootstrap = self.broker.bootstrap
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        if self.broker:
            manager.stop(Path(self.broker.state_dir))
            self.broker = None

    def apply_topology(self, topology: str | None = None):
        from riskstream.core.topology import load_topology
        from riskstream.ops.topology_apply import apply_topology
        return apply_topology(load_topology(topology), self.bootstrap)

    def start(self, role: str, *extra: str, metrics_port: int = 0, name: str | None = None,
              env: dict | None = None) -> Proc:
        """Start `riskstream worker|actuator` against this cluster's broker."""
        name = name or f"{role}-{len(self.procs)}"
        # Each process keeps its own audit chain inside the work dir (never a shared ./var of the caller).
        audit = self.work_dir / "audit" / f"{name}.jsonl"
        args = [role, "--bootstrap", self.bootstrap, "--metrics-port", str(metrics_port),
                "--data-dir", str(self.work_dir / "faust"), "--audit-log", str(audit), *extra]
        proc = Proc(name, args, self.work_dir, env=env)
        self.procs.append(proc)
        return proc


def scrape(port: int) -> dict[str, float]:
    """Sum of each metric family's samples at localhost:port/metrics (labels folded), e.g. for progress lines."""
    import urllib.request

    out: dict[str, float] = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return out


def read_topic(bootstrap: str, topic: str, *, idle_s: float = 2.0, timeout_s: float = 60, security=None) -> list:
    """All records of `topic` from the beginning, read by a fresh consumer with no group (no commits)."""
    from kafka import KafkaConsumer, TopicPartition

    from riskstream.stream.security import KafkaSecurity

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=int(idle_s * 1000),
                             **(security or KafkaSecurity.from_env()).kafka_python())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def decode_values(records) -> list[dict]:
    return [orjson.loads(r.value) for r in records]
