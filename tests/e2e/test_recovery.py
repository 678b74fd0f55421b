"""Kill/restart recovery on Apache Kafka: a worker SIGKILLed mid-stream and replaced leaves exactly the per-account
state (and the same set of decisions) that an uninterrupted worker leaves for the same input.

Run A: one worker, never killed. Run B: a second isolated pipeline (own topic prefix and groups), same input, its
worker SIGKILLed while roughly 30-60 % of the events are processed, then a fresh worker process. Both runs are
judged only from the broker: the accounts changelog (latest value per key = the table), the valid topic and the
decisions topic, read with kafka-python; the upstream events are published with confluent-kafka.
"""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from riskstream.features import compute_features
from riskstream.orchestrate import read_topic
from riskstream.pipeline import T_DECISIONS, T_VALID, unpack
from riskstream.simulator import MARKET, SimConfig, Simulator
from riskstream.state import decode_state

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

CHANGELOG = "riskstream-accounts-changelog"
SOURCES = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
           "riskstream.events.project", "riskstream.events.market")
DAY = 86_400_000


# -- input ---------------------------------------------------------------------------------------------------------
def simulated(n_events: int, *, accounts: int = 300, facilities: int = 20, seed: int = 11):
    """Deterministic upstream records (topic, key, bytes), no malformed ones, event times over the last weeks."""
    start = (int(time.time() * 1000) // DAY - 40) * DAY
    sim = Simulator(SimConfig(accounts=accounts, facilities=facilities, seed=seed, start_ms=start))
    return list(sim.wire(n_events))


def produce(bootstrap: str, topic_of, records) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                         "linger.ms": 20, "partitioner": "murmur2_random"})
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic_of(topic), key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0


# -- progress, judged from the broker ------------------------------------------------------------------------------
class Progress:
    """End offsets of topics and committed offsets of the worker's consumer group (kafka-python)."""

    def __init__(self, pipeline):
        from kafka import KafkaAdminClient, KafkaConsumer

        self.p = pipeline
        self.group = pipeline.prefix + "riskstream"
        self.admin = KafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=pipeline.bootstrap, group_id=None, enable_auto_commit=False)

    def close(self):
        self.admin.close()
        self.consumer.close()

    def _tps(self, logical: str):
        from kafka import TopicPartition

        name = self.p.topic(logical)
        parts = self.consumer.partitions_for_topic(name)
        while not parts:
            time.sleep(0.2)
            parts = self.consumer.partitions_for_topic(name)
        return [TopicPartition(name, i) for i in sorted(parts)]

    def end(self, logical: str) -> dict:
        return self.consumer.end_offsets(self._tps(logical))

    def committed(self) -> dict:
        offsets = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        return {tp: meta.offset for tp, meta in offsets.items()}

    def valid_committed(self) -> int:
        name = self.p.topic(T_VALID)
        return sum(max(o, 0) for tp, o in self.committed().items() if tp.topic == name)

    def lagging(self) -> list[str]:
        """Topic-partitions the group has not committed up to their end (sources, valid): empty = all processed."""
        committed = self.committed()
        behind = []
        for logical in (*SOURCES, T_VALID):
            for tp, end in self.end(logical).items():
                if end and committed.get(tp, -1) < end:
                    behind.append(f"{tp.topic}[{tp.partition}] {committed.get(tp, -1)}/{end}")
        return behind

    def wait_done(self, proc, expected_valid: int, timeout: float = 150, quiet: float = 3.0) -> float:
        """Until every source and valid partition is committed to its end, the valid topic holds at least
        `expected_valid` records, and the changelog has not moved for `quiet` seconds."""
        start = time.monotonic()
        deadline = start + timeout
        last_changelog, still_since = None, None
        while time.monotonic() < deadline:
            assert proc.alive(), f"worker died:\n{proc.log_text()[-3000:]}"
            valid_end = sum(self.end(T_VALID).values())
            changelog = self.end(CHANGELOG)
            if valid_end >= expected_valid and not self.lagging():
                if changelog == last_changelog:
                    if time.monotonic() - still_since >= quiet:
                        return time.monotonic() - start
                else:
                    last_changelog, still_since = changelog, time.monotonic()
            time.sleep(0.5)
        raise AssertionError(f"not done after {timeout}s; behind: {self.lagging()[:8]}\n{proc.log_text()[-3000:]}")


# -- the result of a run, read back from its topics ----------------------------------------------------------------
def table(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """The compacted changelog as a table: latest value per key (keys and values are raw bytes)."""
    out: dict[bytes, bytes] = {}
    for r in read_topic(bootstrap, topic, timeout_s=90):
        if r.value is None:
            out.pop(r.key, None)
        else:
            out[r.key] = r.value
    return out


def account_states(pipeline) -> dict[bytes, object]:
    return {k: decode_state(unpack(v, 4)[0]) for k, v in table(pipeline.bootstrap, pipeline.topic(CHANGELOG)).items()}


def last_valid_offsets(pipeline) -> dict[bytes, int]:
    """Largest valid-topic offset per key: what each account's state must remember as applied last."""
    out: dict[bytes, int] = {}
    for r in read_topic(pipeline.bootstrap, pipeline.topic(T_VALID), timeout_s=90):
        out[r.key] = max(out.get(r.key, -1), r.offset)
    return out


def decision_ids(pipeline) -> list[str]:
    """Every decision published (duplicates included); a cure has no decision_id and is named by its event."""
    ids = []
    for r in read_topic(pipeline.bootstrap, pipeline.topic(T_DECISIONS), timeout_s=90):
        d = orjson.loads(r.value)
        ids.append(d.get("decision_id") or f"cure:{d.get('account_id')}:{d.get('event_id')}")
    return ids


def check_offsets(name: str, states: dict, last: dict) -> None:
    """Each state remembers the last valid offset of its key: no applied record was lost from the table."""
    wrong = {k: (s.last_offset, last.get(k)) for k, s in states.items() if s.last_offset != last.get(k)}
    assert not wrong, f"run {name}: last_offset != last valid offset for {len(wrong)} accounts, e.g. " \
                      f"{list(wrong.items())[:5]}"


def test_kill_restart_leaves_identical_state(kafka_pipeline, kafka_broker, tmp_path):
    from tests.conftest import Pipeline

    records = simulated(36_000)
    expected_valid = sum(1 for topic, _, _ in records if topic != MARKET)
    a = kafka_pipeline
    (tmp_path / "run-b").mkdir()
    b = Pipeline(kafka_broker, tmp_path / "run-b")
    prog_a, prog_b = Progress(a), Progress(b)
    try:
        # Run A: uninterrupted.
        produce(a.bootstrap, a.topic, records)
        wa = a.start("worker", name="worker-a")
        wa.wait_ready(90)
        took_a = prog_a.wait_done(wa, expected_valid)
        print(f"run A: {len(records)} events ({expected_valid} account events) processed in {took_a:.1f}s")

        # Run B: same input, SIGKILL mid-stream, a fresh worker process finishes the job.
        produce(b.bootstrap, b.topic, records)
        wb1 = b.start("worker", name="worker-b1")
        wb1.wait_ready(90)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert wb1.alive(), wb1.log_text()[-3000:]
            done = prog_b.valid_committed() / expected_valid
            if done >= 0.35:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"run B never reached 35 %:\n{wb1.log_text()[-3000:]}")
        wb1.kill()
        killed_at = prog_b.valid_committed() / expected_valid
        print(f"run B: worker SIGKILLed with {killed_at:.0%} of account events committed")
        assert killed_at < 0.9, "the kill came too late to prove anything: make the stream longer"
        wb2 = b.start("worker", name="worker-b2")
        wb2.wait_ready(90)
        took_b = prog_b.wait_done(wb2, expected_valid)
        print(f"run B: restarted worker finished in {took_b:.1f}s")
    finally:
        prog_a.close()
        prog_b.close()
        b.close()  # processes only; topics stay readable below
        a.close()

    # Per-account state and features, from each run's changelog.
    states_a, states_b = account_states(a), account_states(b)
    check_offsets("A", states_a, last_valid_offsets(a))
    check_offsets("B", states_b, last_valid_offsets(b))
    assert states_a and set(states_a) == set(states_b), \
        f"accounts differ: only A {sorted(set(states_a) - set(states_b))[:5]}, " \
        f"only B {sorted(set(states_b) - set(states_a))[:5]}"
    state_mismatch, feature_mismatch = [], []
    for key, sa in states_a.items():
        sb = states_b[key]
        # last_offset is the input position in each run's own valid topic (B's holds replayed copies): checked
        # above against that topic; everything else must be identical.
        if dataclasses.replace(sa, last_offset=-1) != dataclasses.replace(sb, last_offset=-1):
            state_mismatch.append(key)
        fa = compute_features(sa, as_of=sa.watermark, market=None)
        fb = compute_features(sb, as_of=sb.watermark, market=None)
        if fa != fb:
            feature_mismatch.append((key, {k: (fa[k], fb.get(k)) for k in fa if fa[k] != fb.get(k)}))
    n = len(states_a)
    print(f"recovery: {n} accounts compared, {len(state_mismatch) + len(feature_mismatch)} mismatches "
          f"(states {len(state_mismatch)}, features {len(feature_mismatch)})")
    assert not state_mismatch, f"decoded states differ for {len(state_mismatch)} accounts, e.g. {state_mismatch[:5]}"
    assert not feature_mismatch, f"features differ for {len(feature_mismatch)} accounts, e.g. {feature_mismatch[:3]}"

    # Decisions: B may re-publish after the replay, but the set of ids must be A's.
    ids_a, ids_b = decision_ids(a), decision_ids(b)
    set_a, set_b = set(ids_a), set(ids_b)
    print(f"decisions: run A {len(ids_a)} ({len(set_a)} distinct), run B {len(ids_b)} ({len(set_b)} distinct), "
          f"B duplicates {len(ids_b) - len(set_b)}")
    assert len(ids_a) == len(set_a), "run A (no crash) published a decision twice"
    assert set_a, "no decision at all: the comparison would prove nothing"
    assert set_a == set_b, f"only A: {sorted(set_a - set_b)[:5]}, only B: {sorted(set_b - set_a)[:5]}"
