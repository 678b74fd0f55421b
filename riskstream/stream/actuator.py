"""The actuator app: the control agent routes control messages, the actuator agent feeds decisions to the actuate
step (line state machine, per-partition breaker, sent-command dedupe) and persists what it returns."""

from __future__ import annotations

import logging

import faust

from riskstream.core import names
from riskstream.core.actuator import SentCommands
from riskstream.core.steps import Decision, PipelineConfig, actuate_batch, route_control
from riskstream.stream import metrics, observe
from riskstream.stream.app import BATCH_MAX, BATCH_WITHIN_S, StreamSettings, install_watch, make_app, now_ms, \
    raw_topic
from riskstream.stream.lag import install_lag_timer
from riskstream.stream.publish import Publisher, write_table
from riskstream.stream.readers import load_sent_tail
from riskstream.stream.worker import audit_log

log = logging.getLogger("riskstream.stream")


def build_actuator(s: StreamSettings) -> faust.App:
    topo = s.topology
    app = make_app(topo.topic_prefix + topo.agents["actuator"].group, s)
    agents = ("control", "actuator")
    watch = install_watch(app, agents, install_lag_timer(app, s.bootstrap, topo, agents, security=s.security))
    pub = Publisher(app, topo)
    n = topo.topic(names.DECISIONS).partitions
    cfg = s.pipeline_config or PipelineConfig(partitions=n)
    box: dict = {"settings": s, "breakers": {}}  # one audit file for both agents: one hash chain
    lines = app.Table("lines", default=None, key_type=bytes, value_type=bytes, partitions=n,
                      help="per-account credit-line state, and each partition's breaker")

    @app.agent(raw_topic(app, topo.name(names.CONTROL)), name="control")
    async def control(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            routed = [route_control(cfg, ev.message.value or b"", now_ms(),
                                    source=f"{ev.message.topic}/{ev.message.partition}@{ev.message.offset}")
                      for ev in batch]
            refused = [r for r in routed if r.refused]
            if refused:
                shared_audit(box).extend(a for r in refused for a in r.audit)  # before anything else happens
                for r in refused:
                    metrics.CONTROL_REFUSED.labels(reason=r.refused).inc()
                    log.warning("control message refused (%s): %s; see the audit log", r.refused,
                                r.audit[0]["payload"]["detail"])
            await pub.publish([o for r in routed for o in r.outs])
            watch.idle("control")

    add_actuator_agent(app, s, cfg, pub, watch, lines, box)
    return app


def shared_audit(box: dict):
    if "audit" not in box:
        box["audit"] = audit_log(box["settings"], "actuator")
    return box["audit"]


def add_actuator_agent(app: faust.App, s: StreamSettings, cfg: PipelineConfig, pub: Publisher, watch,
                       lines, box: dict) -> None:
    topo = s.topology
    sent = SentCommands()

    async def start() -> None:
        if "sent_loaded" not in box:
            shared_audit(box)
            box["sent_loaded"] = True
            loaded = await load_sent_tail(sent, s.bootstrap, topo.name(names.COMMANDS),
                                          topo.topic(names.COMMANDS).partitions, security=s.security)
            log.info("actuator: %d recent command ids loaded from the commands topic", loaded)

    @app.agent(raw_topic(app, topo.name(names.DECISIONS)), name="actuator")
    async def actuate(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            watch.enter("actuator", "context")
            await start()
            watch.enter("actuator", "compute")
            t = now_ms()
            res = actuate_batch(cfg, lines.get, [Decision(ev.message.key, ev.message.value, ev.message.partition,
                                                          ev.message.offset) for ev in batch], sent)
            watch.enter("actuator", "audit")
            box["audit"].extend(res.audit)  # before the commands leave: a crash may repeat an audit line, never lose one
            watch.enter("actuator", "publish")
            await pub.publish(res.outs)
            sent.update(res.sent_ids)
            watch.enter("actuator", "table")
            await write_table(pub, lines, res.dirty, batch, cfg.partitions)
            watch.idle("actuator")
            stamps = [ev.message.timestamp for ev in batch]
            observe.actuated(res, box["breakers"], [max(0.0, t / 1000 - min(stamps))] * len(res.outs))
            metrics.LAST_EVENT_TIMESTAMP.labels(topic="actuator").set(t / 1000)
