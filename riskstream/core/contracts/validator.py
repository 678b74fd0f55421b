"""The hot-path validator: raw bytes in, a parsed PII-free event dict or a `Rejected` out. Never raises.

The spec in `riskstream.core.contracts.spec` is compiled once, at import, into two paths. The accept-only fast path
(`riskstream.core.contracts.fastpath`) decodes and type-checks a record in one msgspec pass into generated structs, then
checks the timestamps and builds the output. Anything it does not accept goes to the reference path: `orjson.loads`
and, per (type, version), generated straight-line Python that checks field by field and names the exact reason of
a refusal. Common refusals are preallocated `Rejected` constants.

>>> from riskstream.core.privacy import Pseudonymizer
>>> ps = Pseudonymizer(b"doc-secret")
>>> raw = (b'{"event_id":"e1","type":"drawdown","schema_version":1,"account_id":"A1",'
...        b'"event_time":1000,"producer_time":1001,"source":"core","payload":{"amount":50.0,"note":"x"}}')
>>> ev = parse_event(raw, now_ms=2000, pseudonymizer=ps)
>>> ev["entity"], ev["family"], ev["payload"]
('A1', 'behaviour', {'amount': 50.0})
>>> parse_event(b"{", now_ms=2000, pseudonymizer=ps).reason
'undecodable'
>>> parse_event(raw, now_ms=2000, pseudonymizer=ps, family="repayment").reason
'unknown_type'

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import orjson

from riskstream.core.contracts.fastpath import build_parse, output_field
from riskstream.core.contracts.reasons import Rejected
from riskstream.core.contracts.spec import FAMILIES, I64_MAX, I64_MIN, SPEC, Family, Field, TypeSpec

__all__ = ["Limits", "DEFAULT_LIMITS", "Validator", "parse_event", "MAX_ID_CHARS"]

MAX_ID_CHARS = 128

_MISSING = object()


@dataclass(frozen=True)
class Limits:
    """Bounds applied before and around schema validation.

    >>> Limits().max_bytes
    65536
    """

    max_bytes: int = 64 * 1024
    max_future_skew_ms: int = 5 * 60 * 1000
    max_event_age_ms: int = 400 * 24 * 3600 * 1000


DEFAULT_LIMITS = Limits()


# --- payload checker generation ----------------------------------------------------------------------------------


def _expected(f: Field) -> str:
    """What a field must be, in words (used in messages instead of the offending value)."""
    if f.kind == "enum":
        text = "one of " + ", ".join(repr(c) for c in f.choices)
    else:
        text = {"str": "a string", "number": "a number", "int": "a 64-bit integer",
                "epoch_ms": "a 64-bit epoch-ms integer"}[f.kind]
        bounds = []
        if f.gt is not None:
            bounds.append(f"> {f.gt:g}")
        if f.ge is not None:
            bounds.append(f">= {f.ge:g}")
        if f.le is not None:
            bounds.append(f"<= {f.le:g}")
        if bounds:
            text += " " + " and ".join(bounds)
    if f.nullable:
        text += " or null"
    return text


def _integral_float(v: str, refusal: str, indent: str) -> list[str]:
    """Lines (inside `if <not an int>:`) that turn an integral float into its int, or return `refusal`.

    JSON Schema (and JSON itself) do not tell `3.0` from `3`: both are the integer 3, so an int field takes both
    and the parsed event always holds an int. `3.5`, infinity, NaN, strings and bools stay refused."""
    return [f"{indent}if {v}.__class__ is float and {v}.is_integer(): {v} = int({v})",
            f"{indent}else: return {refusal}"]


def _gen_checker(type_name: str, version: int, fields: Mapping[str, Field]):
    """Generate `check(payload, pseudonymizer) -> dict | Rejected` for one (type, version)."""
    consts: dict[str, object] = {"M": _MISSING, "Rejected": Rejected}
    where = f"{type_name} v{version}"
    lines = ["def check(p, ps):"]
    literal: list[str] = []  # required output fields go into one dict literal (fastest to build)
    optional: list[str] = []

    def reject(tag: str, reason: str, message: str) -> str:
        name = f"R_{tag}"
        consts[name] = Rejected(reason, f"{where}: {message}")
        return name

    for i, (name, f) in enumerate(fields.items()):
        v = f"v{i}"
        exp = _expected(f)
        r_missing = reject(f"{i}_m", "missing_field", f"payload field '{name}' is missing (expected {exp})")
        r_type = reject(f"{i}_t", "wrong_type", f"payload field '{name}' has the wrong type (expected {exp})")
        r_value = reject(f"{i}_v", "invalid_value", f"payload field '{name}' is out of range (expected {exp})")
        lines.append(f"    {v} = p.get({name!r}, M)")
        integral = f.kind in ("int", "epoch_ms")
        if f.kind == "str":
            bad_type = f"{v}.__class__ is not str"
        elif f.kind == "enum":
            bad_type = f"{v}.__class__ is not str"
        elif f.kind == "number":
            bad_type = f"{v}.__class__ is not float and {v}.__class__ is not int"
        else:  # int, epoch_ms
            bad_type = f"{v}.__class__ is not int"
        if f.nullable:
            bad_type = f"{v} is not None and {bad_type}"
        checks = []
        if f.kind == "enum":
            cname = f"C{i}"
            consts[cname] = frozenset(f.choices)
            checks.append(f"{v} not in {cname}")
        ge, le = f.ge, f.le
        if integral:  # integers are int64 on the wire (spec.I64_MIN..I64_MAX)
            ge = I64_MIN if ge is None else max(ge, I64_MIN)
            le = I64_MAX if le is None else min(le, I64_MAX)
        for op, bound in (("<=", f.gt), ("<", ge), (">", le)):
            if bound is not None:
                checks.append(f"{v} {op} {bound!r}")
        # Optional fields: absent and null both mean "not given".
        indent = "    "
        if f.required:
            if f.nullable:
                lines.append(f"    if {v} is M: return {r_missing}")
            if integral:
                lines.append(f"    if {bad_type}:")
                refusal = r_type if f.nullable else f"{r_missing} if {v} is M else {r_type}"
                lines.extend(_integral_float(v, refusal, "        "))
            elif f.nullable:
                lines.append(f"    if {bad_type}: return {r_type}")
            else:
                lines.append(f"    if {bad_type}: return {r_missing} if {v} is M else {r_type}")
        else:
            lines.append(f"    if {v} is not M and {v} is not None:")
            if integral:
                lines.append(f"        if {bad_type}:")
                lines.extend(_integral_float(v, r_type, "            "))
            else:
                lines.append(f"        if {bad_type}: return {r_type}")
            indent = "        "
        if checks:
            guard = f"{v} is not None and " if f.nullable else ""
            lines.append(f"{indent}if {guard}({' or '.join(checks)}): return {r_value}")
        # Output: PII is dropped or hashed; everything else is copied as is.
        if f.pii == "drop":
            continue
        key, value = output_field(name, f, v, "ps")
        if f.required:
            literal.append(f"{key!r}: {value}")
        else:
            optional.append(f"    if {v} is not M and {v} is not None: o[{key!r}] = {value}")
    out_lines = ["    o = {" + ", ".join(literal) + "}", *optional, "    return o"]
    src = "\n".join(lines + out_lines)
    exec(compile(src, f"<contract {where}>", "exec"), consts)  # noqa: S102 - source built from our own spec
    check = consts["check"]
    check.__doc__ = src
    return check


# --- envelope -----------------------------------------------------------------------------------------------------


def _env_rejects(field: str, expected: str) -> tuple[Rejected, Rejected, Rejected]:
    return (
        Rejected("missing_field", f"envelope field '{field}' is missing (expected {expected})"),
        Rejected("wrong_type", f"envelope field '{field}' has the wrong type (expected {expected})"),
        Rejected("invalid_value", f"envelope field '{field}' is out of range (expected {expected})"),
    )


_ID_EXPECTED = f"a string of 1..{MAX_ID_CHARS} chars"
_R_EVENT_ID = _env_rejects("event_id", _ID_EXPECTED)
_R_TYPE = _env_rejects("type", "a string naming a catalogue type (docs/events.md)")
_R_VERSION = _env_rejects("schema_version", "a 64-bit integer >= 1")
_R_EVENT_TIME = _env_rejects("event_time", "a 64-bit epoch-ms integer >= 0")
_R_PRODUCER_TIME = _env_rejects("producer_time", "a 64-bit epoch-ms integer >= 0")
_R_SOURCE = _env_rejects("source", _ID_EXPECTED)
_R_PAYLOAD = _env_rejects("payload", "an object")
_R_ENTITY = {
    name: _env_rejects(name, _ID_EXPECTED + (" without '|'" if name == "indicator" else ""))
    for name in ("account_id", "facility_id", "indicator", "segment")
}
_R_UNDECODABLE = Rejected("undecodable", "record is not valid UTF-8 JSON")
_R_NOT_OBJECT = Rejected("not_an_object", "record is valid JSON but not an object")
_R_UNKNOWN_TYPE = Rejected("unknown_type", "field 'type' does not name a catalogue event type (docs/events.md)")
_R_INTERNAL = Rejected("invalid_value", "record could not be validated (unexpected input shape)")


class _Compiled:
    """One event type, compiled: its checkers by version plus the preallocated refusals it can produce."""

    __slots__ = ("name", "family", "entity", "checkers", "min_version", "newest", "newest_checker", "r_unsupported",
                 "r_wrong_family", "r_gap")

    def __init__(self, name: str, t: TypeSpec, families: Mapping[str, Family]):
        self.name = name
        self.family = t.family
        self.entity = families[t.family].entity_fields
        if t.min_version > t.newest or t.family not in families:
            raise ValueError(f"spec of {name!r}: min_version above the newest version, or unknown family")
        self.checkers = {v: _gen_checker(name, v, f) for v, f in t.versions.items() if v >= t.min_version}
        self.min_version = t.min_version
        self.newest = t.newest
        self.newest_checker = self.checkers[self.newest]
        self.r_unsupported = Rejected(
            "unsupported_version",
            f"{name}: schema_version is below the oldest supported version v{t.min_version}",
        )
        self.r_gap = Rejected(
            "unsupported_version",
            f"{name}: schema_version is not one of the known versions {sorted(t.versions)} (nor newer)",
        )
        self.r_wrong_family = {
            fam: Rejected(
                "unknown_type",
                f"type '{name}' belongs to topic {families[t.family].topic} ({t.family} family), "
                f"not to the {fam} topic {f.topic}",
            )
            for fam, f in families.items()
            if fam != t.family
        }


class Validator:
    """Parses and validates raw records against a catalogue (by default `riskstream.core.contracts.spec.SPEC`).

    `parse(raw, *, now_ms, pseudonymizer, limits=DEFAULT_LIMITS, family=None)` returns the parsed dict or a
    `Rejected`; it never raises. `family` (e.g. "behaviour") restricts types to the topic the record came from.

    `parse` first tries the accept-only msgspec fast path; whatever it does not accept goes through
    `parse_reference`, the field-by-field checker that names the exact reason. Both give identical results
    (property tests check this); `parse_reference` exists for those tests and for reading.
    """

    def __init__(self, spec: Mapping[str, TypeSpec] = SPEC, families: Mapping[str, Family] = FAMILIES):
        self.spec = spec
        self.families = families
        self._types = {name: _Compiled(name, t, families) for name, t in spec.items()}
        self._r_bad_family = Rejected("unknown_type", f"family must be one of {sorted(families)} or None")
        self.parse_reference = self._build_reference()
        self.parse = self._build_parse()

    def _build_parse(self):
        parse = build_parse(self.spec, self.families, self.parse_reference, DEFAULT_LIMITS, MAX_ID_CHARS)
        parse.__doc__ = Validator.__doc__
        return parse

    def _build_reference(self):
        types = self._types
        loads = orjson.loads
        r_bad_family = self._r_bad_family

        def parse(raw, *, now_ms: int, pseudonymizer, limits: Limits = DEFAULT_LIMITS, family: str | None = None):
            try:
                if len(raw) > limits.max_bytes:
                    return Rejected("oversized", f"record is {len(raw)} bytes, over the limit of {limits.max_bytes}")
                try:
                    ev = loads(raw)
                except (orjson.JSONDecodeError, TypeError):
                    return _R_UNDECODABLE
                if ev.__class__ is not dict:
                    return _R_NOT_OBJECT

                event_id = ev.get("event_id", _MISSING)
                if event_id.__class__ is not str:
                    return _R_EVENT_ID[0] if event_id is _MISSING else _R_EVENT_ID[1]
                if not 0 < len(event_id) <= MAX_ID_CHARS:
                    return _R_EVENT_ID[2]

                etype = ev.get("type", _MISSING)
                if etype.__class__ is not str:
                    return _R_TYPE[0] if etype is _MISSING else _R_TYPE[1]
                t = types.get(etype)
                if t is None:
                    return _R_UNKNOWN_TYPE
                if family is not None and family != t.family:
                    return t.r_wrong_family.get(family, r_bad_family)

                version = ev.get("schema_version", _MISSING)
                if version.__class__ is not int:
                    if version.__class__ is float and version.is_integer():
                        version = int(version)  # 1.0 is the integer 1, in JSON and in JSON Schema
                    else:
                        return _R_VERSION[0] if version is _MISSING else _R_VERSION[1]
                if version > I64_MAX:
                    return _R_VERSION[2]
                check = t.checkers.get(version)
                if check is None:
                    if version < t.min_version:
                        return t.r_unsupported
                    if version < t.newest:
                        return t.r_gap
                    check = t.newest_checker  # newer than we know: additive changes must still validate

                ef = t.entity
                if len(ef) == 1:
                    entity = ev.get(ef[0], _MISSING)
                    if entity.__class__ is not str or not 0 < len(entity) <= MAX_ID_CHARS:
                        return _entity_reject(ef[0], entity)
                else:
                    indicator = ev.get("indicator", _MISSING)
                    if indicator.__class__ is not str or not 0 < len(indicator) <= MAX_ID_CHARS or "|" in indicator:
                        return _entity_reject("indicator", indicator)
                    segment = ev.get("segment", _MISSING)
                    if segment.__class__ is not str or not 0 < len(segment) <= MAX_ID_CHARS:
                        return _entity_reject("segment", segment)
                    entity = indicator + "|" + segment

                event_time = ev.get("event_time", _MISSING)
                if event_time.__class__ is not int:
                    if event_time.__class__ is float and event_time.is_integer():
                        event_time = int(event_time)
                    else:
                        return _R_EVENT_TIME[0] if event_time is _MISSING else _R_EVENT_TIME[1]
                if event_time < 0 or event_time > I64_MAX:
                    return _R_EVENT_TIME[2]
                producer_time = ev.get("producer_time", _MISSING)
                if producer_time.__class__ is not int:
                    if producer_time.__class__ is float and producer_time.is_integer():
                        producer_time = int(producer_time)
                    else:
                        return _R_PRODUCER_TIME[0] if producer_time is _MISSING else _R_PRODUCER_TIME[1]
                if producer_time < 0 or producer_time > I64_MAX:
                    return _R_PRODUCER_TIME[2]
                horizon = now_ms + limits.max_future_skew_ms
                if event_time > horizon or producer_time > horizon:
                    return _future(event_time > horizon, limits)
                if event_time < now_ms - limits.max_event_age_ms:
                    return _stale(limits)

                source = ev.get("source", _MISSING)
                if source.__class__ is not str:
                    return _R_SOURCE[0] if source is _MISSING else _R_SOURCE[1]
                if not 0 < len(source) <= MAX_ID_CHARS:
                    return _R_SOURCE[2]

                payload = ev.get("payload", _MISSING)
                if payload.__class__ is not dict:
                    return _R_PAYLOAD[0] if payload is _MISSING else _R_PAYLOAD[1]
                out = check(payload, pseudonymizer)
                if out.__class__ is not dict:
                    if version > t.newest:
                        return _incompatible(t, version, out)
                    return out
                return {
                    "event_id": event_id,
                    "type": etype,
                    "schema_version": version,
                    "family": t.family,
                    "entity": entity,
                    "event_time": event_time,
                    "producer_time": producer_time,
                    "source": source,
                    "payload": out,
                }
            except Exception:  # noqa: BLE001 - contract: never raise on input; the tests assert this is unreachable
                return _R_INTERNAL

        parse.__doc__ = Validator.__doc__
        return parse


def _entity_reject(field: str, value) -> Rejected:
    missing, wrong, invalid = _R_ENTITY[field]
    if value is _MISSING:
        return missing
    return wrong if value.__class__ is not str else invalid


def _future(event_time_late: bool, limits: Limits) -> Rejected:
    which = "event_time" if event_time_late else "producer_time"
    return Rejected("future_timestamp", f"{which} is more than {limits.max_future_skew_ms} ms ahead of now")


def _stale(limits: Limits) -> Rejected:
    return Rejected("stale_timestamp", f"event_time is more than {limits.max_event_age_ms} ms in the past")


def _incompatible(t: _Compiled, version: int, r: Rejected) -> Rejected:
    detail = r.message.split(": ", 1)[-1]
    return Rejected(
        "schema_incompatible",
        f"{t.name} v{version} is newer than the newest version this code knows (v{t.newest}) and is not an "
        f"additive change: checked against v{t.newest}, {detail}",
    )


_DEFAULT = Validator()
parse_event = _DEFAULT.parse
