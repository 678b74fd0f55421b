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


def test_a_worker_with_secrets_set_logs_none_of_them(tmp_path):
    """Quick companion of tests/e2e/test_sasl_e2e.py (which scans a whole run): a worker in production mode with
    every secret set, at DEBUG, waiting for a broker that is not there; its log holds no secret value."""
    import secrets as random_secrets
    import signal
    import time
    pw = tmp_path / "pw"
    pw.write_text("sasl-" + random_secrets.token_hex(12) + "\n")
    env = {"RISKSTREAM_MODEL_KEY": "model-" + random_secrets.token_hex(16),
           "RISKSTREAM_PSEUDONYM_SECRET": "pseudo-" + random_secrets.token_hex(16),
           "RISKSTREAM_CONTROL_KEYS": "ops: ctl-" + random_secrets.token_hex(16),
           "RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RISKSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "RISKSTREAM_KAFKA_SASL_USERNAME": "rs", "RISKSTREAM_KAFKA_SASL_PASSWORD_FILE": str(pw)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    proc = subprocess.Popen([sys.executable, "-m", "riskstream", "worker", "--env", "production", "--bootstrap",
                             "127.0.0.1:1", "--metrics-port", "0", "--log-level", "DEBUG", "--data-dir",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={**clean, **env, "PYTHONUNBUFFERED": "1"})
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0].decode()
    assert "cannot reach the Kafka broker at 127.0.0.1:1" in out, out
    values = [pw.read_text().strip(), env["RISKSTREAM_MODEL_KEY"], env["RISKSTREAM_PSEUDONYM_SECRET"],
              env["RISKSTREAM_CONTROL_KEYS"].split(": ")[1]]
    assert [v[:6] for v in values if v in out] == []
