"""Ingest step: raw upstream bytes → a validated, PII-free event re-keyed by entity, or a dead letter.

>>> from riskstream.core.contracts import encode_event, make_event
>>> raw = encode_event(make_event("account_opened", "A1", {"product": "credit_line", "segment": "retail",
...                                "limit": 1000, "currency": "EUR"}, event_time=1_000))
>>> out = ingest(PipelineConfig(), raw, Source("riskstream.events.behaviour", 0, 0, 2_000))
>>> out.topic, out.key, out.label
('riskstream.events.valid', b'A1', 'account_opened')
>>> ingest(PipelineConfig(), b"{", Source("riskstream.events.behaviour", 0, 1, 2_000)).label
'undecodable'
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from riskstream.core.contracts import Rejected, dead_letter, parse_event
from riskstream.core.names import DEAD, FAMILY_OF_TOPIC, VALID
from riskstream.core.steps.align import SRC, batch_marks, watermark_outs
from riskstream.core.steps.context import PipelineConfig
from riskstream.core.steps.records import Out


class Source(NamedTuple):
    """Where a record came from: logical topic, partition, offset, and the broker timestamp (ms) ingest judges
    future and stale event times against, so a replay judges alike."""
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


def ingest(config: PipelineConfig, raw: bytes, source: Source, physical_topic: str | None = None) -> Out:
    """Validate one upstream record; `physical_topic` (with any prefix) is what its dead letter names."""
    parsed = parse_event(raw, now_ms=source.timestamp_ms, pseudonymizer=config.pseudonymizer, limits=config.limits,
                         family=FAMILY_OF_TOPIC.get(source.topic))
    if isinstance(parsed, Rejected):
        return dead(raw, physical_topic or source.topic, source.partition, source.offset, parsed, source.timestamp_ms)
    # Stamped with where and when it was published: the account step restores publication order (steps.align).
    parsed[SRC] = [f"{source.topic}/{source.partition}", source.offset, source.timestamp_ms]
    return Out(VALID, parsed["entity"].encode(), orjson.dumps(parsed), parsed["type"], at_ms=source.timestamp_ms)


def ingest_batch(config: PipelineConfig, items, *, idle: dict[str, int] | None = None) -> list[Out]:
    """A batch of upstream records `(raw, Source, physical_topic)` → their outputs, framed by watermark records to
    every valid partition: before them "each source is read up to its first timestamp here", after them "up to its
    last" (raised to `idle[source]` for a source the shell found caught up). See steps.align and docs/time.md."""
    items = list(items)
    first: dict[str, int] = {}
    for _, src, _ in items:
        s = f"{src.topic}/{src.partition}"
        first[s] = min(first.get(s, src.timestamp_ms), src.timestamp_ms)
    outs = watermark_outs(first, config.partitions)
    outs += [ingest(config, raw, src, physical) for raw, src, physical in items]
    last = batch_marks((f"{src.topic}/{src.partition}", src.timestamp_ms) for _, src, _ in items)
    for s, t in (idle or {}).items():
        last[s] = max(last.get(s, t), t)
    return outs + watermark_outs(last, config.partitions)


def dead(raw: bytes, topic: str, partition: int, offset: int, rejected: Rejected, now_ms: int) -> Out:
    value = dead_letter(raw, topic=topic, partition=partition, offset=offset, rejected=rejected, at_ms=now_ms)
    return Out(DEAD, rejected.reason.encode(), value, rejected.reason)
