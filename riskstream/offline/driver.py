"""The offline driver: feeds upstream records through the same pure steps as the Faust shell, in publication order.

It keeps in dicts what the shell keeps in changelog-backed tables (accounts, lines), partitions every key the way
Kafka's default partitioner does, and runs the train step inline: a model version the train step publishes takes
effect for the next record, as it does live once the worker has read the snapshot. To reproduce a live run
exactly, give it the versions the live workers recorded (`follow`): each partition then switches model and policy
at the same valid offset as it did live.

>>> from riskstream.ops.simulator import Simulator, SimConfig
>>> sim = Simulator(SimConfig(accounts=5, facilities=0, seed=3))
>>> d = OfflineDriver(learn=False)
>>> for topic, key, value in sim.wire(300):
...     d.feed(topic, value, timestamp_ms=sim.t)
>>> d.counts["consumed"] == 300, d.counts["valid"] + d.counts["market"] + d.counts["dead_ingest"] == 300
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Callable

import orjson

from riskstream.core.actuator import SentCommands
from riskstream.core.names import CONTROL, DEAD, DECISIONS, LABELS, MARKET, VALID
from riskstream.core.partitioner import partition_for
from riskstream.core.steps import (Context, Decision, Out, PipelineConfig, Source, Valid, account_batch,
                                   actuate_batch, breaker_key, ingest, new_train_state, route_control, tick_record,
                                   train_batch)


@dataclasses.dataclass
class Followed:
    """Recorded versions to follow: per partition, (from valid offset, model version, policy key) in order."""
    schedule: dict = dataclasses.field(default_factory=lambda: defaultdict(list))
    models: dict = dataclasses.field(default_factory=dict)      # "pd@N" -> scorer
    policies: dict = dataclasses.field(default_factory=dict)    # (name, version) -> Policy

    def add(self, record: dict) -> None:
        """One record of the versions topic, in the order it was published (a later one overrides from its offset)."""
        rows = self.schedule[record["partition"]]
        rows[:] = [r for r in rows if r[0] < record["offset"]]
        rows.append((record["offset"], record["model_version"], (record["policy"], record["policy_version"])))

    def at(self, partition: int, offset: int):
        found = None
        for row in self.schedule.get(partition, ()):
            if row[0] > offset:
                break
            found = row
        return found


class OfflineDriver:
    def __init__(self, ctx: Context | None = None, *, config: PipelineConfig | None = None, learn: bool = True,
                 follow: Followed | None = None, on_output: Callable[[Out], None] | None = None,
                 actuate: bool = True, route: bool = True, keep_audit: bool = True, actuate_shadow: bool = True):
        self.ctx = ctx or Context(config or PipelineConfig())
        self.config = self.ctx.config
        self.accounts: dict[bytes, bytes] = {}
        self.lines: dict[bytes, bytes] = {}
        self.sent = SentCommands()
        self.train = new_train_state(self.ctx) if learn and follow is None else None
        self.follow = follow
        self.offsets: Counter = Counter()
        self.counts: Counter = Counter()
        self.audit: list[dict] = []
        self.published_versions: list[int] = []
        self.on_output = on_output or (lambda out: None)
        self.actuate = actuate  # False: decisions are only returned (a caller feeds the actuator another order)
        self.route = route      # False: control messages the actuator emits are not routed back (a caller does)
        self.keep_audit = keep_audit  # False: a long run that never reads `audit` does not hold one entry per input
        # False: challengers' (shadow) decisions are returned but not actuated. Live, the actuator only audits them
        # and remembers their ids on the line; a caller that actuates them itself (the backtest's sweep copies)
        # skips that, and the champion's lines then see only what a run without shadows would give them.
        self.actuate_shadow = actuate_shadow

    def _next_offset(self, topic: str, partition: int) -> int:
        o = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = o + 1
        return o

    def feed(self, topic: str, raw: bytes, *, timestamp_ms: int) -> None:
        """One upstream record (logical topic, bytes as published, broker timestamp)."""
        self.counts["consumed"] += 1
        part = 0  # upstream offsets only name a dead letter's source; one partition per topic is enough
        out = ingest(self.config, raw, Source(topic, part, self._next_offset(topic, part), timestamp_ms))
        if out.topic == DEAD:
            self.counts["dead_ingest"] += 1
            self.on_output(out)
            return
        if topic == MARKET:
            self.counts["market"] += 1
            self.ctx.on_market(orjson.loads(out.value))  # global context, as every live worker keeps it
            self.on_output(out._replace(topic=MARKET))
            return
        self.counts["valid"] += 1
        self.on_output(out)
        p = partition_for(out.key, self.config.partitions)
        self.feed_valid(Valid(out.key, out.value, p, self._next_offset(VALID, p)))

    def feed_valid(self, rec: Valid) -> None:
        """One record of the valid topic (the live order, when replaying what a worker read)."""
        if self.follow is not None:
            self._follow(rec.partition, rec.offset)
        res = account_batch(self.ctx, self.accounts.get, [rec])
        for k, v in res.dirty.items():
            if v is None:
                self.accounts.pop(k, None)
            else:
                self.accounts[k] = v
        labels = []
        for o in res.outs:
            self.on_output(o)
            if o.topic == DECISIONS and self.actuate and (self.actuate_shadow or not o.label.startswith("challenger/")):
                p = partition_for(o.key, self.config.partitions)
                self._actuate(Decision(o.key, o.value, p, self._next_offset(DECISIONS, p)))
            elif o.topic == LABELS:
                labels.append(o.value)
            elif o.topic == DEAD:
                self.counts["dead_state"] += 1
        if labels and self.train is not None:
            self._learn(labels)

    def feed_decision(self, rec: Decision) -> None:
        """A record for the decisions topic from outside the account step (an override or a breaker reset)."""
        self._actuate(rec)

    def flush(self) -> int:
        """End of input: let one quiet window pass on every decisions partition, as event time would live, so the
        CLOSE still waiting in the breakers leave (unless a breaker tripped). Returns the commands sent."""
        before = self.counts["commands"]
        for p in range(self.config.partitions):
            blob = self.lines.get(breaker_key(p))
            if blob:
                b = orjson.loads(blob)
                if b.get("waiting") and b.get("clock") is not None:
                    self._actuate(tick_record(p, b["clock"] + b.get("hold_ms", 0)))
        return self.counts["commands"] - before

    def _actuate(self, rec: Decision) -> None:
        res = actuate_batch(self.config, self.lines.get, [rec], self.sent)
        self.lines.update(res.dirty)
        self.sent.update(res.sent_ids)
        if self.keep_audit:
            self.audit.extend(res.audit)
        for o in res.outs:
            self.on_output(o)
            if o.topic == CONTROL:  # a breaker trip for every partition, as the control agent routes it live
                if self.route:
                    routed = route_control(self.config, o.value)
                    if self.keep_audit:
                        self.audit.extend(routed.audit)
                    for r in routed.outs:
                        self._actuate(Decision(r.key, r.value, r.partition, self._next_offset(DECISIONS, r.partition)))
            else:
                self.counts["commands"] += 1

    def _learn(self, labels: list[bytes]) -> None:
        from riskstream.core.models.snapshot import load_snapshot

        res = train_batch(self.train, labels, quality=False)  # nothing offline reads the AUC
        for o in res.outs:
            self.on_output(o)
            _, model = load_snapshot(o.value, key=self.train.trainer.key)  # exactly what a worker loads
            if self.ctx.offer_model(model):
                self.published_versions.append(model.version)

    def _follow(self, partition: int, offset: int) -> None:
        row = self.follow.at(partition, offset)
        if row is None:
            return
        _, model_version, policy_key = row
        if model_version != self.ctx.model_version and model_version in self.follow.models:
            self.ctx.model = self.follow.models[model_version]
        if policy_key != (self.ctx.policies.policy.name, self.ctx.policies.policy.version) \
                and policy_key in self.follow.policies:
            self.ctx.policies.policy = self.follow.policies[policy_key]
