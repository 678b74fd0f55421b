"""TLS/SASL settings reach every Kafka client riskstream opens (one `KafkaSecurity`, wired everywhere)."""

import asyncio
import doctest
import re
from pathlib import Path

import pytest

import riskstream
from riskstream.core.errors import FORMAT, OperatorError
from riskstream.stream import security

SEC = security.KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="rs",
                             sasl_password="pw-123456")
EXPECTED = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "rs",
            "sasl_plain_password": "pw-123456"}


class Opened(Exception):
    """Raised by a recording client class: the test only needs the constructor's arguments."""


def recorder(seen: list):
    def make(*args, **kwargs):
        seen.append(kwargs)
        raise Opened()
    return make


def test_doctests():
    assert doctest.testmod(security).failed == 0


def test_from_env_refuses_incomplete_settings_as_operator_errors(tmp_path):
    with pytest.raises(OperatorError, match="RISKSTREAM_KAFKA_SASL_PASSWORD: not set") as err:
        security.KafkaSecurity.from_env({"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                         "RISKSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
                                         "RISKSTREAM_KAFKA_SASL_USERNAME": "u"})
    assert FORMAT.fullmatch(str(err.value))
    with pytest.raises(OperatorError, match="unknown security protocol"):
        security.KafkaSecurity.from_env({"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL"})
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    sec = security.KafkaSecurity.from_env({"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
                                           "RISKSTREAM_KAFKA_SASL_MECHANISM": "scram-sha-512",
                                           "RISKSTREAM_KAFKA_SASL_USERNAME": "u",
                                           "RISKSTREAM_KAFKA_SASL_PASSWORD_FILE": str(pw)})
    assert sec.sasl_password == "from-file" and sec.sasl_mechanism == "SCRAM-SHA-512"
    assert "from-file" not in repr(sec)
    assert security.KafkaSecurity.from_env({}) == security.KafkaSecurity()


def test_faust_app_gets_the_credentials(tmp_path):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from riskstream.stream.app import StreamSettings, make_app
    app = make_app("t-security", StreamSettings(bootstrap="127.0.0.1:1", data_dir=str(tmp_path), security=SEC))
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert {k: auth[k] for k in EXPECTED} == EXPECTED and auth["ssl_context"] is None
    assert "pw-123456" not in repr(app.conf.broker_credentials)


def test_tls_reaches_aiokafka_as_an_ssl_context():
    import ssl
    tls = security.KafkaSecurity(protocol="SSL")
    assert isinstance(tls.aiokafka()["ssl_context"], ssl.SSLContext)
    assert tls.kafka_python() == {"security_protocol": "SSL"}


def test_aiokafka_readers_and_lag_monitor(monkeypatch):
    import aiokafka
    import aiokafka.admin

    from riskstream.core.actuator import SentCommands
    from riskstream.core.topology import load_topology
    from riskstream.stream.lag import LagMonitor
    from riskstream.stream.readers import GlobalReader, load_sent_tail
    seen: list = []
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", recorder(seen))
    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", recorder(seen))
    runs = [GlobalReader("b:1", "t", 1, lambda raw, off: None, "x", SEC).run(),
            load_sent_tail(SentCommands(), "b:1", "t", 1, security=SEC),
            LagMonitor("b:1", load_topology(), ("control", "actuator"), security=SEC).start()]
    for coro in runs:
        with pytest.raises(Opened):
            asyncio.run(coro)
    assert len(seen) == 3 and all({k: kw.get(k) for k in EXPECTED} == EXPECTED for kw in seen)


def test_kafka_python_producers_admin_and_readers(monkeypatch):
    import kafka

    from riskstream.core.topology import load_topology
    from riskstream.ops import control, orchestrate
    from riskstream.ops.topology_apply import apply_topology
    from riskstream.stream.produce import produce
    seen: list = []
    for name in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka, name, recorder(seen))
    calls = [lambda: produce("b:1", [], security=SEC),
             lambda: control.publish("b:1", control.message("breaker_reset", how="release"), security=SEC),
             lambda: apply_topology(load_topology(), "b:1", security=SEC),
             lambda: orchestrate.read_topic("b:1", "t", security=SEC)]
    for call in calls:
        with pytest.raises(Opened):
            call()
    assert len(seen) == 4 and all({k: kw.get(k) for k in EXPECTED} == EXPECTED for kw in seen)


def test_the_environment_is_the_default_everywhere(monkeypatch):
    """Commands that do not pass `security` read the same variables (here: the kafka-python producer)."""
    import kafka

    from riskstream.stream.produce import produce
    for k, v in {"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RISKSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
                 "RISKSTREAM_KAFKA_SASL_USERNAME": "rs", "RISKSTREAM_KAFKA_SASL_PASSWORD": "env-pw"}.items():
        monkeypatch.setenv(k, v)
    seen: list = []
    monkeypatch.setattr(kafka, "KafkaProducer", recorder(seen))
    with pytest.raises(Opened):
        produce("b:1", [])
    assert seen[0]["sasl_plain_password"] == "env-pw" and seen[0]["sasl_mechanism"] == "PLAIN"


CLIENT = re.compile(r"\b(KafkaProducer|KafkaConsumer|KafkaAdminClient|AIOKafkaConsumer|AIOKafkaProducer|"
                    r"AIOKafkaAdminClient|faust\.App)\(")


def test_no_client_is_opened_without_the_security_settings():
    """A static guard: every client constructor call in riskstream/ passes the security settings."""
    root = Path(riskstream.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for m in CLIENT.finditer(text):
            depth, i = 0, m.end() - 1
            while True:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            call = text[m.start():i + 1]
            found.append(f"{path.relative_to(root)}:{m.group(1)}")
            assert "security" in call or "**(client" in call, f"{path}: {call[:200]}"
    assert len(found) >= 9, found
