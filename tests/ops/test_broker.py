"""`riskstream broker start|status|stop` as a user runs it (Tansu here: it starts in milliseconds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from riskstream.ops.broker import manager


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "riskstream", "broker", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def test_choose_kind_explains_itself():
    kind, why = manager.choose_kind("auto")
    assert kind in ("kafka", "tansu") and why
    assert manager.choose_kind("tansu") == ("tansu", "--kind tansu was requested")
    with pytest.raises(manager.BrokerError):
        manager.choose_kind("zookeeper")


def test_start_status_stop_cli(tmp_path):
    try:
        manager.tansu_binary()
    except manager.BrokerError as exc:
        pytest.skip(str(exc))
    state = str(tmp_path / "b")
    started = run("start", "--kind", "tansu", "--state-dir", state)
    assert started.returncode == 0, started.stderr
    assert "--kind tansu was requested" in started.stderr
    bootstrap = started.stdout.strip()
    try:
        st = run("status", "--state-dir", state, "--bootstrap")
        assert st.returncode == 0 and st.stdout.strip() == bootstrap
        again = run("start", "--kind", "tansu", "--state-dir", state)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        stopped = run("stop", "--state-dir", state)
    assert stopped.returncode == 0
    assert run("status", "--state-dir", state).returncode == 1
