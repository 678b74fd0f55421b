"""Offline replay: drive the same pure pipeline steps as the live Faust agents, from a list of upstream records.

Live and replay share `riskstream.core.steps.pipeline.Pipeline`, so for the same per-account order of events they produce the
same decisions and commands (same ids). Tests use this as the reference for what a live run must publish.

>>> from riskstream.ops.simulator import Simulator, SimConfig
>>> import orjson
>>> sim = Simulator(SimConfig(accounts=5, facilities=0, seed=3))
>>> result = replay(list(sim.wire(200)), now_ms=sim.t)
>>> result.consumed == len(result.valid) + len(result.market) + len(result.dead)
True
"""

from __future__ import annotations

import dataclasses
import zlib

import orjson
from typing import Iterable

from riskstream.core.steps.pipeline import FAMILY_OF_TOPIC, T_COMMANDS, T_DEAD, T_DECISIONS, T_VALID, Out, Pipeline, PipelineConfig


@dataclasses.dataclass
class ReplayResult:
    consumed: int = 0
    valid: list[Out] = dataclasses.field(default_factory=list)
    market: list[Out] = dataclasses.field(default_factory=list)
    dead: list[Out] = dataclasses.field(default_factory=list)
    decisions: list[Out] = dataclasses.field(default_factory=list)
    commands: list[Out] = dataclasses.field(default_factory=list)
    other: list[Out] = dataclasses.field(default_factory=list)
    accounts: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    lines: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    audit: list[dict] = dataclasses.field(default_factory=list)

    def sort(self, out: Out) -> None:
        {T_VALID: self.valid, T_DEAD: self.dead, T_DECISIONS: self.decisions,
         T_COMMANDS: self.commands}.get(out.topic, self.other).append(out)


def replay(records: Iterable[tuple[str, bytes, bytes]], *, now_ms: int,
           config: PipelineConfig | None = None, pipeline: Pipeline | None = None) -> ReplayResult:
    """Run ingest → account → actuator over `records` ((topic, key, value) in upstream order).

    `now_ms` is the wall clock the ingest checks (future/stale timestamps) compare against."""
    p = pipeline or Pipeline(config or PipelineConfig())
    res = ReplayResult()
    offsets: dict[tuple[str, int], int] = {}

    def next_offset(topic: str, partition: int) -> int:
        o = offsets.get((topic, partition), -1) + 1
        offsets[(topic, partition)] = o
        return o

    for topic, key, value in records:
        res.consumed += 1
        part = partition_of(key)
        out = p.ingest(value, topic=topic, family=FAMILY_OF_TOPIC.get(topic), partition=part,
                       offset=next_offset(topic, part), now_ms=now_ms)
        if out.topic == T_VALID and FAMILY_OF_TOPIC.get(topic) == "market":
            p.on_market(orjson.loads(out.value))  # global context, as every live worker does
            res.market.append(out)
            continue
        res.sort(out)
        if out.topic != T_VALID:
            continue
        vpart = partition_of(out.key)
        p.active_accounts = len(res.accounts)
        state, outs = p.account(res.accounts.get(out.key), out.value, partition=vpart,
                                offset=next_offset(T_VALID, vpart))
        if state is not None:
            res.accounts[out.key] = state
        for o in outs:
            res.sort(o)
            if o.topic == T_DECISIONS:
                line, cmds, audit = p.actuate(res.lines.get(o.key), o.value)
                res.audit.extend(audit)
                if line is not None:
                    res.lines[o.key] = line
                for c in cmds:
                    res.sort(c)
    return res


def partition_of(key: bytes, partitions: int = 4) -> int:
    """A stand-in partitioner for replay: offsets only need to grow per account, not to match Kafka's."""
    return zlib.crc32(key) % partitions
