"""Signed control messages: HMAC-SHA256 over the canonical message, one signature per key id.

A control message (policy version, override, breaker reset or trip) carries ``"signatures": [{"key_id", "hmac"}]``.
Each ``hmac`` is HMAC-SHA256(key, canonical), where canonical is the message without ``signatures`` as orjson
with sorted keys: every signer signs the same bytes, so a checker co-signs by appending a signature, and any
change to any other field breaks every signature. Key ids name the signers: two signatures by distinct key ids
are two people (maker-checker). `verify` is pure: bytes and a keyring in, the message or the refusal out.

>>> ring = Keyring({"alice": b"a" * 16, "bob": b"b" * 16})
>>> msg = sign({"kind": "breaker_reset", "how": "release", "control_id": "c1"}, "alice", ring.keys["alice"])
>>> verify(orjson.dumps(msg), ring).signers
('alice',)
>>> verify(orjson.dumps({**msg, "how": "drop"}), ring).reason       # tampered
'bad_signature'
>>> verify(b'{"kind": "breaker_reset", "how": "drop"}', ring).reason  # unsigned
'unsigned'
>>> policy = sign({"kind": "policy", "text": "...", "control_id": "p1"}, "alice", ring.keys["alice"])
>>> verify(orjson.dumps(policy), ring, policy_signers=2).reason     # maker without a checker
'needs_checker'
>>> verify(orjson.dumps(sign(policy, "bob", ring.keys["bob"])), ring, policy_signers=2).signers
('alice', 'bob')
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Mapping, NamedTuple

import orjson

from riskstream.core.errors import OperatorError, parse_yaml
from riskstream.core.secrets import DEV_VALUES, read_secret

__all__ = ["DEV_KEY_ID", "Keyring", "REASONS", "Refused", "Signer", "Verified", "canonical", "control_keyring",
           "control_signer", "parse_keyring", "refusal_audit", "sign", "verify"]

DEV_KEY_ID = "dev"
FIELD = "signatures"
REASONS = ("undecodable", "unsigned", "unknown_key", "bad_signature", "needs_checker")
"""Why a control message is refused (bounded: the metric label)."""
MIN_KEY_BYTES = 16


class Keyring:
    """Key id -> secret. Never shows a secret in its repr."""

    def __init__(self, keys: Mapping[str, bytes]):
        self.keys = dict(keys)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self.keys)})"


class Signer:
    """One key id and its secret: what `riskstream control` and the actuator (breaker trips) sign with."""

    def __init__(self, key_id: str, key: bytes):
        self.key_id, self.key = key_id, key

    def sign(self, msg: dict) -> dict:
        return sign(msg, self.key_id, self.key)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


class Verified(NamedTuple):
    msg: dict
    signers: tuple           # distinct key ids whose signature verified, sorted


class Refused(NamedTuple):
    reason: str              # one of REASONS
    detail: str              # for the audit log and a warning line: no secret, no message content
    msg: dict | None         # the decoded message, when it decoded

    signers = ()


def canonical(msg: dict) -> bytes:
    """The bytes every signature covers: the message without its signatures, sorted keys, no spaces."""
    return orjson.dumps({k: v for k, v in msg.items() if k != FIELD}, option=orjson.OPT_SORT_KEYS)


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(msg: dict, key_id: str, key: bytes) -> dict:
    """`msg` with one more signature, by `key_id` (a signature by the same key id is replaced)."""
    others = [s for s in msg.get(FIELD) or () if isinstance(s, dict) and s.get("key_id") != key_id]
    return {**msg, FIELD: [*others, {"key_id": key_id, "hmac": _mac(key, canonical(msg))}]}


def verify(raw: bytes, keyring: Keyring, *, policy_signers: int = 1) -> Verified | Refused:
    """Accept `raw` when every signature on it verifies and at least one does; a policy version needs
    `policy_signers` distinct signers. Anything else is refused, with its reason."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Refused("undecodable", "not JSON", None)
    if not isinstance(msg, dict):
        return Refused("undecodable", "not a JSON object", None)
    sigs = msg.get(FIELD)
    if not sigs:
        return Refused("unsigned", "no signatures", msg)
    if not isinstance(sigs, list) or not all(isinstance(s, dict) and isinstance(s.get("key_id"), str)
                                             and isinstance(s.get("hmac"), str) for s in sigs):
        return Refused("bad_signature", "signatures are not a list of {key_id, hmac}", msg)
    body = canonical(msg)
    signers = set()
    for s in sigs:
        key = keyring.keys.get(s["key_id"])
        if key is None:
            return Refused("unknown_key", f"key id {s['key_id']!r} is not in the keyring", msg)
        if not hmac.compare_digest(s["hmac"], _mac(key, body)):
            return Refused("bad_signature", f"signature by {s['key_id']!r} does not match (altered or wrong key)", msg)
        signers.add(s["key_id"])
    if msg.get("kind") == "policy" and len(signers) < policy_signers:
        return Refused("needs_checker", f"a policy version needs {policy_signers} distinct signers, has "
                                        f"{len(signers)} ({', '.join(sorted(signers))})", msg)
    return Verified(msg, tuple(sorted(signers)))


def refusal_audit(raw: bytes, refused: Refused, *, time_ms: int, source: str) -> dict:
    """The audit record of a refused control message: why, who claimed to sign, and a digest of the bytes."""
    msg = refused.msg or {}
    sigs = msg.get(FIELD) if isinstance(msg.get(FIELD), list) else []
    return {"kind": "control_refused", "time": time_ms,
            "payload": {"reason": refused.reason, "detail": refused.detail, "source": source,
                        "control_kind": msg.get("kind") if isinstance(msg.get("kind"), str) else None,
                        "control_id": msg.get("control_id") if isinstance(msg.get("control_id"), str) else None,
                        "claimed_key_ids": [s.get("key_id") for s in sigs if isinstance(s, dict)],
                        "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}}


def parse_keyring(text: bytes, *, source: str) -> Keyring:
    """A keyring from YAML or JSON: ``{key_id: secret, ...}``, each secret at least 16 bytes."""
    data = parse_yaml(text.decode("utf-8", "replace"), source=source)
    fix = "write one 'key_id: secret' a line, each secret at least 16 random bytes"
    if not isinstance(data, dict) or not data:
        raise OperatorError(source, "<top>", "not a mapping of key id to secret", fix)
    keys = {}
    for kid, secret in data.items():
        if not isinstance(secret, (str, bytes)) or len(secret) < MIN_KEY_BYTES:
            raise OperatorError(source, str(kid), "the secret is missing or shorter than 16 bytes", fix)
        keys[str(kid)] = secret.encode("utf-8") if isinstance(secret, str) else secret
    return Keyring(keys)


KEYS_ENV, KEY_ENV, KEY_ID_ENV = "RISKSTREAM_CONTROL_KEYS", "RISKSTREAM_CONTROL_KEY", "RISKSTREAM_CONTROL_KEY_ID"


def control_keyring(environ: Mapping[str, str] | None = None) -> Keyring:
    """The verifiers' keyring from `RISKSTREAM_CONTROL_KEYS` (or `_FILE`), else the development keyring."""
    text = read_secret(KEYS_ENV, environ)
    if text is None:
        return Keyring({DEV_KEY_ID: DEV_VALUES[KEY_ENV][1]})
    env = environ if environ is not None else os.environ
    return parse_keyring(text, source=env.get(KEYS_ENV + "_FILE") or KEYS_ENV)


def control_signer(environ: Mapping[str, str] | None = None) -> Signer:
    """This process's signing key: `RISKSTREAM_CONTROL_KEY_ID` and `RISKSTREAM_CONTROL_KEY` (or `_FILE`), else the
    development key under the key id `dev`."""
    env = environ if environ is not None else os.environ
    key = read_secret(KEY_ENV, env)
    if key is None:
        return Signer(env.get(KEY_ID_ENV) or DEV_KEY_ID, DEV_VALUES[KEY_ENV][1])
    return Signer(env.get(KEY_ID_ENV) or DEV_KEY_ID, key)
