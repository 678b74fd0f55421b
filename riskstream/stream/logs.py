"""Structured logging: one JSON object per line on stderr.

Each line carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and every ``extra=`` field given to the
log call. Never log per event, and never put an account id into a message: pass it through :func:`log_id`, which
returns the keyed pseudonym from :mod:`riskstream.privacy`.

>>> import io, json, logging
>>> stream = io.StringIO()
>>> setup_logging("INFO", stream=stream)
>>> logging.getLogger("riskstream.ops.demo").info("policy loaded", extra={"version": 3})
>>> line = json.loads(stream.getvalue())
>>> line["level"], line["logger"], line["msg"], line["version"]
('INFO', 'riskstream.ops.demo', 'policy loaded', 3)
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
import logging
import sys
from typing import TextIO

__all__ = ["setup_logging", "JsonFormatter", "log_id"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted as a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_HANDLER_NAME = "riskstream-stderr"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, extras (and ``exc`` for exceptions)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # default=str: an extra that is not JSON-native (a Path, an enum) must not break logging.
        return jsonlib.dumps(line, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> None:
    """Configure the root logger: JSON lines (or plain text when ``json=False``) at ``level`` on stderr.

    Calling it again replaces the handler it installed earlier instead of adding a second one.
    Unknown level names are refused with a ``ValueError`` that lists the valid ones.
    """
    numeric = logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is unknown; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)


def log_id(value: object) -> str:
    """The pseudonym of an account/facility id, safe to put in a log line (never log the raw id)."""
    # Imported lazily: privacy reads its key from the environment, which logging set-up must not require.
    from riskstream.core.privacy import Pseudonymizer

    return Pseudonymizer.from_env().pseudonym(str(value))
