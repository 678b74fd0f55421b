"""JSON Schema (draft 2020-12) files for upstream producers, generated from `riskstream.core.contracts.spec`.

One file per type (`<type>.schema.json`) describing the wire form of its newest version; `schema_version` is an
enum of the versions this code accepts. The committed files are checked against this generator by a test, so the
files and the validator cannot drift.

>>> s = json_schema("drawdown")
>>> s["properties"]["schema_version"]["enum"], s["properties"]["payload"]["required"]
([1, 2], ['amount'])

"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import orjson

from riskstream.core.contracts.spec import FAMILIES, SPEC, Family, Field, TypeSpec
from riskstream.core.contracts.validator import MAX_ID_CHARS

__all__ = ["json_schema", "write_schemas", "SCHEMA_DIR"]

SCHEMA_DIR = Path(__file__).parent / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
_EPOCH_MS = {"type": "integer", "minimum": 0}


def _field_schema(f: Field) -> dict[str, Any]:
    if f.kind == "enum":
        s: dict[str, Any] = {"type": "string", "enum": list(f.choices)}
    else:
        s = {"type": {"str": "string", "number": "number", "int": "integer", "epoch_ms": "integer"}[f.kind]}
    if f.ge is not None:
        s["minimum"] = f.ge
    if f.gt is not None:
        s["exclusiveMinimum"] = f.gt
    if f.le is not None:
        s["maximum"] = f.le
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


def json_schema(type_name: str, spec: Mapping[str, TypeSpec] = SPEC,
                families: Mapping[str, Family] = FAMILIES) -> dict[str, Any]:
    """The JSON Schema of one event type's wire form (newest version)."""
    t = spec[type_name]
    fam = families[t.family]
    fields = t.versions[t.newest]
    props: dict[str, Any] = {
        "event_id": {**_ID, "description": "unique per event, kept on re-sends"},
        "type": {"const": type_name},
        "schema_version": {"type": "integer", "enum": sorted(v for v in t.versions if v >= t.min_version)},
    }
    for name in fam.entity_fields:
        props[name] = dict(_ID)
        if name == "indicator":
            props[name]["pattern"] = "^[^|]*$"
    props["event_time"] = {**_EPOCH_MS, "description": "when it happened, epoch ms"}
    props["producer_time"] = {**_EPOCH_MS, "description": "when it was sent, epoch ms"}
    props["source"] = {**_ID, "description": "producing system"}
    props["payload"] = {
        "type": "object",
        "properties": {name: _field_schema(f) for name, f in fields.items()},
        "required": [name for name, f in fields.items() if f.required],
    }
    return {
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

