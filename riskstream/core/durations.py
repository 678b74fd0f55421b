"""Durations in operator data: the one grammar of features.yaml, models and policy files.

A duration is one or more ``<integer><unit>`` parts, units largest first and each at most once, with unit ``w``
(week), ``d``, ``h``, ``m``, ``s`` or ``ms``: ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"1w"``, ``"1d12h"``.
Spaces around the parts are allowed (``"1d 12h"``). A YAML integer is milliseconds. Durations are never negative;
``positive=True`` also refuses zero. :func:`format_duration` writes the shortest such text, and
``parse_duration(format_duration(ms)) == ms``.

>>> parse_duration("1d12h"), parse_duration("36h"), parse_duration(1500)
(129600000, 129600000, 1500)
>>> format_duration(129_600_000), format_duration(7 * DAY), format_duration(90_500)
('1d12h', '1w', '1m30s500ms')
>>> parse_duration("12h1d", file="policy.yaml", field="actions.WARN.grace")
Traceback (most recent call last):
...
riskstream.core.errors.OperatorError: policy.yaml: actions.WARN.grace: '12h1d' is not a duration (units must come largest first, each once). Fix: write e.g. 90s, 15m, 24h, 7d, 1w or 1d12h
"""

from __future__ import annotations

import re
from typing import Any

from riskstream.core.errors import OperatorError

__all__ = ["DAY", "HOUR", "MINUTE", "SECOND", "UNITS", "WEEK", "format_duration", "parse_duration"]

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

UNITS = {"w": WEEK, "d": DAY, "h": HOUR, "m": MINUTE, "s": SECOND, "ms": 1}
"""Milliseconds per unit, largest first."""

_PART = re.compile(r"\s*([0-9]+)\s*(ms|w|d|h|m|s)")  # ASCII digits only; "ms" before "m"
_RANK = {unit: i for i, unit in enumerate(UNITS)}
_EXAMPLES = "write e.g. 90s, 15m, 24h, 7d, 1w or 1d12h"


def parse_duration(value: Any, *, file: str = "<value>", field: str = "duration", positive: bool = False,
                   error: type[OperatorError] = OperatorError) -> int:
    """Milliseconds in ``value`` (text in the grammar above, or an int of ms); refuses anything else as ``error``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise error(file, field, f"{value!r} is not a duration", _EXAMPLES)
    if isinstance(value, int):
        ms = value
    else:
        ms, pos, last = 0, 0, -1
        for m in _PART.finditer(value):
            if m.start() != pos:
                break
            rank = _RANK[m.group(2)]
            if rank <= last:
                raise error(file, field, f"{value!r} is not a duration (units must come largest first, each once)",
                            _EXAMPLES)
            ms, pos, last = ms + int(m.group(1)) * UNITS[m.group(2)], m.end(), rank
        if pos == 0 or value[pos:].strip():
            raise error(file, field, f"{value!r} is not a duration", _EXAMPLES)
    if ms < 0 or (positive and ms == 0):
        raise error(file, field, f"{value!r} is not {'positive' if positive else '>= 0'}",
                    "use a duration above zero, e.g. 5m" if positive else "use 0 or a positive duration")
    return ms


def format_duration(ms: int) -> str:
    """The shortest text for ``ms`` milliseconds (``ms >= 0``) that :func:`parse_duration` reads back exactly."""
    if ms < 0:
        raise ValueError(f"a duration is never negative, got {ms}")
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
