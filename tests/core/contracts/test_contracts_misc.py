"""Dead letters, wire helpers, JSON Schema files, the spec itself, and the doctests of the contracts package."""

from __future__ import annotations

import doctest
import importlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.contracts import (
    FAMILIES,
    SPEC,
    Rejected,
    dead_letter,
    encode_event,
    json_schema,
    make_event,
    parse_event,
    read_dead_letter,
    write_schemas,
)
from riskstream.core.contracts.jsonschema import SCHEMA_DIR

NOW = 1_760_000_000_000


# --- dead letters -----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2000), offset=st.integers(min_value=0, max_value=2**62))
def test_dead_letter_round_trip(raw, offset, ps):
    rejected = parse_event(raw, now_ms=NOW, pseudonymizer=ps)
    if not isinstance(rejected, Rejected):
        return
    rec = dead_letter(raw, topic="riskstream.events.behaviour", partition=3, offset=offset, rejected=rejected,
                      at_ms=NOW)
    back = read_dead_letter(rec)
    assert back["original"] == raw
    assert back["reason"] == rejected.reason and back["message"] == rejected.message
    assert (back["source_topic"], back["source_partition"], back["source_offset"], back["at"]) == \
        ("riskstream.events.behaviour", 3, offset, NOW)
    assert back["original_size"] == len(raw) and back["original_truncated"] is False


def test_dead_letter_truncates_huge_originals():
    raw = b"x" * 1000
    rec = dead_letter(raw, topic="t", partition=0, offset=1, rejected=Rejected("oversized", "too big"), at_ms=1,
                      max_original_bytes=100)
    back = read_dead_letter(rec)
    assert back["original"] == raw[:100] and back["original_truncated"] and back["original_size"] == 1000


# --- wire -------------------------------------------------------------------------------------------------------


def test_make_event_is_deterministic_and_valid(ps):
    a = make_event("purchase", "A1", {"amount": 5, "merchant_id": "m"}, event_time=NOW)
    b = make_event("purchase", "A1", {"amount": 5, "merchant_id": "m"}, event_time=NOW)
    c = make_event("purchase", "A1", {"amount": 6, "merchant_id": "m"}, event_time=NOW)
    assert a == b and a["event_id"] != c["event_id"]
    out = parse_event(encode_event(a), now_ms=NOW, pseudonymizer=ps, family="behaviour")
    assert out["entity"] == "A1" and out["producer_time"] == NOW


def test_make_event_entities(ps):
    ev = make_event("covenant_test", "F9", {"covenant": "dscr_min", "value": 1, "threshold": 1.2,
                                            "direction": "min"}, event_time=NOW, event_id="e-1")
    assert ev["facility_id"] == "F9" and ev["event_id"] == "e-1"
    with pytest.raises(ValueError, match="indicator\\|segment"):
        make_event("rate_change", "no-separator", {"value": 1}, event_time=NOW)
    with pytest.raises(ValueError, match="unknown event type"):
        make_event("teleport", "A1", {}, event_time=NOW)


# --- JSON Schema ------------------------------------------------------------------------------------------------


def test_committed_schema_files_match_the_generator(tmp_path):
    written = {p.name: p.read_bytes() for p in write_schemas(tmp_path)}
    committed = {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == written, (
        "riskstream/core/contracts/schemas/ is out of date: regenerate with "
        "`python -c 'from riskstream.core.contracts import write_schemas; write_schemas()'` and commit"
    )
    assert len(written) == len(SPEC)


@pytest.mark.parametrize("type_name", sorted(SPEC))
def test_schema_shape(type_name):
    s = json_schema(type_name)
    t = SPEC[type_name]
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["properties"]["schema_version"]["enum"] == sorted(v for v in t.versions if v >= t.min_version)
    for f in FAMILIES[t.family].entity_fields:
        assert f in s["required"]
    versions = sorted(v for v in t.versions if v >= t.min_version)
    if len(versions) == 1:  # inline; else one payload schema per version, chosen by schema_version
        payloads = {versions[0]: s["properties"]["payload"]}
    else:
        payloads = {v: s["$defs"][f"payload_v{v}"] for v in versions}
        assert [c["if"]["properties"]["schema_version"]["const"] for c in s["allOf"]] == versions
    for v, payload in payloads.items():
        fields = t.versions[v]
        assert set(payload["properties"]) == set(fields)
        assert payload["required"] == [n for n, f in fields.items() if f.required]
        for n, f in fields.items():
            if f.pii:
                assert payload["properties"][n]["x-pii"] == f.pii
            if f.kind in ("int", "epoch_ms"):
                prop = payload["properties"][n]
                assert prop["maximum"] <= 2**63 - 1 and prop["minimum"] >= -(2**63)


# --- spec -------------------------------------------------------------------------------------------------------


def test_spec_is_consistent():
    assert len(SPEC) == 23
    assert sorted(SPEC["drawdown"].versions) == [1, 2]
    assert not SPEC["drawdown"].versions[2]["currency"].required
    for name, t in SPEC.items():
        assert t.family in FAMILIES
        for fields in t.versions.values():
            for fname, f in fields.items():
                assert f.pii in (None, "drop", "hash")
                assert f.kind in ("str", "number", "int", "epoch_ms", "enum")
                if f.pii:
                    assert f.kind == "str"


# --- doctests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["riskstream.core.contracts", "riskstream.core.contracts.spec",
                                    "riskstream.core.contracts.reasons", "riskstream.core.contracts.validator",
                                    "riskstream.core.contracts.wire", "riskstream.core.contracts.deadletter",
                                    "riskstream.core.contracts.jsonschema", "riskstream.core.contracts.samples",
                                    "riskstream.core.privacy"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_encode_event_is_orjson():
    ev = make_event("limit_check", "A1", {}, event_time=1)
    assert orjson.loads(encode_event(ev)) == ev


def test_docs_list_every_reason():
    from pathlib import Path

    from riskstream.core.contracts import REASONS

    text = (Path(__file__).parents[3] / "docs" / "contracts.md").read_text()
    for code in REASONS:
        assert f"| `{code}` |" in text
