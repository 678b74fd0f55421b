"""Delayed default labels for point-in-time feature snapshots, without leakage.

At scoring time `snapshot(entity, t, features)` stores a COPY of the features as they were at `t`. Repayment
events after `t` decide the outcome (config section `labels`):

* **bad**  - a `payment_missed` with `days_past_due >= bad_dpd`, with event time after `t`, before the snapshot
  resolved or expired;
* **good** - the first `horizon_cycles` statements issued after `t` were each paid in full (payment_received /
  payment_partial amounts summed, optionally matched by `statement_id`, else applied to the oldest unpaid
  statement) on or before their `due_date`, and no bad event came first;
* **indeterminate** - a window statement was paid late (but never >= bad_dpd), or nothing decided within
  `horizon_ms`: the snapshot expires without a label (dropped, never guessed).

The learned features are always the snapshot's copy, so nothing computed after `t` can reach `learn_one`.
State is bounded: one snapshot per entity per `min_snapshot_gap_ms`, at most `max_open_per_entity` per entity
(oldest dropped), at most `max_open_total` overall (globally oldest dropped).

>>> tr = LabelTracker({"bad_dpd": 30, "horizon_cycles": 1})
>>> tr.snapshot("a1", 1_000, {"utilisation": 0.9})
True
>>> ev = {"type": "payment_missed", "entity": "a1", "event_time": 5_000,
...       "payload": {"statement_id": "s0", "days_past_due": 31, "amount_due": 100.0}}
>>> [(e.features, e.label) for e in tr.on_repayment(ev)]
[({'utilisation': 0.9}, True)]

"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import msgspec
import orjson

from riskstream.core.account.feature_list import FEATURE_NAMES
from riskstream.core.models.config import load_config

__all__ = ["LabeledExample", "LabelTracker"]

_DEFAULTS = load_config()["labels"]
_MAX_STATEMENTS_PER_ENTITY = 8  # only the last few cycles can matter to an open snapshot


@dataclasses.dataclass(frozen=True)
class LabeledExample:
    entity: str
    snapshot_time: int
    features: dict
    label: bool  # True = bad (default)


class LabelTracker:
    """Keeps point-in-time snapshots and turns later repayment events into labelled examples."""

    def __init__(self, config: dict | None = None):
        config = config or {}
        section = config["labels"] if isinstance(config.get("labels"), dict) else config
        self.config = {**_DEFAULTS, **section}
        # entity -> list of open snapshots (dicts), oldest first
        self._open: dict[str, list[dict]] = {}
        # entity -> {statement_id: {"issued", "due_date", "amount_due", "paid", "on_time"}}
        self._statements: dict[str, dict[str, dict]] = {}
        self._order: collections.deque = collections.deque()  # (entity, snapshot id) in creation order
        self._ids = itertools.count()
        self.n_open = 0
        self.counts = collections.Counter()

    # -- snapshots -------------------------------------------------------------------------------------------
    def due(self, entity: str, t: int) -> bool:
        """Whether `snapshot(entity, t, ...)` would keep one (False: too soon after the last; nothing changes)."""
        snaps = self._open.get(entity)
        return not snaps or t - snaps[-1]["t"] >= self.config["min_snapshot_gap_ms"]

    def snapshot(self, entity: str, t: int, features: dict) -> bool:
        """Keep a copy of `features` as of event time `t`; returns False when skipped (too soon after the last)."""
        snaps = self._open.setdefault(entity, [])
        if snaps and t - snaps[-1]["t"] < self.config["min_snapshot_gap_ms"]:
            return False
        snap = {"id": next(self._ids), "t": int(t), "features": {k: float(v) for k, v in features.items()},
                "window": [], "late": False}
        snaps.append(snap)
        self._order.append((entity, snap["id"]))
        self.n_open += 1
        self.counts["snapshots"] += 1
        if len(snaps) > self.config["max_open_per_entity"]:
            self._drop(entity, snaps[0], "evicted")
        while self.n_open > self.config["max_open_total"] and self._order:
            ent, sid = self._order.popleft()
            victim = next((s for s in self._open.get(ent, ()) if s["id"] == sid), None)
            if victim is not None:
                self._drop(ent, victim, "evicted")
        return True

    def _drop(self, entity: str, snap: dict, why: str) -> None:
        snaps = self._open[entity]
        snaps.remove(snap)
        self.n_open -= 1
        self.counts[why] += 1
        if not snaps:
            del self._open[entity]
            self._statements.pop(entity, None)

    def expire(self, now_ms: int, entity: str | None = None) -> int:
        """Drop snapshots older than `horizon_ms` at event time `now_ms` (one entity or all); returns the count."""
        entities = [entity] if entity is not None else list(self._open)
        n = 0
        for ent in entities:
            for snap in list(self._open.get(ent, ())):
                if now_ms - snap["t"] > self.config["horizon_ms"]:
                    self._drop(ent, snap, "expired")
                    n += 1
        if len(self._order) > 2 * max(self.n_open, 1024):  # compact lazily-deleted entries
            alive = {(e, s["id"]) for e, ss in self._open.items() for s in ss}
            self._order = collections.deque(o for o in self._order if o in alive)
        return n

    # -- outcomes --------------------------------------------------------------------------------------------
    def on_repayment(self, event: dict) -> list[LabeledExample]:
        """Update outcomes with one parsed repayment event; return the examples it resolved."""
        entity = event.get("entity")
        t = int(event.get("event_time", 0))
        self.expire(t, entity)
        if entity not in self._open:
            return []  # no open snapshot: nothing to label, and no statement state kept for it
        payload = event.get("payload") or {}
        kind = event.get("type")
        statements = self._statements.setdefault(entity, {})
        resolved: list[LabeledExample] = []
        if kind == "statement_issued":
            sid = str(payload.get("statement_id"))
            st = {"issued": t, "due_date": int(payload.get("due_date", t)),
                  "amount_due": float(payload.get("amount_due", 0.0)), "paid": 0.0, "on_time": None}
            if st["amount_due"] <= 0:
                st["on_time"] = True
            statements[sid] = st
            while len(statements) > _MAX_STATEMENTS_PER_ENTITY:
                statements.pop(next(iter(statements)))
            for snap in self._open[entity]:
                if t > snap["t"] and len(snap["window"]) < self.config["horizon_cycles"]:
                    snap["window"].append(sid)
        elif kind in ("payment_received", "payment_partial"):
            sid = payload.get("statement_id")
            st = statements.get(str(sid)) if sid is not None else None
            if st is None:
                st = next((s for s in statements.values() if s["paid"] < s["amount_due"]), None)
            if st is not None:
                st["paid"] += float(payload.get("amount", 0.0))
                if st["on_time"] is None and st["paid"] >= st["amount_due"] - 1e-9:
                    st["on_time"] = t <= st["due_date"]
        elif kind == "payment_missed":
            sid = str(payload.get("statement_id"))
            if sid in statements and statements[sid]["on_time"] is None:
                statements[sid]["on_time"] = False
            if float(payload.get("days_past_due", 0)) >= self.config["bad_dpd"]:
                for snap in list(self._open[entity]):
                    if t > snap["t"]:
                        resolved.append(self._resolve(entity, snap, True))
        else:
            return []
        for snap in list(self._open.get(entity, ())):
            window = snap["window"]
            if len(window) < self.config["horizon_cycles"]:
                continue
            outcomes = [statements.get(sid, {}).get("on_time") for sid in window]
            if all(o is True for o in outcomes):
                resolved.append(self._resolve(entity, snap, False))
        return resolved

    def _resolve(self, entity: str, snap: dict, bad: bool) -> LabeledExample:
        self._drop(entity, snap, "bad" if bad else "good")
        return LabeledExample(entity, snap["t"], snap["features"], bad)

    # -- persistence ------------------------------------------------------------------------------------------
    # Format 2 (msgpack): [2, open, statements, order, counts]; a snapshot's features are a flat list of
    # (index into FEATURE_NAMES, or the name if it is not declared) and value, in their order, whole non-zero values
    # as ints (every feature is a float: they decode to the same float). Format 1 (JSON, a dict) is still read.
    def encode(self) -> bytes:
        index = _FEATURE_INDEX
        entities = {e: i for i, e in enumerate(self._open)}
        open_ = []
        for entity, snaps in self._open.items():
            packed = []
            for snap in snaps:
                flat = []
                for k, v in snap["features"].items():
                    flat.append(index.get(k, k))
                    flat.append(int(v) if v and v.is_integer() and -_EXACT_INT < v < _EXACT_INT else v)  # not -0.0
                packed.append([snap["id"], snap["t"], snap["late"], snap["window"], flat])
            open_.append([entity, packed])
        statements = [[entity, [[sid, st["issued"], st["due_date"], st["amount_due"], st["paid"], st["on_time"]]
                                for sid, st in sts.items()]] for entity, sts in self._statements.items()]
        order = [[entities.get(e, e), sid] for e, sid in self._order]
        return _ENCODE([2, open_, statements, order, dict(self.counts)])

    def as_reloaded(self) -> "LabelTracker":
        """Make this tracker what ``decode(encode())`` gives (in place): ids restart after the newest open one."""
        self.n_open = sum(len(s) for s in self._open.values())
        self._ids = itertools.count(1 + max((s["id"] for ss in self._open.values() for s in ss), default=-1))
        return self

    @classmethod
    def decode(cls, blob: bytes, config: dict | None = None) -> "LabelTracker":
        tracker = cls(config)
        if blob[:1] == b"{":  # format 1
            data = orjson.loads(blob)
            tracker._open = data["open"]
            tracker._statements = data["statements"]
            tracker._order = collections.deque(tuple(o) for o in data["order"])
            counts = data["counts"]
        else:
            version, open_, statements, order, counts = _DECODE(blob)
            if version != 2:
                raise ValueError(f"unsupported label tracker format {version!r}")
            names = FEATURE_NAMES
            tracker._open = {entity: [
                {"id": sid, "t": t, "features": {(names[k] if k.__class__ is int else k): float(v)
                                                 for k, v in zip(flat[::2], flat[1::2])},
                 "window": window, "late": late} for sid, t, late, window, flat in snaps]
                for entity, snaps in open_}
            tracker._statements = {entity: {
                sid: {"issued": issued, "due_date": due, "amount_due": amount, "paid": paid, "on_time": on_time}
                for sid, issued, due, amount, paid, on_time in sts} for entity, sts in statements}
            entities = list(tracker._open)
            tracker._order = collections.deque((entities[e] if e.__class__ is int else e, sid) for e, sid in order)
        tracker.counts = collections.Counter(counts)
        return tracker.as_reloaded()


_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_EXACT_INT = 2 ** 53  # whole floats below this are ints exactly
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder().decode
