"""The imperative shell: Faust apps, topics, tables and agents wired to the pure `riskstream.pipeline` steps.

Two apps, each its own consumer group (see topology.yaml):

* the **worker** (`riskstream worker`): ingest → valid events → per-account state and decisions;
* the **actuator** (`riskstream actuator`): decisions → credit-line state machine → commands.

Delivery is at least once. Each batch publishes its outputs and waits for the broker's acks *before* it writes the
table, and the state keeps the last applied source offset: after a crash a replayed event is either recomputed into
the same output (deterministic ids, deduplicated downstream) or skipped because the state already holds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
import weakref
from pathlib import Path

import faust
from faust.streams import _current_event

from .. import metrics
from ..pipeline import FAMILY_OF_TOPIC, Out, Pipeline, PipelineConfig
from ..topology import Topology, load_topology

log = logging.getLogger("riskstream.stream")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05


@dataclasses.dataclass
class StreamSettings:
    bootstrap: str
    topology: Topology = dataclasses.field(default_factory=load_topology)
    web_port: int = 0
    data_dir: str = "var/faust"


def now_ms() -> int:
    return int(time.time() * 1000)


def make_app(app_id: str, s: StreamSettings) -> faust.App:
    """A Faust app tuned to join its group in about a second on a local broker (defaults take ~30 s)."""
    web_port = s.web_port or _free_port()
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
        web_port=web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        datadir=str(datadir),
        producer_linger_ms=5,
        stream_wait_empty=False,
        table_cleanup_interval=3600,
    )


def _free_port() -> int:
    from ..broker.manager import free_port
    return free_port()


def _raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class Publisher:
    """Sends `Out` records (logical topic names) now, not attached to the event, and waits for all acks at once."""

    def __init__(self, app: faust.App, topo: Topology):
        self._topics = {name: _raw_topic(app, topo.name(name)) for name in topo.topics}
        self._prefix_len = len(topo.topic_prefix)

    def logical(self, physical: str) -> str:
        return physical[self._prefix_len:]

    async def publish(self, outs: list[Out]) -> None:
        futures = [await self._topics[o.topic].send(key=o.key, value=o.value, force=True) for o in outs]
        if futures:
            await asyncio.gather(*futures)


def write_table(table, dirty: dict[bytes, tuple[bytes, object]]) -> None:
    """Write each dirty key once per batch (a changelog record per write is Faust's main per-event cost).

    Faust picks the changelog partition from the current event, which a batch does not have: point it at an event
    of that key, whose partition is the key's partition.
    """
    for key, (value, ev) in dirty.items():
        token = _current_event.set(weakref.ref(ev))
        try:
            table[key] = value
        finally:
            _current_event.reset(token)  # take_events relies on the context it had


def build_worker(s: StreamSettings, config: PipelineConfig | None = None) -> faust.App:
    topo = s.topology
    # The prefix also names the group, so Faust's changelog "<app id>-accounts-changelog" is the declared topic.
    app = make_app(topo.topic_prefix + topo.agents["score"].group, s)
    pipeline = Pipeline(config or PipelineConfig())
    pub = Publisher(app, topo)
    ingest_spec = topo.agents["ingest"]
    score_spec = topo.agents["score"]
    source = _raw_topic(app, *[topo.name(t) for t in ingest_spec.reads])
    valid = _raw_topic(app, topo.name(score_spec.reads[0]))
    accounts = app.Table("accounts", default=None, key_type=bytes, value_type=bytes, partitions=topo.topic(score_spec.reads[0]).partitions,
                         help="per-account windows, features and policy memory")

    @app.agent(source, name="ingest")
    async def ingest(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            t = now_ms()
            outs = []
            for ev in batch:
                m = ev.message
                family = FAMILY_OF_TOPIC.get(pub.logical(m.topic))
                out = pipeline.ingest(m.value or b"", topic=m.topic, family=family, partition=m.partition,
                                      offset=m.offset, now_ms=t)
                outs.append(out)
                metrics.EVENTS_CONSUMED.labels(topic=m.topic, type=family).inc()
                if out.topic == "riskstream.deadletter":
                    metrics.DEAD_LETTERS.labels(reason=out.key.decode()).inc()
            await pub.publish(outs)

    @app.agent(valid, name="score")
    async def score(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            t = now_ms()
            outs: list[Out] = []
            dirty: dict[bytes, tuple[bytes, object]] = {}
            for ev in batch:
                m = ev.message
                key = m.key
                current = dirty[key][0] if key in dirty else accounts.get(key)
                new_state, o = pipeline.account(current, m.value, partition=m.partition, offset=m.offset, now_ms=t)
                if new_state is not None:
                    dirty[key] = (new_state, ev)
                outs.extend(o)
            await pub.publish(outs)  # outputs before state: see the module docstring
            write_table(accounts, dirty)
            metrics.ACTIVE_ACCOUNTS.set(len(accounts))

    return app


def build_actuator(s: StreamSettings, config: PipelineConfig | None = None) -> faust.App:
    topo = s.topology
    spec = topo.agents["actuator"]
    app = make_app(topo.topic_prefix + spec.group, s)
    pipeline = Pipeline(config or PipelineConfig())
    pub = Publisher(app, topo)
    decisions = _raw_topic(app, topo.name(spec.reads[0]))
    lines = app.Table("lines", default=None, key_type=bytes, value_type=bytes, partitions=topo.topic(spec.reads[0]).partitions,
                      help="per-account credit-line state")

    @app.agent(decisions, name="actuator")
    async def actuate(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            t = now_ms()
            outs: list[Out] = []
            dirty: dict[bytes, tuple[bytes, object]] = {}
            for ev in batch:
                m = ev.message
                current = dirty[m.key][0] if m.key in dirty else lines.get(m.key)
                new_line, o = pipeline.actuate(current, m.value, now_ms=t)
                if new_line is not None:
                    dirty[m.key] = (new_line, ev)
                outs.extend(o)
            await pub.publish(outs)
            write_table(lines, dirty)
            for o in outs:
                if o.topic == "riskstream.commands":
                    metrics.COMMANDS_SENT.labels(action="REVIEW").inc()

    return app


def run(app: faust.App, loglevel: str = "warning") -> None:
    """Run a Faust worker for `app` in this process until SIGINT/SIGTERM."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
