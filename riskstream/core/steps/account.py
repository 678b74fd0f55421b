"""Account step: valid events + the accounts they touch → new records, decisions, labels and dead letters.

Everything it decides from is an argument: the context (market, model, policies), the records the driver reads
for it (`get`), and the batch. Besides one record per account it keeps two records per partition in the same
table: how many accounts the partition holds (the breaker's share is measured against it) and the model and
policy versions it last used (a change is published on the `versions` topic with the offset it took effect at).

>>> from riskstream.core.contracts import encode_event, make_event
>>> from riskstream.core.steps.ingest import Source, ingest
>>> ctx = Context(PipelineConfig())
>>> raw = encode_event(make_event("account_opened", "A1", {"product": "credit_line", "segment": "retail",
...                                "limit": 1000, "currency": "EUR"}, event_time=1_000))
>>> valid = ingest(ctx.config, raw, Source("riskstream.events.behaviour", 0, 0, 2_000))
>>> res = account_batch(ctx, {}.get, [Valid(valid.key, valid.value, 3, 0)])
>>> sorted(res.dirty), [o.topic for o in res.outs]
([b'\\x00portfolio/3', b'\\x00versions/3', b'A1'], ['riskstream.versions'])
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, NamedTuple

import orjson

from riskstream.core.account.features import BEHAVIOUR_FEATURES, compute_features, feature_hash
from riskstream.core.account.record import AccountRecord
from riskstream.core.account.codec import decode_state, encode_state
from riskstream.core.account.state import apply_event
from riskstream.core.contracts import Rejected
from riskstream.core.names import DECISIONS, LABELS, VALID, VERSIONS
from riskstream.core.steps.align import WATERMARK_KEY, align_key, decode_align, encode_align, new_align, \
    pending_key, source_of, take, take_marks
from riskstream.core.steps.context import Context, PipelineConfig
from riskstream.core.steps.ingest import dead
from riskstream.core.steps.memo import DecodedRecord
from riskstream.core.steps.records import Out

RESTRICTIVE = ("WARN", "REDUCE_LIMIT", "FREEZE", "CLOSE")  # a cure is only news to a line that had one of these
_RESTRICTIVE = frozenset(RESTRICTIVE)
# Outcomes of the state step that become dead letters (reason codes from riskstream.core.contracts.REASONS).
STATE_REJECTIONS = {
    "late": "event time is older than the account's watermark minus the allowed lateness",
    "duplicate": "an event with this event_id was already applied to this account",
    "unknown_account": "no account_opened event was seen for this account or facility",
}


def portfolio_key(partition: int) -> bytes:
    """Table key of a partition's account count (\\x00 never starts an entity id)."""
    return b"\x00portfolio/%d" % partition


def versions_key(partition: int) -> bytes:
    return b"\x00versions/%d" % partition


class Valid(NamedTuple):
    """One record of the valid topic, as the account step needs it."""
    key: bytes
    value: bytes
    partition: int
    offset: int


class StepResult(NamedTuple):
    dirty: dict    # table key -> new value, to write once per batch after `outs` are acknowledged
    outs: list     # records to publish
    # Keys of `dirty` to make durable *before* `outs` are published: the versions record of each partition (which
    # valid offsets were decided with which model and policy). A worker that crashes after publishing a decision
    # then re-decides the record with the versions it used the first time, whatever it has loaded since.
    ahead: tuple = ()


def account_batch(ctx: Context, get: Callable[[bytes], bytes | None], batch, *, topic: str = VALID) -> StepResult:
    """Apply a batch of valid events in order. `get` reads the table; `topic` is named in dead letters."""
    dirty: dict[bytes, bytes] = {}
    outs: list[Out] = []
    versions = ctx.versions()
    seen: dict[int, dict] = {}  # partition -> its versions record: {"upto": offset, "history": [[offset, v], ...]}
    n = ctx.config.partitions

    def read(key: bytes):
        return dirty[key] if key in dirty else get(key)

    memo = getattr(ctx, "decoded", None)
    aligns: dict[int, dict | None] = {}  # partition -> its alignment record (None: not aligned yet, see steps.align)
    gone: list[bytes] = []               # pending events released: deleted after the alignment record is written
    sources, max_pending = ctx.config.sources, ctx.config.align_max_pending

    for rec in batch:
        p = rec.partition
        if p not in seen:
            seen[p] = orjson.loads(read(versions_key(p)) or b'{"upto": -1, "history": []}')
            # First in the batch's writes: a crash that keeps an account's record keeps the versions behind it.
            dirty[versions_key(p)] = b""
            raw = read(align_key(p))
            # A record this process wrote: take its objects (steps.memo) instead of decoding the pending index.
            taken = memo.take(align_key(p), raw) if memo is not None and raw else None
            aligns[p] = taken if taken is not None else decode_align(raw)
        vrec = seen[p]
        if rec.offset <= vrec["upto"]:
            use = ctx.at_versions(_versions_at(vrec["history"], rec.offset) or versions)  # re-read after a crash
        else:
            use = ctx
            if not vrec["history"] or vrec["history"][-1][1] != versions:
                vrec["history"] = (vrec["history"] + [[rec.offset, versions]])[-8:]
                outs.append(Out(VERSIONS, b"%d" % p, orjson.dumps({"partition": p, "offset": rec.offset,
                                                                    **versions}), "versions", partition=p))
            vrec["upto"] = rec.offset
        released = _align(aligns, p, rec, sources, max_pending, dirty, read, gone)
        pkey = portfolio_key(p)
        for i, (voff, key, value) in enumerate(released):
            # Apply position: the valid offset until the partition is aligned, then (triggering offset, index).
            position = voff if aligns[p] is None else rec.offset * POSITIONS + i
            held = int(read(pkey) or 0)
            current = read(key)
            record, o = account_one(use, current, value, offset=voff, topic=topic, partition=p,
                                    active_accounts=max(1, held * n), position=position)
            if record is not None:
                if current is None:
                    dirty[pkey] = b"%d" % (held + 1)
                dirty[key] = record
            outs.extend(o)
    for p, vrec in seen.items():
        dirty[versions_key(p)] = orjson.dumps(vrec)
    # Then the deletes of released pending events, then the alignment record. A crash that keeps a delete but loses
    # the alignment record re-releases the event from the old record, finds no body and skips it (it was applied:
    # the accounts come before the deletes). The other order would orphan the pending record for good.
    for k in gone:
        dirty.pop(k, None)
        dirty[k] = None
    for p, st in aligns.items():
        if st is not None:
            dirty.pop(align_key(p), None)
            dirty[align_key(p)] = raw = encode_align(st)
            if memo is not None:
                memo.put(align_key(p), raw, st)
    return StepResult(dirty, outs, tuple(versions_key(p) for p in seen))


POSITIONS = 1 << 20  # apply positions per triggering valid offset (more than align_max_pending + 1)


def _align(aligns: dict, p: int, rec, sources, max_pending: int, dirty: dict, read, gone: list) -> list:
    """The events `rec` releases, as (valid offset, key, value), in publication order."""
    st = aligns[p]
    if rec.key == WATERMARK_KEY:
        if st is None:
            st = aligns[p] = new_align()  # the first watermark turns alignment on for the partition
        if rec.offset <= st["upto"]:
            return []                     # re-read after a crash: already taken
        st["upto"] = rec.offset
        st, rel = take_marks(st, sources, orjson.loads(rec.value).get("marks") or {}, max_pending=max_pending)
    elif st is None:
        return [(rec.offset, rec.key, rec.value)]
    else:
        if rec.offset <= st["upto"]:
            return []
        st["upto"] = rec.offset
        src = source_of(orjson.loads(rec.value))
        if src is None:                   # not stamped by ingest: nothing to align it with
            return [(rec.offset, rec.key, rec.value)]
        dirty[pending_key(p, rec.offset)] = b"%d\n" % len(rec.key) + rec.key + rec.value
        st, rel = take(st, sources, (src[0], src[1], src[2], rec.offset), max_pending=max_pending)
    out = []
    for _, _, _, voff in rel:
        pk = pending_key(p, voff)
        body = read(pk)
        if body:  # None: released and deleted before a crash lost this alignment record
            n_, rest = body.split(b"\n", 1)
            out.append((voff, rest[:int(n_)], rest[int(n_):]))
        gone.append(pk)
    return out


def _versions_at(history: list, offset: int) -> dict | None:
    found = None
    for start, v in history:
        if start > offset:
            break
        found = v
    return found


def account_one(ctx: Context, record: bytes | None, value: bytes, *, offset: int, topic: str = VALID,
                partition: int = 0, active_accounts: int = 1,
                position: int | None = None) -> tuple[bytes | None, list[Out]]:
    """Apply one valid event to its account; returns the new record (None = unchanged) and the outputs.

    `offset` is the event's valid offset (named in dead letters), `position` its apply position in the partition
    (default: the offset), which the account remembers so a re-application after a crash is skipped.

    Time is the event's time throughout (never the wall clock), so a replay makes the same decisions.
    """
    cfg: PipelineConfig = ctx.config
    event = orjson.loads(value)
    entity = event["entity"]
    keep = cfg.keep_decoded
    if type(record) is DecodedRecord:  # kept decoded (the backtest's table): its objects, no decoding
        state, tracker = parts = record.take()
        rec = AccountRecord(b"", record.memory, record.labels or b"", record.cashflow)
        memo = None
    else:
        rec = AccountRecord.decode(record)
        memo = getattr(ctx, "decoded", None)
        parts = memo.take(entity, record) if memo is not None and record else None
        if parts is not None:
            state, tracker = parts  # the objects `record` was encoded from: decoding would give the same
        else:
            state = decode_state(rec.state, config=cfg.features) if record else None
            tracker = None
    state, outcome = apply_event(state, event, offset=offset if position is None else position, config=cfg.features)
    if outcome == "already_applied" or outcome == "ignored":
        if memo is not None and parts is not None:
            memo.put(entity, record, parts)  # unchanged
        elif type(record) is DecodedRecord:
            record.give_back()
        return None, []
    if outcome in STATE_REJECTIONS:
        letter = dead(value, topic, partition, offset, Rejected(outcome, STATE_REJECTIONS[outcome]),
                      event["event_time"])
        if state is None:
            return None, [letter]
        if keep:  # the labels as they were (None: a kept record's tracker is their encoding)
            labels = record.labels if type(record) is DecodedRecord else rec.labels
            return DecodedRecord(state, tracker, rec.memory, labels, rec.cashflow), [letter]
        new = rec._replace(state=encode_state(state, config=cfg.features)).encode()
        if memo is not None:
            memo.put(entity, new, (state, tracker))
        return new, [letter]
    if outcome != "applied":
        return None, []

    t = event["event_time"]
    outs: list[Out] = []
    features = compute_features(state, as_of=state.watermark, market=ctx.market)
    facts: dict[str, Any] = dict(features)
    facts["product"], facts["segment"] = state.product, state.segment
    cf_bytes = _facility_facts(ctx, state, event, rec.cashflow, features, facts)

    model = ctx.model
    if hasattr(model, "predict_lazy"):
        score, explain = model.predict_lazy(features)  # reasons only for a decision that is made
    else:
        score = model.predict_one(features)
        explain = lambda: score.reasons  # noqa: E731
    facts["pd"], facts["score"] = score.pd, float(score.score)
    anomaly = getattr(ctx.model, "anomaly", None)
    facts["anomaly"] = anomaly.score_one(features) if anomaly is not None and state.product == "credit_line" else 0.0
    facts["drift"] = float(getattr(ctx.model, "drift_active", 0))
    facts["fraud_confirmed"] = 0.0
    facts["cured"] = 1.0 if event["type"] == "payment_received" and features.get("days_past_due", 0.0) == 0 else 0.0

    tracker, lab_bytes, labels_changed = _labels(ctx, tracker, rec.labels, event, features, outs, encode=not keep)
    decisions, memories = _decide(ctx, event, features, facts, score, explain, rec.memory, active_accounts)
    outs.extend(decisions)
    restricted = not _RESTRICTIVE.isdisjoint((memories.get("champion") or {}).get("last", {}))
    if facts["cured"] and restricted:
        outs.append(Out(DECISIONS, entity.encode(), orjson.dumps(
            {"kind": "cure", "account_id": entity, "event_id": event["event_id"], "event_time": t}), "cure/CURE"))
    mem_bytes = orjson.dumps(memories, option=orjson.OPT_SORT_KEYS)
    if keep:
        tracker = tracker.as_reloaded() if labels_changed else tracker
        # A copy: orjson's bytes keep a 4 KB allocation, which a kept record would hold for good (~80 MB a book).
        return DecodedRecord(state, tracker, bytes(memoryview(mem_bytes)), None, cf_bytes), outs
    new = AccountRecord(encode_state(state, config=cfg.features), mem_bytes, lab_bytes, cf_bytes).encode()
    if memo is not None:
        memo.put(entity, new, (state, tracker.as_reloaded() if labels_changed else tracker))
    return new, outs


def _facility_facts(ctx: Context, state, event: dict, cf_bytes: bytes, features: dict, facts: dict) -> bytes:
    """Project finance: per-facility cash-flow forecast → projected DSCR and breach horizon."""
    if state.product != "project_facility":
        facts["dscr_forecast"], facts["covenant_breach_in_periods"] = 0.0, -1.0
        return cf_bytes
    from riskstream.core.models.cashflow import CashflowForecaster

    cf = CashflowForecaster.decode(cf_bytes) if cf_bytes else CashflowForecaster(ctx.model_config)
    if event["type"] == "financial_statement":
        p = event["payload"]
        cf.learn_one(float(p.get("ebitda", 0.0)), float(p.get("debt_service") or 0.0) or None)
        cf_bytes = cf.encode()
    proj = cf.projected_dscr(1)
    facts["dscr_forecast"] = float(proj[0]) if proj and proj[0] is not None else features.get("dscr", 0.0)
    breach = cf.breach_in_periods(1.0, horizon=8)
    facts["covenant_breach_in_periods"] = float(breach) if breach is not None else -1.0
    return cf_bytes


def _labels(ctx: Context, tracker, lab_bytes: bytes, event: dict, features: dict, outs: list, *, encode=True):
    """Delayed labels: snapshot the features as of now, resolve older snapshots with this repayment event.

    `tracker` is the decoded `lab_bytes` if the caller has it already (else None). Returns it, its bytes and
    whether it changed: a behaviour event inside the snapshot gap changes nothing, so nothing is re-encoded
    (nor is a changed tracker with `encode=False`: the caller keeps it decoded, and the bytes are then stale).
    """
    from riskstream.core.models.labels import LabelTracker

    cfg = ctx.config
    t = event["event_time"]
    if tracker is None:
        tracker = LabelTracker.decode(lab_bytes, ctx.model_config) if lab_bytes else LabelTracker(ctx.model_config)
    changed = event["family"] == "repayment"
    if changed:
        for ex in tracker.on_repayment(event):
            outs.append(Out(LABELS, b"label", orjson.dumps({
                "kind": "label", "entity": cfg.pseudonymizer.pseudonym(ex.entity),
                "snapshot_time": ex.snapshot_time, "label_time": t, "features": ex.features,
                "label": bool(ex.label)}), "label"))
    # Zeros are left out (the scorer reads a missing feature as 0): most features are 0 for most accounts,
    # and the snapshots are most of the account record.
    if tracker.due(event["entity"], t):
        tracker.snapshot(event["entity"], t, {k: v for k, v in features.items() if v})
        changed = True
    if event["family"] == "behaviour" and zlib.crc32(event["event_id"].encode()) % cfg.behaviour_sample == 0:
        outs.append(Out(LABELS, b"behaviour", orjson.dumps({
            "kind": "behaviour", "features": {k: features.get(k, 0.0) for k in BEHAVIOUR_FEATURES}}), "behaviour"))
    return tracker, (tracker.encode() if changed and encode else lab_bytes), changed


def _decide(ctx: Context, event: dict, features: dict, facts: dict, score, explain, mem_bytes: bytes,
            active_accounts: int):
    from riskstream.core.policy import decide_all

    entity, t = event["entity"], event["event_time"]
    ctx_ = {"account_id": entity, "event_id": event["event_id"], "event_time": t,
            "model_version": ctx.model_version, "feature_hash": None}  # hashed below, only for a decision
    memories = orjson.loads(mem_bytes) if mem_bytes else {}
    decisions, memories = decide_all(ctx.policies.policy, ctx.challengers, facts,
                                     lambda: [r.text for r in explain()], ctx_, memories)
    producer_time = event.get("producer_time", t)
    outs = []
    fhash = feature_hash(features) if decisions else None
    for d in decisions:
        body = d.to_dict()
        body["feature_hash"] = fhash
        body["pd"], body["score"] = round(score.pd, 6), score.score
        body["producer_time"] = producer_time
        body["active_accounts"] = active_accounts
        body["role"] = role = "champion" if d.policy_name == ctx.policies.policy.name else "challenger"
        if d.action == "REVIEW":  # an analyst's verdict on it is a label: it needs the point-in-time features
            body["features"] = {k: v for k, v in features.items() if v}  # zeros left out, as in label snapshots
        outs.append(Out(DECISIONS, entity.encode(), orjson.dumps(body), f"{role}/{d.action}", d.decision_id,
                        str(d.rule_id or "other")[:40], producer_time))
    return outs, memories
