"""End to end through a real broker: confluent-kafka (librdkafka) publishes as an upstream system would, the
riskstream worker and actuator run as processes, and a confluent-kafka consumer in its own group reads the commands
as a downstream service would. The expected ids come from an offline replay of the same pure pipeline."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from riskstream.core.contracts import encode_event, make_event
from riskstream.offline.replay import replay

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = pytest.mark.slow
T0 = int(time.time() * 1000) - 3_600_000


def upstream_events(n_accounts: int, per_account: int) -> list[tuple[str, bytes, bytes]]:
    """Behaviour events only (one topic keeps each account's order identical live and in replay): failed logins,
    a new device and a run of drawdowns on a small line, so the champion policy freezes and cuts limits."""
    out = []
    for a in range(n_accounts):
        acc = f"IOP{a:04d}"
        evs = [make_event("account_opened", acc, {"product": "credit_line", "segment": "retail", "limit": 1000.0,
                                                  "currency": "EUR", "name": "N. Person"}, event_time=T0)]
        for i in range(per_account - 1):
            t = T0 + 60_000 * (i + 1)
            # A quarter of the accounts look taken over: fewer FREEZEs than the mass-close breaker's minimum
            # count, so whether it trips cannot depend on how the live worker batched the account openings.
            if i < 5 and a % 4 == 0:
                evs.append(make_event("login_failed", acc, {"device_fingerprint": f"fp-x{i}", "ip": "203.0.113.5"},
                                      event_time=t))
            elif i == 5:
                evs.append(make_event("device_change", acc, {"device_fingerprint": f"fp-new-{acc}"}, event_time=t))
            else:
                evs.append(make_event("drawdown", acc, {"amount": 150.0}, event_time=t))
        out += [("riskstream.events.behaviour", acc.encode(), encode_event(e)) for e in evs]
    return out


def produce_confluent(bootstrap: str, topic_of, records) -> None:
    # One request in flight keeps each account's order even when librdkafka retries; Tansu has no idempotent
    # producer, so this is the portable way to the same guarantee.
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False,
                                         "partitioner": "murmur2_random", "max.in.flight.requests.per.connection": 1})
    for topic, key, value in records:
        producer.produce(topic_of(topic), key=key, value=value)
    assert producer.flush(30) == 0


def consume_confluent(bootstrap: str, topic: str, expected: int, timeout: float = 120) -> list:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"downstream-{uuid.uuid4().hex[:6]}",
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
        "group.protocol": "classic"})
    consumer.subscribe([topic])
    got, deadline, quiet_until = [], time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                # Keep listening a little after reaching the count: a duplicate would arrive now.
                if len(got) >= expected:
                    quiet_until = quiet_until or time.monotonic() + 5
                    if time.monotonic() > quiet_until:
                        break
                continue
            if msg.error():
                continue
            got.append(orjson.loads(msg.value()))
    finally:
        consumer.close()
    return got


def run_slice(pipeline, n_accounts=20, per_account=12):
    records = upstream_events(n_accounts, per_account)
    expected = replay(records, now_ms=int(time.time() * 1000))
    expected_ids = sorted(orjson.loads(c.value)["command_id"] for c in expected.commands)
    assert expected_ids, "the reference replay produced no command: the test would prove nothing"
    worker = pipeline.start("worker")
    actuator = pipeline.start("actuator")
    worker.wait_ready()
    actuator.wait_ready()
    produce_confluent(pipeline.bootstrap, pipeline.topic, records)
    commands = consume_confluent(pipeline.bootstrap, pipeline.topic("riskstream.commands"), len(expected_ids))
    got_ids = sorted(c["command_id"] for c in commands)
    print(f"commands: expected {len(expected_ids)}, received {len(got_ids)}, distinct {len(set(got_ids))}")
    assert got_ids == expected_ids
    assert worker.alive() and actuator.alive()


def test_confluent_upstream_to_downstream(pipeline):
    """The walking skeleton's proof on the session broker (Apache Kafka in CI)."""
    run_slice(pipeline)


@pytest.mark.tansu
def test_same_slice_on_tansu(tansu_broker, tmp_path):
    from tests.conftest import Pipeline

    p = Pipeline(tansu_broker, tmp_path)
    try:
        run_slice(p, n_accounts=8, per_account=9)
    finally:
        p.close()
