"""`riskstream console` refuses what it must before it serves: development secrets or made-up users in production,
a bad session TTL or users entry, each as one operator error; `--hash-password` prints a usable hash."""

from __future__ import annotations

import io
import os

import pytest

from riskstream.core.errors import FORMAT
from riskstream.ops import cli
from riskstream.ops.console import auth


def run(argv, capsys) -> tuple[int, list[str]]:
    rc = cli.main(["console", "--bootstrap", "127.0.0.1:1", *argv])
    return rc, [line.split("riskstream console: ", 1)[1] for line in capsys.readouterr().err.splitlines()
                if line.startswith("riskstream console: ")]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("RISKSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RISKSTREAM_ENV", "development")  # restored after the test (the command sets it)


def test_production_refuses_development_secrets(capsys):
    rc, lines = run(["--env", "production"], capsys)
    assert rc == 2 and len(lines) == 2
    assert all("refusing to start in production mode" in x for x in lines)


def test_production_refuses_made_up_users(monkeypatch, capsys):
    secret = "x" * 40
    monkeypatch.setenv("RISKSTREAM_PSEUDONYM_SECRET", secret)
    monkeypatch.setenv("RISKSTREAM_CONTROL_KEY", secret)
    rc, lines = run(["--env", "production"], capsys)
    assert rc == 2 and FORMAT.fullmatch(lines[0]) and "no console users in production mode" in lines[0]


@pytest.mark.parametrize("argv, env, field", [
    (["--session-ttl", "12x"], {}, "value"),
    ([], {auth.USERS_ENV: "ana:boss:x"}, "ana.role"),
    (["--backtest", "/nonexistent/backtest.json"], {}, "<file>"),
    (["--max-accounts", "0"], {}, "value"),
])
def test_bad_input_is_one_operator_error(argv, env, field, monkeypatch, capsys):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc, lines = run(argv, capsys)
    assert rc == 2 and len(lines) == 1
    assert FORMAT.fullmatch(lines[0])["field"] == field, lines[0]


def test_hash_password(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert cli.main(["console", "--hash-password"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert auth.check_password("a long enough password", hashed)
    assert auth.parse_users(f"ana:operator:{hashed}", source="t")["ana"].role == "operator"
