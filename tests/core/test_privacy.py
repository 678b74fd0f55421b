"""Pseudonymizer: keyed, stable, bounded, and never leaking its secret."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskstream.core.privacy import DEV_SECRET, SECRET_ENV, Pseudonymizer


@given(value=st.text())
def test_stable_hex_and_not_the_value(value):
    ps = Pseudonymizer(b"secret-one-secret")
    token = ps.pseudonym(value)
    assert token == ps.pseudonym(value) == Pseudonymizer(b"secret-one-secret").pseudonym(value)
    assert len(token) == 16 and all(c in "0123456789abcdef" for c in token)


def test_keyed():
    assert Pseudonymizer(b"secret-one").pseudonym("x") != Pseudonymizer(b"secret-two").pseudonym("x")
    assert Pseudonymizer(b"secret-one").pseudonym("x") != Pseudonymizer(b"secret-one").pseudonym("y")


def test_known_vector():
    # HMAC-SHA256(b"key-key-key", b"abc"), first 16 hex chars: guards against accidental algorithm changes
    import hashlib
    import hmac

    expected = hmac.new(b"key-key-key", b"abc", hashlib.sha256).hexdigest()[:16]
    assert Pseudonymizer(b"key-key-key").pseudonym("abc") == expected


def test_cache_is_bounded():
    ps = Pseudonymizer(b"secret-one-secret", cache_size=10)
    for i in range(100):
        ps.pseudonym(str(i))
    assert ps.pseudonym.cache_info().currsize == 10


def test_from_env():
    assert Pseudonymizer.from_env({}).pseudonym("a") == Pseudonymizer(DEV_SECRET).pseudonym("a")
    env = {SECRET_ENV: "production-grade-secret"}
    assert Pseudonymizer.from_env(env).pseudonym("a") == Pseudonymizer(b"production-grade-secret").pseudonym("a")


def test_rejects_weak_config_and_hides_secret():
    with pytest.raises(ValueError, match=SECRET_ENV):
        Pseudonymizer(b"short")
    with pytest.raises(ValueError):
        Pseudonymizer(b"long-enough-secret", hex_chars=4)
    assert "long-enough-secret" not in repr(Pseudonymizer(b"long-enough-secret"))


def test_surrogates_do_not_raise():
    assert len(Pseudonymizer(b"secret-one-secret").pseudonym("\ud800")) == 16
