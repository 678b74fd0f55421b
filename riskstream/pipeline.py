"""The processing steps of riskstream as pure functions of values: the same code runs live and in replay.

The stream layer (`riskstream.stream`) only moves bytes between Kafka and these steps; `riskstream replay` drives
them from a file. Each step returns the records to publish as `Out(topic, key, value)` and never does I/O.

>>> from riskstream.contracts import make_event, encode_event
>>> p = Pipeline(PipelineConfig())
>>> raw = encode_event(make_event("account_opened", "A1", {"product": "credit_line", "segment": "retail",
...                                "limit": 1000, "currency": "EUR"}, event_time=1_000))
>>> out = p.ingest(raw, topic="riskstream.events.behaviour", family="behaviour", partition=0, offset=0,
...                now_ms=2_000)
>>> out.topic, out.key
('riskstream.events.valid', b'A1')
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple

import orjson

from .contracts import DEFAULT_LIMITS, Limits, Rejected, dead_letter, parse_event
from .privacy import Pseudonymizer

T_VALID = "riskstream.events.valid"
T_DEAD = "riskstream.deadletter"
T_DECISIONS = "riskstream.decisions"
T_COMMANDS = "riskstream.commands"
T_LABELS = "riskstream.labels"

FAMILY_OF_TOPIC = {
    "riskstream.events.behaviour": "behaviour",
    "riskstream.events.repayment": "repayment",
    "riskstream.events.credit": "credit",
    "riskstream.events.market": "market",
    "riskstream.events.project": "project",
}


class Out(NamedTuple):
    """One record to publish."""
    topic: str
    key: bytes
    value: bytes


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    limits: Limits = DEFAULT_LIMITS
    pseudonymizer: Pseudonymizer = dataclasses.field(default_factory=Pseudonymizer.from_env)
    # Placeholder rule of the walking skeleton: every Nth event of an account asks for a REVIEW.
    review_every: int = 3


def short_hash(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


class Pipeline:
    """The pure steps: ingest (validate, strip PII, re-key), account (state, decide), actuate (command)."""

    def __init__(self, config: PipelineConfig):
        self.config = config

    # -- ingest: raw upstream bytes -> valid event or dead letter ------------------------------------------------
    def ingest(self, raw: bytes, *, topic: str, partition: int, offset: int, now_ms: int,
               family: str | None = None) -> Out:
        """`topic` is where the bytes came from (kept in dead letters); `family` restricts the accepted types."""
        parsed = parse_event(raw, now_ms=now_ms, pseudonymizer=self.config.pseudonymizer,
                             limits=self.config.limits, family=family)
        if isinstance(parsed, Rejected):
            return self.dead(raw, topic, partition, offset, parsed, now_ms)
        return Out(T_VALID, parsed["entity"].encode(), orjson.dumps(parsed))

    @staticmethod
    def dead(raw: bytes, topic: str, partition: int, offset: int, rejected: Rejected, now_ms: int) -> Out:
        value = dead_letter(raw, topic=topic, partition=partition, offset=offset, rejected=rejected, at_ms=now_ms)
        return Out(T_DEAD, rejected.reason.encode(), value)

    # -- account: per-account state -> decisions -----------------------------------------------------------------
    def account(self, state: bytes | None, value: bytes, *, partition: int, offset: int,
                now_ms: int) -> tuple[bytes | None, list[Out]]:
        """Apply one valid event to its account's state; returns the new state (None = unchanged) and outputs."""
        event = orjson.loads(value)
        st = orjson.loads(state) if state else {"n": 0, "off": -1}
        if offset <= st["off"]:
            return None, []  # already applied before a crash: replays stay exact
        st["n"] += 1
        st["off"] = offset
        outs = []
        if st["n"] % self.config.review_every == 0:
            account = event["entity"]
            decision = {
                "decision_id": short_hash(account, event["event_id"], "skeleton", "0"),
                "account_id": account,
                "action": "REVIEW",
                "params": {},
                "reasons": [f"placeholder: every {self.config.review_every} events"],
                "policy_name": "skeleton",
                "policy_version": "0",
                "model_version": "none",
                "event_id": event["event_id"],
                "event_time": event["event_time"],
                "decided_at": now_ms,
                "mode": "live",
            }
            outs.append(Out(T_DECISIONS, account.encode(), orjson.dumps(decision)))
        return orjson.dumps(st), outs

    # -- actuator: decision -> command (idempotent) --------------------------------------------------------------
    def actuate(self, line: bytes | None, value: bytes, *, now_ms: int) -> tuple[bytes | None, list[Out]]:
        decision = orjson.loads(value)
        ln = orjson.loads(line) if line else {"handled": []}
        did = decision["decision_id"]
        if did in ln["handled"]:
            return None, []  # redelivered decision: no second command
        ln["handled"] = (ln["handled"] + [did])[-64:]
        command = {
            "command_id": short_hash(did, decision["action"]),
            "decision_id": did,
            "account_id": decision["account_id"],
            "action": decision["action"],
            "params": decision.get("params", {}),
            "issued_at": now_ms,
            "policy_version": decision.get("policy_version"),
        }
        return orjson.dumps(ln), [Out(T_COMMANDS, decision["account_id"].encode(), orjson.dumps(command))]
