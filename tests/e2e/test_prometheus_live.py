"""Every PromQL expression riskstream ships (alerts.yml + the Grafana dashboard) runs against a real Prometheus that
scrapes a running worker and actuator, and the core series carry data.

A worker and an actuator run on an isolated pipeline of the session broker, simulated upstream events (some corrupted
on the wire) are published with confluent-kafka, and Prometheus scrapes both /metrics endpoints every second. Then
each expression goes through /api/v1/query: Prometheus must accept all of them, and the series the dashboard and the
alerts are built on (events, dead letters, decisions, commands, latency, state, policy, model, breaker) must return
samples, with the counters above zero.
"""

from __future__ import annotations

import threading
import time

import pytest

from riskstream.ops.simulator import SimConfig, Simulator
from tests.promql import all_expressions, check_expressions, prometheus_binary, query, start_prometheus, \
    stop_prometheus, wait_for_targets_up, free_port

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

DAY = 86_400_000
N_EVENTS = 3000

#: What "the core series return data" means: each query must return at least one sample.
CORE = {
    "events consumed": "sum(riskstream_events_consumed_total) > 0",
    "dead letters": "sum(riskstream_dead_letters_total) > 0",
    "decisions": "sum(riskstream_decisions_total) > 0",
    "commands sent": "sum(riskstream_commands_sent_total) > 0",
    "processing latency buckets": 'sum by (le) (riskstream_processing_latency_seconds_bucket'
                                  '{stage="event_to_decision"}) > 0',
    "active accounts": "riskstream_active_accounts > 0",
    "policy info": 'riskstream_policy_info{name!="", version!=""}',
    "model info": 'riskstream_model_info{version!=""}',
    "breaker open": "riskstream_breaker_open",
}


def simulated_records(topic_of, n: int, malformed: float = 0.05):
    start = (int(time.time() * 1000) // DAY - 60) * DAY   # as `riskstream simulate` does (60 days back)
    sim = Simulator(SimConfig(accounts=150, facilities=10, seed=11, start_ms=start, malformed_share=malformed),
                    producer_clock=lambda: int(time.time() * 1000))
    return [(topic_of(t), k, v) for t, k, v in sim.wire(n)]


def produce(bootstrap: str, records, rate: float = 0, stop: threading.Event | None = None) -> None:
    """Publish `records`; with `rate`, at most that many per second (until `stop` is set)."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                                         "message.max.bytes": 2 * 1024 * 1024})
    t0 = time.monotonic()
    for i, (topic, key, value) in enumerate(records):
        if stop is not None and stop.is_set():
            break
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        if rate:
            producer.poll(0)
            ahead = (i + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(60) == 0


def wait_for(port: int, expr: str, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(port, expr).get("data", {}).get("result", [])
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"no data for {expr!r} after {timeout}s")


def returns_data(answer: dict) -> bool:
    data = answer.get("data", {})
    return bool(data.get("result")) if data.get("resultType") in ("vector", "matrix") else "result" in data


def test_every_expression_against_a_live_pipeline(pipeline, tmp_path):
    if prometheus_binary() is None:
        pytest.skip("prometheus not installed; .ci/run installs Debian's prometheus package")
    w_port, a_port = free_port(), free_port()
    worker = pipeline.start("worker", "--audit-log", str(tmp_path / "worker-audit.jsonl"), metrics_port=w_port)
    actuator = pipeline.start("actuator", "--audit-log", str(tmp_path / "actuator-audit.jsonl"),
                              metrics_port=a_port)
    worker.wait_ready(120)
    actuator.wait_ready(120)
    records = simulated_records(pipeline.topic, N_EVENTS)
    produce(pipeline.bootstrap, records[: N_EVENTS // 2])
    # The rest trickles in while Prometheus scrapes, so rate() sees counters move between two scrapes even when the
    # first half was processed before Prometheus started.
    stop = threading.Event()
    trickle = threading.Thread(target=produce, args=(pipeline.bootstrap, records[N_EVENTS // 2:], 40, stop),
                               daemon=True)
    trickle.start()

    proc, port = start_prometheus([f"127.0.0.1:{w_port}", f"127.0.0.1:{a_port}"], tmp_path / "prometheus")
    try:
        wait_for_targets_up(port, 2, timeout_s=60)
        # Counters have moved and Prometheus has several scrapes of them (rate() needs two samples in its window).
        wait_for(port, "sum(riskstream_commands_sent_total) > 0")
        wait_for(port, "count_over_time(riskstream_events_consumed_total[1m]) >= 5")
        wait_for(port, "sum(rate(riskstream_decisions_total[1m])) > 0")

        expressions = all_expressions()
        errors = check_expressions(port, expressions)
        no_data = [source for source, expr in expressions if not returns_data(query(port, expr))]
        print(f"prometheus accepted {len(expressions) - len(errors)} expressions "
              f"({len(expressions) - len(no_data)} returned data)")
        print(f"no data (yet) for: {no_data}")
        assert errors == [], "\n".join(errors)

        empty = [name for name, expr in CORE.items() if not query(port, expr).get("data", {}).get("result")]
        assert empty == [], f"core series without data: {empty}"
        jobs = {r["metric"]["instance"] for r in query(port, "up == 1")["data"]["result"]}
        assert jobs == {f"127.0.0.1:{w_port}", f"127.0.0.1:{a_port}"}
    finally:
        stop.set()
        stop_prometheus(proc)
    assert worker.alive() and actuator.alive()
