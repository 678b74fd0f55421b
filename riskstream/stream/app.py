"""The imperative shell's base: Faust app settings, raw topics, and running a worker process.

Two apps, each its own consumer group (see topology.yaml): the worker (`stream.worker`: ingest, market, score,
trainer) and the actuator (`stream.actuator`: control, actuator). Both only move bytes between Kafka and the pure
steps of `riskstream.core.steps`, persist what the steps return, commit, and update metrics from the returned
records (`stream.observe`).

Delivery is at least once. Each batch publishes its outputs and waits for the broker's acks *before* it writes the
table, then waits for the table's changelog acks before its events are acked (so committable), and the state keeps
the last applied source offset: after a crash a replayed event is either recomputed into the same output
(deterministic ids, deduplicated downstream) or skipped because the state already holds it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from pathlib import Path

import faust

from riskstream.core.steps import PipelineConfig
from riskstream.core.topology import Topology, load_topology
from riskstream.stream import deliver, idempotence, resume, rewind
from riskstream.stream.security import KafkaSecurity
from riskstream.stream.watch import BatchWatch

log = logging.getLogger("riskstream.stream")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05
STUCK_AFTER_S = 20.0


def install_watch(app: faust.App, agents: tuple[str, ...], lag) -> BatchWatch:
    """Every 10 s: warn about a batch stuck in one stage, or about no batch at all while the group has lag."""
    watch = BatchWatch()
    seen = {"batches": -1}

    @app.timer(interval=10.0)
    async def report_stuck() -> None:
        for agent, stage, secs in watch.stuck(STUCK_AFTER_S):
            log.warning("%s: a batch has been in stage '%s' for %.0f s", agent, stage, secs)
        batches = sum(watch.batches.get(a, 0) for a in agents)
        waiting = sum(lag.last.values())
        if batches == seen["batches"] and waiting:
            consumer = app.consumer
            # Faust's paused set holds its active changelog partitions after every recovery: count agents' apart.
            in_faust, in_aiokafka = await resume.paused_agents(consumer)
            log.warning("no batch in 10 s with %d records waiting (rebalancing=%s, in_recovery=%s, assigned=%d, "
                        "paused=%d, agents' paused in Faust=%d, in aiokafka=%s)", waiting, app.rebalancing,
                        getattr(app, "in_recovery", None), len(consumer.assignment()),
                        len(getattr(consumer, "_paused_partitions", ())), in_faust, in_aiokafka)
        seen["batches"] = batches

    return watch


@dataclasses.dataclass
class StreamSettings:
    bootstrap: str
    topology: Topology = dataclasses.field(default_factory=load_topology)
    web_port: int = 0
    data_dir: str = "var/faust"
    policy_file: str | None = None          # watched for changes (hot reload); None = the bundled policy
    audit_log: str | None = None            # hash-chained audit file; None = var/audit/<role>.jsonl
    pipeline_config: PipelineConfig | None = None
    security: KafkaSecurity = dataclasses.field(default_factory=KafkaSecurity.from_env)  # every client's TLS/SASL


def now_ms() -> int:
    return int(time.time() * 1000)


def make_app(app_id: str, s: StreamSettings) -> faust.App:
    """A Faust app tuned to join its group in about a second on a local broker (defaults take ~30 s)."""
    rewind.install()  # never skip the first records of a partition with no commit (see the module)
    resume.install()  # agents' partitions resume only after recovery's seek to their commits (see the module)
    deliver.install()  # a record is handed to the agents inline, without 4 tasks, when nothing blocks
    idempotence.install()  # a batch retried after a lost ack (a broker outage) is written once
    datadir = Path(s.data_dir) / f"{app_id}-{os.getpid()}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=f"kafka://{s.bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=10,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        # topology.yaml is the source of truth: `riskstream topology apply` creates every topic, Faust creates none.
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=4,
        topic_replication_factor=1,
        web_enabled=True,
        web_port=s.web_port or free_port(),
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        datadir=str(datadir),
        producer_linger_ms=5,
        producer_max_request_size=2 * 1024 * 1024,
        # One record batch per partition for a whole batch of events (16 KiB, the default, split it into several,
        # each a round trip: aiokafka has one request in flight per broker). Below brokers' 1 MB record limit.
        producer_max_batch_size=256 * 1024,
        stream_wait_empty=False,
        table_cleanup_interval=3600,
        **s.security.faust(),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def run(app: faust.App, loglevel: str = "warning") -> None:
    """Run a Faust worker for `app` in this process until SIGINT/SIGTERM."""
    # override_logging=False keeps riskstream's JSON log handler (mode would replace it with plain text).
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False)
    worker.spinner = None  # a terminal spinner writes escape codes into the JSON log stream
    worker.execute_from_commandline()
