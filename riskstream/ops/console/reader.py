"""The console's background reader: tails the topics and audit files into the read model (a thread, kafka-python).

A consumer with no group (it commits nothing and moves no other reader) is assigned every partition of the
decisions, commands, control and dead-letter topics, the actuator's lines changelog, and the valid and market
topics (for the features behind each decision), reads them from the beginning and then follows them. Every
`sample_s` it also reads the upstream topics' end offsets for the events/s figure, and the new lines of each audit
file. Names come from `riskstream.core.names` through the topology (its topic prefix).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from riskstream.core import names

log = logging.getLogger("riskstream.ops.console")

#: VALID and MARKET: to rebuild the point-in-time features of decisions that do not carry them.
FOLLOWED = (names.DECISIONS, names.COMMANDS, names.CONTROL, names.DEAD, names.LINES_CHANGELOG, names.VALID,
            names.MARKET)


class Reader(threading.Thread):
    def __init__(self, bootstrap: str, topology, model, lock: threading.Lock, *, security=None,
                 audit_paths=(), sample_s: float = 2.0):
        super().__init__(name="console-reader", daemon=True)
        self.bootstrap, self.topology, self.model, self.lock = bootstrap, topology, model, lock
        self.security, self.audit_paths, self.sample_s = security, list(audit_paths), sample_s
        self._stop_evt = threading.Event()
        self._audit_pos = {p: 0 for p in self.audit_paths}
        self._audit_tail = {p: b"" for p in self.audit_paths}
        self.ready = threading.Event()  # set once the backlog present at start has been read
        self.error: str | None = None

    def stop(self) -> None:
        self._stop_evt.set()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from riskstream.stream.security import KafkaSecurity

        security = self.security or KafkaSecurity.from_env()
        logical = {self.topology.name(t): t for t in FOLLOWED}
        upstream = [self.topology.name(t) for t in names.UPSTREAM]
        while not self._stop_evt.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None,
                                         auto_offset_reset="earliest", **security.kafka_python())
                break
            except Exception as exc:  # broker not up yet: say so once a try, and wait
                self.error = f"cannot reach the broker at {self.bootstrap}: {exc}"
                log.warning("console reader: %s", self.error)
                self._stop_evt.wait(2)
        else:
            return
        try:
            tps, up_tps = [], []
            while not self._stop_evt.is_set():
                tps = [TopicPartition(t, p) for t in logical for p in sorted(consumer.partitions_for_topic(t) or ())]
                up_tps = [TopicPartition(t, p) for t in upstream
                          for p in sorted(consumer.partitions_for_topic(t) or ())]
                if tps:
                    break
                self.error = "the topics are not there yet (riskstream topology apply)"
                self._stop_evt.wait(2)
            self.error = None
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            start_end = consumer.end_offsets(tps)
            next_sample = 0.0
            while not self._stop_evt.is_set():
                try:
                    self._step(consumer, logical, tps, start_end)
                    if time.monotonic() >= next_sample:
                        next_sample = time.monotonic() + self.sample_s
                        self._read_audit()
                        self._sample(consumer, up_tps)
                    self.error = None
                except Exception as exc:  # a broker hiccup: say so on the page and in the log, and go on
                    if self.error is None:
                        log.warning("console reader: %r (retrying)", exc)
                    self.error = f"reading the topics failed: {exc!r}; retrying"
                    self._stop_evt.wait(1)
        except Exception as exc:  # a reader that dies says why on the page and in the log, never silently
            self.error = f"reader stopped: {exc!r}"
            log.exception("console reader stopped")
        finally:
            consumer.close()

    def _step(self, consumer, logical, tps, start_end) -> None:
        batches = consumer.poll(timeout_ms=300, max_records=5000)
        if batches:
            with self.lock:
                for tp, records in batches.items():
                    topic = logical[tp.topic]
                    for r in records:
                        self.model.apply(topic, r.key, r.value, r.timestamp, r.offset)
        if not self.ready.is_set() and all(consumer.position(tp) >= start_end[tp] for tp in tps):
            self.ready.set()

    def _sample(self, consumer, up_tps) -> None:
        if not up_tps:
            return
        end, begin = consumer.end_offsets(up_tps), consumer.beginning_offsets(up_tps)
        total = sum(end[tp] - begin[tp] for tp in up_tps)
        with self.lock:
            self.model.events.sample(int(time.time() * 1000), total)

    def _read_audit(self) -> None:
        for path in self.audit_paths:
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            pos = self._audit_pos[path]
            if size <= pos:
                continue
            with open(path, "rb") as f:
                f.seek(pos)
                data = self._audit_tail[path] + f.read(size - pos)
            self._audit_pos[path] = size
            lines = data.split(b"\n")
            self._audit_tail[path] = lines.pop()  # a line still being written
            with self.lock:
                for line in lines:
                    self.model.apply_audit(path, line)
