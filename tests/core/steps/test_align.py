"""Alignment of the upstream sources (riskstream.core.steps.align, docs/time.md).

1. Properties of the reorder buffer against a brute-force reference: whatever the pace each source is read at and
   wherever ingest batches start and end, the events come out in (broker timestamp, source, offset) order, each
   exactly once, never before a source could still send an earlier one, and all of them once every source is read.
2. The account step over a simulated backlog read source by source gives exactly the decisions of the in-order run
   (the offline driver over the same records in publication order), with no `late` or `unknown_account`.
3. The account step itself (table, pending records, apply positions) against the same brute-force reference, with
   random batch cuts and crashes that keep the writes ahead plus any prefix of a batch's other table writes and
   re-read from an earlier offset: each event is applied once, in publication order, and none is left pending.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import random

import orjson
from hypothesis import given, settings, strategies as st

from riskstream.core.names import DEAD, DECISIONS, VALID
from riskstream.core.partitioner import partition_for
from riskstream.core.steps import Context, PipelineConfig, Source, Valid, account_batch, ingest_batch
from riskstream.core.steps.align import WATERMARK_KEY, new_align, take, take_marks
from riskstream.offline.driver import OfflineDriver
from riskstream.ops.simulator import SimConfig, Simulator

END = 1 << 60


@st.composite
def workloads(draw):
    """Per source, a non-decreasing run of timestamps; a random interleaving of ingest batches over them."""
    n_src = draw(st.integers(1, 4))
    sources = tuple(f"s{i}" for i in range(n_src))
    seqs = {s: sorted(draw(st.lists(st.integers(0, 30), max_size=12))) for s in sources}
    # ingest batches: (source, how many records); drawn in a random order respecting each source's own order
    batches, left = [], {s: len(v) for s, v in seqs.items()}
    rnd = random.Random(draw(st.integers(0, 10_000)))
    while any(left.values()):
        s = rnd.choice([s for s in sources if left[s]])
        k = rnd.randint(1, left[s])
        batches.append((s, k))
        left[s] -= k
    return sources, seqs, batches, draw(st.booleans())


def feed(sources, seqs, batches, max_pending=0, watermarks_between=True):
    """Drive take/take_marks as ingest would frame its batches; returns the released order and the checks."""
    state = new_align()
    pos = {s: 0 for s in sources}
    released, voff = [], 0
    unread = {s: list(enumerate(v)) for s, v in seqs.items()}
    for s, k in batches:
        chunk = unread[s][pos[s]:pos[s] + k]
        pos[s] += k
        if watermarks_between:
            state, rel = take_marks(state, sources, {s: chunk[0][1]}, max_pending=max_pending)
            released += rel
        for soff, ts in chunk:
            state, rel = take(state, sources, (s, soff, ts, voff), max_pending=max_pending)
            voff += 1
            released += rel
            for r in rel:  # never early: no source can still send a record that sorts before a released one
                for s2 in sources:
                    nxt = [x for x in unread[s2] if x[0] > soff] if s2 == s else unread[s2][pos[s2]:]
                    assert all((t2, s2, o2) > (r[2], r[0], r[1]) for o2, t2 in nxt) or max_pending, (r, s2)
        if watermarks_between:
            state, rel = take_marks(state, sources, {s: chunk[-1][1]}, max_pending=max_pending)
            released += rel
    state, rel = take_marks(state, sources, {s: END for s in sources})  # every source caught up
    released += rel
    return state, released


@settings(max_examples=300, deadline=None)
@given(workloads())
def test_release_order_is_publication_order_whatever_the_pace(w):
    sources, seqs, batches, framed = w
    state, released = feed(sources, seqs, batches, watermarks_between=framed)
    reference = sorted((ts, s, soff) for s, v in seqs.items() for soff, ts in enumerate(v))
    assert [(r[2], r[0], r[1]) for r in released] == reference
    assert not state["pending"] and state["forced"] == 0


@settings(max_examples=100, deadline=None)
@given(workloads(), st.integers(1, 3))
def test_bounded_buffer_releases_each_event_once(w, bound):
    sources, seqs, batches, framed = w
    state, released = feed(sources, seqs, batches, max_pending=bound, watermarks_between=framed)
    assert sorted((r[0], r[1]) for r in released) == sorted((s, o) for s, v in seqs.items() for o in range(len(v)))
    assert not state["pending"]


def test_a_source_not_heard_of_holds_everything_back():
    state, rel = take(new_align(), ("a/0", "b/0"), ("a/0", 0, 5, 0))
    assert rel == [] and len(state["pending"]) == 1
    state, rel = take_marks(state, ("a/0", "b/0"), {"b/0": 5})  # b at 5 could still send a 5 (b sorts after a)
    assert rel == [("a/0", 0, 5, 0)]


# --- the account step over a backlog ---------------------------------------------------------------------------

HOUR = 3_600_000


def publication(n: int, seed: int = 5):
    """A simulator stream as upstream publishes it: (topic, key, raw, source partition, broker ms), in order."""
    sim = Simulator(SimConfig(accounts=150, facilities=8, seed=seed, start_ms=1_780_000_000_000,
                              step_ms=int(24 * HOUR / n)))
    out = []
    for i, (topic, key, raw) in enumerate(sim.wire(n)):
        out.append((topic, key, raw, partition_for(key, 4), sim.t + 5))
    return out


def live_run(pub, cfg: PipelineConfig, schedule: list[list[int]], rnd: random.Random):
    """Ingest batches (lists of publication indexes, each list from one source in order) → the valid topic per
    partition in publish order → the account step in random batch sizes; returns decisions and dead letters."""
    valid: dict[int, list] = collections.defaultdict(list)
    offsets = collections.Counter()
    for idx in schedule:
        items = []
        for i in idx:
            topic, key, raw, part, ts = pub[i]
            items.append((raw, Source(topic, part, offsets[(topic, part)], ts), topic))
            offsets[(topic, part)] += 1
        for o in ingest_batch(cfg, items):
            if o.topic == VALID:
                p = o.partition if o.partition is not None else partition_for(o.key, cfg.partitions)
                valid[p].append((o.key, o.value))
    # every source caught up
    for o in ingest_batch(cfg, [], idle={s: END for s in cfg.sources}):
        valid[o.partition].append((o.key, o.value))
    ctx = Context(cfg)
    table: dict = {}
    decisions, dead = {}, collections.Counter()
    for p, recs in valid.items():
        i = 0
        while i < len(recs):
            k = rnd.randint(1, 40)
            batch = [Valid(key, value, p, off) for off, (key, value) in enumerate(recs[i:i + k], start=i)]
            i += k
            res = account_batch(ctx, table.get, batch)
            for key, v in res.dirty.items():
                if v is None:
                    table.pop(key, None)
                else:
                    table[key] = v
            for o in res.outs:
                if o.topic == DECISIONS:
                    d = orjson.loads(o.value)
                    if "decision_id" in d:
                        decisions[d["decision_id"]] = (d["action"], d.get("rule_id"), d.get("reasons"))
                elif o.topic == DEAD:
                    dead[o.label] += 1
    assert not any(k.startswith(b"\x00pending/") for k in table), "events left pending"
    return decisions, dead


def offline_in_order(pub, cfg):
    decisions, dead = {}, collections.Counter()

    def keep(o):
        if o.topic == DECISIONS:
            d = orjson.loads(o.value)
            if "decision_id" in d:
                decisions[d["decision_id"]] = (d["action"], d.get("rule_id"), d.get("reasons"))
        elif o.topic == DEAD:
            dead[o.label] += 1

    d = OfflineDriver(Context(cfg), learn=False, on_output=keep, actuate=False)
    for topic, key, raw, part, ts in pub:
        d.feed(topic, raw, timestamp_ms=ts)
    return decisions, dead


def test_backlog_read_source_by_source_decides_as_the_in_order_run():
    pub = [r for r in publication(3000) if r[0] != "riskstream.events.market"]
    cfg = PipelineConfig()
    rnd = random.Random(3)
    by_source = collections.defaultdict(list)
    for i, r in enumerate(pub):
        by_source[(r[0], r[3])].append(i)
    # Backlog: each source partition drained in big batches, the small topics first (the worst case).
    order = sorted(by_source, key=lambda s: len(by_source[s]))
    backlog = [idx[j:j + 500] for s in order for idx in [by_source[s]] for j in range(0, len(idx), 500)]
    # Live, in order: one record per batch in publication order.
    live = [[i] for i in range(len(pub))]
    ref, ref_dead = offline_in_order(pub, cfg)
    got_live, dead_live = live_run(pub, cfg, live, rnd)
    got_backlog, dead_backlog = live_run(pub, cfg, backlog, rnd)
    assert len(ref) > 50
    print(f"decisions: in order {len(ref)}, live {len(got_live)}, backlog {len(got_backlog)}; "
          f"dead letters: in order {dict(ref_dead)}, backlog {dict(dead_backlog)}")
    assert dead_backlog["late"] == 0 and dead_backlog["unknown_account"] == 0
    assert got_live == ref
    assert got_backlog == ref


def test_without_alignment_the_same_backlog_dead_letters_good_events():
    """The problem being fixed, reproduced in the core: ingest without watermark records."""
    pub = [r for r in publication(3000) if r[0] != "riskstream.events.market"]
    by_source = collections.defaultdict(list)
    for i, r in enumerate(pub):
        by_source[(r[0], r[3])].append(i)
    ctx = Context(PipelineConfig())
    table, dead = {}, collections.Counter()
    for s in sorted(by_source, key=lambda s: len(by_source[s])):
        for i in by_source[s]:
            topic, key, raw, part, ts = pub[i]
            from riskstream.core.steps import ingest
            o = ingest(ctx.config, raw, Source(topic, part, i, ts))
            res = account_batch(ctx, table.get, [Valid(o.key, o.value, partition_for(o.key, 4), i)])
            table.update({k: v for k, v in res.dirty.items() if v is not None})
            dead.update(x.label for x in res.outs if x.topic == DEAD)
    assert dead["unknown_account"] + dead["late"] > 100, dead


# --- the account step's alignment, through its table, batch cuts and crashes ----------------------------------

@st.composite
def valid_partitions(draw):
    """One valid partition as ingest writes it: per ingest batch a watermark (first timestamp of each source in the
    batch), the batch's stamped events, a watermark (last timestamp); the batches of several sources interleaved at
    random paces; then every source announced caught up. Plus how the account step's batches are cut, and where
    the worker crashes (losing a random suffix of that batch's table writes and re-reading from an earlier
    offset)."""
    w = draw(workloads())
    sources, seqs, batches, _ = w
    accounts = [b"A%d" % i for i in range(draw(st.integers(1, 3)))]
    records, pos = [], {s: 0 for s in sources}
    for s, k in batches:
        chunk = list(enumerate(seqs[s]))[pos[s]:pos[s] + k]
        pos[s] += k
        records.append((WATERMARK_KEY, orjson.dumps({"kind": "watermark", "marks": {s: chunk[0][1]}})))
        for soff, ts in chunk:
            key = accounts[draw(st.integers(0, len(accounts) - 1))]
            records.append((key, orjson.dumps({"entity": key.decode(), "_src": [s, soff, ts]})))
        records.append((WATERMARK_KEY, orjson.dumps({"kind": "watermark", "marks": {s: chunk[-1][1]}})))
    records.append((WATERMARK_KEY, orjson.dumps({"kind": "watermark", "marks": {s: END for s in sources}})))
    cuts = draw(st.lists(st.integers(1, 8), min_size=1, max_size=8))
    crashes = draw(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 1), st.integers(0, 6)), max_size=3))
    return sources, seqs, records, cuts, crashes


def test_account_step_applies_each_event_once_in_publication_order_through_crashes(monkeypatch):
    """account_batch (the step itself: table records, pending records, apply positions) against the brute-force
    reference, with `account_one` replaced by a recorder that, like apply_event, skips an apply position an
    account already holds."""
    import riskstream.core.steps.account as account_mod
    from riskstream.core.steps.records import Out

    def recorder(use, current, value, *, offset, topic, partition, active_accounts, position):
        if current is not None and position <= int(current):
            return None, []  # already_applied
        ev = orjson.loads(value)
        return b"%d" % position, [Out("applied", ev["entity"].encode(), orjson.dumps(ev["_src"]), "applied")]

    monkeypatch.setattr(account_mod, "account_one", recorder)
    base = Context(PipelineConfig(partitions=1))  # built once: it warms the default model

    @settings(max_examples=200, deadline=None)
    @given(valid_partitions())
    def check(case):
        sources, seqs, records, cuts, crashes = case
        ctx = copy.copy(base)
        ctx.config = dataclasses.replace(base.config, sources=sources)
        table: dict = {}
        applied: list = []
        committed, n_batch, crash_at = 0, 0, {c[0]: c for c in crashes}
        while committed < len(records):
            k = cuts[n_batch % len(cuts)]
            batch = [Valid(key, value, 0, off) for off, (key, value) in
                     enumerate(records[committed:committed + k], start=committed)]
            res = account_batch(ctx, table.get, batch)
            applied += [tuple(orjson.loads(o.value)) for o in res.outs if o.topic == "applied"]
            writes = list(res.dirty.items())
            crash = crash_at.get(n_batch)
            if crash is not None:  # the table keeps the writes ahead and a prefix of the rest; re-read from back
                kept = {k_: v for k_, v in writes if k_ in res.ahead}
                kept.update(writes[:int(crash[1] * len(writes))])
                writes = list(kept.items())
                back = max(0, committed - crash[2])
            for key, v in writes:
                if v is None:
                    table.pop(key, None)
                else:
                    table[key] = v
            committed = back if crash is not None else committed + k
            n_batch += 1
            assert n_batch < 10_000
        reference = sorted((ts, s, soff) for s, v in seqs.items() for soff, ts in enumerate(v))
        firsts = list(dict.fromkeys((ts, s, soff) for s, soff, ts in applied))
        assert firsts == reference
        assert not any(k.startswith(b"\x00pending/") for k in table), "an event left pending"

    check()
