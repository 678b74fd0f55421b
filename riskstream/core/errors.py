"""Operator-data errors: one type and one format, ``FILE: FIELD: problem. Fix: ...``.

Every loader of operator data (topology.yaml, features.yaml, models.yaml, policy files) refuses bad data with a
subclass of :class:`OperatorError`, so a log line or a CLI error always says which file, which field, what is
wrong and what to do. FIELD is a dotted path (``rules[pd-warn].when.all[0].op``); ``<file>`` stands for the file
as a whole (unreadable, not YAML), ``<top>`` for its top level.

>>> err = OperatorError("policy.yaml", "rules[pd-warn].action", "unknown action 'CLOS'", "use one of CLOSE, WARN")
>>> str(err)
"policy.yaml: rules[pd-warn].action: unknown action 'CLOS'. Fix: use one of CLOSE, WARN"
>>> FORMAT.fullmatch(str(err))["field"]
'rules[pd-warn].action'
>>> parse_yaml("a: [1", source="x.yaml")
Traceback (most recent call last):
...
riskstream.core.errors.OperatorError: x.yaml: <file>: not valid YAML at line 1, column 6 (expected ',' or ']', but got '<stream end>'). Fix: correct the YAML syntax there
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FILE", "FORMAT", "OperatorError", "TOP", "parse_yaml", "read_yaml"]

FILE = "<file>"
"""FIELD of an error about the file as a whole (it cannot be read, or is not YAML)."""
TOP = "<top>"
"""FIELD of an error about the top level of the document (e.g. it is not a mapping)."""

FORMAT = re.compile(r"(?P<file>.+?): (?P<field>[^:\s][^:]*): (?P<problem>.+?)\. Fix: (?P<fix>.+)", re.DOTALL)
"""The one format of every operator-data error message."""


class OperatorError(ValueError):
    """Operator data that cannot be used: ``file``, ``field``, ``problem`` and ``fix``, shown in :data:`FORMAT`."""

    def __init__(self, file: str, field: str, problem: str, fix: str):
        super().__init__(file, field, problem, fix)
        self.file, self.field, self.problem, self.fix = str(file), str(field), problem.rstrip(". "), fix

    @property
    def source(self) -> str:
        """The file (or other source, e.g. ``control:policy``) the data came from."""
        return self.file

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.problem}. Fix: {self.fix}"


def parse_yaml(text: str, *, source: str, error: type[OperatorError] = OperatorError) -> Any:
    """``yaml.safe_load(text)``, refusing a syntax error as ``error`` (which names the line and column)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise error(source, FILE, f"not valid YAML{at} ({problem})", "correct the YAML syntax there") from None


def read_yaml(path: str | Path, *, error: type[OperatorError] = OperatorError,
              fix: str = "check the path and the file's permissions") -> Any:
    """Read and parse a YAML file, refusing an unreadable file or bad syntax as ``error``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(str(path), FILE, f"cannot be read ({exc.strerror or exc.__class__.__name__})", fix) from None
    return parse_yaml(text, source=str(path), error=error)
