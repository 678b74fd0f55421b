"""Unit tests of parse_event: acceptance, every reason code, PII, families, schema evolution."""

from __future__ import annotations

import orjson
import pytest

from riskstream.core.contracts import (
    FAMILIES,
    REASONS,
    SPEC,
    Limits,
    Rejected,
    TypeSpec,
    Validator,
    encode_event,
    parse_event,
)
from riskstream.core.contracts.samples import EXAMPLE_ENTITY as ENTITY
from riskstream.core.contracts.samples import EXAMPLE_PAYLOADS as VALID_PAYLOADS
from riskstream.core.contracts.samples import example_event, example_pii_values
from riskstream.core.contracts.spec import number, string

NOW = 1_760_000_000_000
T = NOW - 60_000
PII_VALUES = example_pii_values()


def valid_event(type_name: str, **overrides) -> dict:
    ev = example_event(type_name, event_time=T)
    ev.update(overrides)
    return ev


PARSED_KEYS = {"event_id", "type", "schema_version", "family", "entity", "event_time", "producer_time", "source",
               "payload"}


def parse(ev_or_raw, ps, **kw):
    raw = ev_or_raw if isinstance(ev_or_raw, (bytes, str)) else encode_event(ev_or_raw)
    kw.setdefault("now_ms", NOW)
    return parse_event(raw, pseudonymizer=ps, **kw)


def test_every_type_has_a_valid_sample():
    assert set(VALID_PAYLOADS) == set(SPEC)


@pytest.mark.parametrize("type_name", sorted(SPEC))
def test_valid_event_of_every_type_parses(type_name, ps):
    out = parse(valid_event(type_name), ps)
    assert isinstance(out, dict), out
    assert set(out) == PARSED_KEYS
    fam = SPEC[type_name].family
    assert out["family"] == fam and out["type"] == type_name
    assert out["entity"] == ENTITY[fam]
    assert out["event_time"] == T and out["source"] == "core"
    # the family from the topic matches too
    assert isinstance(parse(valid_event(type_name), ps, family=fam), dict)


@pytest.mark.parametrize("type_name", sorted(SPEC))
def test_pii_never_in_output(type_name, ps):
    out = parse(valid_event(type_name), ps)
    dumped = orjson.dumps(out).decode()
    for value in PII_VALUES:
        assert value not in dumped
    fields = SPEC[type_name].versions[SPEC[type_name].newest]
    for name, f in fields.items():
        if f.pii:
            assert name not in out["payload"]
        if f.pii == "hash":
            assert out["payload"][f"{name}_hash"] == ps.pseudonym(VALID_PAYLOADS[type_name][name])


def test_unknown_fields_are_ignored_and_not_copied(ps):
    ev = valid_event("drawdown", email="jane@example.com")
    ev["payload"]["note"] = "free text with jane@example.com"
    out = parse(ev, ps)
    assert out["payload"] == {"amount": 250.5, "channel": "app"}
    assert "jane@example.com" not in orjson.dumps(out).decode()
    assert set(out) == PARSED_KEYS


def test_optional_null_is_treated_as_absent(ps):
    ev = valid_event("drawdown")
    ev["payload"]["channel"] = None
    assert parse(ev, ps)["payload"] == {"amount": 250.5}


def test_ints_accepted_for_numbers_bool_is_not_a_number(ps):
    ev = valid_event("drawdown")
    ev["payload"]["amount"] = 7
    assert parse(ev, ps)["payload"]["amount"] == 7
    ev["payload"]["amount"] = True
    assert parse(ev, ps).reason == "wrong_type"


def test_market_entity_is_indicator_and_segment(ps):
    out = parse(valid_event("sector_index", indicator="sector_index", segment="energy"), ps)
    assert out["entity"] == "sector_index|energy"


# --- one test per reason code ---------------------------------------------------------------------------------


def reason(ev_or_raw, ps, **kw):
    out = parse(ev_or_raw, ps, **kw)
    assert isinstance(out, Rejected), out
    assert out.reason in REASONS
    assert "ACC-000123" not in out.message
    return out


def test_oversized_checked_before_decoding(ps):
    r = reason(b"x" * 70_000, ps)  # not JSON either: size is checked first
    assert r.reason == "oversized"
    small = Limits(max_bytes=100)
    assert reason(valid_event("drawdown"), ps, limits=small).reason == "oversized"


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"{'a': 1}", b"NaN", b'{"a":1}garbage'])
def test_undecodable(raw, ps):
    assert reason(raw, ps).reason == "undecodable"


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"x"', b"null", b"true"])
def test_not_an_object(raw, ps):
    assert reason(raw, ps).reason == "not_an_object"


@pytest.mark.parametrize("field", ["event_id", "type", "schema_version", "account_id", "event_time",
                                   "producer_time", "source", "payload"])
def test_missing_envelope_field(field, ps):
    ev = valid_event("drawdown")
    del ev[field]
    r = reason(ev, ps)
    assert r.reason == "missing_field" and f"'{field}'" in r.message


def test_missing_payload_field(ps):
    ev = valid_event("purchase")
    del ev["payload"]["merchant_id"]
    r = reason(ev, ps)
    assert r.reason == "missing_field"
    assert "purchase v1" in r.message and "'merchant_id'" in r.message


@pytest.mark.parametrize("field,value", [("event_id", 5), ("schema_version", "1"), ("schema_version", True),
                                         ("schema_version", 1.5), ("event_time", 1.7e12 + 0.5),
                                         ("event_time", "1760000000000"),
                                         ("producer_time", None), ("account_id", 123), ("source", []),
                                         ("payload", [])])
def test_wrong_envelope_type(field, value, ps):
    r = reason(valid_event("drawdown", **{field: value}), ps)
    assert r.reason == "wrong_type" and f"'{field}'" in r.message


def test_wrong_payload_type(ps):
    ev = valid_event("payment_missed")
    ev["payload"]["days_past_due"] = 3.5  # int field: a float with a fraction is refused
    r = reason(ev, ps)
    assert r.reason == "wrong_type" and "'days_past_due'" in r.message and "integer" in r.message


def test_integral_floats_are_integers(ps):
    # JSON Schema (and JSON) do not tell 3.0 from 3: riskstream takes both and the parsed event holds the int.
    ev = valid_event("milestone_report", schema_version=1.0, event_time=float(T), producer_time=float(T))
    ev["payload"].update(planned_date=float(NOW), actual_date=-0.0)
    out = parse(ev, ps)
    assert out["schema_version"] == 1 and out["event_time"] == out["producer_time"] == T
    assert out["payload"]["planned_date"] == NOW and out["payload"]["actual_date"] == 0
    for k in ("schema_version", "event_time", "producer_time"):
        assert type(out[k]) is int
    assert type(out["payload"]["planned_date"]) is int and type(out["payload"]["actual_date"]) is int
    pm = valid_event("payment_missed")
    pm["payload"]["days_past_due"] = 3.0
    assert parse(encode_event(pm).replace(b"3.0", b"3E0"), ps)["payload"]["days_past_due"] == 3
    assert orjson.dumps(parse(pm, ps)) == orjson.dumps(parse(encode_event(pm).replace(b"3.0", b"3"), ps))


@pytest.mark.parametrize("type_name,field,value", [
    ("payment_missed", "days_past_due", 2**63), ("payment_missed", "days_past_due", 2**64 - 1),
    ("payment_missed", "days_past_due", 1e19), ("statement_issued", "due_date", 2**63),
    ("statement_issued", "due_date", 9.3e18), ("milestone_report", "actual_date", 2**64 - 1),
])
def test_integers_beyond_int64_are_out_of_range(type_name, field, value, ps):
    ev = valid_event(type_name)
    ev["payload"][field] = value
    r = reason(ev, ps)
    assert r.reason == "invalid_value" and f"'{field}'" in r.message and "64-bit" in r.message


@pytest.mark.parametrize("field", ["event_time", "producer_time", "schema_version"])
@pytest.mark.parametrize("value", [2**63, 2**64 - 1, 1e19])
def test_envelope_integers_beyond_int64_are_out_of_range(field, value, ps):
    assert reason(valid_event("drawdown", **{field: value}), ps).reason == "invalid_value"


@pytest.mark.parametrize("type_name,field,value", [
    ("drawdown", "amount", 0), ("drawdown", "amount", -5), ("account_opened", "product", "mortgage"),
    ("bureau_inquiry", "inquiry_kind", "medium"), ("milestone_report", "pct_complete", 101),
    ("milestone_report", "actual_date", -1), ("payment_missed", "days_past_due", -1),
])
def test_invalid_payload_value(type_name, field, value, ps):
    ev = valid_event(type_name)
    ev["payload"][field] = value
    r = reason(ev, ps)
    assert r.reason == "invalid_value" and f"'{field}'" in r.message
    assert str(value) not in r.message.split("expected")[0]


@pytest.mark.parametrize("field,value", [("event_id", ""), ("event_id", "e" * 129), ("account_id", ""),
                                         ("source", ""), ("event_time", -1)])
def test_invalid_envelope_value(field, value, ps):
    assert reason(valid_event("drawdown", **{field: value}), ps).reason == "invalid_value"


def test_indicator_with_separator_is_invalid(ps):
    assert reason(valid_event("rate_change", indicator="a|b"), ps).reason == "invalid_value"


def test_unknown_type(ps):
    r = reason(valid_event("drawdown", type="teleport"), ps)
    assert r.reason == "unknown_type" and "teleport" not in r.message


def test_type_from_another_family_names_its_topic(ps):
    r = reason(valid_event("drawdown"), ps, family="repayment")
    assert r.reason == "unknown_type"
    assert FAMILIES["behaviour"].topic in r.message


def test_bad_family_argument(ps):
    assert reason(valid_event("drawdown"), ps, family="nope").reason == "unknown_type"


def test_unsupported_version(ps):
    assert reason(valid_event("drawdown", schema_version=0), ps).reason == "unsupported_version"
    spec = dict(SPEC)
    spec["drawdown"] = SPEC["drawdown"]._replace(min_version=2)
    v = Validator(spec)
    out = v.parse(encode_event(valid_event("drawdown")), now_ms=NOW, pseudonymizer=ps)
    assert out.reason == "unsupported_version" and "v2" in out.message


def test_future_timestamp(ps):
    limits = Limits()
    assert reason(valid_event("drawdown", event_time=NOW + limits.max_future_skew_ms + 1), ps).reason == \
        "future_timestamp"
    r = reason(valid_event("drawdown", producer_time=NOW + limits.max_future_skew_ms + 1), ps)
    assert r.reason == "future_timestamp" and "producer_time" in r.message
    # within the skew is fine
    assert isinstance(parse(valid_event("drawdown", event_time=NOW + limits.max_future_skew_ms), ps), dict)


def test_stale_timestamp(ps):
    limits = Limits()
    assert reason(valid_event("drawdown", event_time=NOW - limits.max_event_age_ms - 1), ps).reason == \
        "stale_timestamp"
    assert isinstance(parse(valid_event("drawdown", event_time=NOW - limits.max_event_age_ms), ps), dict)


def test_stateful_reasons_are_in_the_list():
    for code in ("late", "unknown_account", "duplicate"):
        assert code in REASONS
    assert len(set(REASONS)) == len(REASONS) == 14


def test_messages_never_contain_values(ps):
    secret = "SECRET-VALUE-123"
    ev = valid_event("login")
    ev["payload"]["ip"] = 12345  # wrong type
    ev["account_id"] = "ACC-000123"
    r = reason(ev, ps)
    assert "12345" not in r.message
    ev = valid_event("contact_change")
    ev["payload"]["field"] = secret
    r = reason(ev, ps)
    assert secret not in r.message


# --- schema evolution -----------------------------------------------------------------------------------------


def v1_only_spec():
    spec = dict(SPEC)
    spec["drawdown"] = TypeSpec("behaviour", {1: SPEC["drawdown"].versions[1]})
    return spec


def test_v2_drawdown_with_currency(ps):
    out = parse(valid_event("drawdown", schema_version=2, payload={"amount": 10.0, "currency": "EUR"}), ps)
    assert out["schema_version"] == 2 and out["payload"] == {"amount": 10.0, "currency": "EUR"}
    ev = valid_event("drawdown", schema_version=2, payload={"amount": 10.0, "currency": 978})
    assert reason(ev, ps).reason == "wrong_type"


def test_newer_additive_version_accepted_by_older_code(ps):
    old = Validator(v1_only_spec())
    raw = encode_event(valid_event("drawdown", schema_version=2, payload={"amount": 10.0, "currency": "EUR"}))
    out = old.parse(raw, now_ms=NOW, pseudonymizer=ps)
    assert isinstance(out, dict)
    assert out["schema_version"] == 2
    assert out["payload"] == {"amount": 10.0}  # the field v1 does not know is ignored


def test_newer_breaking_version_rejected_clearly(ps):
    # A "v3" that renamed amount -> value: code knowing v1..v2 cannot read it.
    raw = encode_event(valid_event("drawdown", schema_version=3, payload={"value": 10.0}))
    r = reason(raw, ps)
    assert r.reason == "schema_incompatible"
    assert "drawdown v3" in r.message and "v2" in r.message and "'amount'" in r.message
    assert "number > 0" in r.message
    old = Validator(v1_only_spec())
    r = old.parse(raw, now_ms=NOW, pseudonymizer=ps)
    assert r.reason == "schema_incompatible" and "v1" in r.message


def test_breaking_type_change_in_newer_version(ps):
    spec = dict(SPEC)
    spec["purchase"] = TypeSpec("behaviour", {1: {"amount": number(gt=0), "merchant_id": string()}})
    raw = encode_event(valid_event("purchase", schema_version=5, payload={"amount": "19.99", "merchant_id": "m"}))
    r = Validator(spec).parse(raw, now_ms=NOW, pseudonymizer=ps)
    assert r.reason == "schema_incompatible" and "purchase v5" in r.message and "'amount'" in r.message


def test_version_gap_is_unsupported(ps):
    spec = dict(SPEC)
    spec["drawdown"] = TypeSpec("behaviour", {1: SPEC["drawdown"].versions[1], 3: SPEC["drawdown"].versions[2]})
    raw = encode_event(valid_event("drawdown", schema_version=2))
    assert Validator(spec).parse(raw, now_ms=NOW, pseudonymizer=ps).reason == "unsupported_version"


def test_never_raises_on_misuse(ps):
    assert isinstance(parse_event(None, now_ms=NOW, pseudonymizer=ps), Rejected)
    assert isinstance(parse_event(b"{}", now_ms=None, pseudonymizer=ps), Rejected)
    assert isinstance(parse_event(encode_event(valid_event("login")), now_ms=NOW, pseudonymizer=None), Rejected)
    assert isinstance(parse(valid_event("drawdown"), ps, family=["x"]), Rejected)


def test_str_input_is_accepted(ps):
    assert isinstance(parse(encode_event(valid_event("drawdown")).decode(), ps), dict)


def test_fast_path_agrees_with_reference(ps):
    v = Validator()
    for type_name in SPEC:
        raw = encode_event(valid_event(type_name))
        assert v.parse(raw, now_ms=NOW, pseudonymizer=ps) == v.parse_reference(raw, now_ms=NOW, pseudonymizer=ps)
