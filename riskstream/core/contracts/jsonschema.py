"""JSON Schema (draft 2020-12) files for upstream producers, generated from `riskstream.core.contracts.spec`.

One file per type (`<type>.schema.json`) describing its wire form in every version this code accepts;
`schema_version` is an enum of those versions. A type with one version has its payload inline; a type with
several has one payload schema per version in `$defs` (`payload_v<N>`), chosen by `schema_version`, because
riskstream checks a record against the version it declares (a field added in v2 is an ignored extra in a v1 record).

Integers ("int" and epoch-ms fields) are bounded to int64, as the validator bounds them. The committed files are
checked against this generator by a test, and against `parse_event` by a differential test, so the files and the
validator cannot drift. What a static schema cannot say (the time window, the record size, newer versions, ...) is
listed in docs/contracts.md.

>>> s = json_schema("drawdown")
>>> s["properties"]["schema_version"]["enum"], sorted(s["$defs"]), s["$defs"]["payload_v2"]["required"]
([1, 2], ['payload_v1', 'payload_v2'], ['amount'])
>>> json_schema("payment_missed")["properties"]["payload"]["properties"]["days_past_due"]
{'type': 'integer', 'minimum': 0, 'maximum': 9223372036854775807}

"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import orjson

from riskstream.core.contracts.spec import FAMILIES, I64_MAX, I64_MIN, SPEC, Family, Field, TypeSpec
from riskstream.core.contracts.validator import MAX_ID_CHARS

__all__ = ["json_schema", "write_schemas", "SCHEMA_DIR"]

SCHEMA_DIR = Path(__file__).parent / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
_EPOCH_MS = {"type": "integer", "minimum": 0, "maximum": I64_MAX}


def _field_schema(f: Field) -> dict[str, Any]:
    if f.kind == "enum":
        s: dict[str, Any] = {"type": "string", "enum": list(f.choices)}
    else:
        s = {"type": {"str": "string", "number": "number", "int": "integer", "epoch_ms": "integer"}[f.kind]}
    ge, le = f.ge, f.le
    if f.kind in ("int", "epoch_ms"):  # int64, as the validator (JSON Schema's "integer" alone is unbounded)
        ge = I64_MIN if ge is None else max(ge, I64_MIN)
        le = I64_MAX if le is None else min(le, I64_MAX)
    if ge is not None:
        s["minimum"] = ge
    if f.gt is not None:
        s["exclusiveMinimum"] = f.gt
    if le is not None:
        s["maximum"] = le
    if f.nullable or not f.required:  # optional fields may also be sent as null
        s["type"] = [s["type"], "null"]
        if "enum" in s:
            s["enum"] = [*s["enum"], None]
    notes = [f.doc] if f.doc else []
    if f.kind == "epoch_ms":
        notes.append("epoch milliseconds")
    if f.pii == "drop":
        notes.append("PII: dropped at ingestion")
    elif f.pii == "hash":
        notes.append("PII: replaced at ingestion by a keyed hash")
    if f.pii:
        s["x-pii"] = f.pii
    if notes:
        s["description"] = "; ".join(notes)
    return s


def _payload_schema(fields: Mapping[str, Field]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: _field_schema(f) for name, f in fields.items()},
        "required": [name for name, f in fields.items() if f.required],
    }


def json_schema(type_name: str, spec: Mapping[str, TypeSpec] = SPEC,
                families: Mapping[str, Family] = FAMILIES) -> dict[str, Any]:
    """The JSON Schema of one event type's wire form (every supported version)."""
    t = spec[type_name]
    fam = families[t.family]
    versions = sorted(v for v in t.versions if v >= t.min_version)
    props: dict[str, Any] = {
        "event_id": {**_ID, "description": "unique per event, kept on re-sends"},
        "type": {"const": type_name},
        "schema_version": {"type": "integer", "enum": versions},
    }
    for name in fam.entity_fields:
        props[name] = dict(_ID)
        if name == "indicator":
            props[name]["pattern"] = "^[^|]*$"
    props["event_time"] = {**_EPOCH_MS, "description": "when it happened, epoch ms"}
    props["producer_time"] = {**_EPOCH_MS, "description": "when it was sent, epoch ms"}
    props["source"] = {**_ID, "description": "producing system"}
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": f"urn:riskstream:event:{type_name}",
        "title": type_name,
        "description": f"{t.doc} ({t.family} family, topic {fam.topic}, keyed by {'|'.join(fam.entity_fields)}). "
        "Unknown extra fields are allowed and ignored.",
        "type": "object",
        "properties": props,
        "required": ["event_id", "type", "schema_version", *fam.entity_fields, "event_time", "producer_time",
                     "source", "payload"],
    }
    if len(versions) == 1:
        props["payload"] = _payload_schema(t.versions[versions[0]])
        return schema
    # One payload schema per version, chosen by schema_version (1.0 equals 1 in `const`, as in riskstream).
    props["payload"] = {"type": "object", "description": "the payload of the declared schema_version: "
                        + ", ".join(f"$defs/payload_v{v}" for v in versions)}
    schema["allOf"] = [
        {"if": {"properties": {"schema_version": {"const": v}}, "required": ["schema_version"]},
         "then": {"properties": {"payload": {"$ref": f"#/$defs/payload_v{v}"}}}}
        for v in versions
    ]
    schema["$defs"] = {f"payload_v{v}": _payload_schema(t.versions[v]) for v in versions}
    return schema


def render(schema: dict[str, Any]) -> bytes:
    """The exact bytes written to a schema file (stable: indented, key order as built, trailing newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n"


def write_schemas(directory: str | Path = SCHEMA_DIR, spec: Mapping[str, TypeSpec] = SPEC) -> list[Path]:
    """Write one `<type>.schema.json` per type into `directory`; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in sorted(spec):
        path = out / f"{name}.schema.json"
        path.write_bytes(render(json_schema(name, spec)))
        paths.append(path)
    return paths

