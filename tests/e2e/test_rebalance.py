"""No record is lost while two workers join a fresh group and one leaves, with records arriving throughout.

Faust drops records it fetched around a rebalance and reads them again by seeking to committed offsets, which
cannot rewind a partition nobody has committed yet (fixed by `riskstream.stream.rewind`, tested on its own in
test_rewind.py). This test is the end-to-end guard: every upstream event must reach the valid topic.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from riskstream.core.contracts import encode_event, make_event
from riskstream.ops.orchestrate import read_topic
from tests.e2e.test_models_e2e import produce
from tests.support import wait_for

pytestmark = pytest.mark.slow

BEHAVIOUR = "riskstream.events.behaviour"


def trickle(bootstrap: str, topic: str, stop: threading.Event, sent: list[str], every_s: float = 0.02) -> None:
    t0 = int(time.time() * 1000) - 60_000
    i = 0
    while not stop.is_set():
        acc = f"RB{i:05d}"
        ev = make_event("account_opened", acc, {"product": "credit_line", "segment": "retail", "limit": 500.0,
                                                "currency": "EUR"}, event_time=t0 + i)
        produce(bootstrap, topic, [(acc.encode(), encode_event(ev))])
        sent.append(ev["event_id"])
        i += 1
        time.sleep(every_s)


def test_no_record_lost_when_workers_join_and_leave_a_fresh_group(pipeline):
    sent: list[str] = []
    stop = threading.Event()
    producer = threading.Thread(target=trickle, args=(pipeline.bootstrap, pipeline.topic(BEHAVIOUR), stop, sent))
    producer.start()
    try:
        # Both workers join the fresh group together while records arrive: the first rebalances happen before
        # any offset is committed.
        workers = [pipeline.start("worker", name=f"worker-{i}") for i in range(2)]
        for w in workers:
            w.wait_ready(timeout=120)
        time.sleep(2)
        workers[1].stop()
        time.sleep(2)
    finally:
        stop.set()
        producer.join()
    want = set(sent)
    got: set[str] = set()

    def all_forwarded():
        got.clear()
        for r in read_topic(pipeline.bootstrap, pipeline.topic("riskstream.events.valid"), idle_s=1.0):
            if not r.key.startswith(b"\x00"):  # watermark records (docs/time.md)
                got.add(orjson.loads(r.value)["event_id"])
        return want <= got

    try:
        wait_for("every upstream event on the valid topic", all_forwarded, timeout=60, every=2.0)
    finally:
        print(f"sent {len(want)}, forwarded {len(want & got)}, missing {len(want - got)}")
