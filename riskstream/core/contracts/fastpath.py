"""The validator's accept-only fast path: msgspec decodes a record and checks its types, bounds and enums in C in
one pass, into structs generated from the spec; generated Python then checks what depends on `now` and builds
the output.

It must never accept what the reference path (`orjson.loads`, then field-by-field checks) refuses or reads
differently, so the structs are stricter than the contract and whatever they refuse goes to the reference path:

- unknown keys are refused (`forbid_unknown_fields`): msgspec skips unknown values without checking them fully
  (invalid UTF-8, numbers that orjson reads as infinity), so a record with extras might not decode with orjson;
- integers must fit an int64 (orjson reads larger integers as floats);
- an integral float in an int field (`3.0`, which the reference path turns into the int 3) is refused: msgspec's
  strict `int` takes only JSON integers;
- a duplicate key must be valid each time it occurs (msgspec checks each occurrence, orjson keeps the last);
- input must be `bytes` (msgspec also reads other buffers, which orjson refuses);
- versions newer than the newest known are left to the reference path.

>>> from riskstream.core.contracts import SPEC, FAMILIES, Limits
>>> parse = build_parse(SPEC, FAMILIES, lambda raw, **kw: "reference", Limits(), 128)
>>> parse(b'{"type":"sector_index","event_id":"e","schema_version":1,"indicator":"oil","segment":"eu",'
...       b'"event_time":5,"producer_time":5,"source":"s","payload":{"value":1.5}}',
...       now_ms=10, pseudonymizer=None)["entity"]
'oil|eu'
>>> parse(b'{"type":"sector_index"}', now_ms=10, pseudonymizer=None)
'reference'

"""

from __future__ import annotations

import math
from typing import Annotated, Callable, Literal, Mapping, Optional, Union

import msgspec
from msgspec import UNSET, Meta

from riskstream.core.contracts.spec import I64_MAX, I64_MIN, Family, Field, TypeSpec

__all__ = ["build_parse"]

_I64 = (I64_MIN, I64_MAX)
_EPOCH = Annotated[int, Meta(ge=0, le=_I64[1])]


def _int_type(f: Field):
    # Bounded to an int64 (msgspec cannot bound beyond it): orjson reads integers beyond 64 bits as floats, and
    # the reference path decides about those.
    ge, le = _I64
    if f.ge is not None:
        ge = max(ge, math.ceil(f.ge))
    if f.gt is not None:
        ge = max(ge, math.floor(f.gt) + 1)
    if f.le is not None:
        le = min(le, math.floor(f.le))
    return Annotated[int, Meta(ge=ge, le=le)]


def _value_type(f: Field):
    """The msgspec type of one payload field, without nullability."""
    if f.kind == "str":
        return str
    if f.kind == "enum":
        return Literal[f.choices]
    if f.kind in ("int", "epoch_ms"):
        return _int_type(f)
    if f.kind == "number":
        # Not `float`: msgspec would turn ints into floats, and the reference path keeps them as ints.
        bounds = {k: v for k, v in (("ge", f.ge), ("gt", f.gt), ("le", f.le)) if v is not None}
        return Union[_int_type(f), Annotated[float, Meta(**bounds)] if bounds else float]
    raise ValueError(f"unknown field kind {f.kind!r}")


def _same(a: Field, b: Field) -> bool:
    return a._replace(doc="") == b._replace(doc="")


def _covered(t: TypeSpec) -> tuple[list[int], dict[str, Field]]:
    """The supported versions one payload struct can serve (newest first) and the union of their fields.

    A version whose field redefines a field of a newer version is left to the reference path."""
    union: dict[str, Field] = {}
    versions = []
    for v in sorted((v for v in t.versions if v >= t.min_version), reverse=True):
        fields = t.versions[v]
        if all(n not in union or _same(union[n], f) for n, f in fields.items()):
            versions.append(v)
            for n, f in fields.items():
                union.setdefault(n, f)
    return versions, union


def _payload_struct(type_name: str, versions: list[int], t: TypeSpec, union: Mapping[str, Field]):
    """A struct of the union of the payload fields, the attribute name of each field and the required ones."""
    attrs = {name: f"f{i}" for i, name in enumerate(union)}  # spec names need not be identifiers
    required, optional = [], []
    for name, f in union.items():
        typ = _value_type(f)
        if f.nullable:
            typ = Optional[typ]
        if f.required and all(name in t.versions[v] for v in versions):
            required.append((attrs[name], typ))
        else:
            # Absent and null both mean "not given", except for a required nullable field, which keeps null.
            optional.append((attrs[name], Optional[typ], UNSET if f.required and f.nullable else None))
    struct = msgspec.defstruct(f"{type_name}_payload", required + optional, rename={a: n for n, a in attrs.items()},
                               forbid_unknown_fields=True, gc=False)
    return struct, attrs, {a for a, _ in required}


def _entity_fields(family: Family) -> tuple[str, ...]:
    # As the reference path reads them: one id field, or an indicator and a segment.
    return family.entity_fields if len(family.entity_fields) == 1 else ("indicator", "segment")


def _event_struct(type_name: str, t: TypeSpec, family: Family, max_id_chars: int):
    """The struct of one type's records, the versions it covers, its payload field attributes and required ones."""
    versions, union = _covered(t)
    payload, attrs, required = _payload_struct(type_name, versions, t, union)
    ident = Annotated[str, Meta(min_length=1, max_length=max_id_chars)]
    wire = _entity_fields(family)
    entity = [f"e{i}" for i in range(len(wire))]  # attribute names, renamed to the wire names
    struct = msgspec.defstruct(
        f"{type_name}_event",
        [("event_id", ident), ("schema_version", Literal[tuple(versions)]), *((e, ident) for e in entity),
         ("event_time", _EPOCH), ("producer_time", _EPOCH), ("source", ident), ("payload", payload)],
        rename=dict(zip(entity, wire)), tag_field="type", tag=type_name, forbid_unknown_fields=True, gc=False,
    )
    return struct, versions, attrs, required


def _gen_branch(type_name: str, t: TypeSpec, family: Family, versions, attrs, required) -> list[str]:
    """Lines that, for a decoded struct `s` of this type, return the output or fall through to the reference path."""
    conds = [f"(family is None or family == {t.family!r})", "lo <= et <= hi", "pt <= hi"]
    if len(_entity_fields(family)) == 1:
        entity = "s.e0"
    else:
        conds.append("'|' not in s.e0")
        entity = "s.e0 + '|' + s.e1"
    lines = ["et = s.event_time; pt = s.producer_time", f"if {' and '.join(conds)}:", "    p = s.payload"]
    envelope = (f"{{'event_id': s.event_id, 'type': {type_name!r}, 'schema_version': s.schema_version, "
                f"'family': {t.family!r}, 'entity': {entity}, 'event_time': et, 'producer_time': pt, "
                "'source': s.source, 'payload': o}")
    for n, v in enumerate(versions):
        body = _gen_payload(t.versions[v], attrs, required, f"return {envelope}")
        if len(versions) == 1:
            lines.extend("    " + line for line in body)
        else:
            # The struct admits only the covered versions: the last one needs no test.
            test = "else:" if n == len(versions) - 1 else f"{'if' if n == 0 else 'elif'} s.schema_version == {v}:"
            lines.append("    " + test)
            lines.extend("        " + line for line in body)
    return lines


def output_field(name: str, f: Field, value: str, pseudonymizer: str) -> tuple[str, str]:
    """Output key and value expression of a kept field (both generated paths): hashed PII becomes `<name>_hash`."""
    return (f"{name}_hash", f"{pseudonymizer}.pseudonym({value})") if f.pii == "hash" else (name, value)


def _gen_payload(fields: Mapping[str, Field], attrs: Mapping[str, str], required: set[str], ret: str) -> list[str]:
    """Lines that build `o`, the output payload of one version, from the payload struct `p`, then `ret`.

    Same keys in the same order as the reference checker: required fields first, then the given optional ones."""
    conds, literal, optional = [], [], []
    for name, f in fields.items():
        a = attrs[name]
        if f.required and a not in required:
            # The union struct made it optional (another version lacks it): this version needs it.
            conds.append(f"p.{a} is not {'UNSET' if f.nullable else 'None'}")
        if f.pii == "drop":
            continue
        key, value = output_field(name, f, f"p.{a}", "pseudonymizer")
        if f.required:
            literal.append(f"{key!r}: {value}")
        else:
            optional.append(f"if p.{a} is not None: o[{key!r}] = {value}")
    lines = ["o = {" + ", ".join(literal) + "}", *optional, ret]
    if conds:
        return [f"if {' and '.join(conds)}:", *("    " + line for line in lines)]
    return lines


def build_parse(spec: Mapping[str, TypeSpec], families: Mapping[str, Family], reference: Callable, default_limits,
                max_id_chars: int):
    """`parse(raw, *, now_ms, pseudonymizer, limits, family)`: the fast path, falling back to `reference`.

    One generated function with a branch per type: a call per event, or attribute loads that see many struct
    classes, would cost more than the chain of class tests."""
    consts: dict[str, object] = {"UNSET": UNSET, "reference": reference, "DEFAULT": default_limits,
                                 "MAX_BYTES": default_limits.max_bytes, "AGE": default_limits.max_event_age_ms,
                                 "SKEW": default_limits.max_future_skew_ms}
    structs, branches = [], []
    for i, (name, t) in enumerate(spec.items()):
        family = families[t.family]
        struct, versions, attrs, required = _event_struct(name, t, family, max_id_chars)
        structs.append(struct)
        consts[f"C{i}"] = struct
        branches.append(f"{'if' if i == 0 else 'elif'} t is C{i}:")
        branches.extend("    " + line for line in _gen_branch(name, t, family, versions, attrs, required))
    consts["decode"] = msgspec.json.Decoder(Union[tuple(structs)]).decode if structs else None
    lines = [
        "def parse(raw, *, now_ms, pseudonymizer, limits=DEFAULT, family=None):",
        "    try:",
        "        if limits is DEFAULT:",
        "            max_bytes, lo, hi = MAX_BYTES, now_ms - AGE, now_ms + SKEW",
        "        else:",
        "            max_bytes = limits.max_bytes",
        "            lo, hi = now_ms - limits.max_event_age_ms, now_ms + limits.max_future_skew_ms",
        # Only bytes: msgspec also decodes other buffers (array, mmap) that orjson refuses.
        "        if type(raw) is bytes and len(raw) <= max_bytes:",
        "            s = decode(raw)",
        "            t = type(s)",
        *("            " + line for line in branches),
        "    except Exception:  # anything unusual is diagnosed by the reference path",
        "        pass",
        "    return reference(raw, now_ms=now_ms, pseudonymizer=pseudonymizer, limits=limits, family=family)",
    ]
    src = "\n".join(lines)
    exec(compile(src, "<fast path>", "exec"), consts)  # noqa: S102 - source built from our own spec
    parse = consts["parse"]
    parse.__doc__ = src
    return parse
