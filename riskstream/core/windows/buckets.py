"""Bucket maths: an event-time window kept as sparse per-account buckets, with exact aggregates.

The window of horizon ``H`` "as of" time ``t`` covers the buckets whose index is in ``(b(t) - H/g, b(t)]`` with
``b(x) = floor(x / g)`` for the spec's granularity ``g``: results are exact at bucket granularity. Only buckets that
received data are stored, and :func:`expire` drops those no query within the allowed lateness can reach, so state
stays bounded. Values are fixed-point integers (``VALUE_SCALE`` units per 1.0), so sums are exact and the same in
any arrival order.

>>> from riskstream.core.windows.spec import WindowSpec
>>> spec = WindowSpec("dd", ("drawdown",), "amount", None, 300_000, (3_600_000,), ("count", "sum", "max"))
>>> buckets = {}
>>> add_event(buckets, spec, 0, {"amount": 10.0})
>>> add_event(buckets, spec, 3_600_000 - 1, {"amount": 5.5})
>>> aggregate(buckets, spec, 3_600_000, as_of=3_600_000 - 1)
{'count': 2, 'sum': 15.5, 'max': 10.0}
>>> aggregate(buckets, spec, 3_600_000, as_of=3_600_000)   # bucket 0 has left the 1h window
{'count': 1, 'sum': 5.5, 'max': 5.5}
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riskstream.core.windows.spec import WindowSpec

__all__ = ["VALUE_SCALE", "add_event", "aggregate", "distinct_key", "expire", "to_fixed"]

VALUE_SCALE = 10_000
"""Fixed-point units per 1.0: window values are stored as ``round(value * VALUE_SCALE)`` integers."""

# Bucket slots: [count, sum, min, max, last_time, last_value, distinct_keys]
COUNT, SUM, MIN, MAX, LAST_T, LAST_V, KEYS = range(7)

# Each aggregate of an empty window.
_EMPTY = {"count": 0, "sum": 0.0, "min": None, "max": None, "mean": None, "distinct": 0, "last": None,
          "since_last": None}


def distinct_key(value: Any) -> int:
    """Stable 64-bit key of a (hashed) payload value, used for distinct counts."""
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=8).digest(), "big")


def to_fixed(value: Any) -> int | None:
    """A payload number as fixed-point integer, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return round(value * VALUE_SCALE)


def add_event(buckets: dict[int, list], spec: WindowSpec, event_time: int, payload: dict) -> None:
    """Add one accepted event to a window's sparse buckets (in place).

    An event whose value field is missing or not a number is skipped by value windows.
    """
    value = 0
    if spec.value is not None:
        value = to_fixed(payload.get(spec.value))
        if value is None:
            return
    idx = event_time // spec.granularity
    b = buckets.get(idx)
    if b is None:
        # slots the spec does not keep stay at fixed values so that encode/decode round-trips exactly
        b = buckets[idx] = [0, 0, 0, 0, idx * spec.granularity, 0, set() if spec.keeps_keys else None]
        if spec.keeps_min:
            b[MIN] = value
        if spec.keeps_max:
            b[MAX] = value
        if spec.keeps_last:
            b[LAST_T], b[LAST_V] = event_time, value
    else:
        if spec.keeps_min and value < b[MIN]:
            b[MIN] = value
        if spec.keeps_max and value > b[MAX]:
            b[MAX] = value
        # ties on time keep the larger value, so the result does not depend on arrival order
        if spec.keeps_last and (event_time > b[LAST_T] or (event_time == b[LAST_T] and value > b[LAST_V])):
            b[LAST_T], b[LAST_V] = event_time, value
    b[COUNT] += 1
    if spec.keeps_sum:
        b[SUM] += value
    if spec.keeps_keys:
        key = payload.get(spec.distinct)
        if key is not None:
            b[KEYS].add(distinct_key(key))


def aggregate(buckets: dict[int, list], spec: WindowSpec, horizon: int, as_of: int) -> dict[str, Any]:
    """All of the spec's aggregates over the window of ``horizon`` ms as of ``as_of`` (epoch ms).

    count/distinct are ints, sum/min/max/mean/last floats, since_last is ms; min/max/mean/last/since_last are None
    for an empty window.
    """
    if not buckets:
        return {agg: _EMPTY[agg] for agg in spec.aggregates}
    g = spec.granularity
    hi = as_of // g
    lo = hi - horizon // g
    sel = [b for idx, b in buckets.items() if lo < idx <= hi]
    out: dict[str, Any] = {}
    total = sum([b[SUM] for b in sel]) if spec.keeps_sum else 0
    count = sum([b[COUNT] for b in sel])
    last = max([(b[LAST_T], b[LAST_V]) for b in sel]) if spec.keeps_last and sel else None
    for agg in spec.aggregates:
        if agg == "count":
            out["count"] = count
        elif agg == "sum":
            out["sum"] = total / VALUE_SCALE
        elif agg == "min":
            out["min"] = min([b[MIN] for b in sel]) / VALUE_SCALE if sel else None
        elif agg == "max":
            out["max"] = max([b[MAX] for b in sel]) / VALUE_SCALE if sel else None
        elif agg == "mean":
            out["mean"] = total / count / VALUE_SCALE if count else None
        elif agg == "distinct":
            out["distinct"] = len(set().union(*[b[KEYS] for b in sel]))
        elif agg == "last":
            out["last"] = None if last is None else last[1] / VALUE_SCALE
        elif agg == "since_last":
            out["since_last"] = None if last is None else as_of - last[0]
    return out


def expire(buckets: dict[int, list], spec: WindowSpec, watermark: int, lateness: int) -> None:
    """Drop buckets no query as of ``>= watermark - lateness`` can reach (in place)."""
    g = spec.granularity
    keep_from = (watermark - lateness) // g - max(spec.horizons) // g + 1  # oldest index such a query can read
    if not buckets or min(buckets) >= keep_from:
        return
    stale = [idx for idx in buckets if idx < keep_from]
    for idx in stale:
        del buckets[idx]
