"""Pseudonymization: a keyed, stable, one-way replacement for personal data and ids.

The same `Pseudonymizer` hashes PII fields at ingestion (`ip` -> `ip_hash`) and turns account ids into
log-safe tokens, so a value can be compared for equality without being revealed. Keyed HMAC-SHA256 (not a bare
hash) means nobody without the secret can confirm a guess such as a phone number.

>>> ps = Pseudonymizer(b"doc-secret")
>>> token = ps.pseudonym("203.0.113.7")
>>> len(token), token == ps.pseudonym("203.0.113.7"), token == Pseudonymizer(b"other-secret").pseudonym("203.0.113.7")
(16, True, False)

"""

from __future__ import annotations

import functools
import hashlib
import hmac
from riskstream.core.secrets import DEV_VALUES, read_secret

__all__ = ["Pseudonymizer", "SECRET_ENV", "DEV_SECRET"]

SECRET_ENV = "RISKSTREAM_PSEUDONYM_SECRET"
DEV_SECRET = DEV_VALUES[SECRET_ENV][1]


class Pseudonymizer:
    """`pseudonym(value) -> str`: HMAC-SHA256(secret, value) as `hex_chars` lowercase hex chars (default 16 = 64
    bits, ample for equality features and log correlation). Results are cached in a bounded LRU (`cache_size`)
    because the same devices, IPs and accounts recur constantly."""

    def __init__(self, secret: bytes, *, hex_chars: int = 16, cache_size: int = 65536):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 8:
            raise ValueError("Pseudonymizer secret must be bytes of at least 8; set RISKSTREAM_PSEUDONYM_SECRET")
        if not 8 <= hex_chars <= 64:
            raise ValueError("hex_chars must be between 8 and 64")
        key = bytes(secret)
        new = hmac.new
        sha256 = hashlib.sha256

        def compute(value: str) -> str:
            return new(key, value.encode("utf-8", "surrogatepass"), sha256).hexdigest()[:hex_chars]

        self.hex_chars = hex_chars
        self.pseudonym = functools.lru_cache(maxsize=cache_size)(compute)

    @classmethod
    def from_env(cls, environ=None, **kwargs) -> "Pseudonymizer":
        """Build from `RISKSTREAM_PSEUDONYM_SECRET` (or the file named by `RISKSTREAM_PSEUDONYM_SECRET_FILE`).

        WARNING: without the variable this falls back to a fixed, public development secret, which makes
        pseudonyms reversible by dictionary attack; production mode refuses it. Set a long random secret
        (and keep it stable: changing it changes every hash, breaking equality features across the change).
        """
        return cls(read_secret(SECRET_ENV, environ) or DEV_SECRET, **kwargs)

    def __repr__(self) -> str:  # never show the secret
        return f"Pseudonymizer(hex_chars={self.hex_chars})"
