"""Window specs: features.yaml parsed and validated into frozen :class:`WindowSpec` values.

A spec names the event types that feed a window, the payload field it aggregates (or none: count only), a bucket
granularity and horizons (whole multiples of the granularity), all durations in :mod:`riskstream.core.durations`.
Bad data is refused with a :class:`FeaturesError` in the one operator-error format.

>>> cfg = load_config_text('''
... version: 1
... windows:
...   - {name: dd, events: [drawdown], value: amount, granularity: 5m, horizons: [1h, 1d], aggregates: [count, sum]}
... ''', source="example.yaml")
>>> cfg.by_name["dd"].horizons, cfg.by_type["drawdown"][0].keeps_sum
((3600000, 86400000), True)
>>> load_config_text("version: 1\\nwindows: [{name: dd, events: [drawdown], granularity: 5m, horizons: [7m], "
...                  "aggregates: [count]}]", source="example.yaml")
Traceback (most recent call last):
...
riskstream.core.windows.spec.FeaturesError: example.yaml: windows[dd].horizons: 7m is not a multiple of the granularity 5m. Fix: use horizons that are whole multiples of the granularity
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from riskstream.core.durations import DAY, format_duration, parse_duration
from riskstream.core.errors import TOP, OperatorError, parse_yaml, read_yaml
from riskstream.data import FEATURES

__all__ = ["AGGREGATES", "FEATURE_WINDOWS", "FeatureConfig", "FeaturesError", "WindowSpec", "default_config",
           "load_config", "load_config_text"]

AGGREGATES = ("count", "sum", "min", "max", "mean", "distinct", "last", "since_last")

DEFAULT_PATH = FEATURES

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


class FeaturesError(OperatorError):
    """features.yaml cannot be used: ``FILE: FIELD: problem. Fix: ...``."""


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


def _mapping(obj: Any, source: str, field_path: str) -> dict:
    if not isinstance(obj, dict):
        raise FeaturesError(source, field_path, f"expected a mapping, got {type(obj).__name__}",
                            "write key: value pairs")
    return obj


def _check_keys(obj: dict, allowed: set[str], source: str, field_path: str) -> None:
    unknown = sorted(set(obj) - allowed, key=str)
    if unknown:
        where = f"{field_path}.{unknown[0]}" if field_path != TOP else str(unknown[0])
        raise FeaturesError(source, where, "unknown key", f"remove it or use one of: {', '.join(sorted(allowed))}")


def _name(value: Any, source: str, field_path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise FeaturesError(source, field_path, f"{value!r} is not a valid name",
                            "use lower-case letters, digits and underscores, starting with a letter")
    return value


def _number(value: Any, source: str, field_path: str, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise FeaturesError(source, field_path, f"{value!r} is not a number", "write a plain number, e.g. 0.2")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise FeaturesError(source, field_path, f"{value!r} is out of range", f"use a number {rng}")
    return float(value)


def _duration(value: Any, source: str, field_path: str) -> int:
    return parse_duration(value, file=source, field=field_path, positive=True, error=FeaturesError)


def _parse_window(raw: Any, i: int, source: str) -> WindowSpec:
    where = f"windows[{i}]"
    raw = _mapping(raw, source, where)
    _check_keys(raw, {"name", "events", "value", "distinct", "granularity", "horizons", "aggregates"}, source, where)
    for key in ("name", "events", "granularity", "horizons", "aggregates"):
        if key not in raw:
            raise FeaturesError(source, f"{where}.{key}", "missing", f"add `{key}:` to the window")
    name = _name(raw["name"], source, f"{where}.name")
    where = f"windows[{name}]"
    events = raw["events"]
    if not isinstance(events, list) or not events:
        raise FeaturesError(source, f"{where}.events", "must be a non-empty list",
                            "list event types, e.g. [drawdown]")
    events = tuple(_name(e, source, f"{where}.events") for e in events)
    if len(set(events)) != len(events):
        raise FeaturesError(source, f"{where}.events", "lists an event type twice", "remove the duplicate")
    value = raw.get("value")
    if value is not None:
        value = _name(value, source, f"{where}.value")
    distinct = raw.get("distinct")
    if distinct is not None:
        distinct = _name(distinct, source, f"{where}.distinct")
    granularity = _duration(raw["granularity"], source, f"{where}.granularity")
    horizons_raw = raw["horizons"]
    if not isinstance(horizons_raw, list) or not horizons_raw:
        raise FeaturesError(source, f"{where}.horizons", "must be a non-empty list", "write e.g. [1h, 24h]")
    horizons: list[int] = []
    for h in horizons_raw:
        ms = _duration(h, source, f"{where}.horizons")
        if ms % granularity:
            raise FeaturesError(source, f"{where}.horizons", f"{h} is not a multiple of the granularity "
                                f"{format_duration(granularity)}",
                                "use horizons that are whole multiples of the granularity")
        if ms in horizons:
            raise FeaturesError(source, f"{where}.horizons", f"{h} is listed twice", "remove the duplicate")
        horizons.append(ms)
    aggregates = raw["aggregates"]
    if not isinstance(aggregates, list) or not aggregates:
        raise FeaturesError(source, f"{where}.aggregates", "must be a non-empty list", "write e.g. [count, sum]")
    for agg in aggregates:
        if agg not in AGGREGATES:
            raise FeaturesError(source, f"{where}.aggregates", f"unknown aggregate {agg!r}",
                                f"use some of: {', '.join(AGGREGATES)}")
        if agg in ("sum", "min", "max", "mean", "last") and value is None:
            raise FeaturesError(source, f"{where}.aggregates", f"{agg!r} needs a value field",
                                "add `value: <payload field>` or keep only count/distinct/since_last")
        if agg == "distinct" and distinct is None:
            raise FeaturesError(source, f"{where}.aggregates", "'distinct' needs a distinct field",
                                "add `distinct: <hashed payload field>`, e.g. device_fingerprint_hash")
    if distinct is not None and "distinct" not in aggregates:
        raise FeaturesError(source, f"{where}.distinct", "is set but 'distinct' is not aggregated",
                            "add distinct to aggregates or remove the distinct field")
    return WindowSpec(name, events, value, distinct, granularity, tuple(horizons), tuple(dict.fromkeys(aggregates)))


def _check_required(by_name: dict[str, WindowSpec], required: Iterable[tuple[str, str, str]], source: str) -> None:
    reader = "(riskstream.core.account.features reads it)"
    for name, horizon, agg in required:
        spec = by_name.get(name)
        if spec is None:
            raise FeaturesError(source, "windows", f"window {name!r} is missing {reader}", f"add a window named {name}")
        if parse_duration(horizon) not in spec.horizons:
            raise FeaturesError(source, f"windows[{name}].horizons", f"horizon {horizon} is missing {reader}",
                                f"add {horizon} to the horizons")
        if agg not in spec.aggregates:
            raise FeaturesError(source, f"windows[{name}].aggregates", f"aggregate {agg!r} is missing {reader}",
                                f"add {agg} to the aggregates")


def load_config_text(text: str, *, source: str = "<text>",
                     required: Iterable[tuple[str, str, str]] = ()) -> FeatureConfig:
    """Parse and validate features YAML text; ``required`` lists (window, horizon, aggregate) that must exist."""
    return _parse(parse_yaml(text, source=source, error=FeaturesError), source, required)


def _parse(raw: Any, source: str, required: Iterable[tuple[str, str, str]]) -> FeatureConfig:
    raw = _mapping(raw, source, TOP)
    _check_keys(raw, {"version", "allowed_lateness", "features", "market", "windows"}, source, TOP)
    if raw.get("version") != 1:
        raise FeaturesError(source, "version", f"{raw.get('version')!r} is not supported", "write `version: 1`")
    lateness = _duration(raw.get("allowed_lateness", "1h"), source, "allowed_lateness")
    feats = _mapping(raw.get("features") or {}, source, "features")
    _check_keys(feats, {"velocity_baseline_floor", "new_device_lookback"}, source, "features")
    floor = _number(feats.get("velocity_baseline_floor", 100.0), source, "features.velocity_baseline_floor",
                    low=1e-9)
    lookback = _duration(feats.get("new_device_lookback", "24h"), source, "features.new_device_lookback")
    market = _mapping(raw.get("market") or {}, source, "market")
    _check_keys(market, {"shock_drop"}, source, "market")
    shock = _number(market.get("shock_drop", 0.20), source, "market.shock_drop", low=1e-9, high=1.0)
    windows_raw = raw.get("windows")
    if not isinstance(windows_raw, list) or not windows_raw:
        raise FeaturesError(source, "windows", "must be a non-empty list", "declare at least one window")
    windows = tuple(_parse_window(w, i, source) for i, w in enumerate(windows_raw))
    by_name: dict[str, WindowSpec] = {}
    for i, spec in enumerate(windows):
        if spec.name in by_name:
            raise FeaturesError(source, f"windows[{i}].name", f"{spec.name!r} is used twice",
                                "give every window its own name")
        by_name[spec.name] = spec
    _check_required(by_name, required, source)
    by_type: dict[str, list[WindowSpec]] = {}
    for spec in windows:
        for etype in spec.events:
            by_type.setdefault(etype, []).append(spec)
    return FeatureConfig(source, lateness, windows, floor, lookback, shock,
                         {k: tuple(v) for k, v in by_type.items()}, by_name)


def load_config(path: str | Path | None = None, *, required: Iterable[tuple[str, str, str]] | None = None
                ) -> FeatureConfig:
    """Load features.yaml (default: the packaged one), refusing bad data with a :class:`FeaturesError`.

    ``required`` defaults to the windows riskstream.core.account.features reads.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    return _parse(read_yaml(path, error=FeaturesError), str(path),
                  FEATURE_WINDOWS if required is None else required)


@functools.lru_cache(maxsize=1)
def default_config() -> FeatureConfig:
    """The packaged features.yaml, loaded once."""
    return load_config()
