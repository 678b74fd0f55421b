"""Alignment of the upstream sources: the account step applies the events of a valid partition in publication order
(broker timestamp of the upstream record, then source topic, partition, offset), whatever pace each source was read
at. See docs/time.md.

The ingest step stamps every valid event with its source coordinates and broker timestamp (`SRC`) and, per batch,
emits watermark records to every valid partition: "source S has been read up to broker time T" (every record of S
not read yet has a timestamp >= T). The shell also marks a caught-up source with "now - skew". The account step
keeps per valid partition the marks of every declared source and the pending events, and releases an event once
no source can still send one that sorts before it.

>>> st = new_align()
>>> sources = ("b/0", "r/0")
>>> st, rel = take(st, sources, ("r/0", 0, 50, 0))            # a repayment at t=50: b/0 may still send older ones
>>> rel
[]
>>> st, rel = take(st, sources, ("b/0", 0, 10, 1))            # b/0 at 10: released (r/0 is at 50)
>>> rel
[('b/0', 0, 10, 1)]
>>> st, rel = take_marks(st, sources, {"b/0": 60})            # b/0 read past 50: the repayment goes
>>> rel
[('r/0', 0, 50, 0)]
"""

from __future__ import annotations

import bisect
from typing import Iterable

import orjson

from riskstream.core.names import VALID
from riskstream.core.steps.records import Out

SRC = "_src"                      # field of a valid event: [source "topic/partition", source offset, broker ms]
WATERMARK_KEY = b"\x00watermark"  # key of a watermark record on the valid topic (\x00 never starts an entity id)
NEG = -(1 << 62)


def align_key(partition: int) -> bytes:
    """Table key of a valid partition's alignment record (marks, pending index, last valid offset taken)."""
    return b"\x00align/%d" % partition


def pending_key(partition: int, valid_offset: int) -> bytes:
    """Table key of one pending event's key and value (the partition last: the changelog partition, as for every
    per-partition record)."""
    return b"\x00pending/%d/%d" % (valid_offset, partition)


def watermark_outs(marks: dict[str, int], partitions: int) -> list[Out]:
    """One watermark record per valid partition (every partition must hear of every source)."""
    if not marks:
        return []
    value = orjson.dumps({"kind": "watermark", "marks": marks}, option=orjson.OPT_SORT_KEYS)
    return [Out(VALID, WATERMARK_KEY, value, "watermark", partition=p) for p in range(partitions)]


def new_align() -> dict:
    # marks: source -> ts; pending: sorted [ts, source, source offset, valid offset]; upto: last valid offset taken;
    # forced: events released early because the buffer was full.
    return {"marks": {}, "pending": [], "upto": -1, "forced": 0}


def decode_align(raw: bytes | None) -> dict | None:
    if not raw:
        return None
    st = orjson.loads(raw)
    names = st.pop("names", None)
    columns = st.pop("columns", None)
    if columns is not None:
        ts, src, soff, voff = columns
        st["pending"] = list(map(list, zip(ts, map(names.__getitem__, src), soff, voff)))
    elif names is not None:  # the row layout records written before the columns
        st["pending"] = [[ts, names[i], soff, voff] for ts, i, soff, voff in st["pending"]]
    return st


def encode_align(st: dict) -> bytes:
    """The pending index as four columns (broker ms, source, source offset, valid offset), each source named by its
    place in `names`: ~30 bytes an entry, so a full buffer (`align_max_pending` = 20,000) stays well below the
    changelog's 1 MB record limit. Columns, because transposing them is C work (`zip`, `map`): a Python loop over
    the entries, once per batch and partition, was a fifth of a catching-up worker's time.

    >>> st = {"marks": {"b/0": 9}, "pending": [[5, "r/1", 7, 3], [6, "b/0", 2, 4]], "upto": 4, "forced": 0}
    >>> encode_align(st)
    b'{"marks":{"b/0":9},"upto":4,"forced":0,"names":["b/0","r/1"],"columns":[[5,6],[1,0],[7,2],[3,4]]}'
    >>> decode_align(encode_align(st)) == st
    True
    >>> decode_align(b'{"marks":{},"pending":[[5,0,7,3]],"upto":3,"forced":0,"names":["r/1"]}')["pending"]
    [[5, 'r/1', 7, 3]]
    """
    pend = st["pending"]
    out = {k: v for k, v in st.items() if k != "pending"}
    if pend:
        ts, src, soff, voff = zip(*pend)
        names = sorted(set(src))
        index = {n: i for i, n in enumerate(names)}
        out["names"], out["columns"] = names, [ts, list(map(index.__getitem__, src)), soff, voff]
    else:
        out["names"], out["columns"] = [], [[], [], [], []]
    return orjson.dumps(out)


def _releasable(st: dict, sources: Iterable[str]) -> list:
    """The pending prefix no source can still precede. Entry e = (ts, src, soff, voff) may go when every other
    source s has (mark_s, s) > (ts, src): s's unread records have timestamps >= mark_s and sort after e."""
    marks = st["marks"]
    pend = st["pending"]
    if not pend:
        return []
    names = set(sources) | set(marks)
    pairs = sorted((marks.get(s, NEG), s) for s in names)
    out = 0
    for e in pend:
        first = pairs[0] if pairs[0][1] != e[1] else (pairs[1] if len(pairs) > 1 else None)
        if first is not None and not (first > (e[0], e[1])):
            break
        out += 1
    return pend[:out]


def _release(st: dict, sources, max_pending: int) -> list:
    rel = _releasable(st, sources)
    del st["pending"][:len(rel)]
    if max_pending and len(st["pending"]) > max_pending:   # bounded: the oldest go early (counted)
        extra = len(st["pending"]) - max_pending
        rel = rel + st["pending"][:extra]
        del st["pending"][:extra]
        st["forced"] += extra
    return [tuple(e) for e in rel]


def take(st: dict, sources, entry: tuple, *, max_pending: int = 0) -> tuple[dict, list]:
    """One valid event (source, source offset, broker ms, valid offset) in: the events now released, in order."""
    src, soff, ts, voff = entry
    marks = st["marks"]
    if ts > marks.get(src, NEG):
        marks[src] = ts  # its source's unread records are not older (timestamps grow within a partition)
    bisect.insort(st["pending"], [ts, src, soff, voff])
    return st, [(e[1], e[2], e[0], e[3]) for e in _release(st, sources, max_pending)]


def take_marks(st: dict, sources, marks: dict, *, max_pending: int = 0) -> tuple[dict, list]:
    """A watermark record in: raise each source's mark (never lower), return the events now released."""
    cur = st["marks"]
    for s, t in marks.items():
        if t > cur.get(s, NEG):
            cur[s] = t
    return st, [(e[1], e[2], e[0], e[3]) for e in _release(st, sources, max_pending)]


def source_of(event: dict):
    """(source, source offset, broker ms) of a stamped valid event, else None (released at once)."""
    s = event.get(SRC)
    if isinstance(s, list) and len(s) == 3:
        return s[0], int(s[1]), int(s[2])
    return None


def batch_marks(stamped: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Per source, the largest broker timestamp of the records of a batch (read up to there)."""
    marks: dict[str, int] = {}
    for s, ts in stamped:
        if ts > marks.get(s, NEG):
            marks[s] = ts
    return marks


def release_order(records, sources, *, max_pending: int = 0, positions: int = 1 << 20):
    """The order the account step applies one valid partition's records `(offset, key, value)` (offset order in):
    yields `(position, offset, key, value)` of each event, as `account_batch` would (a reference for tests and
    tools; the step itself keeps this state in the table)."""
    st = None
    held: dict[int, tuple] = {}
    for off, key, value in records:
        if key == WATERMARK_KEY:
            st = st or new_align()
            st, rel = take_marks(st, sources, orjson.loads(value).get("marks") or {}, max_pending=max_pending)
        elif st is None or source_of(orjson.loads(value)) is None:
            yield (off if st is None else off * positions), off, key, value
            continue
        else:
            s = source_of(orjson.loads(value))
            held[off] = (key, value)
            st, rel = take(st, sources, (s[0], s[1], s[2], off), max_pending=max_pending)
        for i, (_, _, _, voff) in enumerate(rel):
            k, v = held.pop(voff)
            yield off * positions + i, voff, k, v
