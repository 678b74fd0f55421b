"""Publish (topic, key, value) records to Kafka with kafka-python, with optional rate limiting and progress."""

from __future__ import annotations

import sys
import time
from typing import Iterable


def produce(bootstrap: str, records: Iterable[tuple[str, bytes, bytes]], *, rate: float = 0,
            progress: bool = False, every: int = 5000, security=None) -> int:
    """Send every record, wait for all acks, return the count. `rate` > 0 caps events per second. `security`:
    TLS/SASL settings (default: from the environment)."""
    from kafka import KafkaProducer

    from riskstream.stream.security import KafkaSecurity

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                             max_request_size=2 * 1024 * 1024, client_id="riskstream-simulator",
                             **(security or KafkaSecurity.from_env()).kafka_python())
    sent = 0
    t0 = time.monotonic()
    try:
        for topic, key, value in records:
            producer.send(topic, key=key, value=value)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            if progress and sent % every == 0:
                print(f"  simulator: {sent} events sent", file=sys.stderr, flush=True)
        producer.flush()
    finally:
        producer.close()
    return sent
