"""Reaching the broker: the readable line (address, cause, fix) and the retry with backoff."""

import doctest
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from riskstream.stream import reach


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctests():
    assert doctest.testmod(reach).failed == 0


def test_diagnose_names_the_cause():
    assert reach.diagnose(f"127.0.0.1:{closed_port()}") == "connection refused"
    assert reach.diagnose("no-such-host.invalid:9092") == "unknown host"
    assert reach.diagnose("localhost").startswith("bad address")
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert reach.diagnose(f"127.0.0.1:{closed_port()},127.0.0.1:{port}") is None  # any address will do


def test_wait_retries_with_backoff_until_the_broker_answers():
    answers = iter(["connection refused", "connection refused", "timed out", None])
    slept, said = [], []
    n = reach.wait_for_broker("h:1", probe=lambda b: next(answers), sleep=slept.append, say=said.append)
    assert n == 4 and slept == [1.0, 2.0, 4.0]
    assert len(said) == 3 and all(line.startswith("cannot reach the Kafka broker at h:1: ") and ". Fix: " in line
                                  for line in said)
    assert "timed out. Fix: check the address, the firewall" in said[2]


def test_wait_gives_up_after_attempts_with_the_line():
    with pytest.raises(reach.BrokerUnreachable, match=r"at h:1: unknown host\. Fix: .*gave up after attempt 2"):
        reach.wait_for_broker("h:1", probe=lambda b: "unknown host", sleep=lambda s: None, attempts=2,
                              say=lambda line: None)


@pytest.mark.parametrize("command", ["worker", "actuator"])
def test_a_process_without_a_broker_says_why_and_keeps_trying(tmp_path, command):
    port = closed_port()
    proc = subprocess.Popen([sys.executable, "-m", "riskstream", command, "--bootstrap", f"127.0.0.1:{port}",
                             "--metrics-port", "0", "--data-dir", str(tmp_path)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(6)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=30)[1].decode()
    assert alive, f"{command} exited without a broker:\n{err}"
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "cannot reach the Kafka broker" in line]
    assert len(lines) >= 2, err
    assert f"127.0.0.1:{port}: connection refused. Fix: start the broker" in lines[0]
    assert "retrying in 1 s (attempt 1)" in lines[0] and "retrying in 2 s (attempt 2)" in lines[1]
