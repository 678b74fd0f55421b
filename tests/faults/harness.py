"""The fault suite's machinery: one seeded workload, a clean reference, a faulted live run, and the figures.

The clean run is the offline driver over the upstream records exactly as the broker holds them (value, topic,
partition, offset, broker timestamp): the same pure steps the worker runs, in the order the core aligns the
sources in. "One core, two drivers" shows the offline driver and an uninterrupted live run decide alike, so any
difference a scenario shows is the fault's doing. The model is held at its first version (no snapshot is
published), so the reference does not have to follow the live trainer's timing.
"""

from __future__ import annotations

import collections
import dataclasses
import time
import typing
from pathlib import Path

import orjson

from riskstream.core.names import COMMANDS, DEAD, DECISIONS, MARKET, UPSTREAM, VALID
from riskstream.ops.orchestrate import read_topic
from riskstream.ops.simulator import SimConfig, Simulator
from tests.e2e.test_parity_e2e import command_fields, decision_fields, decision_key

HOUR = 3_600_000
DAY = 24 * HOUR
# No model snapshot within a run: the champion scores with one model version from first to last event.
FIXED_MODEL = "trainer:\n  publish_every: 1000000000\n"


@dataclasses.dataclass(frozen=True)
class Workload:
    """Seeded upstream records (topic, key, bytes): the openings and the market history first, then activity."""
    first: list
    rest: list

    @property
    def records(self) -> list:
        return self.first + self.rest


def workload(n_events: int, *, accounts: int, facilities: int, seed: int, span_ms: int = 8 * HOUR) -> Workload:
    start = (int(time.time() * 1000) // DAY - 1) * DAY
    sim = Simulator(SimConfig(accounts=accounts, facilities=facilities, seed=seed, start_ms=start,
                              step_ms=max(1, span_ms // n_events)))
    first, rest = [], []
    for i, rec in enumerate(sim.wire(n_events)):
        (first if i < accounts + facilities or rec[0] == MARKET else rest).append(rec)
    return Workload(first, rest)


def produce(bootstrap: str, topic_of, records, *, linger_ms: int = 20) -> None:
    from tests.e2e.test_recovery import produce as publish_upstream

    publish_upstream(bootstrap, topic_of, records, linger_ms=linger_ms, flush_s=120)


@dataclasses.dataclass
class Outcome:
    """What one run left on the broker, judged from the topics alone."""
    events_in: int = 0
    processed: int = 0           # valid events the account step applied, plus market indicators
    dead_lettered: int = 0
    dead_by_reason: dict = dataclasses.field(default_factory=dict)
    decisions: dict = dataclasses.field(default_factory=dict)      # id -> comparable fields
    commands: dict = dataclasses.field(default_factory=dict)       # id -> (action, params)
    duplicate_command_ids: int = 0
    lost: int = 0                # upstream offsets neither validated nor dead-lettered
    redelivered: int = 0         # second copies of applied events, dropped by the account step as duplicates
    commands_by_action: dict = dataclasses.field(default_factory=dict)


def differing(a: dict, b: dict) -> list:
    return sorted(i for i in set(a) | set(b) if a.get(i) != b.get(i))


class Rec(typing.NamedTuple):
    """One record as the broker holds it."""
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes


def read_all(bootstrap: str, topic: str, timeout_s: float = 300) -> list[Rec]:
    """Every record of `topic` up to each partition's end, with confluent-kafka (kafka-python takes minutes for
    the ~100,000 valid records of a 50k run). A read that does not reach the end fails: a partial read would make
    figures up."""
    import confluent_kafka

    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-judge",
                                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        parts = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=30)[1] for p in parts}
        todo = {p for p in parts if ends[p] > 0}
        c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in todo])
        out: list[Rec] = []
        deadline = time.monotonic() + timeout_s
        while todo:
            assert time.monotonic() < deadline, f"{topic}: not read to its end in {timeout_s:.0f} s ({todo} left)"
            for m in c.consume(10_000, timeout=1.0):
                if m.error():
                    if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        todo.discard(m.partition())
                    continue
                out.append(Rec(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
        return out
    finally:
        c.close()


def upstream_records(bootstrap: str, topic_of) -> list:
    """Every upstream record on the broker: (logical topic, record)."""
    out = []
    for logical in UPSTREAM:
        out.extend((logical, r) for r in read_all(bootstrap, topic_of(logical)))
    return out


@dataclasses.dataclass(frozen=True)
class Published:
    """The workload as the broker held it after its first publication in this session (partition, offset and the
    CreateTime of a real burst, equal milliseconds across topics included). Every scenario publishes exactly these
    records again (same partition, same timestamp, same order), so one clean reference serves them all, and each
    scenario checks that its topics hold them."""
    records: tuple     # (logical topic, Rec), in publication order

    @classmethod
    def of(cls, upstream: list) -> "Published":
        return cls(tuple(sorted(upstream, key=publication_order)))

    def publish(self, bootstrap: str, topic_of, *, linger_ms: int = 20) -> None:
        import confluent_kafka

        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                             "linger.ms": linger_ms})
        for logical, r in self.records:
            while True:
                try:
                    producer.produce(topic_of(logical), key=r.key, value=r.value, partition=r.partition,
                                     timestamp=r.timestamp)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        assert producer.flush(120) == 0

    def check(self, upstream: list) -> None:
        """The scenario's upstream topics hold the published records, coordinates and timestamps included."""
        def norm(items):
            return sorted((lg, r.partition, r.offset, r.timestamp, r.value) for lg, r in items)

        assert norm(upstream) == norm(self.records), "the scenario's upstream records are not the reference's"


def live_outcome(bootstrap: str, topic_of, upstream: list) -> Outcome:
    """Read the run's valid, dead-letter, decisions and commands topics; account for every upstream offset."""
    out = Outcome(events_in=len(upstream))
    dead = [orjson.loads(r.value) for r in read_all(bootstrap, topic_of(DEAD))]
    valid_topic = topic_of(VALID)
    ingest_dead = {(d["source_topic"], d["source_partition"], d["source_offset"]): d["reason"] for d in dead
                   if d["source_topic"] != valid_topic}
    state_dead = {(d["source_partition"], d["source_offset"]): d["reason"] for d in dead
                  if d["source_topic"] == valid_topic}
    # An event can be on the valid topic twice (ingest re-publishes what a crash left uncommitted): it counts as
    # applied when one of its copies was; a copy the account step dropped as a duplicate is only a redelivery.
    copies: dict = collections.defaultdict(list)
    for r in read_all(bootstrap, topic_of(VALID)):
        event_id = _event_id(r.value)
        if event_id is not None:      # not the alignment's watermark records
            copies[event_id].append((r.partition, r.offset))
    applied = {e for e, cs in copies.items() if any(c not in state_dead for c in cs)}
    out.redelivered = sum(1 for e in applied for c in copies[e] if state_dead.get(c) == "duplicate")
    reasons = collections.Counter(ingest_dead.values())
    for e, cs in copies.items():
        if e not in applied:
            reasons[state_dead[cs[0]]] += 1
    out.dead_by_reason = dict(reasons)
    out.dead_lettered = sum(reasons.values())
    market = 0
    for logical, r in upstream:
        if (r.topic, r.partition, r.offset) in ingest_dead:
            continue
        if logical == MARKET:
            market += 1
        elif _event_id(r.value) not in copies:
            out.lost += 1
    out.processed = len(applied) + market
    seen = collections.Counter()
    for r in sorted(read_all(bootstrap, topic_of(COMMANDS)), key=lambda r: (r.partition, r.offset)):
        c = orjson.loads(r.value)
        seen[c["command_id"]] += 1
        out.commands[c["command_id"]] = command_fields(c)
    out.duplicate_command_ids = sum(n - 1 for n in seen.values())
    out.commands_by_action = dict(collections.Counter(f[0] for f in out.commands.values()))
    for r in sorted(read_all(bootstrap, topic_of(DECISIONS)), key=lambda r: (r.partition, r.offset)):
        d = orjson.loads(r.value)
        if r.key == b"__breaker__" or d.get("kind") in ("breaker_reset", "breaker_trip"):
            continue
        out.decisions[decision_key(d)] = decision_fields(d)   # a decision re-made after a crash supersedes
    return out


def broken_marks(bootstrap: str, topic_of) -> dict:
    """Alignment promises the live run broke: per valid partition in offset order, first copies of events whose
    broker timestamp is below a watermark already received for their source ("every record of S not read yet has a
    timestamp >= mark", docs/time.md). Such an event is applied on arrival, out of publication order, so the run can
    decide differently from the reference. Returns {source: count}."""
    from riskstream.core.steps.align import SRC, WATERMARK_KEY

    by_part: dict = collections.defaultdict(list)
    for r in read_all(bootstrap, topic_of(VALID)):
        by_part[r.partition].append(r)
    broken: collections.Counter = collections.Counter()
    for recs in by_part.values():
        marks: dict = {}
        seen: set = set()
        for r in sorted(recs, key=lambda r: r.offset):
            v = orjson.loads(r.value)
            if r.key == WATERMARK_KEY:
                for s, t in (v.get("marks") or {}).items():
                    marks[s] = max(t, marks.get(s, t))
                continue
            src = v.get(SRC)
            if not src or v.get("event_id") in seen:
                continue
            seen.add(v.get("event_id"))
            if src[2] < marks.get(src[0], src[2]):
                broken[src[0]] += 1
    return dict(broken)


def source_runs(bootstrap: str, topic_of, source: str, limit: int = 12) -> str:
    """How one source's events and marks came on the valid topic, per partition in offset order, as runs of source
    offsets ("0 | 273..302 | 0..1636": offsets 1..272 came only later). A failing row prints it for its first
    broken source."""
    from riskstream.core.steps.align import SRC, WATERMARK_KEY

    lines = []
    recs = read_all(bootstrap, topic_of(VALID))
    for part in sorted({r.partition for r in recs}):
        runs: list = []
        for r in sorted((r for r in recs if r.partition == part), key=lambda r: r.offset):
            if r.key == WATERMARK_KEY:
                continue
            src = orjson.loads(r.value).get(SRC)
            if not src or src[0] != source:
                continue
            if runs and src[1] == runs[-1][1] + 1:
                runs[-1][1] = src[1]
            else:
                runs.append([src[1], src[1]])
        if runs:
            lines.append(f"valid/{part}: " + " | ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs[:limit]))
    return "; ".join(lines)


def _event_id(raw: bytes) -> str | None:
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return v.get("event_id") if isinstance(v, dict) else None


def clean_outcome(upstream: list, *, model_config: Path, policy_path: Path | None = None,
                  breaker_max_count: int = 200) -> Outcome:
    """The offline driver over the same upstream records: what a run without the fault decides and commands."""
    from riskstream.core.steps import Context, PipelineConfig
    from riskstream.offline.driver import OfflineDriver

    out = Outcome(events_in=len(upstream))
    cfg = PipelineConfig(model_config_path=model_config, breaker_max_count=breaker_max_count,
                         **({"policy_path": policy_path} if policy_path else {}))

    def keep(o):
        if o.topic == DECISIONS:
            d = orjson.loads(o.value)
            if d.get("kind") not in ("breaker_reset", "breaker_trip"):
                out.decisions[decision_key(d)] = decision_fields(d)
        elif o.topic == COMMANDS:
            c = orjson.loads(o.value)
            out.commands[c["command_id"]] = command_fields(c)
        elif o.topic == DEAD:
            out.dead_lettered += 1

    driver = OfflineDriver(Context(cfg), learn=False, on_output=keep)
    for logical, r in sorted(upstream, key=publication_order):
        driver.feed(logical, r.value, timestamp_ms=r.timestamp)
    out.processed = driver.counts["valid"] - driver.counts["dead_state"] + driver.counts["market"]
    out.commands_by_action = dict(collections.Counter(f[0] for f in out.commands.values()))
    return out


def publication_order(item) -> tuple:
    logical, r = item
    return r.timestamp, logical, r.partition, r.offset


#: the rows of this session's scenarios, printed by tests/faults/conftest.py
ROWS: list = []


@dataclasses.dataclass
class Row:
    """One scenario's line in the table of figures (README, Reliability)."""
    scenario: str
    events_in: int
    processed: int
    dead_lettered: int
    decisions: int
    commands: int
    duplicate_command_ids: int
    lost: int
    differing_decisions: int
    differing_commands: int
    recovery_s: float | None
    note: str = ""
    wall_s: float | None = None   # the scenario's wall time, publication to judgement


def row(scenario: str, live: Outcome, clean: Outcome, recovery_s: float | None, note: str = "") -> Row:
    if live.redelivered:
        note = f"{note}; " if note else ""
        note += f"{live.redelivered} redelivered copies dropped as duplicates"
    return Row(scenario, live.events_in, live.processed, live.dead_lettered, len(live.decisions), len(live.commands),
               live.duplicate_command_ids, live.lost, len(differing(live.decisions, clean.decisions)),
               len(differing(live.commands, clean.commands)), None if recovery_s is None else round(recovery_s, 1),
               note)


def run_on(broker, tmp_path: Path):
    """An isolated pipeline (own topic prefix and groups) on `broker` whose processes hold the model fixed."""
    from tests.conftest import Pipeline

    class Run(Pipeline):
        def __init__(self):
            super().__init__(broker, tmp_path)
            self.model_config = tmp_path / "models.yaml"
            self.model_config.write_text(FIXED_MODEL)

        def start(self, role: str, *extra: str, **kw):
            return super().start(role, "--model-config", str(self.model_config), *extra, **kw)

        def produce(self, records) -> None:
            produce(self.bootstrap, self.topic, records)

    return Run()


def format_table(rows: list[Row]) -> str:
    cols = ["scenario", "events_in", "processed", "dead_lettered", "decisions", "commands", "duplicate_command_ids",
            "lost", "differing_decisions", "differing_commands", "recovery_s", "wall_s"]
    head = ["scenario", "events in", "processed", "dead-lettered", "decisions", "commands", "dup. command ids",
            "lost", "differing decisions", "differing commands", "recovery s", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [getattr(r, c) for c in cols]
        lines.append("| " + " | ".join("–" if v is None else f"{v:,}" if isinstance(v, int) else str(v)
                                       for v in vals) + " |")
    return "\n".join(lines)
