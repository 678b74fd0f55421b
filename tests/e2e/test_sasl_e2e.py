"""The secure edge end to end: Apache Kafka with a SASL/SCRAM-SHA-256 listener, every process on it.

The broker serves clients only on a SASL_PLAINTEXT listener with SCRAM-SHA-256 (`manager.start(sasl=...)`); a
client without credentials gets nothing. The worker, the actuator, the topology admin, the simulator's producer,
the control publisher and the test's readers all connect with the settings in RISKSTREAM_KAFKA_*. Simulated events
go in, the worker decides (a policy that closes every line, so each decision becomes a CLOSE), the breaker holds
them all, a signed breaker reset releases them and the actuator sends them; an unsigned control message is refused,
counted and audited.
Worker and actuator run with `--policy-signers 2`: a policy version signed by its maker alone is refused; once a
checker with another key co-signs it, it goes live.

Every secret is set (SASL password from a file, model key, pseudonym secret, control keys) and the worker logs at
DEBUG: no secret value may appear in any process log, audit file, or the broker's files outside its data.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import uuid
from pathlib import Path

import orjson
import pytest

from riskstream.core.names import COMMANDS, CONTROL, DECISIONS, MARKET
from riskstream.ops import control
from riskstream.ops.broker import manager
from riskstream.ops.orchestrate import Cluster, read_topic
from riskstream.ops.simulator import SimConfig, Simulator
from riskstream.stream.produce import produce
from riskstream.stream.security import KafkaSecurity
from tests.conftest import isolated_topology
from tests.support import close_everyone_policy, metric, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

EVENTS, ACCOUNTS = 3000, 100
CLOSE_ALL = close_everyone_policy("e2e-close-all", 1, "every decision a command (end-to-end test)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    kind, why = manager.choose_kind(os.environ.get("RISKSTREAM_TEST_BROKER", "auto"))
    if kind != "kafka":
        pytest.skip(f"needs Apache Kafka (Java >= 17 + Maven) for a SASL listener: {why}")
    root = tmp_path_factory.mktemp("sasl")
    password = "sasl-" + secrets.token_hex(12)
    sasl = manager.Sasl("SCRAM-SHA-256", "riskstream", password)
    info = manager.start("kafka", state_dir=root / "broker", sasl=sasl, progress=print)
    pw_file = root / "sasl-password"
    pw_file.write_text(password + "\n")
    env = {"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RISKSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "RISKSTREAM_KAFKA_SASL_USERNAME": "riskstream", "RISKSTREAM_KAFKA_SASL_PASSWORD_FILE": str(pw_file),
           "RISKSTREAM_MODEL_KEY": "model-" + secrets.token_hex(16),
           "RISKSTREAM_PSEUDONYM_SECRET": "pseudo-" + secrets.token_hex(16),
           "RISKSTREAM_CONTROL_KEY_ID": "e2e-ops",
           "RISKSTREAM_CONTROL_KEY": (ctl := "control-" + secrets.token_hex(16)),
           "RISKSTREAM_CONTROL_KEYS": json.dumps({"e2e-ops": ctl, "e2e-checker": (chk := "checker-" + secrets.token_hex(16))}),
           "E2E_CHECKER_KEY": chk,
           "RISKSTREAM_ENV": "production"}   # production mode: the processes accept only these real secrets
    yield info, env, password, root
    manager.stop(Path(info.state_dir))


def test_produce_worker_decision_command_over_sasl_and_no_secret_in_any_log(secure, monkeypatch):
    info, env, password, root = secure
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sec = KafkaSecurity.from_env()
    assert sec.sasl_password == password

    # A wrong password: one readable line per try (address, cause, fix), no traceback, and not the password.
    import subprocess
    import sys
    wrong = subprocess.run([sys.executable, "-m", "riskstream", "topology", "apply", "--bootstrap", info.bootstrap],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "RISKSTREAM_KAFKA_SASL_PASSWORD_FILE": "",
                                "RISKSTREAM_KAFKA_SASL_PASSWORD": "not-the-password"})
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
    assert f"cannot reach the Kafka broker at {info.bootstrap}: authentication failed" in wrong.stderr
    assert "not-the-password" not in wrong.stderr and "(gave up after attempt 4)" in wrong.stderr
    print("wrong SASL password: " + wrong.stderr.splitlines()[-1][len("riskstream: "):])

    topology_path = isolated_topology(root)
    from riskstream.core.topology import load_topology
    from riskstream.ops.topology_apply import apply_topology
    topo = load_topology(topology_path)
    assert apply_topology(topo, info.bootstrap).created
    # The listener really demands SASL: a client without credentials learns nothing, not even the topics.
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError
    with pytest.raises(KafkaError) as refused_plain:
        KafkaConsumer(bootstrap_servers=info.bootstrap, request_timeout_ms=4000, api_version=(2, 8)).topics()
    print(f"client without SASL credentials: {type(refused_plain.value).__name__}")
    policy = root / "close-all.yaml"
    policy.write_text(CLOSE_ALL)
    cluster = Cluster(root / "run", bootstrap=info.bootstrap)
    wport, aport = free_port(), free_port()
    try:
        worker = cluster.start("worker", "--topology", str(topology_path), "--policy", str(policy),
                               "--log-level", "DEBUG", "--policy-signers", "2", name="worker", metrics_port=wport)
        actuator = cluster.start("actuator", "--topology", str(topology_path), "--breaker-max-count", "100000",
                                 "--breaker-max-share", "1.0", "--policy-signers", "2", name="actuator",
                                 metrics_port=aport)
        worker.wait_ready(120)
        actuator.wait_ready(120)
        sim = Simulator(SimConfig(accounts=ACCOUNTS, facilities=0, seed=5, start_ms=_now_ms() - EVENTS * 500))
        sent = produce(info.bootstrap, ((topo.name(t), k, v) for t, k, v in sim.wire(EVENTS)))
        assert sent == EVENTS

        def commands():
            return read_topic(info.bootstrap, topo.name(COMMANDS), idle_s=1, timeout_s=20)
        # The policy closes every line: a partition's CLOSE pass 100 % of its accounts (the share limit, 1.0) and
        # the breaker holds them all (each CLOSE waits a minute of event time first, so none has left). Before the
        # wait, the first ones left ahead of the trip and this test counted those.
        wait_for("CLOSE commands held by the breaker", lambda: metric(aport, "riskstream_commands_held_current") >= 10,
                 timeout=240, every=2)
        held = metric(aport, "riskstream_commands_held_current")
        assert commands() == [], "a CLOSE left before the breaker tripped"
        # Control over the same listener: a signed reset is applied (the held commands leave), an unsigned one is
        # refused and audited.
        control.publish(info.bootstrap, control.message("breaker_reset", how="release", by="e2e"),
                        topic=topo.name(CONTROL))
        cmds = wait_for("CLOSE commands over SASL, released by the signed reset",
                        lambda: len(commands()) >= 10 and commands(), timeout=240, every=2)
        decisions = read_topic(info.bootstrap, topo.name(DECISIONS), idle_s=1, timeout_s=20)
        closes = [orjson.loads(r.value) for r in cmds]
        print(f"over SASL/SCRAM-SHA-256: {sent} events in, {len(decisions)} decisions, {held:.0f} CLOSE held by the "
              f"breaker, {len(closes)} commands after the signed release")
        assert {c["action"] for c in closes} == {"CLOSE"}
        from kafka import KafkaProducer
        raw = KafkaProducer(bootstrap_servers=info.bootstrap, acks="all", **sec.kafka_python())
        raw.send(topo.name(CONTROL), key=b"breaker_reset", value=orjson.dumps(
            {"kind": "breaker_reset", "how": "drop", "control_id": "unsigned-" + uuid.uuid4().hex[:6]})).get(30)
        raw.close()
        # Maker-checker: the maker's signature alone does not make v2 live; the checker's co-signature does.
        v2 = control.message("policy", text=CLOSE_ALL.replace("version: 1", "version: 2"), source="e2e", by="maker")
        control.publish(info.bootstrap, v2, topic=topo.name(CONTROL))
        wait_for("a maker-only policy refused", lambda: metric(wport, "riskstream_control_refused_total",
                                                               reason="needs_checker") >= 1, timeout=60)
        assert metric(wport, "riskstream_policy_info", version="1") == 1
        from riskstream.core.signing import Signer, control_signer
        both = Signer("e2e-checker", env["E2E_CHECKER_KEY"].encode()).sign(control_signer().sign(v2))
        control.publish(info.bootstrap, both, topic=topo.name(CONTROL))
        wait_for("the co-signed policy live", lambda: metric(wport, "riskstream_policy_info", version="2") == 1,
                 timeout=60)
        assert metric(wport, "riskstream_policy_reloads_total", result="accepted") == 1
        print("maker-checker: maker-only v2 refused (needs_checker), maker+checker v2 live")
        wait_for("the unsigned message refused", lambda: metric(aport, "riskstream_control_refused_total",
                                                                reason="unsigned") >= 1, timeout=60)
        audit = root / "run" / "audit" / "actuator.jsonl"
        refused = [json.loads(line) for line in audit.read_text().splitlines()
                   if json.loads(line)["kind"] == "control_refused"]
        assert sorted(r["payload"]["reason"] for r in refused) == ["needs_checker", "unsigned"], \
            "the signed reset and the co-signed policy passed; the unsigned reset and the maker-only policy not"
        wait_for("the worker refused it too", lambda: metric(wport, "riskstream_control_refused_total",
                                                             reason="unsigned") >= 1, timeout=60)
        assert worker.alive() and actuator.alive()
    finally:
        cluster.close()

    # No secret value in any log: the processes' logs, the audit files, and the broker's files outside its data.
    values = {password, *(env[k] for k in ("RISKSTREAM_MODEL_KEY", "RISKSTREAM_PSEUDONYM_SECRET",
                                             "RISKSTREAM_CONTROL_KEY", "E2E_CHECKER_KEY"))}
    logs = [p for p in (root / "run").rglob("*") if p.is_file() and p.suffix in (".log", ".jsonl")]
    logs += [p for p in (root / "broker").iterdir() if p.is_file()]
    assert any(p.name == "worker.log" for p in logs) and any(p.name == "actuator.log" for p in logs)
    worker_log = (root / "run" / "worker.log").read_text()
    assert worker_log.count('"level": "DEBUG"') > 100, "the worker logged at DEBUG"
    leaks = {str(p.relative_to(root)): [v[:6] + "..." for v in values if v in p.read_text(errors="replace")]
             for p in logs}
    print(f"scanned {len(logs)} log and audit files ({sum(p.stat().st_size for p in logs):,} bytes) for "
          f"{len(values)} secret values")
    assert {k: v for k, v in leaks.items() if v} == {}


def _now_ms() -> int:
    import time
    return int(time.time() * 1000)
