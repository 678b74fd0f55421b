"""Append-only, hash-chained audit log (JSON lines).

Each line is one record `{"seq", "kind", "payload", ["time"], "prev", "hash"}` written in canonical form
(orjson, sorted keys, no spaces). `prev` is the previous record's `hash` (64 zeros for the first record)
and `hash` is SHA-256 over the canonical bytes of the record without its `hash`. `verify` re-derives
every line byte for byte, so changing any single byte of the file is detected and the record named.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "audit.jsonl")
>>> log = AuditLog(path)
>>> rec = log.append("decision", {"decision_id": "d1", "action": "WARN"}, time_ms=1000)
>>> _ = log.append("command", {"command_id": "c1"}, time_ms=1001)
>>> verify(path)
(True, 2, None, 'ok 2 records')
>>> data = bytearray(open(path, "rb").read()); data[40] ^= 1; _ = open(path, "wb").write(bytes(data))
>>> verify(path)[0], verify(path)[2]
(False, 1)
"""

from __future__ import annotations

import hashlib
import os
import sys

import orjson

KINDS = ("decision", "command", "override", "policy_change", "breaker", "control_refused")
GENESIS = "0" * 64


def _canonical(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _hash(record_without_hash: dict) -> str:
    return hashlib.sha256(_canonical(record_without_hash)).hexdigest()


class AuditLog:
    """Appends records to a JSON-lines file, continuing the chain of an existing file.

    `fsync=True` forces each record to disk before `append` returns (slower, for strict durability).
    """

    def __init__(self, path, *, fsync: bool = False):
        self.path = os.fspath(path)
        self.fsync = fsync
        self.seq, self.last_hash = 0, GENESIS
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            ok, n, bad, msg = verify(self.path)
            if not ok:
                raise ValueError(f"{self.path}: refusing to extend a broken audit chain: {msg}")
            self.seq, self.last_hash = n, _last_hash(self.path)
        self._f = open(self.path, "ab")

    def append(self, kind: str, payload: dict, *, time_ms: int | None = None) -> dict:
        """Write one record and return it (with its `seq`, `prev` and `hash`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}; use one of {', '.join(KINDS)}")
        rec = {"seq": self.seq + 1, "kind": kind, "payload": payload, "prev": self.last_hash}
        if time_ms is not None:
            rec["time"] = int(time_ms)
        rec["hash"] = _hash(rec)
        self._f.write(_canonical(rec) + b"\n")
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())
        self.seq, self.last_hash = rec["seq"], rec["hash"]
        return rec

    def extend(self, records) -> list:
        """Append `{"kind", "payload"[, "time"]}` items, e.g. the audit records the actuator returns."""
        return [self.append(r["kind"], r["payload"], time_ms=r.get("time")) for r in records]

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _last_hash(path) -> str:
    with open(path, "rb") as f:
        last = None
        for line in f:
            if line.strip():
                last = line
    return orjson.loads(last)["hash"] if last else GENESIS


def verify(path):
    """Check the whole chain; return `(ok, n_records, first_bad_record_number | None, message)`.

    Record numbers count from 1, like the lines of the file.
    """
    prev, n = GENESIS, 0
    try:
        f = open(path, "rb")
    except OSError as e:
        return False, 0, None, f"{path}: cannot read ({e.strerror})"
    with f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, raw in enumerate(lines, start=1):
        rec, problem = check_record(raw, i, prev)
        if problem:
            return False, i - 1, i, problem
        prev, n = rec["hash"], i
    return True, n, None, f"ok {n} records"


def check_record(raw: bytes, i: int, prev: str) -> tuple[dict | None, str | None]:
    """Record number `i` of a chain, as read (its line without the newline), given the previous record's hash:
    `(record, None)` if it continues the chain, else `(None, what is wrong)`. `verify` and every reader that
    follows a growing file (the console) check records with it.

    >>> log_line = _canonical({"seq": 1, "kind": "decision", "payload": {}, "prev": GENESIS,
    ...                        "hash": _hash({"seq": 1, "kind": "decision", "payload": {}, "prev": GENESIS})})
    >>> check_record(log_line, 1, GENESIS)[1] is None, check_record(log_line, 1, "x" * 64)[1]
    (True, "record 1: 'prev' does not match the hash of record 0")
    """
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, f"record {i}: not valid JSON (changed or truncated)"
    if not isinstance(rec, dict) or "hash" not in rec:
        return None, f"record {i}: not an audit record"
    if _canonical(rec) != raw:
        return None, f"record {i}: bytes differ from the canonical form (edited)"
    if rec.get("seq") != i:
        return None, f"record {i}: sequence number {rec.get('seq')!r}, expected {i} (record removed or inserted)"
    if rec.get("prev") != prev:
        return None, f"record {i}: 'prev' does not match the hash of record {i - 1}"
    if _hash({k: v for k, v in rec.items() if k != "hash"}) != rec["hash"]:
        return None, f"record {i}: hash does not match its content (edited)"
    return rec, None


def _verify_cmd(args) -> int:
    ok, n, bad, msg = verify(args.file)
    print(msg if ok else f"audit chain broken: {msg}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def register(subparsers) -> None:
    """Add `audit verify FILE` (exit 0 "ok N records", exit 1 naming the first bad record)."""
    p = subparsers.add_parser("audit", help="audit log")
    sub = p.add_subparsers(dest="audit_command", required=True)
    v = sub.add_parser("verify", help="verify the hash chain of an audit file")
    v.add_argument("file")
    v.set_defaults(func=_verify_cmd)
