"""The msgspec fast path: it accepts the common case by itself, and wherever msgspec and orjson could read a record
differently (duplicate keys, bools, big numbers, bad UTF-8, deep nesting, odd number spellings) `parse` gives
exactly the reference path's answer."""

from __future__ import annotations

import array

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskstream.core.contracts import DEFAULT_LIMITS, FAMILIES, SPEC, Limits, Validator, encode_event
from riskstream.core.contracts.fastpath import build_parse
from riskstream.core.contracts.samples import example_event
from riskstream.core.contracts.validator import MAX_ID_CHARS

NOW = 1_760_000_000_000
T = NOW - 60_000
V = Validator()
TAKEN = object()
FAST_ONLY = build_parse(SPEC, FAMILIES, lambda raw, **kw: TAKEN, DEFAULT_LIMITS, MAX_ID_CHARS)


def same(raw, ps, **kw):
    """`parse` agrees with `parse_reference`, down to key order and int-versus-float; returns the result."""
    kw.setdefault("now_ms", NOW)
    out = V.parse(raw, pseudonymizer=ps, **kw)
    ref = V.parse_reference(raw, pseudonymizer=ps, **kw)
    assert out == ref
    if type(ref) is dict:
        assert orjson.dumps(out) == orjson.dumps(ref)
    return out


def fast(raw, ps, **kw):
    """The fast path's own result, or None when it leaves the record to the reference path."""
    out = FAST_ONLY(raw, now_ms=NOW, pseudonymizer=ps, **kw)
    return None if out is TAKEN else out


def event(type_name: str = "drawdown", **overrides) -> dict:
    return example_event(type_name, event_time=T, **overrides)


def wire(payload: str, type_name: str = "drawdown", extra: str = "", version: int = 1) -> bytes:
    """A hand-written record (for what orjson.dumps cannot write: duplicate keys, odd numbers, raw bytes)."""
    return (f'{{"event_id":"e1","type":"{type_name}","schema_version":{version},"account_id":"A1",'
            f'"event_time":{T},"producer_time":{T},"source":"core",{extra}"payload":{payload}}}').encode()


# --- the fast path does the common case itself -------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(SPEC))
def test_fast_path_accepts_every_valid_example(type_name, ps):
    raw = encode_event(event(type_name))
    out = fast(raw, ps)
    assert type(out) is dict, "the fast path left a valid record to the reference path"
    assert orjson.dumps(out) == orjson.dumps(V.parse_reference(raw, now_ms=NOW, pseudonymizer=ps))


@pytest.mark.parametrize("payload", [
    {"amount": 5},
    {"amount": 5.5, "channel": "app"},
    {"amount": 5, "channel": None},
    {"channel": "app", "amount": 7},
    {"amount": 5, "currency": "EUR"},
    {"amount": 5, "currency": 978},
])
@pytest.mark.parametrize("version", [1, 2])
def test_versions_of_drawdown(payload, version, ps):
    raw = encode_event(event(schema_version=version, payload=payload))
    out = same(raw, ps)
    if "currency" in payload and version == 1:
        assert "currency" not in out["payload"]  # v1 has no such field: the extra is dropped
    if payload.get("currency") != 978:
        assert fast(raw, ps) is not None


def test_newer_version_is_left_to_the_reference_path(ps):
    raw = encode_event(event(schema_version=3, payload={"amount": 5, "currency": "EUR", "fee": 1}))
    assert fast(raw, ps) is None
    assert same(raw, ps)["payload"] == {"amount": 5, "currency": "EUR"}


def test_nullable_field_keeps_null_and_optional_null_is_absent(ps):
    out = same(encode_event(event("milestone_report")), ps)
    assert out["payload"]["actual_date"] is None
    ev = event("payment_received")
    ev["payload"]["statement_id"] = None
    assert "statement_id" not in same(encode_event(ev), ps)["payload"]


def test_family_and_time_window(ps):
    raw = encode_event(event())
    for family in ("behaviour", "repayment", "nope", ["x"], None):
        same(raw, ps, family=family)
    for now in (T - 1, T, T - DEFAULT_LIMITS.max_future_skew_ms, T + DEFAULT_LIMITS.max_event_age_ms,
                T + DEFAULT_LIMITS.max_event_age_ms + 1, 0, -5):
        same(raw, ps, now_ms=now)
    same(encode_event(event(producer_time=NOW + DEFAULT_LIMITS.max_future_skew_ms + 1)), ps)


# --- where msgspec and orjson could differ ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    wire('{"amount":-1,"channel":"app","amount":5}'),
    wire('{"amount":5,"channel":"app","amount":-1}'),
    wire('{"amount":5,"channel":"app","channel":null}'),
    wire('{"amount":5,"channel":null,"channel":"web"}'),
    wire('{"amount":5,"channel":7,"channel":"web"}'),
    wire('{"amount":5}', extra='"event_id":"e2",'),
    wire('{"amount":5}', extra='"event_time":-1,'),
    wire('{"amount":5}', extra='"type":"purchase",'),
    wire('{"amount":5}', extra='"type":"drawdown",'),
    wire('{"amount":5}', extra='"payload":{"amount":-5},'),
    wire('{"amount":-5}', extra='"payload":{"amount":5},'),
    wire('{"amount":5}', extra='"schema_version":2,"payload":{"amount":5,"currency":"EUR"},'),
], ids=lambda raw: raw.decode()[-70:])
def test_duplicate_keys_mean_the_last_one_as_in_the_reference(raw, ps):
    same(raw, ps)


def test_duplicate_key_last_valid_value_wins(ps):
    out = same(wire('{"amount":-1,"amount":5}'), ps)
    assert out["payload"] == {"amount": 5}
    assert same(wire('{"amount":5,"amount":-1}'), ps).reason == "invalid_value"


@pytest.mark.parametrize("raw", [
    wire('{"amount":true}'),
    wire('{"amount":false}'),
    wire('{"amount":5}', version="true"),
    wire('{"amount":5}').replace(f'"event_time":{T}'.encode(), b'"event_time":true'),
    wire('{"statement_id":"s","days_past_due":true,"amount_due":1}', type_name="payment_missed"),
])
def test_bool_is_never_a_number(raw, ps):
    assert same(raw, ps).reason == "wrong_type"


BIG = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, -(2**63), -(2**63) - 1, -(10**30)]


@pytest.mark.parametrize("n", BIG)
def test_big_integers(n, ps):
    same(wire(f'{{"value":{n}}}', type_name="macro_indicator").replace(b'"account_id":"A1"',
                                                                        b'"indicator":"i","segment":"s"'), ps)
    same(wire(f'{{"statement_id":"s","days_past_due":{n},"amount_due":{n}}}', type_name="payment_missed"), ps)
    same(wire('{"amount":5}', extra=f'"x":{n},'), ps)
    same(wire('{"amount":5}').replace(f'"event_time":{T}'.encode(), f'"event_time":{n}'.encode()), ps)
    same(wire('{"amount":5}'), ps, now_ms=n)


@pytest.mark.parametrize("token", [
    "1e400", "-1e400", "1" + "0" * 400, "1e-400", "-0.0", "-0", "1E2", "0.1e1", "5e0", "50E-1", "1.0",
    "123456789012345678901234567890.5", "0.30000000000000004", "2.2250738585072014e-308", "4.9e-324",
])
def test_number_spellings(token, ps):
    same(wire(f'{{"amount":{token}}}'), ps)
    same(wire('{"amount":5}', extra=f'"x":{token},'), ps)
    same(wire(f'{{"amount":5,"x":[{token}]}}'), ps)
    # int fields: an integral float is the integer (reference path), anything else is refused
    same(wire(f'{{"statement_id":"s","days_past_due":{token},"amount_due":1}}', type_name="payment_missed"), ps)
    for spelling in (token, f"{T}.0", f"{T}E0", f"{T}.5"):
        same(wire('{"amount":5}', version=spelling if spelling == token else 1)
             .replace(f'"event_time":{T}'.encode(), f'"event_time":{spelling}'.encode()), ps)


@pytest.mark.parametrize("text", [
    b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\\ud800", b"\\udc00x", b"\\ud83d\\ude00",
    b"\\u00e9", "é".encode(), b"\\u0000", b"\\/", b"\x7f", b"\x1f",
])
def test_strings_and_utf8(text, ps):
    same(wire('{"amount":5,"channel":"@@"}').replace(b"@@", text), ps)
    same(wire('{"amount":5}', extra='"x":"@@",').replace(b"@@", text), ps)
    same(wire('{"amount":5}', extra='"@@":1,').replace(b"@@", text), ps)
    same(wire('{"amount":5,"@@":1}').replace(b"@@", text), ps)
    same(wire('{"amount":5}').replace(b'"e1"', b'"e' + text + b'"'), ps)


def test_ids_are_counted_in_characters(ps):
    for n in (127, 128, 129):
        for ch in ("a", "é", "\U0001F4A9"):
            same(encode_event(event(event_id=ch * n)), ps)
            same(encode_event(event(source=ch * n)), ps)
    same(encode_event(event("rate_change", indicator="a|b")), ps)
    same(encode_event(event("rate_change", segment="a|b")), ps)
    same(encode_event(event(event_id="")), ps)


@pytest.mark.parametrize("depth", [10, 500, 1023, 1024, 1100, 3000])
def test_deep_nesting_in_an_ignored_field(depth, ps):
    same(wire('{"amount":5}', extra='"x":' + "[" * depth + "]" * depth + ","), ps)
    same(wire('{"amount":5,"x":' + '{"a":' * depth + "1" + "}" * depth + "}"), ps)


@pytest.mark.parametrize("text", [
    b" \n\t\r", b"\x0c", b"\x0b", b"\xc2\xa0", b"\xef\xbb\xbf", b"\x00",
])
def test_whitespace(text, ps):
    raw = wire('{"amount":5}')
    same(text + raw, ps)
    same(raw + text, ps)
    same(raw.replace(b",", b"," + text), ps)
    same(orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2), ps)


def test_other_input_types(ps):
    raw = encode_event(event())
    for value in (raw, bytearray(raw), memoryview(raw), raw.decode(), array.array("B", raw), raw + b"x",
                  raw[:-1], None, 5, [raw]):
        same(value, ps)


def test_unknown_keys_are_ignored_like_the_reference(ps):
    ev = event(extra="x", note={"deep": [1, 2.5, None]})
    ev["payload"]["f0"] = 1  # the fast path's internal attribute name is not a wire name
    out = same(encode_event(ev), ps)
    assert out["payload"] == {"amount": 250.5, "channel": "app"}


def test_limits_other_than_the_default(ps):
    raw = encode_event(event())
    for limits in (Limits(max_bytes=len(raw) - 1), Limits(max_bytes=len(raw)), Limits(max_future_skew_ms=0),
                   Limits(max_event_age_ms=59_999), Limits(max_event_age_ms=60_000)):
        same(raw, ps, limits=limits)


# --- differential: the same events spelled many ways ------------------------------------------------------------

JUNK = [b"1e400", b"-1e400", b"1" + b"0" * 400, b"18446744073709551616", b"9223372036854775808", b'"\\ud800"',
        b'"\xff"', b'"\xed\xa0\x80"', b"[" * 1100 + b"]" * 1100, b"true", b"null", b"{}", b'"\\u0000"', b"-0",
        b"1E+2", b"0.0000001e-400", b"[1,{\"a\":[]}]", b'"a|b"']


def _number(draw, v) -> bytes:
    if type(v) is int:
        forms = [str(v), f"{v}.0", f"{v}e0", f"{v}0E-1", f"{v}E+0"] if -(10**20) < v < 10**20 else [str(v)]
    else:
        forms = [repr(v), f"{v:.17g}", f"{v:e}", f"{v:.3E}", f"{v * 10:.17g}e-1"]
    return draw(st.sampled_from(forms)).replace("inf", "1e999").replace("nan", "0").encode()


def _string(draw, s: str) -> bytes:
    out = []
    for ch in s:
        how = draw(st.sampled_from(["raw", "raw", "raw", "u", "slash"]))
        if ch in '"\\' or ord(ch) < 0x20 or how == "u":
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
            else:
                out.append("\\u%04X" % code)
        elif how == "slash" and ch == "/":
            out.append("\\/")
        else:
            out.append(ch)
    return ('"' + "".join(out) + '"').encode("utf-8", "surrogatepass")


def _write(draw, value) -> bytes:
    ws = draw(st.sampled_from([b"", b"", b" ", b"\n  ", b"\t"]))
    if value is None or type(value) is bool:
        return orjson.dumps(value)
    if type(value) in (int, float):
        return _number(draw, value)
    if type(value) is str:
        return _string(draw, value)
    if type(value) is list:
        return b"[" + b",".join(_write(draw, v) for v in value) + b"]"
    items = [(_string(draw, k), _write(draw, v)) for k, v in value.items()]
    if items and draw(st.booleans()):
        items = draw(st.permutations(items))
    if items and draw(st.integers(0, 4)) == 0:  # an earlier duplicate of a key, with junk or another value
        k, _ = draw(st.sampled_from(items))
        items.insert(0, (k, draw(st.sampled_from(JUNK + [b"5", b"-5", b'"x"', b"null", b"1.5"]))))
    if draw(st.integers(0, 4)) == 0:  # an unknown key
        items.append((_string(draw, draw(st.text(max_size=6))), draw(st.sampled_from(JUNK))))
    return b"{" + b",".join(k + ws + b":" + ws + v for k, v in items) + ws + b"}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(type_name=st.sampled_from(sorted(SPEC)), version=st.sampled_from([1, 1, 1, 2, 3]), data=st.data())
def test_differential_spellings(type_name, version, data, ps):
    ev = event(type_name, schema_version=version)
    if type_name == "drawdown" and data.draw(st.booleans()):
        ev["payload"]["currency"] = data.draw(st.sampled_from(["EUR", None, 978]))
    draw = data.draw
    same(_write(draw, ev), ps, family=draw(st.sampled_from([None, SPEC[type_name].family, "market"])))
