"""Issue 3 end to end: 100,000 upstream records, a fifth of them malformed, through one real worker process.

One run (module fixture `run`) feeds every test here:

* confluent-kafka (librdkafka, idempotent) publishes as an upstream system would: the simulator's stream
  (`Simulator.wire` with `malformed_share`, which corrupts records in nine ways) plus our own cases: more stateless
  varieties (empty value, tombstone, JSON null/number/string, NaN, 5,000-deep nesting, invalid UTF-8 inside a
  string, a UTF-8 BOM, wrong family, stale and future producer times, out-of-range / bool / missing / list payload
  fields, schema_incompatible, bad ids, a 600 KB record whose dead letter must be truncated) and the stateful ones:
  events of accounts never opened, identical re-sent events, and events more than the allowed lateness (1 h) behind
  their account's watermark.
* Every delivery report is kept, so each upstream (topic, partition, offset) is known with its exact bytes.

What "nothing lost" means, checked by offsets (test_nothing_lost_nothing_twice):

1. Ingest stage. Every upstream coordinate shows up exactly once: the dead letters' source coordinates are unique
   and are exactly the coordinates of the malformed records; the multiset of event_ids in the valid topic equals
   the multiset of event_ids of the well-formed non-market records (re-sent duplicates appear twice on both sides);
   the market topic's well-formed records produce no output by design (global readers use them), so they are
   counted as processed from the group's committed offset (= end offset) and the worker's
   `riskstream_events_consumed_total{topic="riskstream.events.market"}` counter. processed + dead = 100,000.
2. Stateful stage. The score agent's input is the valid topic, one partition per account, in offset order. Reading
   that topic back and folding the pure `riskstream.core.account.state.apply_event` over it (per key, offset order, the record
   encoded and decoded between events exactly as the live agent does) gives every valid offset's outcome. The test
   asserts: the live dead letters whose source topic is the valid topic are exactly the replay's non-applied
   outcomes, by (partition, offset, reason); no record is silently skipped (`already_applied`/`ignored` = 0); and
   the accounts changelog's final state of every account is byte-for-byte the replay's final state (so the live
   agent applied exactly the replay's "applied" records: windows, watermark, recent ids and last offset all agree).
   Hence valid = applied + unknown_account + duplicate + late, exactly. The injected cases land where they must:
   never-opened accounts -> unknown_account, late events -> late, re-sent events -> duplicate (or late when their
   original was itself late).

Event time and density. The worker reads four upstream topics independently (Faust has no event-time-ordered merge
across topics), and all 100,000 records are published in a few seconds, so the small topics (credit, project,
repayment) are drained long before the big behaviour topic: the cross-topic skew is about the whole stream. With
the simulator's default 60 s per record that skew is ~70 days of event time, an account's behaviour events arrive
after its other events have moved its watermark far ahead, and most valid events are dead-lettered `late` (one such
run: 65,994 of 77,995 valid events, 85%; the accounting still balanced exactly). Here event time runs 30 ms per
record, so the whole stream spans < 1 h (the allowed lateness): no skew can make an event late, and spread over
10,000 accounts no account accepts more than 32 events (the documented bound of exact duplicate detection,
docs/features.md). So every stateful dead letter must be an injected case, which the test asserts exactly.
"""

from __future__ import annotations

import collections
import json
import random
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass

import orjson
import pytest

from riskstream.core.contracts import REASONS, make_event, parse_event, read_dead_letter
from riskstream.core.contracts.deadletter import MAX_ORIGINAL_BYTES
from riskstream.core.contracts.spec import SPEC
from riskstream.core.account.record import AccountRecord
from riskstream.core.names import FAMILY_OF_TOPIC
from riskstream.core.steps import PipelineConfig
from riskstream.ops.simulator import DAY, HOUR, MARKET, SimConfig, Simulator
from riskstream.core.account.codec import decode_state, encode_state
from riskstream.core.account.state import RECENT_IDS, apply_event

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

N_TOTAL = 100_000
N_DUP, N_LATE, N_GHOST, N_EXTRA_PER_KIND, N_HUGE = 600, 600, 300, 40, 3
N_HOSTILE_VALID = 200   # well-formed but hostile: duplicate keys (the last one counts), amounts of 1e300
ACCOUNTS, FACILITIES = 10_000, 300
SETTLE_TIMEOUT = 480
STEP_MS = 30
UPSTREAM = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
            "riskstream.events.project", "riskstream.events.market")
VALID, DEAD, CHANGELOG = "riskstream.events.valid", "riskstream.deadletter", "riskstream-accounts-changelog"
PII_FIELDS = {name for t in SPEC.values() for fields in t.versions.values() for name, f in fields.items() if f.pii}


@dataclass
class Rec:
    topic: str                   # logical upstream topic
    key: bytes | None
    value: bytes | None
    origin: str                  # "sim", "sim-corrupt", "dup", "late", "ghost", or "extra:<reason>"
    event_id: str | None = None  # for records expected to be valid at ingest
    ingest_reason: str | None = None   # the reason we intend (our own cases); None for valid or simulator-corrupt
    partition: int = -1
    offset: int = -1
    timestamp: int = -1


class _Recording(Simulator):
    """The simulator, remembering the clean event behind each record `wire()` yields (to know which it corrupted)."""

    def events(self, n):
        for item in super().events(n):
            self.last = item
            yield item


# -- the upstream records ----------------------------------------------------------------------------------------
def _extras(now: int, base: dict, rng: random.Random) -> list[tuple[str, str, bytes | None, bytes | None]]:
    """Our own stateless varieties: (intended reason, topic, key, value), built from a well-formed behaviour event."""
    acc = base["account_id"]
    k = acc.encode()
    ok = dict(base)

    def ev(**changes):
        d = {**ok, **changes}
        return orjson.dumps({k2: v for k2, v in d.items() if v is not _DROP})

    drawdown = {**ok, "type": "drawdown", "payload": {"amount": 50.0, "channel": "app"}}

    def dd(payload, **changes):
        return orjson.dumps({**drawdown, "event_id": f"x-{rng.random()}", "payload": payload, **changes})

    clean = orjson.dumps(ok)
    B, R = "riskstream.events.behaviour", "riskstream.events.repayment"
    return [
        ("undecodable", B, k, b""),
        ("undecodable", R, k, None),                                            # tombstone
        ("undecodable", B, None, b'{"event_id": NaN}'),
        ("undecodable", B, k, b"[" * 5000 + b"]" * 5000),                       # nesting beyond orjson's limit
        ("undecodable", B, k, clean.replace(b'"source":"', b'"source":"\xc3\x28', 1)),  # bad UTF-8 in a string
        ("undecodable", B, k, b"\xef\xbb\xbf" + clean),                         # UTF-8 BOM
        ("undecodable", B, k, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))),  # fuzzed bytes
        ("undecodable", B, k, b'{"a":' * 3000 + b"1" + b"}" * 3000),            # deeply nested objects
        ("undecodable", B, k, dd({"amount": 1.0, "channel": "app"}).replace(b'"amount":1.0', b'"amount":1e400')),
        ("invalid_value", B, k, ev(event_id=f"x-{rng.random()}").replace(
            str(ok["event_time"]).encode(), b"1" + b"0" * 30, 1)),              # an epoch-ms beyond int64
        ("invalid_value", B, k, dd({"amount": 50.0, "channel": "app"}).replace(
            b'"amount":50.0', b'"amount":50.0,"amount":-3.0')),                 # duplicate key: the last one counts
        ("not_an_object", B, k, b"null"),
        ("not_an_object", R, k, b"42"),
        ("not_an_object", B, k, b'"an event"'),
        ("unknown_type", R, k, ev(event_id=f"x-{rng.random()}")),              # a login on the repayment topic
        ("wrong_type", B, k, ev(event_id=f"x-{rng.random()}", type=7)),
        ("stale_timestamp", B, k, ev(event_id=f"x-{rng.random()}", event_time=now - 500 * DAY)),
        ("future_timestamp", B, k, ev(event_id=f"x-{rng.random()}", producer_time=now + 3 * DAY)),
        ("invalid_value", B, k, dd({"amount": -5.0})),
        ("wrong_type", B, k, dd({"amount": True})),
        ("wrong_type", B, k, dd({"amount": "12.50"})),
        ("missing_field", B, k, dd({"channel": "app"})),
        ("wrong_type", B, k, dd([50.0])),
        ("schema_incompatible", B, k, dd({"channel": "app"}, schema_version=99)),
        ("invalid_value", B, k, ev(event_id="")),
        ("invalid_value", B, k, ev(event_id="e" * 200)),
        ("wrong_type", B, k, ev(event_id=f"x-{rng.random()}", account_id=12345)),
        ("missing_field", B, k, ev(event_id=f"x-{rng.random()}", payload=_DROP)),
        ("missing_field", MARKET, b"sector_index|energy",
         orjson.dumps(make_event("sector_index", "sector_index|energy", {}, event_time=base["event_time"],
                                 event_id=f"x-{rng.random()}"))),
    ]


_DROP = object()


def build_records(now: int) -> tuple[list[Rec], list[Rec]]:
    """(openings, the rest): exactly N_TOTAL records in upstream order, deterministic but for `now`."""
    rng = random.Random(2024)
    n_extra_kinds = len(_extras(now, make_event("login", "ACC000000", {"device_fingerprint": "f", "ip": "i"},
                                                event_time=now), rng))
    n_injected = N_DUP + N_LATE + N_GHOST + N_EXTRA_PER_KIND * n_extra_kinds + N_HUGE + N_HOSTILE_VALID
    n_sim = N_TOTAL - n_injected
    # Event time runs 30 ms per record (the whole stream spans ~50 min): see the module docstring for why.
    sim = _Recording(SimConfig(accounts=ACCOUNTS, facilities=FACILITIES, seed=11, malformed_share=0.22,
                               step_ms=STEP_MS, start_ms=now - int(n_sim * STEP_MS * 1.04) - HOUR))
    out: list[Rec] = []
    todo = {"dup": N_DUP, "late": N_LATE, "ghost": N_GHOST, "extra": N_EXTRA_PER_KIND * n_extra_kinds,
            "huge": N_HUGE, "hostile": N_HOSTILE_VALID}
    extra_i = 0
    for i, (topic, key, raw) in enumerate(sim.wire(n_sim)):
        clean_topic, clean = sim.last
        corrupt = raw != orjson.dumps(clean)
        r = Rec(topic, key, raw, "sim-corrupt" if corrupt else "sim",
                event_id=None if corrupt or topic == MARKET else clean["event_id"])
        out.append(r)
        if corrupt or topic == MARKET or clean["type"] == "account_opened":
            continue
        # Re-send the identical record right behind it (same key, so same partition, same order).
        if i % 97 == 0 and todo["dup"]:
            todo["dup"] -= 1
            out.append(Rec(topic, key, raw, "dup", event_id=clean["event_id"]))
        # An event 2 h behind this one, same account, same topic and partition, right after it: always late.
        elif i % 53 == 1 and todo["late"] and topic == "riskstream.events.behaviour":
            todo["late"] -= 1
            acc = clean["account_id"]
            late = make_event("login", acc, {"device_fingerprint": f"fp-{acc}", "ip": "198.51.100.7"},
                              event_time=clean["event_time"] - 2 * HOUR, event_id=f"late-{i}",
                              source="simulator")
            out.append(Rec(topic, key, orjson.dumps(late), "late", event_id=late["event_id"]))
        elif i % 83 == 2 and todo["ghost"]:
            todo["ghost"] -= 1
            g = todo["ghost"] % 7
            t = clean["event_time"]
            if g == 0:
                e = make_event("covenant_test", f"FGHOST{g}", {"covenant": "dscr_min", "value": 1.0,
                                                                "threshold": 1.2, "direction": "min"},
                               event_time=t, event_id=f"ghost-{i}")
                gt = "riskstream.events.project"
            elif g in (1, 2):
                e = make_event("payment_received", f"GHOST{g}", {"amount": 10.0}, event_time=t, event_id=f"ghost-{i}")
                gt = "riskstream.events.repayment"
            elif g == 3:
                e = make_event("bureau_inquiry", f"GHOST{g}", {"bureau": "B1", "inquiry_kind": "hard"},
                               event_time=t, event_id=f"ghost-{i}")
                gt = "riskstream.events.credit"
            else:
                e = make_event("drawdown", f"GHOST{g}", {"amount": 100.0}, event_time=t, event_id=f"ghost-{i}")
                gt = "riskstream.events.behaviour"
            out.append(Rec(gt, e.get("account_id", e.get("facility_id")).encode(), orjson.dumps(e), "ghost",
                           event_id=e["event_id"]))
        elif i % 31 == 4 and todo["hostile"] and topic == "riskstream.events.behaviour" and "account_id" in clean:
            todo["hostile"] -= 1
            d = {**clean, "type": "drawdown", "payload": {"amount": 1e300, "channel": "app"}, "event_id": f"hb-{i}"}
            raw2 = orjson.dumps(d)
            if todo["hostile"] % 2:   # its id given twice: JSON's last value counts, as in every upstream parser
                d = {**d, "event_id": f"hd-{i}", "payload": {"amount": 40.0, "channel": "app"}}
                raw2 = orjson.dumps({**d, "event_id": f"hx-{i}"})[:-1] + b',"event_id":"hd-%d"}' % i
            out.append(Rec(topic, key, raw2, "hostile", event_id=d["event_id"]))
        elif i % 29 == 3 and topic == "riskstream.events.behaviour" and "account_id" in clean and (
                todo["extra"] or todo["huge"]):
            if todo["huge"] and i % 3 == 0:
                todo["huge"] -= 1
                big = {**clean, "event_id": f"huge-{i}", "payload": {"padding": "y" * 600_000}}
                out.append(Rec(topic, key, orjson.dumps(big), "extra:oversized", ingest_reason="oversized"))
            elif todo["extra"]:
                todo["extra"] -= 1
                cases = _extras(now, clean, rng)
                reason, t2, k2, v2 = cases[extra_i % len(cases)]
                extra_i += 1
                out.append(Rec(t2, k2, v2, f"extra:{reason}", ingest_reason=reason))
    assert not any(todo.values()), f"not enough candidates to inject everything: {todo}"
    assert len(out) == N_TOTAL, len(out)
    n_open = ACCOUNTS + FACILITIES
    assert all(orjson.loads(r.value)["type"] == "account_opened" for r in out[:n_open])
    return out[:n_open], out[n_open:]


# -- Kafka helpers ---------------------------------------------------------------------------------------------------
def produce(bootstrap: str, topic_of, recs: list[Rec]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "partitioner": "murmur2_random", "linger.ms": 20, "queue.buffering.max.messages": 500_000,
                  "queue.buffering.max.kbytes": 1_048_576})
    errors = []

    def report(rec):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
                return
            rec.partition, rec.offset, rec.timestamp = msg.partition(), msg.offset(), msg.timestamp()[1]
        return cb

    for r in recs:
        while True:
            try:
                p.produce(topic_of(r.topic), key=r.key, value=r.value, on_delivery=report(r))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:3]
    assert all(r.offset >= 0 for r in recs)


def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group or f"e2e-reader-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 8 * 1024 * 1024})


def end_offsets(c: Consumer, topic: str) -> dict[int, int]:
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(parts)}


def read_all(bootstrap: str, topic: str, timeout: float = 120) -> list[tuple[int, int, bytes, bytes]]:
    """Every record of `topic` as (partition, offset, key, value), up to the end offsets seen at the start."""
    c = _consumer(bootstrap)
    try:
        ends = end_offsets(c, topic)
        pos = {p: 0 for p in ends}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out = []
        deadline = time.monotonic() + timeout
        while any(pos[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"reading {topic}: stuck at {pos} of {ends}"
            for m in c.consume(10_000, 1.0):
                if m.error() or m.offset() >= ends[m.partition()]:
                    continue
                out.append((m.partition(), m.offset(), m.key(), m.value()))
                pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def metrics_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- the run -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(kafka_broker, tmp_path_factory):
    from riskstream.ops.broker.manager import free_port
    from tests.conftest import Pipeline

    pl = Pipeline(kafka_broker, tmp_path_factory.mktemp("ingest-e2e"))
    try:
        now = int(time.time() * 1000)
        openings, rest = build_records(now)
        port = free_port()
        worker = pl.start("worker", metrics_port=port)
        print(f"worker ready after {worker.wait_ready(timeout=90):.1f} s")
        produce(pl.bootstrap, pl.topic, openings)
        deadline = time.monotonic() + 120
        while metric(metrics_text(port), "riskstream_active_accounts") < len(openings):
            assert worker.alive() and time.monotonic() < deadline, worker.log_text()[-3000:]
            time.sleep(0.5)
        t0 = time.monotonic()
        produce(pl.bootstrap, pl.topic, rest)
        print(f"published {len(openings) + len(rest)} upstream records in {time.monotonic() - t0:.1f} s")
        records = openings + rest

        # Settle: the group's committed offsets reach the end of every topic it reads (upstream, then valid).
        group = pl.topology.topic_prefix + pl.topology.agents["score"].group
        upstream_ends = {}
        check = _consumer(pl.bootstrap)
        committed_reader = _consumer(pl.bootstrap, group=group)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        settled_at, next_progress = None, 0.0
        try:
            for t in UPSTREAM:
                upstream_ends[t] = end_offsets(check, pl.topic(t))
            while True:
                assert worker.alive(), worker.log_text()[-3000:]
                ends = {t: upstream_ends[t] for t in UPSTREAM}
                ends[VALID] = end_offsets(check, pl.topic(VALID))
                tps = [TopicPartition(pl.topic(t), p) for t, e in ends.items() for p in e]
                committed = {(tp.topic, tp.partition): tp.offset
                             for tp in committed_reader.committed(tps, timeout=10)}
                lags = {t.rsplit(".", 1)[-1]: sum(e - max(committed[(pl.topic(t), p)], 0) for p, e in es.items())
                        for t, es in ends.items()}
                lag = sum(lags.values())
                if time.monotonic() > next_progress:
                    next_progress = time.monotonic() + 15
                    print(f"  t+{time.monotonic() - t0:.0f}s lag by topic {lags}")
                assert time.monotonic() < deadline, (f"not settled after {SETTLE_TIMEOUT}s: lag {lags}\n"
                                                     + worker.log_text()[-3000:])
                if lag == 0:
                    if settled_at is None:
                        settled_at = time.monotonic()
                        elapsed = settled_at - t0
                    # Stay settled for a moment: nothing more may appear in valid (no re-delivery).
                    if time.monotonic() - settled_at > 3:
                        break
                else:
                    settled_at = None
                time.sleep(1)
        finally:
            check.close()
            committed_reader.close()
        print(f"worker settled: {len(rest)} records in {elapsed:.1f} s = {len(rest) / elapsed:.0f} records/s "
              f"(ingest + score in one process)")
        # The changelog is written after each batch's outputs are acked; give its last batch a moment.
        time.sleep(2)
        data = {
            "records": records, "n_open": len(openings), "now": now, "pl": pl, "worker": worker, "port": port,
            "metrics": metrics_text(port), "upstream_ends": upstream_ends,
            # The valid topic's events; its watermark records (steps.align) only order them (docs/time.md).
            "valid_all": (valid_all := read_all(pl.bootstrap, pl.topic(VALID))),
            "valid": [r for r in valid_all if not r[2].startswith(b"\x00")],
            "dead": read_all(pl.bootstrap, pl.topic(DEAD)),
            "changelog": read_all(pl.bootstrap, pl.topic(CHANGELOG)),
            "log": worker.log_text(),
        }
        yield data
    finally:
        pl.close()


# -- 1. nothing lost, nothing twice ----------------------------------------------------------------------------------
def test_nothing_lost_nothing_twice(run):
    pl, records = run["pl"], run["records"]
    topic_of = {pl.topic(t): t for t in UPSTREAM}
    by_coord = {(r.topic, r.partition, r.offset): r for r in records}
    assert len(by_coord) == N_TOTAL
    # The broker holds exactly what we sent, no more (an idempotent producer: no retry duplicates).
    for t, ends in run["upstream_ends"].items():
        assert sum(ends.values()) == sum(1 for r in records if r.topic == t), t

    # Ground truth per record: the offline pure validator with the record's own broker timestamp as "now".
    ps = PipelineConfig().pseudonymizer
    expected_dead: dict[tuple, str] = {}
    for r in records:
        parsed = parse_event(r.value or b"", now_ms=r.timestamp, pseudonymizer=ps, family=FAMILY_OF_TOPIC[r.topic])
        malformed = r.origin == "sim-corrupt" or r.ingest_reason is not None
        assert malformed == (not isinstance(parsed, dict)), (r.origin, getattr(parsed, "reason", None))
        if malformed:
            expected_dead[(r.topic, r.partition, r.offset)] = parsed.reason
            if r.ingest_reason:
                assert parsed.reason == r.ingest_reason, (r.origin, parsed)

    dead = [(p, o, read_dead_letter(v)) for p, o, _, v in run["dead"]]
    ingest_dead = [d for _, _, d in dead if d["source_topic"] in topic_of]
    coords = collections.Counter((topic_of[d["source_topic"]], d["source_partition"], d["source_offset"])
                                 for d in ingest_dead)
    twice = [c for c, n in coords.items() if n > 1]
    assert not twice, f"{len(twice)} upstream records dead-lettered more than once, e.g. {twice[:3]}"
    assert set(coords) == set(expected_dead), (
        f"missing {len(set(expected_dead) - set(coords))}, unexpected {len(set(coords) - set(expected_dead))}")

    reasons_live = {(topic_of[d["source_topic"]], d["source_partition"], d["source_offset"]): d["reason"]
                    for d in ingest_dead}
    assert reasons_live == expected_dead
    # Original bytes, for every dead letter (truncated ones: the kept prefix, flagged, true size kept).
    truncated = 0
    for d in ingest_dead:
        r = by_coord[(topic_of[d["source_topic"]], d["source_partition"], d["source_offset"])]
        raw = r.value or b""
        assert d["reason"] in REASONS
        assert d["original_size"] == len(raw)
        if d["original_truncated"]:
            truncated += 1
            assert len(raw) > MAX_ORIGINAL_BYTES and d["original"] == raw[:MAX_ORIGINAL_BYTES]
        else:
            assert d["original"] == raw
    assert truncated == N_HUGE

    # Valid topic: exactly the well-formed non-market records (duplicates twice on both sides).
    valid_ids = collections.Counter(orjson.loads(v)["event_id"] for _, _, _, v in run["valid"])
    expected_ids = collections.Counter(r.event_id for r in records
                                       if r.event_id and (r.topic, r.partition, r.offset) not in expected_dead)
    assert valid_ids == expected_ids, (sum((valid_ids - expected_ids).values()),
                                       sum((expected_ids - valid_ids).values()))
    market_total = sum(1 for r in records if r.topic == MARKET)
    market_dead = sum(1 for d in ingest_dead if topic_of[d["source_topic"]] == MARKET)
    market_consumed = metric(run["metrics"], "riskstream_events_consumed_total", topic=MARKET)
    assert market_consumed == market_total
    processed = len(run["valid"]) + (market_total - market_dead)
    malformed_stateful = sum(1 for r in records if r.origin in ("dup", "late", "ghost"))
    share = (len(ingest_dead) + malformed_stateful) / N_TOTAL
    by_reason = collections.Counter(d["reason"] for d in ingest_dead)
    print(f"ingest: processed {processed} (valid topic {len(run['valid'])} + market {market_total - market_dead})"
          f" + dead-lettered {len(ingest_dead)} = {processed + len(ingest_dead)} of {N_TOTAL} upstream records; "
          f"malformed share incl. stateful cases {share:.1%}; dead letters by reason {dict(sorted(by_reason.items()))}"
          f"; truncated originals {truncated}")
    assert processed + len(ingest_dead) == N_TOTAL
    assert share >= 0.20
    # The fault suite's scenario 7 (tests/faults): this run is its 100,000 hostile events.
    from tests.faults.harness import ROWS, Row

    state_dead = sum(1 for _, _, d in dead if d["source_topic"] not in topic_of)
    ROWS.append(Row("7 100,000 hostile events", N_TOTAL, processed - state_dead, len(ingest_dead) + state_dead,
                    None, None, None, N_TOTAL - processed - len(ingest_dead), None, None, None,
                    f"worker alive: {run['worker'].alive()}, restarts 0"))
    assert len(by_reason) >= 11, by_reason


def _replay_state(valid_all):
    """Fold apply_event over the valid topic exactly as the score agent does: per partition in offset order,
    through the alignment (riskstream.core.steps.align.release_order: the order and apply positions it uses)."""
    from riskstream.core.steps.align import release_order

    pcfg = PipelineConfig()
    cfg = pcfg.features
    records: dict[bytes, bytes] = {}
    outcomes: dict[tuple[int, int], str] = {}
    by_part = collections.defaultdict(list)
    for part, off, key, value in sorted(valid_all, key=lambda x: (x[0], x[1])):
        by_part[part].append((off, key, value))
    ordered = [(part, pos, off, key, value) for part, recs in sorted(by_part.items())
               for pos, off, key, value in release_order(recs, pcfg.sources, max_pending=pcfg.align_max_pending)]
    for part, pos, off, key, value in ordered:
        blob = records.get(key)
        state = decode_state(blob, config=cfg) if blob else None
        state, outcome = apply_event(state, orjson.loads(value), offset=pos, config=cfg)
        outcomes[(part, off)] = outcome
        if outcome in ("applied", "late", "duplicate", "unknown_account") and state is not None:
            records[key] = encode_state(state, config=cfg)
    return outcomes, records


def test_stateful_accounting(run):
    pl, records = run["pl"], run["records"]
    valid_topic = pl.topic(VALID)
    outcomes, final = _replay_state(run["valid_all"])
    counts = collections.Counter(outcomes.values())
    assert counts["already_applied"] == 0 and counts["ignored"] == 0, counts

    dead = [read_dead_letter(v) for _, _, _, v in run["dead"]]
    stateful = [d for d in dead if d["source_topic"] == valid_topic]
    live = collections.Counter((d["source_partition"], d["source_offset"], d["reason"]) for d in stateful)
    assert all(n == 1 for n in live.values()), "a valid record dead-lettered twice"
    expected = {(p, o, r) for (p, o), r in outcomes.items() if r != "applied"}
    assert set(live) == expected, (len(set(live) - expected), len(expected - set(live)))

    valid_by_coord = {(p, o): v for p, o, _, v in run["valid"]}
    for d in stateful:
        assert d["reason"] in ("unknown_account", "duplicate", "late")
        assert d["original"] == valid_by_coord[(d["source_partition"], d["source_offset"])]

    # The live table: the changelog's last value per account is the replay's final state, byte for byte.
    changelog = {}
    for _, _, k, v in sorted(run["changelog"], key=lambda x: (x[0], x[1])):
        if not k.startswith(b"\x00"):  # per-partition records (portfolio count, versions)
            changelog[k] = v
    assert set(changelog) == set(final), len(set(changelog) ^ set(final))
    mismatched = [k for k, v in changelog.items() if AccountRecord.decode(v).state != final[k]]
    assert not mismatched, f"{len(mismatched)} accounts differ from the replay, e.g. {mismatched[:3]}"

    # The injected cases land where they must.
    event_reason = collections.defaultdict(list)
    for (p, o), r in outcomes.items():
        event_reason[orjson.loads(valid_by_coord[(p, o)])["event_id"]].append(r)
    ghosts = [r for r in records if r.origin == "ghost"]
    lates = [r for r in records if r.origin == "late"]
    dups = [r for r in records if r.origin == "dup"]
    assert all(event_reason[r.event_id] == ["unknown_account"] for r in ghosts)
    assert all(event_reason[r.event_id] == ["late"] for r in lates)
    by_reason = collections.Counter(d["reason"] for d in stateful)
    dup_ok = sum(1 for r in dups if event_reason[r.event_id] == ["applied", "duplicate"])
    applied = counts["applied"]
    per_account = collections.Counter(k for (p, o), r in outcomes.items() if r == "applied"
                                      for k in [orjson.loads(valid_by_coord[(p, o)])["entity"]])
    n_valid = len(run["valid"])
    print(f"score: valid {n_valid} = applied {applied} + unknown_account {by_reason['unknown_account']} + "
          f"duplicate {by_reason['duplicate']} + late {by_reason['late']} "
          f"(= {applied + sum(by_reason.values())}); injected: {len(ghosts)} never-opened -> unknown_account, "
          f"{len(lates)} late -> late, {len(dups)} re-sent -> duplicate {dup_ok}; max events applied to one "
          f"account {max(per_account.values())}; accounts in changelog {len(changelog)}, all equal to the replay")
    assert n_valid == applied + len(stateful)
    # Preconditions of exactness (module docstring): the stream spans less than the allowed lateness, and no
    # account accepts more than RECENT_IDS events.
    times = [orjson.loads(v)["event_time"] for _, _, _, v in run["valid"]]
    late_times = {orjson.loads(r.value)["event_time"] for r in lates}
    span = max(times) - min(t for t in times if t not in late_times)
    assert span < PipelineConfig().features.allowed_lateness, span
    assert max(per_account.values()) <= RECENT_IDS
    assert dup_ok == len(dups)
    assert by_reason == {"unknown_account": len(ghosts), "late": len(lates), "duplicate": len(dups)}


def test_worker_never_crashed(run):
    worker, log = run["worker"], run["log"]
    assert worker.alive()
    for bad in ("Crashed reason", "Traceback"):
        assert bad not in log, log[log.index(bad) - 2000: log.index(bad) + 2000]
    print(f"worker alive, log {len(log.splitlines())} lines, no 'Crashed reason' / 'Traceback'")


# -- 2. privacy -------------------------------------------------------------------------------------------------------
def _pii_values(records: list[Rec]) -> tuple[set[str], set[str]]:
    """(raw account/facility ids, raw PII values) present in what we published."""
    ids, pii = set(), set()
    for r in records:
        if not r.value:
            continue
        try:
            ev = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(ev, dict):
            continue
        for f in ("account_id", "facility_id"):
            if isinstance(ev.get(f), str) and ev[f]:
                ids.add(ev[f])
        payload = ev.get("payload")
        if isinstance(payload, dict):
            for k, v in payload.items():
                if k in PII_FIELDS and isinstance(v, str):
                    pii.add(v)
    return ids, pii


PII_PATTERNS = (re.compile(r"Customer (ACC|FAC)\d+"), re.compile(r"NI-(ACC|FAC)"), re.compile(r"\+44-"),
                re.compile(r"fp-"), re.compile(r"198\.51\.100\.\d"), re.compile(r"203\.0\.113\.\d"))


def _leaks(text: str, values: set[str]) -> list[str]:
    found = [p.pattern for p in PII_PATTERNS if p.search(text)]
    found += [v for v in values if v in text]
    return found


def test_no_pii_in_logs_metrics_or_valid_topic(run):
    ids, pii = _pii_values(run["records"])
    assert {"Customer ACC000001", "NI-ACC000001", "+44-ACC000001"} <= pii
    assert len(ids) >= ACCOUNTS and any(v.startswith("fp-") for v in pii)
    log, metrics_now = run["log"], metrics_text(run["port"])
    id_leaks_log = [i for i in ids if i in log]
    id_leaks_metrics = [i for i in ids if i in metrics_now]
    pii_leaks_log = _leaks(log, pii)
    pii_leaks_metrics = _leaks(metrics_now, pii)
    # The valid topic may hold the account id (downstream's key) but no raw PII value anywhere in a record.
    blob = b"\n".join(v for _, _, _, v in run["valid"]).decode()
    pii_leaks_valid = _leaks(blob, set())
    strings = set()
    for _, _, _, v in run["valid"]:
        ev = orjson.loads(v)
        strings.update(x for x in ev["payload"].values() if isinstance(x, str))
    pii_leaks_valid += sorted(strings & pii)
    print(f"privacy: {len(ids)} raw ids and {len(pii)} raw PII values searched in the worker log "
          f"({len(log)} chars), /metrics ({len(metrics_now)} chars) and {len(run['valid'])} valid records; leaks: "
          f"log ids {len(id_leaks_log)}, log PII {len(pii_leaks_log)}, metrics ids {len(id_leaks_metrics)}, "
          f"metrics PII {len(pii_leaks_metrics)}, valid-topic PII {len(pii_leaks_valid)}")
    assert not id_leaks_log, id_leaks_log[:5]
    assert not pii_leaks_log, pii_leaks_log[:5]
    assert not id_leaks_metrics, id_leaks_metrics[:5]
    assert not pii_leaks_metrics, pii_leaks_metrics[:5]
    assert not pii_leaks_valid, pii_leaks_valid[:5]


# -- 3. log format ----------------------------------------------------------------------------------------------------
def test_worker_log_is_json_at_info(run):
    """Every line of the worker's log is a JSON object with ts/level/logger/msg (riskstream.stream.logs at INFO), Faust's
    own lines included (their content is covered by the privacy test, which greps the whole log)."""
    lines = [line for line in run["log"].splitlines() if line.strip()]
    as_json, other = [], []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        (as_json if isinstance(obj, dict) else other).append(obj if isinstance(obj, dict) else line)
    levels = collections.Counter(o.get("level") for o in as_json)
    loggers = collections.Counter(o.get("logger", "?").split(".")[0] for o in as_json)
    print(f"worker log: {len(lines)} lines, {len(as_json)} JSON objects (levels {dict(levels)}, loggers "
          f"{dict(loggers)}), {len(other)} non-JSON lines" + (f", e.g. {other[:3]!r}" if other else ""))
    # Known cause when this fails: riskstream.stream.app.run() starts faust.Worker with mode's default
    # override_logging=True, which clears the root handlers that riskstream.stream.logs.setup_logging installed and puts
    # Faust's plain-text formatter in their place; passing override_logging=False keeps the JSON handler.
    assert as_json, "no JSON line in the worker log (Faust replaced riskstream's JSON handler)"
    assert all({"ts", "level", "logger", "msg"} <= set(o) for o in as_json)
    assert "INFO" in levels, "nothing logged at INFO"
    assert not other, f"{len(other)} non-JSON lines, e.g. {other[:5]!r}"
