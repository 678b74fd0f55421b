"""Event-time windows declared as data (``features.yaml``), kept as sparse per-account buckets.

A window spec names the event types that feed it, the payload field whose value it aggregates (or none: count only),
a bucket granularity ``g`` and horizons ``H`` (multiples of ``g``). The window of horizon ``H`` "as of" time ``t``
covers the buckets whose index is in ``(b(t) - H/g, b(t)]`` with ``b(x) = floor(x / g)``: results are exact at bucket
granularity. Only buckets that received data are stored, and buckets expire once no query within the allowed lateness
can reach them, so state stays bounded.

Values are kept as fixed-point integers (``VALUE_SCALE`` units per 1.0) so that sums are exact and the state is the
same whatever the arrival order of the events.

>>> cfg = load_config_text('''
... version: 1
... windows:
...   - {name: dd, events: [drawdown], value: amount, granularity: 5m, horizons: [1h], aggregates: [count, sum, max]}
... ''', source="example.yaml")
>>> spec = cfg.windows[0]
>>> buckets = {}
>>> add_event(buckets, spec, 0, {"amount": 10.0})
>>> add_event(buckets, spec, 3_600_000 - 1, {"amount": 5.5})
>>> aggregate(buckets, spec, 3_600_000, as_of=3_600_000 - 1)
{'count': 2, 'sum': 15.5, 'max': 10.0}
>>> aggregate(buckets, spec, 3_600_000, as_of=3_600_000)   # bucket 0 has left the 1h window
{'count': 1, 'sum': 5.5, 'max': 5.5}
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from riskstream.data import FEATURES

__all__ = [
    "AGGREGATES",
    "ConfigError",
    "FeatureConfig",
    "VALUE_SCALE",
    "WindowSpec",
    "add_event",
    "aggregate",
    "default_config",
    "distinct_key",
    "expire",
    "load_config",
    "load_config_text",
    "parse_duration",
]

VALUE_SCALE = 10_000
"""Fixed-point units per 1.0: window values are stored as ``round(value * VALUE_SCALE)`` integers."""

AGGREGATES = ("count", "sum", "min", "max", "mean", "distinct", "last", "since_last")

DEFAULT_PATH = FEATURES

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {"ms": 1, "s": 1000, "m": MINUTE, "h": HOUR, "d": DAY}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")

# Windows, horizons and aggregates that riskstream.core.account.features reads: a config without them is refused.
FEATURE_WINDOWS: tuple[tuple[str, str, str], ...] = (
    ("drawdown_short", "1h", "sum"),
    ("drawdown_short", "1h", "count"),
    ("drawdown_long", "30d", "sum"),
    ("login_failed", "24h", "count"),
    ("devices", "7d", "distinct"),
    ("payments", "90d", "sum"),
    ("amount_due", "90d", "sum"),
    ("missed_payments", "90d", "count"),
    ("partial_payments", "90d", "count"),
    ("bureau_inquiries", "30d", "count"),
    ("external_delinquencies", "90d", "count"),
    ("new_debt", "90d", "sum"),
)

# Bucket slots: [count, sum, min, max, last_time, last_value, distinct_keys]
COUNT, SUM, MIN, MAX, LAST_T, LAST_V, KEYS = range(7)


class ConfigError(ValueError):
    """Invalid operator data in features.yaml; the message names the file, the field and the fix."""

    def __init__(self, source: str, field_path: str, problem: str, fix: str):
        self.source, self.field, self.problem, self.fix = source, field_path, problem, fix
        super().__init__(f"{source}: {field_path}: {problem}; fix: {fix}")


def parse_duration(value: Any, *, source: str = "<value>", field_path: str = "duration") -> int:
    """Parse ``"5m"``, ``"24h"``, ``"7d"`` (or an int of milliseconds) into milliseconds.

    >>> parse_duration("90d") // DAY
    90
    """
    if isinstance(value, bool):
        raise ConfigError(source, field_path, f"{value!r} is not a duration", 'write e.g. "5m", "1h", "7d"')
    if isinstance(value, int):
        ms = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(source, field_path, f"{value!r} is not a duration",
                              'write <integer><unit> with unit ms, s, m, h or d, e.g. "5m", "1h", "7d"')
        ms = int(match.group(1)) * _UNITS[match.group(2)]
    if ms <= 0:
        raise ConfigError(source, field_path, f"{value!r} is not positive", "use a duration > 0")
    return ms


def format_duration(ms: int) -> str:
    """Shortest exact label for a duration: ``format_duration(86_400_000) == "24h"`` is avoided in favour of "1d"."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class WindowSpec:
    """One window declaration: which events feed it, what it aggregates, bucket size and horizons (ms)."""

    name: str
    events: tuple[str, ...]
    value: str | None
    distinct: str | None
    granularity: int
    horizons: tuple[int, ...]
    aggregates: tuple[str, ...]
    labels: tuple[str, ...] = ()  # the horizons as written in the YAML ("1h", "24h"), same order

    @functools.cached_property
    def keeps_sum(self) -> bool:
        return "sum" in self.aggregates or "mean" in self.aggregates

    @functools.cached_property
    def keeps_min(self) -> bool:
        return "min" in self.aggregates

    @functools.cached_property
    def keeps_max(self) -> bool:
        return "max" in self.aggregates

    @functools.cached_property
    def keeps_last(self) -> bool:
        return "last" in self.aggregates or "since_last" in self.aggregates

    @functools.cached_property
    def keeps_keys(self) -> bool:
        return "distinct" in self.aggregates

    @functools.cached_property
    def stats_mask(self) -> int:
        """Bit mask of the stored bucket slots; part of the encoded state so a changed spec is detected."""
        return (self.keeps_sum | self.keeps_min << 1 | self.keeps_max << 2 | self.keeps_last << 3
                | self.keeps_keys << 4)

    @functools.cached_property
    def empty_result(self) -> dict[str, Any]:
        """Aggregates of an empty window (bucket 0 lies outside the window (-2, -1])."""
        return aggregate({0: [0, 0, 0, 0, 0, 0, set()]}, self, 1, -1)

    def horizon(self, label: str) -> int:
        """Horizon in ms for a label such as ``"24h"`` (any equivalent spelling is accepted)."""
        return parse_duration(label)


@dataclass(frozen=True)
class FeatureConfig:
    """Validated contents of features.yaml."""

    source: str
    allowed_lateness: int
    windows: tuple[WindowSpec, ...]
    velocity_baseline_floor: float = 100.0
    new_device_lookback: int = DAY
    shock_drop: float = 0.20
    by_type: dict[str, tuple[WindowSpec, ...]] = field(default_factory=dict, compare=False, repr=False)
    by_name: dict[str, WindowSpec] = field(default_factory=dict, compare=False, repr=False)


def _require_mapping(obj: Any, source: str, field_path: str) -> dict:
    if not isinstance(obj, dict):
        raise ConfigError(source, field_path, f"expected a mapping, got {type(obj).__name__}",
                          "write key: value pairs")
    return obj


def _check_keys(obj: dict, allowed: set[str], source: str, field_path: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ConfigError(source, f"{field_path}.{unknown[0]}", "unknown key",
                          f"remove it or use one of: {', '.join(sorted(allowed))}")


def _name(value: Any, source: str, field_path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ConfigError(source, field_path, f"{value!r} is not a valid name",
                          "use lower-case letters, digits and underscores, starting with a letter")
    return value


def _number(value: Any, source: str, field_path: str, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(source, field_path, f"{value!r} is not a number", "write a plain number, e.g. 0.2")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(source, field_path, f"{value!r} is out of range", f"use a number {rng}")
    return float(value)


def _parse_window(raw: Any, i: int, source: str) -> WindowSpec:
    where = f"windows[{i}]"
    raw = _require_mapping(raw, source, where)
    _check_keys(raw, {"name", "events", "value", "distinct", "granularity", "horizons", "aggregates"}, source, where)
    for key in ("name", "events", "granularity", "horizons", "aggregates"):
        if key not in raw:
            raise ConfigError(source, f"{where}.{key}", "missing", f"add `{key}:` to the window")
    name = _name(raw["name"], source, f"{where}.name")
    where = f"windows[{i}] ({name})"
    events = raw["events"]
    if not isinstance(events, list) or not events:
        raise ConfigError(source, f"{where}.events", "must be a non-empty list", "list event types, e.g. [drawdown]")
    events = tuple(_name(e, source, f"{where}.events") for e in events)
    if len(set(events)) != len(events):
        raise ConfigError(source, f"{where}.events", "lists an event type twice", "remove the duplicate")
    value = raw.get("value")
    if value is not None:
        value = _name(value, source, f"{where}.value")
    distinct = raw.get("distinct")
    if distinct is not None:
        distinct = _name(distinct, source, f"{where}.distinct")
    granularity = parse_duration(raw["granularity"], source=source, field_path=f"{where}.granularity")
    horizons_raw = raw["horizons"]
    if not isinstance(horizons_raw, list) or not horizons_raw:
        raise ConfigError(source, f"{where}.horizons", "must be a non-empty list", "write e.g. [1h, 24h]")
    horizons, labels = [], []
    for h in horizons_raw:
        ms = parse_duration(h, source=source, field_path=f"{where}.horizons")
        if ms % granularity:
            raise ConfigError(source, f"{where}.horizons", f"{h} is not a multiple of granularity "
                              f"{raw['granularity']}", "use horizons that are whole multiples of the granularity")
        if ms in horizons:
            raise ConfigError(source, f"{where}.horizons", f"{h} is listed twice", "remove the duplicate")
        horizons.append(ms)
        labels.append(format_duration(ms))
    aggregates = raw["aggregates"]
    if not isinstance(aggregates, list) or not aggregates:
        raise ConfigError(source, f"{where}.aggregates", "must be a non-empty list", "write e.g. [count, sum]")
    for agg in aggregates:
        if agg not in AGGREGATES:
            raise ConfigError(source, f"{where}.aggregates", f"unknown aggregate {agg!r}",
                              f"use some of: {', '.join(AGGREGATES)}")
        if agg in ("sum", "min", "max", "mean", "last") and value is None:
            raise ConfigError(source, f"{where}.aggregates", f"{agg!r} needs a value field",
                              "add `value: <payload field>` or keep only count/distinct/since_last")
        if agg == "distinct" and distinct is None:
            raise ConfigError(source, f"{where}.aggregates", "'distinct' needs a distinct field",
                              "add `distinct: <hashed payload field>`, e.g. device_fingerprint_hash")
    if distinct is not None and "distinct" not in aggregates:
        raise ConfigError(source, f"{where}.distinct", "is set but 'distinct' is not aggregated",
                          "add distinct to aggregates or remove the distinct field")
    return WindowSpec(name, events, value, distinct, granularity, tuple(horizons), tuple(dict.fromkeys(aggregates)),
                      tuple(labels))


def load_config_text(text: str, *, source: str = "<text>",
                     required: Iterable[tuple[str, str, str]] = ()) -> FeatureConfig:
    """Parse and validate features YAML text; ``required`` lists (window, horizon, aggregate) that must exist."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "<document>", f"is not valid YAML ({exc.__class__.__name__})",
                          "fix the YAML syntax at the reported line") from None
    raw = _require_mapping(raw, source, "<document>")
    _check_keys(raw, {"version", "allowed_lateness", "features", "market", "windows"}, source, "<document>")
    if raw.get("version") != 1:
        raise ConfigError(source, "version", f"{raw.get('version')!r} is not supported", "write `version: 1`")
    lateness = parse_duration(raw.get("allowed_lateness", "1h"), source=source, field_path="allowed_lateness")
    feats = _require_mapping(raw.get("features") or {}, source, "features")
    _check_keys(feats, {"velocity_baseline_floor", "new_device_lookback"}, source, "features")
    floor = _number(feats.get("velocity_baseline_floor", 100.0), source, "features.velocity_baseline_floor",
                    low=1e-9)
    lookback = parse_duration(feats.get("new_device_lookback", "24h"), source=source,
                              field_path="features.new_device_lookback")
    market = _require_mapping(raw.get("market") or {}, source, "market")
    _check_keys(market, {"shock_drop"}, source, "market")
    shock = _number(market.get("shock_drop", 0.20), source, "market.shock_drop", low=1e-9, high=1.0)
    windows_raw = raw.get("windows")
    if not isinstance(windows_raw, list) or not windows_raw:
        raise ConfigError(source, "windows", "must be a non-empty list", "declare at least one window")
    windows = tuple(_parse_window(w, i, source) for i, w in enumerate(windows_raw))
    by_name: dict[str, WindowSpec] = {}
    for spec in windows:
        if spec.name in by_name:
            raise ConfigError(source, f"windows ({spec.name}).name", "is used twice", "give every window its own name")
        by_name[spec.name] = spec
    for name, horizon, agg in required:
        spec = by_name.get(name)
        if spec is None:
            raise ConfigError(source, "windows", f"window {name!r} is missing (riskstream.core.account.features reads it)",
                              f"add a window named {name}")
        if parse_duration(horizon) not in spec.horizons:
            raise ConfigError(source, f"windows ({name}).horizons", f"horizon {horizon} is missing "
                              "(riskstream.core.account.features reads it)", f"add {horizon} to the horizons")
        if agg not in spec.aggregates:
            raise ConfigError(source, f"windows ({name}).aggregates", f"aggregate {agg!r} is missing "
                              "(riskstream.core.account.features reads it)", f"add {agg} to the aggregates")
    by_type: dict[str, list[WindowSpec]] = {}
    for spec in windows:
        for etype in spec.events:
            by_type.setdefault(etype, []).append(spec)
    return FeatureConfig(source, lateness, windows, floor, lookback, shock,
                         {k: tuple(v) for k, v in by_type.items()}, by_name)


def load_config(path: str | Path | None = None, *, required: Iterable[tuple[str, str, str]] | None = None
                ) -> FeatureConfig:
    """Load features.yaml (default: the packaged one), refusing bad data with file/field/fix messages.

    ``required`` defaults to the windows riskstream.core.account.features reads.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "<file>", f"cannot be read ({exc.strerror})",
                          "check the path and permissions") from None
    return load_config_text(text, source=str(path), required=FEATURE_WINDOWS if required is None else required)


@functools.lru_cache(maxsize=1)
def default_config() -> FeatureConfig:
    """The packaged features.yaml, loaded once."""
    return load_config()


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
        return dict(spec.empty_result)
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


def oldest_kept_index(spec: WindowSpec, watermark: int, lateness: int) -> int:
    """Smallest bucket index a query as of any time >= watermark - lateness can still read."""
    return (watermark - lateness) // spec.granularity - max(spec.horizons) // spec.granularity + 1


def expire(buckets: dict[int, list], spec: WindowSpec, watermark: int, lateness: int) -> None:
    """Drop buckets no query as of ``>= watermark - lateness`` can reach (in place)."""
    keep_from = oldest_kept_index(spec, watermark, lateness)
    if not buckets or min(buckets) >= keep_from:
        return
    stale = [idx for idx in buckets if idx < keep_from]
    for idx in stale:
        del buckets[idx]


# --- compact binary codec helpers (used by riskstream.core.account.state) -------------------------------------------------------

def write_uvarint(out: bytearray, n: int) -> None:
    """Append a non-negative int as LEB128."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def write_svarint(out: bytearray, n: int) -> None:
    """Append a signed int, zig-zag encoded."""
    write_uvarint(out, (n << 1) if n >= 0 else ((-n) << 1) - 1)


def read_svarint(buf: bytes, pos: int) -> tuple[int, int]:
    z, pos = read_uvarint(buf, pos)
    return ((z >> 1) if not z & 1 else -((z + 1) >> 1)), pos


def encode_buckets(out: bytearray, buckets: dict[int, list], spec: WindowSpec, base_index: int) -> None:
    """Append a window's buckets; indices are stored relative to ``base_index`` (the watermark's bucket)."""
    write_uvarint(out, len(buckets))
    g = spec.granularity
    for idx in sorted(buckets, reverse=True):
        b = buckets[idx]
        write_svarint(out, base_index - idx)
        write_uvarint(out, b[COUNT])
        if spec.keeps_sum:
            write_svarint(out, b[SUM])
        if spec.keeps_min:
            write_svarint(out, b[MIN])
        if spec.keeps_max:
            write_svarint(out, b[MAX])
        if spec.keeps_last:
            write_uvarint(out, b[LAST_T] - idx * g)
            write_svarint(out, b[LAST_V])
        if spec.keeps_keys:
            keys = b[KEYS]
            write_uvarint(out, len(keys))
            for k in sorted(keys):
                out += k.to_bytes(8, "big")


def decode_buckets(buf: bytes, pos: int, spec: WindowSpec, base_index: int) -> tuple[dict[int, list], int]:
    """Inverse of :func:`encode_buckets`; returns the buckets and the next read position.

    Slots the spec does not keep get the same fixed values :func:`add_event` gives them.
    """
    n, pos = read_uvarint(buf, pos)
    g = spec.granularity
    buckets: dict[int, list] = {}
    for _ in range(n):
        delta, pos = read_svarint(buf, pos)
        idx = base_index - delta
        count, pos = read_uvarint(buf, pos)
        total = mn = mx = last_v = 0
        last_t = idx * g
        keys = None
        if spec.keeps_sum:
            total, pos = read_svarint(buf, pos)
        if spec.keeps_min:
            mn, pos = read_svarint(buf, pos)
        if spec.keeps_max:
            mx, pos = read_svarint(buf, pos)
        if spec.keeps_last:
            off, pos = read_uvarint(buf, pos)
            last_t = idx * g + off
            last_v, pos = read_svarint(buf, pos)
        if spec.keeps_keys:
            k, pos = read_uvarint(buf, pos)
            keys = set()
            for _ in range(k):
                keys.add(int.from_bytes(buf[pos:pos + 8], "big"))
                pos += 8
        buckets[idx] = [count, total, mn, mx, last_t, last_v, keys]
    return buckets, pos
