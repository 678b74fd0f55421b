"""The imperative shell: Faust apps, topics, tables and agents wired to the pure `riskstream.pipeline` steps.

Two apps, each its own consumer group (see topology.yaml):

* the **worker** (`riskstream worker`): `ingest` (validate, dead-letter, re-key), `market` (dead-letters bad market
  events), `score` (per-account state → features → model → policy → decisions and labels), `trainer` (labels →
  signed model snapshots). Every worker also reads the market, model and control topics in full ("global"
  readers), so each sees every market indicator, the newest model and every policy version.
* the **actuator** (`riskstream actuator`): `control` (routes overrides and breaker resets to decision partitions)
  and `actuator` (line state machine → breaker → commands, audit log).

Delivery is at least once. Each batch publishes its outputs and waits for the broker's acks *before* it writes the
table, and the state keeps the last applied source offset: after a crash a replayed event is either recomputed into
the same output (deterministic ids, deduplicated downstream) or skipped because the state already holds it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import logging
import os
import time
import weakref
from pathlib import Path

import faust
import orjson
from faust.streams import _current_event

from riskstream.stream import metrics
from riskstream.core.steps.pipeline import (FAMILY_OF_TOPIC, T_COMMANDS, T_DEAD, T_DECISIONS, T_LABELS, T_MODELS, Ingestor, Out,
                        Pipeline, PipelineConfig)
from riskstream.core.topology import Topology, load_topology
from riskstream.stream import resume, rewind
from riskstream.stream.lag import install_lag_timer
from riskstream.stream.watch import BatchWatch

log = logging.getLogger("riskstream.stream")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05
T_MARKET = "riskstream.events.market"
T_CONTROL = "riskstream.control"
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
            log.warning("no batch in 10 s with %d records waiting (rebalancing=%s, in_recovery=%s, assigned=%d, "
                        "paused=%d)", waiting, app.rebalancing, getattr(app, "in_recovery", None),
                        len(consumer.assignment()), len(getattr(consumer, "_paused_partitions", ())))
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


def now_ms() -> int:
    return int(time.time() * 1000)


def make_app(app_id: str, s: StreamSettings) -> faust.App:
    """A Faust app tuned to join its group in about a second on a local broker (defaults take ~30 s)."""
    rewind.install()  # never skip the first records of a partition with no commit (see the module)
    resume.install()  # agents' partitions resume only after recovery's seek to their commits (see the module)
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
        stream_wait_empty=False,
        table_cleanup_interval=3600,
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class Publisher:
    """Sends `Out` records (logical topic names) now, not attached to the event, and waits for all acks at once."""

    def __init__(self, app: faust.App, topo: Topology):
        self._app = app
        self._topics = {name: _raw_topic(app, topo.name(name)) for name in topo.topics}
        self._prefix_len = len(topo.topic_prefix)

    def logical(self, physical: str) -> str:
        return physical[self._prefix_len:]

    async def publish(self, outs: list[Out], partition: int | None = None) -> None:
        futures = [await self._topics[o.topic].send(key=o.key, value=o.value, partition=partition, force=True)
                   for o in outs]
        if not futures:
            return
        futures = [asyncio.ensure_future(f) for f in futures]
        _, pending = await asyncio.wait(futures, timeout=30)
        if pending:
            # Never give up on outputs (the batch's state must not be written before them), but say so: a
            # worker that waits here looks idle from the outside.
            log.warning("%d of %d records not acknowledged after 30 s; flushing the producer and waiting",
                        len(pending), len(futures))
            await self._app.producer.flush()
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


class GlobalReader:
    """Reads one topic from the beginning in every process (no group): the 'global table' of this design.

    `caught_up` is set once the reader has passed the end offsets seen at start, so agents can wait for it and
    decide with the same market, model and policy a replay would use.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int, handler, name: str):
        self.bootstrap, self.topic, self.partitions, self.handler, self.name = bootstrap, topic, partitions, handler, name
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id=f"riskstream-{self.name}-reader",
                                    max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            # Partition count from topology.yaml: aiokafka has no metadata for topics it is not subscribed to.
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            if all(v == 0 for v in end.values()):
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    for r in records:
                        try:
                            self.handler(r.value or b"", r.offset)
                        except Exception:  # a bad record must never stop the reader
                            log.exception("%s reader: record skipped", self.name)
                if not self.caught_up.is_set():
                    positions = {tp: await consumer.position(tp) for tp in tps}
                    if all(positions[tp] >= end[tp] for tp in tps):
                        self.caught_up.set()
        finally:
            await consumer.stop()


def _start_pipeline(settings: StreamSettings) -> concurrent.futures.Future:
    """Build the pipeline (imports River, warms the version-0 model) in a thread while Faust joins its group."""
    def build() -> Pipeline:
        cfg = settings.pipeline_config or PipelineConfig()
        if settings.policy_file:
            cfg = dataclasses.replace(cfg, policy_path=Path(settings.policy_file))
        return Pipeline(cfg)

    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="riskstream-init").submit(build)


def _audit_log(settings: StreamSettings, role: str):
    from riskstream.core.audit import AuditLog

    path = Path(settings.audit_log or f"var/audit/{role}.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    return AuditLog(str(path))


def build_worker(s: StreamSettings) -> faust.App:
    from riskstream.core.contracts import SPEC, Rejected, parse_event

    topo = s.topology
    app = make_app(topo.topic_prefix + topo.agents["score"].group, s)
    agents = ("ingest", "market", "score", "trainer")
    watch = install_watch(app, agents, install_lag_timer(app, s.bootstrap, topo, agents))
    pipeline_future = _start_pipeline(s)
    holder: dict[str, Pipeline] = {}
    pub = Publisher(app, topo)
    ingest_spec, score_spec = topo.agents["ingest"], topo.agents["score"]
    source = _raw_topic(app, *[topo.name(t) for t in ingest_spec.reads])
    valid = _raw_topic(app, topo.name(score_spec.reads[0]))
    market_topic = _raw_topic(app, topo.name(T_MARKET))
    labels_topic = _raw_topic(app, topo.name(T_LABELS))
    accounts = app.Table("accounts", default=None, key_type=bytes, value_type=bytes,
                         partitions=topo.topic(score_spec.reads[0]).partitions,
                         help="per-account windows, features, policy memory, label snapshots")
    event_types = tuple(SPEC)
    audit = None
    readers: list[GlobalReader] = []

    async def pipeline() -> Pipeline:
        if "p" not in holder:
            holder["p"] = await asyncio.wrap_future(pipeline_future)
            p = holder["p"]
            log.info("pipeline built (model %s)", p.model_version)
            metrics.POLICY_INFO.info({"name": str(p.policies.policy.name), "version": str(p.policies.policy.version)})
            metrics.MODEL_INFO.info({"version": p.model_version})
        return holder["p"]

    async def ready() -> Pipeline:
        p = await pipeline()
        if not holder.get("ready"):
            # Decide with the market, model and policy a replay would use, but never hang on a context reader.
            for r in readers:
                try:
                    await asyncio.wait_for(r.caught_up.wait(), timeout=30)
                except asyncio.TimeoutError:
                    log.warning("%s reader not caught up after 30 s: deciding with what it has read", r.name)
            holder["ready"] = True
            log.info("score: context ready (model %s, policy %s v%s)", p.model_version, p.policies.policy.name,
                     p.policies.policy.version)
        return p

    # -- global readers: market (event-time history), models (signed snapshots), control (policy versions) -------
    def on_market(raw: bytes, offset: int) -> None:
        p = holder["p"]
        ev = parse_event(raw, now_ms=now_ms(), pseudonymizer=p.config.pseudonymizer, limits=p.config.limits,
                         family="market")
        if not isinstance(ev, Rejected):
            p.on_market(ev)

    def on_model(raw: bytes, offset: int) -> None:
        from riskstream.core.models.snapshot import TamperedSnapshot, load_snapshot, model_key

        p = holder["p"]
        try:
            version, model = load_snapshot(raw, key=model_key())
        except TamperedSnapshot as exc:
            metrics.MODEL_SNAPSHOT_LOADS.labels(result="tampered").inc()
            log.warning("model snapshot refused, keeping %s: %s", p.model_version, exc)
            return
        metrics.MODEL_SNAPSHOT_LOADS.labels(result="accepted").inc()
        if version > getattr(p.model, "version", 0):
            p.model = model
            metrics.MODEL_INFO.info({"version": p.model_version})
            log.info("model hot-swapped to %s", p.model_version)

    def on_control(raw: bytes, offset: int) -> None:
        msg = orjson.loads(raw)
        if msg.get("kind") == "policy":
            offer_policy(msg.get("text", ""), f"control topic offset {offset}")

    def offer_policy(text: str, source: str) -> None:
        nonlocal audit
        p = holder["p"]
        ok, err, change = p.offer_policy(text, source)
        metrics.POLICY_RELOADS.labels(result="accepted" if ok else "refused").inc()
        if ok:
            metrics.POLICY_INFO.info({"name": str(p.policies.policy.name), "version": str(p.policies.policy.version)})
            log.info("policy reloaded: %s v%s from %s", p.policies.policy.name, p.policies.policy.version, source)
            audit = audit or _audit_log(s, f"worker-{os.getpid()}")
            audit.append("policy_change", change, time_ms=now_ms())
        else:
            log.warning("policy refused, keeping %s v%s: %s", p.policies.policy.name, p.policies.policy.version, err)

    @app.task
    async def start_readers() -> None:
        await pipeline()
        for topic, handler, name in ((T_MARKET, on_market, "market"), (T_MODELS, on_model, "models"),
                                     (T_CONTROL, on_control, "control")):
            r = GlobalReader(s.bootstrap, topo.name(topic), topo.topic(topic).partitions, handler, name)
            readers.append(r)
            asyncio.ensure_future(r.run())

    @app.timer(interval=2.0)
    async def watch_policy_file() -> None:
        if not s.policy_file or "p" not in holder:
            return
        path = Path(s.policy_file)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        last = holder.setdefault("policy_mtime", mtime)
        if mtime != last:
            holder["policy_mtime"] = mtime
            offer_policy(path.read_text(), str(path))

    ingestor = Ingestor(s.pipeline_config or PipelineConfig())

    @app.agent(source, name="ingest")
    async def ingest(stream):
        p = ingestor  # validation needs no model: start at once
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            t = now_ms()
            outs = []
            for ev in batch:
                m = ev.message
                logical = pub.logical(m.topic)
                # "Now" for timestamp checks is the record's broker timestamp, so a replay judges alike.
                out = p.ingest(m.value or b"", topic=m.topic, family=FAMILY_OF_TOPIC.get(logical),
                               partition=m.partition, offset=m.offset, now_ms=int(m.timestamp * 1000))
                outs.append(out)
                if out.topic == T_DEAD:
                    metrics.DEAD_LETTERS.labels(reason=out.label).inc()
                    metrics.EVENTS_CONSUMED.labels(topic=logical, type="invalid").inc()
                else:
                    metrics.EVENTS_CONSUMED.labels(topic=logical, type=metrics.bounded(out.label, event_types)).inc()
            watch.enter("ingest", "publish")
            await pub.publish(outs)
            watch.idle("ingest")
            metrics.LAST_EVENT_TIMESTAMP.labels(topic="ingest").set(t / 1000)

    @app.agent(market_topic, name="market")
    async def market(stream):
        """Validates market events for the group: bad ones are dead-lettered once (readers skip them)."""
        p = ingestor
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            outs = []
            for ev in batch:
                m = ev.message
                out = p.ingest(m.value or b"", topic=m.topic, family="market", partition=m.partition,
                               offset=m.offset, now_ms=int(m.timestamp * 1000))
                if out.topic == T_DEAD:
                    outs.append(out)
                    metrics.DEAD_LETTERS.labels(reason=out.label).inc()
                    metrics.EVENTS_CONSUMED.labels(topic=T_MARKET, type="invalid").inc()
                else:
                    metrics.EVENTS_CONSUMED.labels(topic=T_MARKET, type=metrics.bounded(out.label, event_types)).inc()
            watch.enter("market", "publish")
            await pub.publish(outs)
            watch.idle("market")

    valid_name, n_valid = topo.name(score_spec.reads[0]), topo.topic(score_spec.reads[0]).partitions

    @app.agent(valid, name="score")
    async def score(stream):
        # Iterate first, then wait for the context inside: an agent that awaits before it starts iterating its
        # stream was seen to stay idle after a rebalance.
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            if "first_batch" not in holder:
                holder["first_batch"] = True
                log.info("score: first batch (%d events)", len(batch))
            watch.enter("score", "context")
            p = await ready()
            watch.enter("score", "compute")
            t = now_ms()
            outs: list[Out] = []
            dirty: dict[bytes, tuple[bytes, object]] = {}
            known = len(accounts)
            for ev in batch:
                m = ev.message
                key = m.key
                current = dirty[key][0] if key in dirty else accounts.get(key)
                if current is None and key not in dirty:
                    known += 1
                p.active_accounts = _portfolio_estimate(app, known, valid_name, n_valid)
                record, o = p.account(current, m.value, offset=m.offset, topic=m.topic, partition=m.partition)
                if record is not None:
                    dirty[key] = (record, ev)
                outs.extend(o)
            watch.enter("score", "publish")
            await pub.publish(outs)  # outputs before state: see the module docstring
            watch.enter("score", "table")
            write_table(accounts, dirty)
            watch.idle("score")
            _score_metrics(outs, t)
            metrics.ACTIVE_ACCOUNTS.set(len(accounts))
            if dirty:
                metrics.STATE_BYTES.set(sum(len(v[0]) for v in dirty.values()) / len(dirty) * len(accounts))

    trainer_box: dict = {}

    @app.agent(labels_topic, name="trainer")
    async def trainer(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            watch.enter("trainer", "context")
            p = await ready()
            watch.enter("trainer", "learn")
            tr = trainer_box.get("t") or trainer_box.setdefault("t", _Trainer(p))
            for ev in batch:
                tr.on_record(ev.message.value or b"")
            blob = tr.maybe_publish()
            if blob is not None:
                watch.enter("trainer", "publish")
                await pub.publish([Out(T_MODELS, b"model", blob)])
                log.info("trainer published model version %s", tr.trainer.version)
            watch.idle("trainer")

    return app


def _portfolio_estimate(app: faust.App, held: int, topic: str, total: int) -> int:
    """Accounts in the whole portfolio, from this worker's share of the partitions (accounts hash evenly)."""
    assigned = sum(1 for tp in app.consumer.assignment() if tp.topic == topic)
    return int(held * total / assigned) if assigned else held


def _score_metrics(outs: list[Out], t: int) -> None:
    for o in outs:
        if o.topic == T_DECISIONS and o.label != "CURE":
            d = orjson.loads(o.value)
            role = d.get("role", "champion")
            metrics.POLICY_DECISIONS.labels(role=role, action=metrics.bounded(o.label, metrics.ACTIONS)).inc()
            if role == "champion":
                metrics.DECISIONS.labels(action=metrics.bounded(o.label, metrics.ACTIONS),
                                         reason_code=str(d.get("rule_id") or "other")[:40]).inc()
                metrics.PROCESSING_LATENCY.labels(stage="event_to_decision").observe(
                    max(0.0, t / 1000 - d.get("producer_time", d["event_time"]) / 1000))
        elif o.topic == T_DEAD:
            metrics.DEAD_LETTERS.labels(reason=o.label).inc()
            if o.label == "duplicate":
                metrics.DUPLICATES_SUPPRESSED.labels(stage="ingest").inc()


class _Trainer:
    """The trainer agent's state: River PD model + anomaly model, learned from the labels topic."""

    def __init__(self, p: Pipeline):
        from riskstream.core.models.anomaly import make_anomaly_detector
        from riskstream.core.models.snapshot import Trainer

        start = copy.deepcopy(p.model)
        self.trainer = Trainer(p.model_config, scorer=start, version=int(getattr(start, "version", 0)))
        self.anomaly = getattr(start, "anomaly", None) or make_anomaly_detector(p.model_config)
        self.recent: list[tuple[float, bool]] = []
        self.behaviour_seen = 0

    def on_record(self, raw: bytes) -> None:
        from riskstream.core.models.labels import LabeledExample

        msg = orjson.loads(raw)
        if msg.get("kind") == "behaviour":
            self.anomaly.learn_one(msg["features"])
            self.behaviour_seen += 1
            return
        if msg.get("kind") != "label":
            return
        ex = LabeledExample(msg["entity"], msg["snapshot_time"], msg["features"], bool(msg["label"]))
        pd = self.trainer.scorer.predict_pd(ex.features)
        self.recent = (self.recent + [(pd, ex.label)])[-1000:]
        if self.trainer.learn(ex):
            metrics.DRIFT_EVENTS.labels(detector=str(self.trainer.drift.config.get("detector", "adwin"))).inc()
        metrics.LABELS_LEARNED.inc()
        metrics.LABEL_DELAY.observe(max(0.0, (msg.get("label_time", 0) - ex.snapshot_time) / 1000))

    def maybe_publish(self) -> bytes | None:
        from riskstream.core.models.quality import auc, log_loss

        blob = None
        if self.trainer.since_publish >= int(self.trainer.config["trainer"]["publish_every"]):
            self.trainer.scorer.anomaly = self.anomaly  # one signed snapshot carries both models
            self.trainer.scorer.drift_active = int(self.trainer.drift.stats().get("error_drifts", 0) > 0) \
                if hasattr(self.trainer.drift, "stats") else 0
            blob = self.trainer.maybe_publish()
        if len(self.recent) >= 50:
            ys = [y for _, y in self.recent]
            ps = [p for p, _ in self.recent]
            if 0 < sum(ys) < len(ys):
                metrics.MODEL_AUC.set(auc(ys, ps))
            metrics.MODEL_LOG_LOSS.set(log_loss(ys, ps))
        return blob


def build_actuator(s: StreamSettings) -> faust.App:
    topo = s.topology
    spec = topo.agents["actuator"]
    app = make_app(topo.topic_prefix + spec.group, s)
    agents = ("control", "actuator")
    watch = install_watch(app, agents, install_lag_timer(app, s.bootstrap, topo, agents))
    pipeline_future = _start_pipeline(s)
    pub = Publisher(app, topo)
    decisions = _raw_topic(app, topo.name(spec.reads[0]))
    control = _raw_topic(app, topo.name(T_CONTROL))
    n_partitions = topo.topic(spec.reads[0]).partitions
    lines = app.Table("lines", default=None, key_type=bytes, value_type=bytes, partitions=n_partitions,
                      help="per-account credit-line state (and the breaker, under __breaker__/<partition>)")
    box: dict = {}

    async def pipeline() -> Pipeline:
        if "p" not in box:
            box["p"] = await asyncio.wrap_future(pipeline_future)
            box["audit"] = _audit_log(s, "actuator")
        return box["p"]

    @app.agent(control, name="control")
    async def route_control(stream):
        """Overrides go to their account's decision partition; a breaker reset goes to every partition."""
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            for ev in batch:
                raw = ev.message.value or b""
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("control message at offset %s is not JSON: skipped", ev.message.offset)
                    continue
                kind = msg.get("kind")
                if kind == "breaker_reset":
                    for p in range(n_partitions):
                        await pub.publish([Out(T_DECISIONS, b"__breaker__", raw)], partition=p)
                elif kind in ("legal_hold", "allow_list", "manual") and msg.get("account_id"):
                    await pub.publish([Out(T_DECISIONS, str(msg["account_id"]).encode(), raw)])
            watch.idle("control")

    sent = SentCommands()

    @app.agent(decisions, name="actuator")
    async def actuate(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            watch.enter("actuator", "context")
            p = await pipeline()
            audit = box["audit"]
            if "sent_loaded" not in box:
                box["sent_loaded"] = await sent.load_tail(s.bootstrap, topo.name(T_COMMANDS),
                                                          topo.topic(T_COMMANDS).partitions)
                log.info("actuator: %d recent command ids loaded from the commands topic", box["sent_loaded"])
            _restore_breaker(p, lines, n_partitions, box)
            watch.enter("actuator", "compute")
            t = now_ms()
            outs: list[Out] = []
            dirty: dict[bytes, tuple[bytes, object]] = {}
            records: list[dict] = []
            latency: list[float] = []
            parts_seen: dict[int, object] = {}
            for ev in batch:
                m = ev.message
                parts_seen.setdefault(m.partition, ev)
                current = dirty[m.key][0] if m.key in dirty else lines.get(m.key)
                line, o, a = p.actuate(current, m.value)
                if line is not None and m.key != b"__breaker__":
                    dirty[m.key] = (line, ev)
                for c in o:
                    if c.ident in sent:  # already on the topic before a restart: never twice
                        metrics.DUPLICATES_SUPPRESSED.labels(stage="actuator").inc()
                        continue
                    sent.add(c.ident)
                    outs.append(c)
                    latency.append(max(0.0, t / 1000 - m.timestamp))  # decision produced (broker time) -> command
                records.extend(a)
            while p.dropped:  # a "drop" reset: each discarded command is undone on its line
                c = p.dropped.pop()
                key = c["account_id"].encode()
                current = dirty[key][0] if key in dirty else lines.get(key)
                line, a = p.undo_dropped(current, c)
                dirty[key] = (line, batch[-1])
                records.extend(a)
            watch.enter("actuator", "audit")
            audit.extend(records)  # before the commands leave: a crash may repeat an audit line, never lose one
            watch.enter("actuator", "publish")
            await pub.publish(outs)
            watch.enter("actuator", "table")
            box["seq"] = box.get("seq", 0) + 1
            breaker_blob = orjson.dumps({"seq": box["seq"], "b": p.breaker.encode()})
            for part, ev in parts_seen.items():
                dirty[b"__breaker__/%d" % part] = (breaker_blob, ev)
            write_table(lines, dirty)
            for o in outs:
                metrics.COMMANDS_SENT.labels(action=metrics.bounded(o.label, metrics.COMMAND_ACTIONS)).inc()
            for r in records:
                payload = r.get("payload") or {}
                if r["kind"] == "breaker" and payload.get("event") == "tripped":
                    metrics.BREAKER_TRIPS.inc()
                if r["kind"] == "breaker" and payload.get("event") == "held":
                    metrics.COMMANDS_HELD_TOTAL.inc()
            metrics.BREAKER_OPEN.set(1 if p.breaker.tripped else 0)
            metrics.COMMANDS_HELD.set(len(p.breaker.held))
            watch.idle("actuator")
            metrics.LAST_EVENT_TIMESTAMP.labels(topic="actuator").set(t / 1000)
            for x in latency:
                metrics.PROCESSING_LATENCY.labels(stage="decision_to_command").observe(x)
    return app


class SentCommands:
    """Command ids already on the commands topic, so a restarted actuator does not send one again.

    At least once means a crash between publishing commands and saving the lines replays those decisions; the
    line state machine would then make the same commands (same ids) a second time. Reading the tail of the
    commands topic at start (the window a crash can leave unsaved is seconds long) closes that gap.
    """

    def __init__(self, capacity: int = 500_000):
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, cid: str) -> bool:
        return cid in self._ids

    def add(self, cid: str) -> None:
        self._ids[cid] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]

    async def load_tail(self, bootstrap: str, topic: str, partitions: int, per_partition: int = 20_000) -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id="riskstream-actuator-sent")
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, end[tp] - per_partition))
            n = 0
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for r in records:
                        try:
                            self.add(orjson.loads(r.value)["command_id"])
                            n += 1
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            pass
            return n
        finally:
            await consumer.stop()


def _restore_breaker(p: Pipeline, lines, n_partitions: int, box: dict) -> None:
    """Once, after table recovery: the breaker (tripped or not, with its held commands) survives restarts."""
    if box.get("breaker_restored"):
        return
    box["breaker_restored"] = True
    from riskstream.core.actuator import MassCloseBreaker

    saved = [orjson.loads(v) for v in (lines.get(b"__breaker__/%d" % i) for i in range(n_partitions)) if v]
    if saved:
        newest = max(saved, key=lambda x: x["seq"])
        p.breaker = MassCloseBreaker.decode(newest["b"])
        box["seq"] = newest["seq"]


def run(app: faust.App, loglevel: str = "warning") -> None:
    """Run a Faust worker for `app` in this process until SIGINT/SIGTERM."""
    # override_logging=False keeps riskstream's JSON log handler (mode would replace it with plain text).
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, override_logging=False)
    worker.spinner = None  # a terminal spinner writes escape codes into the JSON log stream
    worker.execute_from_commandline()
