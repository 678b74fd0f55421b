"""Global, event-time market history: ``(event_time, value)`` points per ``"indicator|segment"`` key.

Keys (the mapping from a market event to its series):

* ``sector_index`` events -> ``sector_index|<segment>`` (e.g. ``sector_index|energy``); an account of segment ``s``
  reads ``sector_index|s``;
* ``rate_change`` events -> ``rate_change|<segment>``; an account reads ``rate_change|<its segment>`` if that series
  exists, else the benchmark ``rate_change|all``;
* ``macro_indicator`` events -> ``macro_indicator|<indicator name>`` (e.g. ``macro_indicator|unemployment``); the
  name is the envelope ``indicator`` unless that is the type name itself, in which case it is the ``segment``.

A series keeps the points within ``retention`` of its newest point plus the newest point before that (so an as-of
query at the edge still has a value); it always keeps at least the last point. Points are kept sorted by event time,
so the history is the same whatever the arrival order, and :func:`value_as_of` answers "the last value with
``time <= t``" in event time, never processing time.

>>> h = new_history()
>>> for t, v in [(2_000, 90.0), (1_000, 100.0)]:   # out of order on purpose
...     h = apply_market(h, {"type": "sector_index", "family": "market", "entity": "sector_index|energy",
...                          "event_time": t, "payload": {"value": v}})
>>> value_as_of(h, "sector_index|energy", 1_500), value_as_of(h, "sector_index|energy", 999)
(100.0, None)
>>> decode_market(encode_market(h)) == h
True
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import orjson

from riskstream.core.durations import DAY
from riskstream.core.windows.spec import FeatureConfig, default_config

__all__ = [
    "MARKET_LOOKBACK",
    "MarketHistory",
    "UNEMPLOYMENT_KEY",
    "apply_market",
    "decode_market",
    "encode_market",
    "market_key",
    "new_history",
    "rate_key",
    "sector_key",
    "value_as_of",
]

INDEX_CHANGE_HORIZON = 7 * DAY
RATE_CHANGE_HORIZON = 30 * DAY
MARKET_LOOKBACK = max(INDEX_CHANGE_HORIZON, RATE_CHANGE_HORIZON)
"""Longest look-back a market feature needs (market_rate_change_30d_bp)."""

MARKET_TYPES = ("sector_index", "rate_change", "macro_indicator")
UNEMPLOYMENT_KEY = "macro_indicator|unemployment"


@dataclass
class MarketHistory:
    """Sorted ``(event_time, value)`` points per key, bounded by ``retention`` ms behind each key's newest point."""

    retention: int
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def new_history(*, config: FeatureConfig | None = None) -> MarketHistory:
    """Empty history retaining the longest market look-back plus the allowed lateness."""
    cfg = config or default_config()
    return MarketHistory(retention=MARKET_LOOKBACK + cfg.allowed_lateness)


def market_key(event: dict) -> str | None:
    """Series key of a parsed market event, or None if it is not a market event."""
    etype = event.get("type")
    if etype not in MARKET_TYPES:
        return None
    first, _, second = str(event.get("entity", "")).partition("|")
    if etype == "macro_indicator":
        name = second if first in MARKET_TYPES or not first else first
    else:
        name = second or first
    return f"{etype}|{name or 'all'}"


def sector_key(segment: str) -> str:
    """The sector-index series an account of ``segment`` reads."""
    return f"sector_index|{segment}"


def rate_key(history: MarketHistory, segment: str) -> str:
    """The rate series an account of ``segment`` reads: its own if published, else ``rate_change|all``."""
    own = f"rate_change|{segment}"
    return own if own in history.series else "rate_change|all"


def apply_market(history: MarketHistory, event: dict) -> MarketHistory:
    """Insert one market event's value at its event time (in place) and prune old points; returns the history."""
    key = market_key(event)
    value = (event.get("payload") or {}).get("value")
    if key is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return history
    point = (int(event["event_time"]), float(value))
    points = history.series.setdefault(key, [])
    i = bisect.bisect_left(points, point)
    if i < len(points) and points[i] == point:
        return history  # a re-sent event
    points.insert(i, point)
    cutoff = points[-1][0] - history.retention
    if points[0][0] < cutoff:
        first_kept = bisect.bisect_left(points, (cutoff, float("-inf")))
        # keep the newest point before the cutoff: as-of queries at the cutoff still need it
        del points[:max(first_kept - 1, 0)]
    return history


def value_as_of(history: MarketHistory, key: str, t: int) -> float | None:
    """Value of the last point of ``key`` with event time <= ``t`` (ties: the larger value), or None."""
    points = history.series.get(key)
    if not points:
        return None
    i = bisect.bisect_right(points, (t, float("inf")))
    return points[i - 1][1] if i else None


def max_between(history: MarketHistory, key: str, start: int, end: int) -> float | None:
    """Largest value in effect at any time in ``[start, end]``: the as-of value at ``start`` and later points."""
    points = history.series.get(key)
    if not points:
        return None
    best = value_as_of(history, key, start)
    lo = bisect.bisect_right(points, (start, float("inf")))
    hi = bisect.bisect_right(points, (end, float("inf")))
    for _, v in points[lo:hi]:
        if best is None or v > best:
            best = v
    return best


def encode_market(history: MarketHistory) -> bytes:
    """JSON bytes for a table value: ``{"retention": ms, "series": {key: [[t, v], ...]}}``."""
    return orjson.dumps({"retention": history.retention,
                         "series": {k: [list(p) for p in v] for k, v in sorted(history.series.items())}})


def decode_market(data: bytes) -> MarketHistory:
    """Inverse of :func:`encode_market`."""
    raw = orjson.loads(data)
    return MarketHistory(retention=int(raw["retention"]),
                         series={k: [(int(t), float(v)) for t, v in pts] for k, pts in raw["series"].items()})
