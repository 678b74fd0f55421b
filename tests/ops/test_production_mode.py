"""Production mode: worker, actuator and control refuse to start with a built-in development key."""

import os
import subprocess
import sys

import pytest

from riskstream.core.errors import FORMAT

PREFIX = "refusing to start in production mode: "


def run(*argv, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    return subprocess.run([sys.executable, "-m", "riskstream", *argv], capture_output=True, text=True, timeout=60,
                          env={**clean, **env})


@pytest.mark.parametrize("role, names", [
    ("worker", {"RISKSTREAM_MODEL_KEY", "RISKSTREAM_PSEUDONYM_SECRET", "RISKSTREAM_CONTROL_KEYS"}),
    ("actuator", {"RISKSTREAM_PSEUDONYM_SECRET", "RISKSTREAM_CONTROL_KEYS", "RISKSTREAM_CONTROL_KEY"}),
])
def test_refuses_development_keys_with_operator_errors(role, names):
    res = run(role, "--env", "production", "--bootstrap", "127.0.0.1:1", "--metrics-port", "0")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert lines and all(PREFIX in line for line in lines), res.stderr
    errors = [FORMAT.fullmatch(line.split(PREFIX, 1)[1]) for line in lines]
    assert all(errors) and {e["field"] for e in errors} == names
    # RISKSTREAM_ENV=production is the same as --env production.
    assert run(role, "--bootstrap", "127.0.0.1:1", RISKSTREAM_ENV="production").returncode == 2
