"""Signed control messages: only a message every signature of which verifies passes; maker-checker for policies."""

import doctest
import json
import os
import subprocess
import sys

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from riskstream.core import signing
from riskstream.core.audit import AuditLog, verify as verify_audit
from riskstream.core.steps import PipelineConfig, route_control

RING = signing.Keyring({"alice": b"alice-secret-0123456789", "bob": b"bob-secret-0123456789"})
ALICE = signing.Signer("alice", RING.keys["alice"])
BOB = signing.Signer("bob", RING.keys["bob"])
POLICY = (signing.__file__.rsplit("/core/", 1)[0] + "/data/policies/default.yaml")


def test_doctests():
    assert doctest.testmod(signing).failed == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)
messages = st.fixed_dictionaries({"kind": st.sampled_from(["breaker_reset", "legal_hold", "manual", "policy"]),
                                  "control_id": st.text(min_size=1, max_size=8)},
                                 optional={"account_id": st.text(max_size=8), "how": st.text(max_size=6),
                                           "extra": json_values})


@settings(max_examples=300, deadline=None)
@given(messages, st.text(min_size=1, max_size=6), json_values)
def test_any_change_to_a_signed_message_is_refused(msg, field, value):
    signed = ALICE.sign(msg)
    assert isinstance(signing.verify(orjson.dumps(signed), RING), signing.Verified)
    if field == "signatures" or signed.get(field) == value:
        return
    tampered = {**signed, field: value}
    assert signing.verify(orjson.dumps(tampered), RING).reason == "bad_signature"


def test_unsigned_unknown_key_and_forged_signatures_are_refused():
    msg = {"kind": "breaker_reset", "how": "drop", "control_id": "c1"}
    assert signing.verify(orjson.dumps(msg), RING).reason == "unsigned"
    mallory = signing.Signer("mallory", b"mallory-secret-0123456")
    assert signing.verify(orjson.dumps(mallory.sign(msg)), RING).reason == "unknown_key"
    forged = {**msg, "signatures": [{"key_id": "alice", "hmac": "00" * 32}]}
    assert signing.verify(orjson.dumps(forged), RING).reason == "bad_signature"
    # A valid signature does not excuse a bad second one.
    both = {**ALICE.sign(msg), "signatures": ALICE.sign(msg)["signatures"] + forged["signatures"][:1]
            + [{"key_id": "bob", "hmac": "11" * 32}]}
    assert signing.verify(orjson.dumps(both), RING).reason == "bad_signature"
    assert signing.verify(b"\xff", RING).reason == "undecodable"
    assert signing.verify(b"[1]", RING).reason == "undecodable"


def test_maker_checker_needs_two_distinct_signers():
    policy = {"kind": "policy", "text": "name: x", "control_id": "p1"}
    one = ALICE.sign(policy)
    assert signing.verify(orjson.dumps(one), RING, policy_signers=2).reason == "needs_checker"
    assert signing.verify(orjson.dumps(ALICE.sign(one)), RING, policy_signers=2).reason == "needs_checker"
    assert signing.verify(orjson.dumps(BOB.sign(one)), RING, policy_signers=2).signers == ("alice", "bob")
    # Overrides and resets need one signer whatever the policy rule.
    reset = ALICE.sign({"kind": "breaker_reset", "how": "release", "control_id": "r1"})
    assert isinstance(signing.verify(orjson.dumps(reset), RING, policy_signers=2), signing.Verified)


def test_an_unsigned_control_message_is_refused_routed_nowhere_and_audited(tmp_path):
    cfg = PipelineConfig(partitions=4, control_keys=RING, control_signer=ALICE)
    raw = b'{"kind": "manual", "account_id": "A1", "action": "CLOSE", "control_id": "evil"}'
    routed = route_control(cfg, raw, now_ms=1234, source="riskstream.control/0@7")
    assert routed.outs == [] and routed.refused == "unsigned"
    log = AuditLog(tmp_path / "audit.jsonl")
    log.extend(routed.audit)
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert line["kind"] == "control_refused" and line["time"] == 1234
    assert line["payload"]["reason"] == "unsigned" and line["payload"]["control_id"] == "evil"
    assert line["payload"]["source"] == "riskstream.control/0@7" and "A1" not in json.dumps(line)
    assert verify_audit(tmp_path / "audit.jsonl")[0]
    signed = route_control(cfg, orjson.dumps(ALICE.sign(orjson.loads(raw))))
    assert signed.refused is None and [o.key for o in signed.outs] == [b"A1"]


def test_keyring_parsing_refuses_short_keys_without_showing_them():
    assert signing.parse_keyring(b"ops: 0123456789abcdef0123", source="k.yaml").keys == {"ops": b"0123456789abcdef0123"}
    with pytest.raises(signing.OperatorError, match=r"^k\.yaml: ops: the secret is missing or shorter") as err:
        signing.parse_keyring(b"ops: short-secret", source="k.yaml")
    assert "short-secret" not in str(err.value)
    assert "secret" not in repr(RING).replace("Keyring", "") and "alice-secret" not in repr(ALICE)


def cli(*argv, key_id, key, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    return subprocess.run([sys.executable, "-m", "riskstream", "control", *argv], capture_output=True, text=True,
                          timeout=60, env={**clean, "RISKSTREAM_CONTROL_KEY_ID": key_id,
                                           "RISKSTREAM_CONTROL_KEY": key.decode(), **env})


def test_cli_maker_writes_a_proposal_the_checker_cosigns(tmp_path):
    proposal, approved = tmp_path / "p.json", tmp_path / "p2.json"
    made = cli("policy", POLICY, "--out", str(proposal), key_id="alice", key=RING.keys["alice"])
    assert made.returncode == 0, made.stderr
    assert signing.verify(proposal.read_bytes(), RING, policy_signers=2).reason == "needs_checker"
    again = cli("cosign", str(proposal), "--out", str(approved), key_id="alice", key=RING.keys["alice"])
    assert again.returncode == 2 and "already signed by 'alice'" in again.stderr
    checked = cli("cosign", str(proposal), "--out", str(approved), key_id="bob", key=RING.keys["bob"])
    assert checked.returncode == 0, checked.stderr
    assert "policy retail-champion v" in checked.stderr and "signed by alice" in checked.stderr
    assert signing.verify(approved.read_bytes(), RING, policy_signers=2).signers == ("alice", "bob")


def test_cli_refuses_the_development_key_in_production(tmp_path):
    res = cli("breaker-reset", "release", "--out", str(tmp_path / "r.json"), "--env", "production",
              key_id="dev", key=signing.DEV_VALUES["RISKSTREAM_CONTROL_KEY"][1])
    assert res.returncode == 2 and "RISKSTREAM_CONTROL_KEY: holds the built-in development value" in res.stderr
