"""The worker app: ingest, market, score and trainer agents, each a loop that feeds batches to a pure step.

Every worker also reads the market, model and control topics in full ("global" readers), so each holds the same
context: every market indicator, the newest verified model and every accepted policy version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
from pathlib import Path

import faust
import orjson

from riskstream.core import names
from riskstream.core.contracts import SPEC
from riskstream.core.steps import (Context, PipelineConfig, Source, Valid, account_batch, ingest, ingest_batch,
                                   new_train_state, portfolio_key, train_batch)
from riskstream.core.steps.align import watermark_outs
from riskstream.core.steps.context import default_sources
from riskstream.stream import metrics, observe
from riskstream.stream.app import BATCH_MAX, BATCH_WITHIN_S, StreamSettings, install_watch, make_app, now_ms, \
    raw_topic
from riskstream.stream.lag import install_lag_timer
from riskstream.stream.publish import Publisher, write_ahead, write_table
from riskstream.stream.readers import GlobalReader

log = logging.getLogger("riskstream.stream")
EVENT_TYPES = tuple(SPEC)


def start_context(s: StreamSettings) -> concurrent.futures.Future:
    """Build the context (imports River, warms the version-0 model) in a thread while Faust joins its group."""
    def build() -> Context:
        cfg = s.pipeline_config or PipelineConfig(partitions=s.topology.topic(names.VALID).partitions,
                                                  sources=default_sources(s.topology))
        if s.policy_file:
            cfg = dataclasses.replace(cfg, policy_path=Path(s.policy_file))
        return Context(cfg)

    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="riskstream-init").submit(build)


def audit_log(s: StreamSettings, role: str):
    from riskstream.core.audit import AuditLog

    path = Path(s.audit_log or f"var/audit/{role}.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    return AuditLog(str(path))


class WorkerContext:
    """The worker's context, once built, and the context readers that keep it current."""

    def __init__(self, s: StreamSettings):
        self.s = s
        self.future = start_context(s)
        self.ctx: Context | None = None
        self.readers: list[GlobalReader] = []
        self.ready_done = False
        self.audit = None

    async def get(self) -> Context:
        if self.ctx is None:
            self.ctx = await asyncio.wrap_future(self.future)
            log.info("pipeline built (model %s)", self.ctx.model_version)
            self.export_versions()
        return self.ctx

    async def ready(self) -> Context:
        """Decide with the market, model and policy a replay would use, but never hang on a context reader."""
        ctx = await self.get()
        if not self.ready_done:
            for r in self.readers:
                try:
                    await asyncio.wait_for(r.caught_up.wait(), timeout=30)
                except asyncio.TimeoutError:
                    log.warning("%s reader not caught up after 30 s: deciding with what it has read", r.name)
            self.ready_done = True
            log.info("score: context ready (model %s, policy %s v%s)", ctx.model_version, ctx.policies.policy.name,
                     ctx.policies.policy.version)
        return ctx

    def export_versions(self) -> None:
        p = self.ctx.policies.policy
        metrics.POLICY_INFO.info({"name": str(p.name), "version": str(p.version)})
        metrics.MODEL_INFO.info({"version": self.ctx.model_version})

    def on_market(self, raw: bytes, offset: int) -> None:
        out = ingest(self.ctx.config, raw, Source(names.MARKET, 0, offset, now_ms()))
        if out.topic == names.VALID:
            self.ctx.on_market(orjson.loads(out.value))

    def on_model(self, raw: bytes, offset: int) -> None:
        from riskstream.core.models.snapshot import RefusedSnapshot, TamperedSnapshot, load_snapshot, model_key

        try:
            _, model = load_snapshot(raw, key=model_key())
        except RefusedSnapshot as exc:
            metrics.MODEL_SNAPSHOT_LOADS.labels(result="tampered" if isinstance(exc, TamperedSnapshot)
                                                else "broken").inc()
            log.warning("model snapshot refused, keeping %s: %s", self.ctx.model_version, exc)
            return
        metrics.MODEL_SNAPSHOT_LOADS.labels(result="accepted").inc()
        if self.ctx.offer_model(model):
            self.export_versions()
            log.info("model hot-swapped to %s", self.ctx.model_version)

    def on_control(self, raw: bytes, offset: int) -> None:
        from riskstream.core.signing import Refused, refusal_audit, verify

        cfg = self.ctx.config
        checked = verify(raw, cfg.control_keys, policy_signers=cfg.policy_signers)
        if isinstance(checked, Refused):
            self.audit = self.audit or audit_log(self.s, f"worker-{os.getpid()}")
            self.audit.extend([refusal_audit(raw, checked, time_ms=now_ms(), source=f"control offset {offset}")])
            metrics.CONTROL_REFUSED.labels(reason=checked.reason).inc()
            log.warning("control message at offset %d refused (%s): %s; see the audit log", offset, checked.reason,
                        checked.detail)
            return
        if checked.msg.get("kind") == "policy":
            self.offer_policy(checked.msg.get("text", ""), f"control topic offset {offset} signed by "
                                                          f"{', '.join(checked.signers)}")

    def offer_policy(self, text: str, source: str) -> None:
        ok, err, change = self.ctx.offer_policy(text, source)
        metrics.POLICY_RELOADS.labels(result="accepted" if ok else "refused").inc()
        p = self.ctx.policies.policy
        if not ok:
            log.warning("policy refused, keeping %s v%s: %s", p.name, p.version, err)
            return
        self.export_versions()
        log.info("policy reloaded: %s v%s from %s", p.name, p.version, source)
        self.audit = self.audit or audit_log(self.s, f"worker-{os.getpid()}")
        self.audit.append("policy_change", change, time_ms=now_ms())

    def start_readers(self) -> None:
        topo = self.s.topology
        for topic, handler, name in ((names.MARKET, self.on_market, "market"), (names.MODELS, self.on_model, "models"),
                                     (names.CONTROL, self.on_control, "control")):
            r = GlobalReader(self.s.bootstrap, topo.name(topic), topo.topic(topic).partitions, handler, name,
                             self.s.security)
            self.readers.append(r)
            asyncio.ensure_future(r.run())


def build_worker(s: StreamSettings) -> faust.App:
    topo = s.topology
    app = make_app(topo.topic_prefix + topo.agents["score"].group, s)
    agents = ("ingest", "market", "score", "trainer")
    lag = install_lag_timer(app, s.bootstrap, topo, agents, security=s.security)
    watch = install_watch(app, agents, lag)
    wc = WorkerContext(s)
    pub = Publisher(app, topo)
    accounts = app.Table("accounts", default=None, key_type=bytes, value_type=bytes,
                         partitions=topo.topic(names.VALID).partitions,
                         help="per-account windows, features, policy memory, label snapshots")

    @app.task
    async def start_readers() -> None:
        await wc.get()
        wc.start_readers()

    @app.timer(interval=2.0)
    async def watch_policy_file() -> None:
        watch_file(wc)

    add_ingest_agents(app, s, pub, watch, lag)
    add_score_agent(app, s, wc, pub, watch, accounts)
    add_trainer_agent(app, s, wc, pub, watch)
    return app


def watch_file(wc: WorkerContext) -> None:
    """`--policy FILE`: a changed file is offered as a new policy version."""
    if not wc.s.policy_file or wc.ctx is None:
        return
    path = Path(wc.s.policy_file)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return
    last = getattr(wc, "policy_mtime", mtime)
    wc.policy_mtime = mtime
    if mtime != last:
        wc.offer_policy(path.read_text(), str(path))


IDLE_SKEW_MS = 1_000    # a caught-up source is read up to "now - this" (producer clocks may lag ours this much)
IDLE_EVERY_S = 1.0      # how often caught-up sources are announced while this worker reads new records ...
IDLE_QUIET_S = 10.0     # ... and when it read nothing for a while (another worker's sources may still need them)


class IdleSources:
    """Which source partitions this worker has read to their end: those are "read up to now - skew" (docs/time.md).

    A partition is read to its end when this process has ingested and published its last record, or, for one it has
    read nothing of, when its group's committed offset is at the end (nothing is left for this process to read). The
    fetch position is no witness: Faust's fetcher runs ahead of the agent, so a partition fetched to its end may still
    have records waiting in the stream buffer. Announcing such a partition broke the mark's promise (its unread
    records are older than the mark) and those records were applied out of publication order (tests/faults).
    """

    def __init__(self, app: faust.App, pub: Publisher, physical: set[str], lag):
        self.app, self.pub, self.physical, self.lag = app, pub, physical, lag
        self.read_upto: dict = {}   # TP -> last offset ingested and published by this process
        self.last_batch = 0.0
        self.announced = 0.0

    def read(self, batch) -> None:
        for ev in batch:
            tp = ev.message.tp
            self.read_upto[tp] = max(self.read_upto.get(tp, -1), ev.message.offset)

    async def caught_up(self, tps) -> dict:
        from aiokafka import TopicPartition

        tps = [tp for tp in tps if tp.topic in self.physical]
        if not tps:
            return {}
        at = now_ms() - IDLE_SKEW_MS   # before the broker is asked: a record appended later is not older than this
        try:
            pos = await self.lag.positions([TopicPartition(tp.topic, tp.partition) for tp in tps])
        except Exception:  # noqa: BLE001 - not known now: announce nothing (the next tick asks again)
            return {}
        marks = {}
        for tp in tps:
            committed, end = pos[TopicPartition(tp.topic, tp.partition)]
            done = self.read_upto.get(tp)
            if done is None:
                ok = end == 0 or (committed is not None and committed >= end)
            else:
                ok = done + 1 >= end
            if ok:
                marks[f"{self.pub.logical(tp.topic)}/{tp.partition}"] = at
        return marks


def add_ingest_agents(app: faust.App, s: StreamSettings, pub: Publisher, watch, lag) -> None:
    topo = s.topology
    cfg = s.pipeline_config or PipelineConfig(partitions=topo.topic(names.VALID).partitions,
                                              sources=default_sources(topo))  # no model needed: start at once
    sources = raw_topic(app, *[topo.name(t) for t in topo.agents["ingest"].reads])
    idle = IdleSources(app, pub, {topo.name(t) for t in topo.agents["ingest"].reads}, lag)

    async def run(stream, agent: str, keep_valid: bool) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            items = []
            for ev in batch:
                m = ev.message
                # "Now" for timestamp checks is the record's broker timestamp, so a replay judges alike.
                items.append((m.value or b"", Source(pub.logical(m.topic), m.partition, m.offset,
                                                     int(m.timestamp * 1000)), m.topic))
            if keep_valid:
                outs = ingest_batch(cfg, items)
            else:
                outs = [ingest(cfg, raw, src, physical_topic=phys) for raw, src, phys in items]
            by_topic: dict = {}
            for out, (_, src, _) in zip((o for o in outs if o.label != "watermark"), items):
                by_topic.setdefault(src.topic, []).append(out)
            if not keep_valid:
                outs = [o for o in outs if o.topic != names.VALID]
            watch.enter(agent, "publish")
            await pub.publish(outs)
            if keep_valid:
                idle.read(batch)  # after the publish: a caught-up mark must never overtake this batch's events
            watch.idle(agent)
            idle.last_batch = now_ms() / 1000
            for logical, seen in by_topic.items():
                observe.ingested(seen, logical, EVENT_TYPES)
            metrics.LAST_EVENT_TIMESTAMP.labels(topic=agent).set(now_ms() / 1000)

    @app.agent(sources, name="ingest")
    async def ingest_agent(stream):
        await run(stream, "ingest", keep_valid=True)

    @app.timer(interval=IDLE_EVERY_S)
    async def announce_idle_sources() -> None:
        """Caught-up (or empty) source partitions must not hold the alignment of the others back forever."""
        t = now_ms() / 1000
        if t - idle.last_batch > IDLE_QUIET_S and t - idle.announced < IDLE_QUIET_S:
            return
        marks = await idle.caught_up(app.consumer.assignment())
        idle.announced = t
        if marks:
            await pub.publish(watermark_outs(marks, cfg.partitions))

    @app.agent(raw_topic(app, topo.name(names.MARKET)), name="market")
    async def market_agent(stream):
        """Validates market events for the group: bad ones are dead-lettered once (readers skip them)."""
        await run(stream, "market", keep_valid=False)


def add_score_agent(app: faust.App, s: StreamSettings, wc: WorkerContext, pub: Publisher, watch, accounts) -> None:
    topo = s.topology
    valid_name = topo.name(names.VALID)
    n = topo.topic(names.VALID).partitions

    @app.agent(raw_topic(app, valid_name), name="score")
    async def score(stream):
        # Iterate first, then wait for the context inside: an agent that awaits before it starts iterating its
        # stream was seen to stay idle after a rebalance.
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            watch.enter("score", "context")
            ctx = await wc.ready()
            watch.enter("score", "compute")
            res = account_batch(ctx, accounts.get, [Valid(ev.message.key, ev.message.value, ev.message.partition,
                                                          ev.message.offset) for ev in batch], topic=valid_name)
            watch.enter("score", "ahead")
            await write_ahead(pub, accounts, res.dirty, res.ahead, batch, n)  # the versions it decided with, first
            watch.enter("score", "publish")
            await pub.publish(res.outs)  # outputs before state: see stream.app
            watch.enter("score", "table")
            await write_table(pub, accounts, res.dirty, batch, n, skip=res.ahead)
            watch.idle("score")
            observe.scored(res.outs, now_ms())
            held = sum(int(accounts.get(portfolio_key(p)) or 0) for p in range(n))
            metrics.ACTIVE_ACCOUNTS.set(held)
            if res.dirty:
                metrics.STATE_BYTES.set(sum(len(v or b"") for v in res.dirty.values()) / len(res.dirty) * held)


def add_trainer_agent(app: faust.App, s: StreamSettings, wc: WorkerContext, pub: Publisher, watch) -> None:
    box: dict = {}

    @app.agent(raw_topic(app, s.topology.name(names.LABELS)), name="trainer")
    async def trainer(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            watch.enter("trainer", "context")
            ctx = await wc.ready()
            watch.enter("trainer", "learn")
            state = box.get("state") or box.setdefault("state", new_train_state(ctx))
            res = train_batch(state, [ev.message.value or b"" for ev in batch])
            if res.outs:
                watch.enter("trainer", "publish")
                await pub.publish(res.outs)
                log.info("trainer published model version %s", res.report["version"])
            observe.trained(res.report)
            watch.idle("trainer")
