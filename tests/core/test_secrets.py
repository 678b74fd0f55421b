"""Secrets from the environment or files; production mode refuses the development values."""

import doctest

import pytest

from riskstream.core import secrets
from riskstream.core.errors import FORMAT
from riskstream.core.models.snapshot import DEV_KEY, model_key
from riskstream.core.privacy import Pseudonymizer

STRONG = {"RISKSTREAM_MODEL_KEY": "m" * 32, "RISKSTREAM_PSEUDONYM_SECRET": "p" * 32,
          "RISKSTREAM_CONTROL_KEY": "c" * 32, "RISKSTREAM_CONTROL_KEYS": "ops: " + "c" * 32}


def test_doctests():
    assert doctest.testmod(secrets).failed == 0


def test_from_the_variable_or_its_file(tmp_path):
    f = tmp_path / "key"
    f.write_bytes(b"from-a-mounted-file\n")
    assert secrets.read_secret("RISKSTREAM_MODEL_KEY", {"RISKSTREAM_MODEL_KEY_FILE": str(f)}) == b"from-a-mounted-file"
    assert secrets.read_secret("RISKSTREAM_MODEL_KEY", {"RISKSTREAM_MODEL_KEY": "v"}) == b"v"


def test_both_or_an_unreadable_file_is_an_operator_error(tmp_path):
    with pytest.raises(secrets.SecretError, match="both RISKSTREAM_MODEL_KEY and RISKSTREAM_MODEL_KEY_FILE"):
        secrets.read_secret("RISKSTREAM_MODEL_KEY", {"RISKSTREAM_MODEL_KEY": "a", "RISKSTREAM_MODEL_KEY_FILE": "b"})
    missing = str(tmp_path / "nope")
    with pytest.raises(secrets.SecretError) as err:
        secrets.read_secret("RISKSTREAM_MODEL_KEY", {"RISKSTREAM_MODEL_KEY_FILE": missing})
    assert FORMAT.fullmatch(str(err.value))["file"] == missing
    # In development mode too: an unreadable secret stops the start, a missing one does not.
    assert secrets.production_problems({"RISKSTREAM_MODEL_KEY_FILE": missing})
    assert secrets.production_problems({}) == []


def test_model_key_and_pseudonymizer_read_the_same_sources(tmp_path, monkeypatch):
    f = tmp_path / "k"
    f.write_bytes(b"a-model-key-from-a-file")
    monkeypatch.delenv("RISKSTREAM_MODEL_KEY", raising=False)
    assert model_key() == DEV_KEY
    monkeypatch.setenv("RISKSTREAM_MODEL_KEY_FILE", str(f))
    assert model_key() == b"a-model-key-from-a-file"
    ps = Pseudonymizer.from_env({"RISKSTREAM_PSEUDONYM_SECRET_FILE": str(f)})
    assert ps.pseudonym("x") == Pseudonymizer(b"a-model-key-from-a-file").pseudonym("x")


def test_production_refuses_every_development_value():
    prod = {"RISKSTREAM_ENV": "production"}
    assert {e.field for e in secrets.production_problems(prod)} == set(secrets.DEV_VALUES)
    dev = {name: value.decode() for name, (_, value) in secrets.DEV_VALUES.items()}
    problems = secrets.production_problems({**prod, **dev})
    assert len(problems) == 4 and all("development value" in e.problem for e in problems)
    assert all(FORMAT.fullmatch(str(e)) for e in problems)
    assert secrets.production_problems({**prod, **STRONG}) == []
    assert [e.field for e in secrets.production_problems({**prod, **STRONG, "RISKSTREAM_MODEL_KEY": "short"})] \
        == ["RISKSTREAM_MODEL_KEY"]
    assert secrets.production_problems(dev) == []  # development mode: allowed


def test_secret_values_lists_what_must_never_be_logged():
    env = {**STRONG, "RISKSTREAM_KAFKA_SASL_PASSWORD": "sasl-pw-123456"}
    assert set(secrets.secret_values(env)) == {v.encode() for v in env.values()}
