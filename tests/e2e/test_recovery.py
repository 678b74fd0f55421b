"""Kill/restart recovery on Apache Kafka: a worker SIGKILLed mid-stream and replaced leaves exactly the per-account
state (and the same set of decisions) that an uninterrupted worker leaves for the same input.

Run A: one worker, never killed. Run B: a second isolated pipeline (own topic prefix and groups), same input, its
worker SIGKILLed while roughly 30-60 % of the events are processed, then a fresh worker process. Both runs are
judged only from the broker: the accounts changelog (latest value per key = the table), the valid topic and the
decisions topic, read with kafka-python; the upstream events are published with confluent-kafka.
"""

from __future__ import annotations

import dataclasses
import os
import time

import orjson
import pytest

from riskstream.core.account.features import compute_features
from riskstream.ops.orchestrate import read_topic
from riskstream.core.account.record import AccountRecord
from riskstream.core.names import DECISIONS as T_DECISIONS, VALID as T_VALID
from riskstream.ops.simulator import MARKET, SimConfig, Simulator
from riskstream.core.account.codec import decode_state

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

CHANGELOG = "riskstream-accounts-changelog"
SOURCES = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
           "riskstream.events.project", "riskstream.events.market")
DAY = 86_400_000


# -- input ---------------------------------------------------------------------------------------------------------
# Per-account state is order-independent only for events within the allowed lateness (1 h, features.yaml), and an
# account's events arrive through three source topics that the ingest agent drains in no fixed interleaving. So the
# stream is dense in event time (its whole span is under the allowed lateness: no event can be late in any arrival
# order), openings and market indicators are published and processed before the activity (no event can precede
# its account, every worker has the whole market history before it scores): the only thing that differs between
# the two runs is the crash.
SPAN_MS = 50 * 60_000


def simulated(n_events: int, *, accounts: int = 300, facilities: int = 20, seed: int = 11):
    """Deterministic upstream records (topic, key, bytes), no malformed ones: (openings + market, activity)."""
    start = (int(time.time() * 1000) // DAY - 2) * DAY
    sim = Simulator(SimConfig(accounts=accounts, facilities=facilities, seed=seed, start_ms=start,
                              step_ms=SPAN_MS // n_events))
    first, rest = [], []
    for i, rec in enumerate(sim.wire(n_events)):
        (first if i < accounts + facilities or rec[0] == MARKET else rest).append(rec)
    span = sim.t - start
    assert span < 3_600_000, f"stream spans {span} ms: events could be late, the comparison would be unfair"
    return first, rest


def produce(bootstrap: str, topic_of, records, *, linger_ms: int = 20, flush_s: float = 60) -> None:
    """Publish like an upstream service: confluent-kafka, idempotent, Kafka's murmur2 partitioner."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                         "linger.ms": linger_ms, "partitioner": "murmur2_random"})
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic_of(topic), key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(flush_s) == 0


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

    @staticmethod
    def end_of(pipeline, logical: str) -> dict:
        prog = Progress(pipeline)
        try:
            return prog.end(logical)
        finally:
            prog.close()

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
    return {k: decode_state(AccountRecord.decode(v).state)
            for k, v in table(pipeline.bootstrap, pipeline.topic(CHANGELOG)).items() if not k.startswith(b"\x00")}


def applied_order(valid_records) -> list:
    """The valid topic's events in the order the account step applies them: per partition, through the alignment
    (riskstream.core.steps.align.release_order), as (partition, apply position, offset, key, value)."""
    from riskstream.core.steps import PipelineConfig
    from riskstream.core.steps.align import release_order

    cfg = PipelineConfig()
    by_part: dict[int, list] = {}
    for r in sorted(valid_records, key=lambda r: (r.partition, r.offset)):
        by_part.setdefault(r.partition, []).append((r.offset, r.key, r.value))
    return [(part, pos, off, key, value) for part, recs in sorted(by_part.items())
            for pos, off, key, value in release_order(recs, cfg.sources, max_pending=cfg.align_max_pending)]


def last_valid_offsets(pipeline) -> dict[bytes, int]:
    """Largest apply position per key: what each account's state must remember as applied last."""
    out: dict[bytes, int] = {}
    for part, pos, off, key, value in applied_order(read_topic(pipeline.bootstrap, pipeline.topic(T_VALID),
                                                               timeout_s=90)):
        out[key] = max(out.get(key, -1), pos)
    return out


def decision_ids(pipeline) -> list[str]:
    """Every decision published (duplicates included); a cure has no decision_id and is named by its event."""
    ids = []
    for r in read_topic(pipeline.bootstrap, pipeline.topic(T_DECISIONS), timeout_s=90):
        d = orjson.loads(r.value)
        ids.append(d.get("decision_id") or f"cure:{d.get('account_id')}:{d.get('event_id')}")
    return ids


def dead_letter_reasons(pipeline) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in read_topic(pipeline.bootstrap, pipeline.topic("riskstream.deadletter"), timeout_s=90):
        out[r.key.decode()] = out.get(r.key.decode(), 0) + 1
    return out


def state_diff(sa, sb) -> dict:
    return {f.name: (getattr(sa, f.name), getattr(sb, f.name)) for f in dataclasses.fields(sa)
            if f.name != "last_offset" and getattr(sa, f.name) != getattr(sb, f.name)}


def decisions_by_account(pipeline) -> dict[bytes, set[str]]:
    out: dict[bytes, set[str]] = {}
    for r in read_topic(pipeline.bootstrap, pipeline.topic(T_DECISIONS), timeout_s=90):
        d = orjson.loads(r.value)
        out.setdefault(r.key, set()).add(d.get("decision_id") or f"cure:{d.get('account_id')}:{d.get('event_id')}")
    return out


def account_orders(valid_records) -> dict[bytes, list[str]]:
    """Each account's event ids in the order they were applied, first occurrence only (a replayed copy is a
    duplicate)."""
    out: dict[bytes, list[str]] = {}
    for part, pos, off, key, value in applied_order(valid_records):
        ids = out.setdefault(key, [])
        eid = orjson.loads(value)["event_id"]
        if eid not in ids:
            ids.append(eid)
    return out


def offline_decisions(pipeline, valid_records) -> set[str]:
    """Decision ids of the pure pipeline over this run's market topic and then its valid topic, in offset order."""
    from riskstream.core.names import MARKET as LOGICAL_MARKET
    from riskstream.core.steps import Context, Source, Valid, account_batch, ingest

    core = Context()
    for r in read_topic(pipeline.bootstrap, pipeline.topic(MARKET)):
        out = ingest(core.config, r.value, Source(LOGICAL_MARKET, r.partition, r.offset, r.timestamp))
        if out.topic == T_VALID:
            core.on_market(orjson.loads(out.value))
    accounts: dict[bytes, bytes] = {}
    ids = set()
    ordered = sorted(valid_records, key=lambda r: (r.partition, r.offset))
    # In batches, as a worker takes them: where a batch is cut changes no decision (tests/core/steps, hypothesis),
    # and one record a call re-encodes the alignment's pending index per record (quadratic, ~5 min here).
    for i in range(0, len(ordered), 500):
        chunk = ordered[i:i + 500]
        res = account_batch(core, accounts.get, [Valid(r.key, r.value, r.partition, r.offset) for r in chunk],
                            topic=chunk[0].topic)
        for k, v in res.dirty.items():
            if v is None:
                accounts.pop(k, None)
            else:
                accounts[k] = v
        for o in res.outs:
            if o.topic == T_DECISIONS:
                d = orjson.loads(o.value)
                ids.add(d.get("decision_id") or f"cure:{d.get('account_id')}:{d.get('event_id')}")
    return ids


def replay_window(pipeline, prog: Progress) -> int:
    """Valid records applied to the changelog beyond the group's committed offsets (re-read after a restart)."""
    applied: dict[int, int] = {}
    latest: dict[tuple[int, bytes], bytes] = {}
    for r in read_topic(pipeline.bootstrap, pipeline.topic(CHANGELOG), timeout_s=90):
        latest[(r.partition, r.key)] = r.value
    for (part, key), v in latest.items():
        if v is not None and not key.startswith(b"\x00"):
            # apply position -> the valid offset that released it (steps.account.POSITIONS)
            applied[part] = max(applied.get(part, -1), decode_state(AccountRecord.decode(v).state).last_offset >> 20)
    name = pipeline.topic(T_VALID)
    committed = {tp.partition: o for tp, o in prog.committed().items() if tp.topic == name}
    return sum(max(0, last + 1 - max(committed.get(part, 0), 0)) for part, last in applied.items())


def check_offsets(name: str, states: dict, last: dict) -> None:
    """Each state remembers the last valid offset of its key: no applied record was lost from the table."""
    wrong = {k: (s.last_offset, last.get(k)) for k, s in states.items() if s.last_offset != last.get(k)}
    assert not wrong, f"run {name}: last_offset != last valid offset for {len(wrong)} accounts, e.g. " \
                      f"{list(wrong.items())[:5]}"


def test_kill_restart_leaves_identical_state(kafka_pipeline, kafka_broker, tmp_path):
    from tests.conftest import Pipeline

    first, rest = simulated(int(os.environ.get("RS_RECOVERY_EVENTS", "20000")))
    n_open = sum(1 for topic, _, _ in first if topic != MARKET)
    expected_valid = n_open + len(rest)
    a = kafka_pipeline
    (tmp_path / "run-b").mkdir()
    b = Pipeline(kafka_broker, tmp_path / "run-b")
    prog_a, prog_b = Progress(a), Progress(b)
    try:
        # Run A: uninterrupted.
        produce(a.bootstrap, a.topic, first)
        wa = a.start("worker", name="worker-a")
        wa.wait_ready(90)
        prog_a.wait_done(wa, n_open)
        t0 = time.monotonic()
        produce(a.bootstrap, a.topic, rest)
        prog_a.wait_done(wa, expected_valid)
        print(f"run A: {len(first) + len(rest)} events ({expected_valid} account events) processed; activity took "
              f"{time.monotonic() - t0:.1f}s")

        # Run B: same input, SIGKILL mid-stream, a fresh worker process finishes the job.
        produce(b.bootstrap, b.topic, first)
        wb1 = b.start("worker", name="worker-b1")
        wb1.wait_ready(90)
        prog_b.wait_done(wb1, n_open)
        produce(b.bootstrap, b.topic, rest)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert wb1.alive(), wb1.log_text()[-3000:]
            if prog_b.valid_committed() / expected_valid >= 0.35:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"run B never reached 35 %:\n{wb1.log_text()[-3000:]}")
        wb1.kill()
        killed_at = prog_b.valid_committed() / expected_valid
        replayed = replay_window(b, prog_b)
        print(f"run B: worker SIGKILLed with {killed_at:.0%} of account events committed; {replayed} valid records "
              f"were already in the table but not committed (the new worker must skip them)")
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
            state_mismatch.append((key, state_diff(sa, sb)))
        fa = compute_features(sa, as_of=sa.watermark, market=None)
        fb = compute_features(sb, as_of=sb.watermark, market=None)
        if fa != fb:
            feature_mismatch.append((key, {k: (fa[k], fb.get(k)) for k in fa if fa[k] != fb.get(k)}))
    n = len(states_a)
    print(f"dead letters: run A {dead_letter_reasons(a)}, run B {dead_letter_reasons(b)}")
    print(f"recovery: {n} accounts compared, {len(state_mismatch) + len(feature_mismatch)} mismatches "
          f"(states {len(state_mismatch)}, features {len(feature_mismatch)})")
    assert not state_mismatch, f"decoded states differ for {len(state_mismatch)} accounts, e.g. {state_mismatch[:5]}"
    assert not feature_mismatch, f"features differ for {len(feature_mismatch)} accounts, e.g. {feature_mismatch[:3]}"

    # Decisions. They are made per event, on the account's state *so far*, so they depend on each account's order
    # in the valid topic, which the ingest agent's interleaving of three source topics decides anew in each run.
    # The exact claim is therefore per run: what the worker published (deduplicated) is exactly what the pure
    # pipeline decides over that run's valid topic; and across runs, accounts with the same order have the same ids.
    n_models = sum(sum(Progress.end_of(p, "riskstream.models").values()) for p in (a, b))
    assert n_models == 0, f"{n_models} model snapshots were published: decisions depend on when each was loaded"
    valid_a, valid_b = read_topic(a.bootstrap, a.topic(T_VALID)), read_topic(b.bootstrap, b.topic(T_VALID))
    ids_a, ids_b = decision_ids(a), decision_ids(b)
    set_a, set_b = set(ids_a), set(ids_b)
    print(f"decisions: run A {len(ids_a)} ({len(set_a)} distinct), run B {len(ids_b)} ({len(set_b)} distinct), "
          f"B duplicates {len(ids_b) - len(set_b)}")
    assert set_a, "no decision at all: the comparison would prove nothing"
    assert len(ids_a) == len(set_a), "run A (no crash) published a decision twice"
    expected_a, expected_b = offline_decisions(a, valid_a), offline_decisions(b, valid_b)
    print(f"decisions vs offline pipeline over the run's own valid topic: A {len(set_a)}/{len(expected_a)}, "
          f"B {len(set_b)}/{len(expected_b)}; missing in B {len(expected_b - set_b)}, extra in B "
          f"{len(set_b - expected_b)}")
    assert set_a == expected_a, f"run A: missing {sorted(expected_a - set_a)[:5]}, extra {sorted(set_a - expected_a)[:5]}"
    assert set_b == expected_b, f"run B: missing {sorted(expected_b - set_b)[:5]}, extra {sorted(set_b - expected_b)[:5]}"
    order_a, order_b = account_orders(valid_a), account_orders(valid_b)
    same = {k for k in order_a if order_a[k] == order_b.get(k)}
    by_acc_a, by_acc_b = decisions_by_account(a), decisions_by_account(b)
    differ = [k for k in same if by_acc_a.get(k, set()) != by_acc_b.get(k, set())]
    print(f"decisions A vs B: {len(same)}/{len(order_a)} accounts arrived in the same order in both runs, "
          f"{len(differ)} of them with different decision ids; all accounts: A-only {len(set_a - set_b)}, "
          f"B-only {len(set_b - set_a)}")
    assert not differ, f"same input order, different decisions: {differ[:5]}"
