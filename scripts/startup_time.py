"""Measure how long a fresh worker takes from process start to its first processed event.

The event is published before the worker starts; "processed" is when the worker's producer stamps the validated
event it forwards (the record's CreateTime); "scored" is when the score step has applied it to the account's state
(the changelog record's CreateTime: state, features, model and policy ran). Prints one JSON line. Usage:
  .venv/bin/python scripts/startup_time.py [--bootstrap HOST:PORT] [--kind kafka|tansu] [--runs N]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from riskstream.core.contracts import encode_event, make_event
from riskstream.ops.orchestrate import Cluster


def one_run(cluster: Cluster, n: int) -> tuple[float, float]:
    """(seconds to the first validated event, seconds until the score step has applied it to the account)."""
    account = f"STARTUP-{uuid.uuid4().hex[:8]}"
    ev = make_event("account_opened", account, {"product": "credit_line", "segment": "retail", "limit": 100.0,
                                                "currency": "EUR"}, event_time=int(time.time() * 1000))
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap)
    producer.send("riskstream.events.behaviour", key=account.encode(), value=encode_event(ev)).get(10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(t, p) for t in ("riskstream.events.valid", "riskstream-accounts-changelog")
           for p in range(4)]
    consumer.assign(tps)
    consumer.seek_to_end(*tps)
    for tp in tps:
        consumer.position(tp)
    t0 = time.time()
    worker = cluster.start("worker", name=f"startup-worker-{n}")
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, float] = {}
        while time.monotonic() < deadline and len(seen) < 2:
            for batch in consumer.poll(timeout_ms=200).values():
                for rec in batch:
                    if rec.key == account.encode():
                        seen.setdefault(rec.topic, rec.timestamp / 1000 - t0)
        if len(seen) == 2:
            return seen["riskstream.events.valid"], seen["riskstream-accounts-changelog"]
        raise RuntimeError("worker processed nothing in 60 s:\n" + worker.log_text()[-2000:])
    finally:
        consumer.close()
        worker.stop()
        cluster.procs.remove(worker)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="use this broker (default: start one)")
    ap.add_argument("--kind", default="auto", choices=["auto", "kafka", "tansu"])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with Cluster(Path(tempfile.mkdtemp(prefix="riskstream-startup-")), kind=args.kind, bootstrap=args.bootstrap,
                 progress=lambda m: print(m, file=sys.stderr)) as cluster:
        cluster.apply_topology()
        runs = [one_run(cluster, i) for i in range(args.runs)]
    first = [r[0] for r in runs]
    scored = [r[1] for r in runs]
    print(json.dumps({"first_event_s": [round(r, 2) for r in first], "median_s": round(statistics.median(first), 2),
                      "max_s": round(max(first), 2),
                      "first_scored_s": [round(r, 2) for r in scored], "scored_max_s": round(max(scored), 2),
                      "target_s": 5.0, "broker": cluster.kind}))
    return 0 if max(first) <= 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
