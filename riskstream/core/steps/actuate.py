"""Actuate step: decisions and control inputs → line state machine → per-partition breaker → commands and audit.

All of its state is in the `lines` table: one line per account, and one breaker per decisions partition under
`breaker_key(p)` (with the ids of the resets it applied). A partition belongs to one actuator process at a
time, so any number of actuator processes is correct: each partition's breaker holds CLOSE/FREEZE beyond its
share of the limits (accounts hash evenly over partitions). A partition whose breaker trips announces it on the
control topic; the control agent routes the trip to every partition, so a flood is held everywhere, as one
breaker would. The command ids already sent come in as `sent` (read only) and the ids this batch sent go out in
the result.

A policy's CLOSE/FREEZE waits in its partition's breaker until that partition's event time is one window past it
(`config.breaker_hold_ms`), so a flood that trips the breaker sends none. Only decisions, cures and ticks move that
clock: a control input carries its sender's wall-clock time. A tick (`tick_record`) moves it without a decision.

>>> from riskstream.core.steps.context import PipelineConfig
>>> d = {"decision_id": "d1", "account_id": "a1", "action": "WARN", "params": {}, "mode": "live",
...      "policy_version": 1, "event_time": 5, "active_accounts": 100}
>>> res = actuate_batch(PipelineConfig(), {}.get, [Decision(b"a1", orjson.dumps(d), 0, 0)], SentCommands())
>>> [o.label for o in res.outs], sorted(res.dirty), res.sent_ids == [o.ident for o in res.outs]
(['WARN'], [b'\\x00breaker/0', b'a1'], True)
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Callable, NamedTuple

import orjson

from riskstream.core.actuator import MassCloseBreaker, SentCommands, decode_line, encode_line, step
from riskstream.core.steps.context import PipelineConfig
from riskstream.core.names import CONTROL
from riskstream.core.steps.records import Out, command_out

_AUDITED = ("decision_id", "account_id", "action", "rule_id", "reasons", "policy_name", "policy_version",
            "model_version", "feature_hash", "mode", "event_id")


class Decision(NamedTuple):
    """One record of the decisions topic (a decision, a cure, an override or a breaker reset)."""
    key: bytes
    value: bytes
    partition: int
    offset: int


class ActuateResult(NamedTuple):
    dirty: dict          # lines-table key -> new value
    outs: list           # commands to publish
    audit: list          # audit records, appended before the commands leave
    sent_ids: list       # command ids this batch sends
    counts: Counter      # bounded event counts for metrics: breaker_trips, commands_held, duplicates_suppressed
    breakers: dict       # partition -> (open 0/1, commands held, commands waiting), for gauges


#: Inputs stamped with an event time (they move the breaker's clock); the other inputs come from the control topic.
EVENT_TIMED = frozenset({"decision", "cure"})


def tick_record(partition: int, event_time: int) -> Decision:
    """A decisions-topic input that only moves partition `partition`'s breaker clock to `event_time` (so the
    CLOSE/FREEZE waiting there leave without a later decision). Offset -1: it is not on the topic."""
    return Decision(b"__tick__", orjson.dumps({"kind": "tick", "event_time": int(event_time)}), partition, -1)


def breaker_key(partition: int) -> bytes:
    return b"\x00breaker/%d" % partition


def new_breaker(config: PipelineConfig) -> MassCloseBreaker:
    """One partition's breaker: its share of the absolute limit; the share of active accounts is the same, and it
    counts from the same minimum number of commands (a small partition must not trip on a handful of closes)."""
    n = config.partitions
    return MassCloseBreaker(config.breaker_max_share, max(1, math.ceil(config.breaker_max_count / n)),
                            min_count_for_share=config.breaker_min_count_for_share, hold_ms=config.breaker_hold_ms)


def trip_announcement(partition: int, breaker: MassCloseBreaker, now: int, signer) -> Out:
    """The control message, signed, that trips every other partition's breaker (its id and bytes are
    deterministic)."""
    cid = hashlib.blake2b(b"trip/%d/%d/%d" % (partition, breaker.trips, now), digest_size=12).hexdigest()
    msg = signer.sign({"kind": "breaker_trip", "control_id": cid, "partition": partition, "time": now})
    return Out(CONTROL, b"breaker_trip", orjson.dumps(msg), "breaker_trip", cid)


def actuate_batch(config: PipelineConfig, get: Callable[[bytes], bytes | None], batch,
                  sent: SentCommands) -> ActuateResult:
    dirty: dict[bytes, bytes] = {}
    outs, audit, sent_ids, counts, breakers = [], [], [], Counter(), {}
    sent_now: set[str] = set()

    def read(key: bytes):
        return dirty[key] if key in dirty else get(key)

    def breaker_of(p: int) -> MassCloseBreaker:
        if p not in breakers:
            blob = read(breaker_key(p))
            breakers[p] = MassCloseBreaker.decode(orjson.loads(blob)) if blob else new_breaker(config)
        return breakers[p]

    def send(commands: list) -> None:
        for c in commands:
            cid = c["command_id"]
            if cid in sent or cid in sent_now:  # already on the topic before a restart: never twice
                counts["duplicates_suppressed"] += 1
                continue
            sent_now.add(cid)
            sent_ids.append(cid)
            audit.append({"kind": "command", "time": c.get("issued_at", 0), "payload": c})
            outs.append(command_out(c))

    for rec in batch:
        inp = orjson.loads(rec.value)
        now = int(inp.get("event_time") or inp.get("time") or 0)
        breaker = breaker_of(rec.partition)
        kind = inp.get("kind") or ("decision" if inp.get("decision_id") else None)
        if kind == "tick":  # event time moved on without a decision: the waits that are over end
            passed, _ = breaker.advance(now)
            send(passed)
        elif kind == "breaker_trip":
            audit.extend(breaker.trip(now, cause=f"partition {inp.get('partition')}", control_id=inp["control_id"]))
        elif inp.get("kind") == "breaker_reset":
            released, dropped, a = breaker.reset(inp.get("how", "release"), now, inp.get("by"), inp.get("reason"),
                                                 reset_id=inp.get("control_id"))
            audit.extend(a)
            send(released)
            for c in dropped:  # a held command that never left: its line goes back to how it was before it
                key = c["account_id"].encode()
                line = read(key)
                new, _, a = step(decode_line(line, c["account_id"]) if line else None, {"kind": "dropped", "command": c},
                                 int(c.get("issued_at", 0)), config.actuator)
                dirty[key] = encode_line(new)
                audit.extend(a)
        else:
            if kind == "decision":  # a review verdict names its decision too, but is audited by the line
                audit.append({"kind": "decision", "time": now, "payload": {k: inp.get(k) for k in _AUDITED}})
            account = inp.get("account_id") or ""
            line = read(rec.key)
            new, commands, a = step(decode_line(line, account) if line else None, inp, now, config.actuator)
            audit.extend(a)
            share_base = max(1, int(inp.get("active_accounts") or 0) // config.partitions)
            was_tripped = breaker.tripped
            # Only event time moves the breaker's clock; a control input (manual, override) carries the time its
            # sender's wall clock gave it. A person's command is counted but does not wait.
            timed = kind in EVENT_TIMED
            passed, a = breaker.offer(commands, now if timed else None, share_base, wait=timed)
            for r in a:
                counts["breaker_" + r["payload"]["event"]] += 1
            audit.extend(a)
            if breaker.tripped and not was_tripped:
                outs.append(trip_announcement(rec.partition, breaker, now, config.control_signer))
            send(passed)
            dirty[rec.key] = encode_line(new)
        dirty[breaker_key(rec.partition)] = orjson.dumps(breaker.encode())
    gauges = {p: (int(b.tripped), len(b.held), len(b.waiting)) for p, b in breakers.items()}
    return ActuateResult(dirty, outs, audit, sent_ids, counts, gauges)
