"""Building and encoding wire-format (upstream) events, for the simulator, tests and producer examples.

>>> ev = make_event("drawdown", "A1", {"amount": 120.0}, event_time=1_700_000_000_000)
>>> ev["account_id"], ev["producer_time"], len(ev["event_id"])
('A1', 1700000000000, 32)
>>> make_event("rate_change", "base_rate|all", {"value": 4.25}, event_time=0)["indicator"]
'base_rate'
>>> encode_event(ev)[:12]
b'{"event_id":'

"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from riskstream.core.contracts.spec import FAMILIES, SPEC

__all__ = ["encode_event", "make_event"]


def encode_event(event: dict) -> bytes:
    """Serialize an event (wire or parsed form) to compact JSON bytes."""
    return orjson.dumps(event)


def make_event(
    type: str,  # noqa: A002 - mirrors the wire field name
    entity: str,
    payload: dict[str, Any],
    *,
    event_time: int,
    event_id: str | None = None,
    schema_version: int = 1,
    source: str = "sim",
    producer_time: int | None = None,
) -> dict:
    """A wire-format event of `type` for `entity` (account id, facility id or "indicator|segment").

    The payload is taken as given (upstream form: PII fields raw). Without `event_id`, a deterministic id is
    derived from the content, so replays of a simulation produce identical ids (and identical content gets
    de-duplicated, as it should). `producer_time` defaults to `event_time`. Raises ValueError for an unknown type
    or an entity that does not fit the family; it does not validate the payload (use `parse_event` for that).
    """
    spec = SPEC.get(type)
    if spec is None:
        raise ValueError(f"unknown event type {type!r}; see docs/events.md")
    fields = FAMILIES[spec.family].entity_fields
    event: dict[str, Any] = {"event_id": "", "type": type, "schema_version": schema_version}
    if len(fields) == 1:
        event[fields[0]] = entity
    else:
        indicator, sep, segment = entity.partition("|")
        if not sep:
            raise ValueError(f"a {spec.family} event's entity must be 'indicator|segment'")
        event["indicator"], event["segment"] = indicator, segment
    event["event_time"] = event_time
    event["producer_time"] = event_time if producer_time is None else producer_time
    event["source"] = source
    event["payload"] = payload
    if event_id is None:
        digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16)
        event_id = digest.hexdigest()
    event["event_id"] = event_id
    return event
