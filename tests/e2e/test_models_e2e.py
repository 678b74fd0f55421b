"""Issue 5 acceptance on the real broker: one model across workers, via HMAC-signed snapshots.

Two worker processes share one isolated pipeline (same consumer group, partitions split between them). A signed
model snapshot (version 7) published to `<prefix>riskstream.models` is picked up by the global model reader of
BOTH workers: each exports `riskstream_model_info{version="pd@7"}`, and every decision made for an event published
after the swap carries `model_version == "pd@7"`, with both workers deciding. A tampered snapshot (version 8, one
byte flipped) is refused by each worker (`riskstream_model_snapshot_loads_total{result="tampered"}` + 1, a warning
in its log) and decisions keep `pd@7`.

The workers run a test policy whose only rule fires on every event (REVIEW when pd >= 0, no cooldown, no
hysteresis), so every event yields exactly one champion decision and "every decision after the publish" is an
exact, countable set. Upstream events are published with confluent-kafka, decisions are read with kafka-python.
"""

from __future__ import annotations

import time

import orjson
import pytest

from riskstream.ops.broker.manager import free_port
from riskstream.core.contracts import encode_event, make_event
from riskstream.ops.orchestrate import read_topic
from tests.support import REVIEW_POLICY, metric, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = pytest.mark.slow

BEHAVIOUR = "riskstream.events.behaviour"


# -- helpers -------------------------------------------------------------------------------------------------------
def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    # One request in flight keeps each account's order even when librdkafka retries (works on any broker).
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                         "linger.ms": 5, "max.in.flight.requests.per.connection": 1})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


class Accounts:
    """Credit-line accounts whose events carry increasing event times; each event yields one champion decision."""

    def __init__(self, n: int, prefix: str = "MDL"):
        self.t0 = int(time.time() * 1000) - 1_800_000
        self.ids = [f"{prefix}{i:04d}" for i in range(n)]
        self.step = 0

    def opened(self) -> list[tuple[bytes, bytes, str]]:
        out = []
        for acc in self.ids:
            ev = make_event("account_opened", acc, {"product": "credit_line", "segment": "retail",
                                                    "limit": 1000.0, "currency": "EUR"}, event_time=self.t0)
            out.append((acc.encode(), encode_event(ev), ev["event_id"]))
        return out

    def wave(self, per_account: int = 2) -> list[tuple[bytes, bytes, str]]:
        out = []
        for _ in range(per_account):
            self.step += 1
            for acc in self.ids:
                ev = make_event("drawdown", acc, {"amount": 5.0}, event_time=self.t0 + 1000 * self.step)
                out.append((acc.encode(), encode_event(ev), ev["event_id"]))
        return out


def champion_decisions(pipeline, event_ids: set[str], timeout: float = 120) -> dict[str, dict]:
    """The champion decision of each of `event_ids`, read from the decisions topic (waits until all are there)."""
    topic = pipeline.topic("riskstream.decisions")
    got: dict[str, dict] = {}

    def done():
        got.clear()
        for r in read_topic(pipeline.bootstrap, topic, idle_s=1.0):
            d = orjson.loads(r.value)
            if d.get("role") == "champion" and d.get("event_id") in event_ids:
                got.setdefault(d["event_id"], d)
        return len(got) == len(event_ids)

    try:
        wait_for(f"{len(event_ids)} champion decisions", done, timeout=timeout, every=1.0)
    except AssertionError:
        raise AssertionError(f"only {len(got)} of {len(event_ids)} events have a champion decision")
    return dict(got)


def partitions_of(keys: list[bytes], n: int = 4) -> dict[int, int]:
    from kafka.partitioner.default import murmur2

    out: dict[int, int] = {}
    for k in keys:
        p = (murmur2(k) & 0x7FFFFFFF) % n
        out[p] = out.get(p, 0) + 1
    return dict(sorted(out.items()))


# -- the test ------------------------------------------------------------------------------------------------------
def test_two_workers_share_the_signed_model_and_refuse_a_tampered_one(pipeline, tmp_path):
    from riskstream.core.models import load_config
    from riskstream.core.models.snapshot import dump_snapshot, model_key
    from riskstream.core.steps import initial_model

    policy = tmp_path / "review.yaml"
    policy.write_text(REVIEW_POLICY)
    ports = [free_port(), free_port()]
    workers = [pipeline.start("worker", "--policy", str(policy), "--audit-log", str(tmp_path / f"w{i}.jsonl"),
                              metrics_port=ports[i], name=f"worker-{i}") for i in range(2)]
    for w in workers:
        w.wait_ready(timeout=120)
    for port in ports:
        wait_for(f"worker on :{port} exports model pd@0",
                 lambda port=port: metric(port, "riskstream_model_info", version="pd@0") == 1)

    accounts = Accounts(24)
    keys = [a.encode() for a in accounts.ids]
    print(f"accounts per partition (murmur2, 4 partitions) = {partitions_of(keys)}")
    valid = pipeline.topic(BEHAVIOUR)

    # Phase 0: events until both workers have decided (the group has settled with partitions on both).
    produce(pipeline.bootstrap, valid, [(k, v) for k, v, _ in accounts.opened()])

    def both_decided():
        if all(metric(p, "riskstream_decisions_total") > 0 for p in ports):
            return True
        produce(pipeline.bootstrap, valid, [(k, v) for k, v, _ in accounts.wave(1)])
        return False

    wait_for("both workers deciding", both_decided, timeout=120, every=3.0)
    before0 = [metric(p, "riskstream_decisions_total") for p in ports]
    print(f"phase 0 (model pd@0): decisions per worker = {before0}")

    # Publish a signed snapshot, version 7, as the trainer would.
    scorer = initial_model(load_config())
    blob7 = dump_snapshot(scorer, version=7, key=model_key())
    produce(pipeline.bootstrap, pipeline.topic("riskstream.models"), [(b"model", blob7)])
    t_pub = time.monotonic()
    for port in ports:
        wait_for(f"worker on :{port} swapped to pd@7",
                 lambda port=port: metric(port, "riskstream_model_info", version="pd@7") == 1, timeout=60)
    swap_s = time.monotonic() - t_pub
    accepted = [metric(p, "riskstream_model_snapshot_loads_total", result="accepted") for p in ports]
    print(f"snapshot v7 ({len(blob7)} bytes): both workers export model_info pd@7 within {swap_s:.2f}s; "
          f"accepted loads per worker = {accepted}")
    assert all(a >= 1 for a in accepted)

    # Phase 1: events published after the swap: every decision carries pd@7, and both workers decide.
    wave1 = accounts.wave(3)
    produce(pipeline.bootstrap, valid, [(k, v) for k, v, _ in wave1])
    d1 = champion_decisions(pipeline, {e for _, _, e in wave1})
    after1 = [metric(p, "riskstream_decisions_total") for p in ports]
    by_worker1 = [a - b for a, b in zip(after1, before0)]
    versions1: dict[str, int] = {}
    for d in d1.values():
        versions1[d["model_version"]] = versions1.get(d["model_version"], 0) + 1
    print(f"phase 1 (after v7): events = {len(wave1)}, champion decisions = {len(d1)}, model versions = "
          f"{versions1}, decisions per worker = {by_worker1}")
    assert versions1 == {"pd@7": len(wave1)}
    assert all(n > 0 for n in by_worker1), f"a worker made no decision after the swap: {by_worker1}"

    # A tampered snapshot, version 8: one byte of a valid blob flipped.
    blob8 = bytearray(dump_snapshot(scorer, version=8, key=model_key()))
    blob8[-1] ^= 0x01
    tampered0 = [metric(p, "riskstream_model_snapshot_loads_total", result="tampered") for p in ports]
    produce(pipeline.bootstrap, pipeline.topic("riskstream.models"), [(b"model", bytes(blob8))])
    for port, t0 in zip(ports, tampered0):
        wait_for(f"worker on :{port} counts the tampered snapshot",
                 lambda port=port, t0=t0: metric(port, "riskstream_model_snapshot_loads_total",
                                                 result="tampered") == t0 + 1, timeout=60)
    tampered1 = [metric(p, "riskstream_model_snapshot_loads_total", result="tampered") for p in ports]
    still7 = [metric(p, "riskstream_model_info", version="pd@7") for p in ports]
    refusals = [sum("model snapshot refused" in line for line in w.log_text().splitlines()) for w in workers]
    print(f"tampered snapshot v8: tampered loads per worker {tampered0} -> {tampered1}, model_info pd@7 = {still7}, "
          f"refusal log lines per worker = {refusals}")
    assert still7 == [1.0, 1.0]
    assert all(n >= 1 for n in refusals), "a worker did not log the refusal"
    assert all(metric(p, "riskstream_model_info", version="pd@8") == 0 for p in ports)

    # Phase 2: decisions keep pd@7 after the refusal, on both workers.
    wave2 = accounts.wave(2)
    produce(pipeline.bootstrap, valid, [(k, v) for k, v, _ in wave2])
    d2 = champion_decisions(pipeline, {e for _, _, e in wave2})
    after2 = [metric(p, "riskstream_decisions_total") for p in ports]
    by_worker2 = [a - b for a, b in zip(after2, after1)]
    versions2: dict[str, int] = {}
    for d in d2.values():
        versions2[d["model_version"]] = versions2.get(d["model_version"], 0) + 1
    print(f"phase 2 (after tampered v8): events = {len(wave2)}, champion decisions = {len(d2)}, model versions = "
          f"{versions2}, decisions per worker = {by_worker2}")
    assert versions2 == {"pd@7": len(wave2)}
    assert all(n > 0 for n in by_worker2)
    assert all(w.alive() for w in workers)
