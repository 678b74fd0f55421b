"""Audit hash chain: clean files verify; any single changed byte is caught and its record named."""

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.audit import AuditLog, register, verify


def write_log(path, n=6):
    with AuditLog(path) as log:
        for i in range(n):
            log.append(["decision", "command", "override", "policy_change", "breaker"][i % 5],
                       {"i": i, "account_id": f"a{i}", "note": "café ✓", "x": 1e-5, "ok": True}, time_ms=1000 + i)
    return path.read_bytes()


def test_clean_and_continue(tmp_path):
    p = tmp_path / "audit.jsonl"
    write_log(p, 4)
    assert verify(p) == (True, 4, None, "ok 4 records")
    with AuditLog(p) as log:  # reopening continues the chain
        rec = log.append("breaker", {"event": "reset"})
    assert rec["seq"] == 5
    assert verify(p)[:2] == (True, 5)


def test_empty_and_missing(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"")
    assert verify(p) == (True, 0, None, "ok 0 records")
    assert verify(tmp_path / "nope.jsonl")[0] is False


def test_unknown_kind(tmp_path):
    with AuditLog(tmp_path / "a.jsonl") as log, pytest.raises(ValueError):
        log.append("gossip", {})


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_one_byte_change_is_caught_and_named(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    raw = write_log(p)
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    changed = bytearray(raw)
    changed[pos] = new
    p.write_bytes(bytes(changed))
    ok, n, bad, msg = verify(p)
    expected = raw[:pos].count(b"\n") + 1  # the record (line) holding the changed byte
    assert not ok
    assert bad == expected, (pos, new, msg)
    assert f"record {expected}" in msg


def test_removed_record_is_caught(tmp_path):
    p = tmp_path / "audit.jsonl"
    lines = write_log(p).splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:2] + lines[3:]))
    ok, n, bad, msg = verify(p)
    assert not ok and bad == 3


def test_refuses_to_extend_broken_chain(tmp_path):
    p = tmp_path / "audit.jsonl"
    raw = bytearray(write_log(p))
    raw[30] ^= 0x01
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="record 1"):
        AuditLog(p)


def _cli(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli(tmp_path, capsys):
    p = tmp_path / "audit.jsonl"
    raw = bytearray(write_log(p))
    assert _cli(["audit", "verify", str(p)]) == 0
    assert capsys.readouterr().out.strip() == "ok 6 records"
    second = raw.index(b"\n") + 20
    raw[second] = ord("Z") if raw[second] != ord("Z") else ord("Y")
    p.write_bytes(bytes(raw))
    assert _cli(["audit", "verify", str(p)]) == 1
    assert "record 2" in capsys.readouterr().err
