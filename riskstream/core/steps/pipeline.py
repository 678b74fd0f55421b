"""The processing steps of riskstream, composed from the pure core: the same code runs live and in replay.

Three steps, each a function of values that returns the records to publish (`Out`) and never does I/O:

* `Pipeline.ingest`: raw upstream bytes → a validated, PII-free event re-keyed by account, or a dead letter;
* `Pipeline.account`: one valid event + the account's record → new record, decisions, labels, dead letters;
* `Pipeline.actuate`: one decision/control input + the account's line → new line, commands, audit records.

Shared, slowly changing context lives on the `Pipeline` and is swapped by the shell: the market history (global,
event time), the model (signed snapshots from the trainer) and the policies (hot reload). The stream layer
(`riskstream.stream`) moves bytes between Kafka and these steps; `riskstream.replay` drives them from a file.

>>> from riskstream.core.contracts import make_event, encode_event
>>> p = Pipeline(PipelineConfig())
>>> raw = encode_event(make_event("account_opened", "A1", {"product": "credit_line", "segment": "retail",
...                                "limit": 1000, "currency": "EUR"}, event_time=1_000))
>>> out = p.ingest(raw, topic="riskstream.events.behaviour", family="behaviour", partition=0, offset=0,
...                now_ms=2_000)
>>> out.topic, out.key
('riskstream.events.valid', b'A1')
>>> record, outs = p.account(None, out.value, offset=0)
>>> record is not None, outs
(True, [])
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from riskstream.core.actuator import ActuatorConfig, MassCloseBreaker, decode_line, encode_line, step
from riskstream.core.contracts import DEFAULT_LIMITS, Limits, Rejected, dead_letter, parse_event
from riskstream.core.account.features import compute_features, feature_hash
from riskstream.core.market import apply_market, new_history
from riskstream.core.policy import Policy, PolicyHolder, decide_all, load_policy
from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY
from riskstream.core.privacy import Pseudonymizer
from riskstream.core.account.state import apply_event, decode_state, encode_state
from riskstream.core.windows import FeatureConfig, default_config

T_VALID = "riskstream.events.valid"
T_DEAD = "riskstream.deadletter"
T_DECISIONS = "riskstream.decisions"
T_COMMANDS = "riskstream.commands"
T_LABELS = "riskstream.labels"
T_MODELS = "riskstream.models"

FAMILY_OF_TOPIC = {
    "riskstream.events.behaviour": "behaviour",
    "riskstream.events.repayment": "repayment",
    "riskstream.events.credit": "credit",
    "riskstream.events.market": "market",
    "riskstream.events.project": "project",
}
BEHAVIOUR_FEATURES = ("drawdown_sum_1h", "drawdown_count_1h", "drawdown_velocity_ratio", "utilisation",
                      "failed_logins_24h", "distinct_devices_7d", "new_device_before_drawdown")
RESTRICTIVE = ("WARN", "REDUCE_LIMIT", "FREEZE", "CLOSE")  # a cure is only news to a line that had one of these
# Outcomes of the state step that become dead letters (reason codes from riskstream.core.contracts.REASONS).
STATE_REJECTIONS = {
    "late": "event time is older than the account's watermark minus the allowed lateness",
    "duplicate": "an event with this event_id was already applied to this account",
    "unknown_account": "no account_opened event was seen for this account or facility",
}


class Out(NamedTuple):
    """One record to publish; `label` is a bounded metric label (reason, action) for the shell's counters, `ident`
    the record's deterministic id where the shell needs it (a command's `command_id`), so nothing parses it back."""
    topic: str
    key: bytes
    value: bytes
    label: str = ""
    ident: str = ""


def command_out(c: dict) -> Out:
    return Out(T_COMMANDS, c["account_id"].encode(), orjson.dumps(c), c["action"], c["command_id"])


@dataclasses.dataclass
class PipelineConfig:
    limits: Limits = DEFAULT_LIMITS
    pseudonymizer: Pseudonymizer = dataclasses.field(default_factory=Pseudonymizer.from_env)
    features: FeatureConfig = dataclasses.field(default_factory=default_config)
    policy_path: Path = DEFAULT_POLICY
    challenger_paths: tuple[Path, ...] = (CHALLENGER_POLICY,)
    actuator: ActuatorConfig = dataclasses.field(default_factory=ActuatorConfig)
    breaker_max_share: float = 0.2     # CLOSE+FREEZE in a sliding minute, as a share of active accounts ...
    breaker_max_count: int = 200       # ... or as an absolute count: either trips the breaker
    behaviour_sample: int = 8          # 1 in N behaviour events trains the anomaly model (deterministic by id)


def short_hash(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


# -- the account record: state + policy memory + label snapshots + cash-flow model, in one table value -------------
_LEN = struct.Struct(">I")


def pack(*parts: bytes) -> bytes:
    return b"".join(_LEN.pack(len(p)) + p for p in parts)


def unpack(blob: bytes, n: int) -> list[bytes]:
    out, pos = [], 0
    for _ in range(n):
        (size,) = _LEN.unpack_from(blob, pos)
        pos += 4
        out.append(blob[pos:pos + size])
        pos += size
    return out


class Ingestor:
    """Step 1 on its own (contracts only, no models): a worker validates from its first second."""

    def __init__(self, config: "PipelineConfig"):
        self.config = config

    def ingest(self, raw: bytes, *, topic: str, partition: int, offset: int, now_ms: int,
               family: str | None = None) -> Out:
        """`topic` is where the bytes came from (kept in dead letters); `family` restricts the accepted types."""
        parsed = parse_event(raw, now_ms=now_ms, pseudonymizer=self.config.pseudonymizer,
                             limits=self.config.limits, family=family)
        if isinstance(parsed, Rejected):
            return self.dead(raw, topic, partition, offset, parsed, now_ms)
        return Out(T_VALID, parsed["entity"].encode(), orjson.dumps(parsed), parsed["type"])

    @staticmethod
    def dead(raw: bytes, topic: str, partition: int, offset: int, rejected: Rejected, now_ms: int) -> Out:
        value = dead_letter(raw, topic=topic, partition=partition, offset=offset, rejected=rejected, at_ms=now_ms)
        return Out(T_DEAD, rejected.reason.encode(), value, rejected.reason)


class Pipeline:
    """The pure steps plus their slowly changing context (market, model, policies)."""

    def __init__(self, config: PipelineConfig | None = None, *, model=None):
        from riskstream.core.models import load_config
        from riskstream.core.models.labels import LabelTracker

        self.config = config or PipelineConfig()
        self.ingestor = Ingestor(self.config)
        self.market = new_history(config=self.config.features)
        self.model_config = load_config()
        self._tracker_cls = LabelTracker
        self.model = model if model is not None else initial_model(self.model_config)
        self.policies = PolicyHolder(load_policy(self.config.policy_path))
        self.challengers: list[Policy] = [load_policy(p) for p in self.config.challenger_paths]
        self.breaker = MassCloseBreaker(self.config.breaker_max_share, self.config.breaker_max_count)
        self._resets_done: list = []
        # Portfolio size as the score step knows it (set by the shell), carried on decisions so the actuator's
        # breaker measures its share against active accounts, not against accounts it has seen decisions for.
        self.active_accounts = 0
        self.dropped: list[dict] = []  # commands a "drop" reset discarded: the shell feeds each back to its line

    # -- context updates (called by the shell; deterministic given their inputs) -----------------------------------
    @property
    def model_version(self) -> str:
        return f"pd@{getattr(self.model, 'version', 0)}"

    def on_market(self, event: dict) -> None:
        self.market = apply_market(self.market, event)

    def offer_policy(self, text: str, source: str) -> tuple[bool, str | None, dict | None]:
        """Hot reload: returns (accepted, error, audit payload of the change)."""
        previous = self.policies.policy
        ok, err = self.policies.offer(text, source)
        return ok, err, (self.policies.change_record(previous) if ok else None)

    def ingest(self, raw: bytes, **kw) -> Out:
        return self.ingestor.ingest(raw, **kw)

    dead = staticmethod(Ingestor.dead)

    # -- account: per-account state -> features -> scores -> decisions -----------------------------------------------
    def account(self, record: bytes | None, value: bytes, *, offset: int, topic: str = T_VALID,
                partition: int = 0) -> tuple[bytes | None, list[Out]]:
        """Apply one valid event to its account; returns the new record (None = unchanged) and the outputs.

        Time is the event's time throughout (never the wall clock), so a replay makes the same decisions.
        """
        event = orjson.loads(value)
        entity = event["entity"]
        if record:
            s_bytes, mem_bytes, lab_bytes, cf_bytes = unpack(record, 4)
            state = decode_state(s_bytes, config=self.config.features)
        else:
            state, mem_bytes, lab_bytes, cf_bytes = None, b"", b"", b""
        state, outcome = apply_event(state, event, offset=offset, config=self.config.features)
        if outcome == "already_applied":
            return None, []
        if outcome in STATE_REJECTIONS:
            dead = self.dead(value, topic, partition, offset, Rejected(outcome, STATE_REJECTIONS[outcome]),
                             event["event_time"])
            if state is None:
                return None, [dead]
            return pack(encode_state(state, config=self.config.features), mem_bytes, lab_bytes, cf_bytes), [dead]
        if outcome != "applied":
            return None, []

        t = event["event_time"]
        etype = event["type"]
        outs: list[Out] = []
        features = compute_features(state, as_of=state.watermark, market=self.market)
        facts: dict[str, Any] = dict(features)
        facts["product"], facts["segment"] = state.product, state.segment

        # Project finance: per-facility cash-flow forecast → projected DSCR and breach horizon.
        if state.product == "project_facility":
            cf = _decode_cashflow(cf_bytes, self.model_config)
            if etype == "financial_statement":
                p = event["payload"]
                cf.learn_one(float(p.get("ebitda", 0.0)), float(p.get("debt_service") or 0.0) or None)
                cf_bytes = cf.encode()
            proj = cf.projected_dscr(1)
            facts["dscr_forecast"] = float(proj[0]) if proj and proj[0] is not None else features.get("dscr", 0.0)
            breach = cf.breach_in_periods(1.0, horizon=8)
            facts["covenant_breach_in_periods"] = float(breach) if breach is not None else -1.0
        else:
            facts["dscr_forecast"], facts["covenant_breach_in_periods"] = 0.0, -1.0

        score = self.model.predict_one(features)
        facts["pd"], facts["score"] = score.pd, float(score.score)
        anomaly = getattr(self.model, "anomaly", None)
        facts["anomaly"] = anomaly.score_one(features) if anomaly is not None and state.product == "credit_line" else 0.0
        facts["drift"] = float(getattr(self.model, "drift_active", 0))
        facts["fraud_confirmed"] = 0.0
        facts["cured"] = 1.0 if etype == "payment_received" and features.get("days_past_due", 0.0) == 0 else 0.0
        model_reasons = [r.text for r in score.reasons]

        # Delayed labels: snapshot the features as of now, resolve older snapshots with this repayment event.
        tracker = self._tracker_cls.decode(lab_bytes, self.model_config) if lab_bytes else \
            self._tracker_cls(self.model_config)
        if event["family"] == "repayment":
            for ex in tracker.on_repayment(event):
                outs.append(Out(T_LABELS, b"label", orjson.dumps({
                    "kind": "label", "entity": self.config.pseudonymizer.pseudonym(ex.entity),
                    "snapshot_time": ex.snapshot_time, "label_time": t, "features": ex.features,
                    "label": bool(ex.label)}), "label"))
        # Zeros are left out (the scorer reads a missing feature as 0): most features are 0 for most accounts,
        # and the snapshots are most of the account record.
        tracker.snapshot(entity, t, {k: v for k, v in features.items() if v})
        lab_bytes = tracker.encode()
        if event["family"] == "behaviour" and zlib.crc32(event["event_id"].encode()) % self.config.behaviour_sample == 0:
            outs.append(Out(T_LABELS, b"behaviour", orjson.dumps({
                "kind": "behaviour", "features": {k: features.get(k, 0.0) for k in BEHAVIOUR_FEATURES}}),
                "behaviour"))

        ctx = {"account_id": entity, "event_id": event["event_id"], "event_time": t,
               "model_version": self.model_version, "feature_hash": feature_hash(features)}
        memories = orjson.loads(mem_bytes) if mem_bytes else {}
        decisions, memories = decide_all(self.policies.policy, self.challengers, facts, model_reasons, ctx,
                                         memories)
        for d in decisions:
            body = d.to_dict()
            body["pd"], body["score"] = round(score.pd, 6), score.score
            body["producer_time"] = event.get("producer_time", t)
            body["active_accounts"] = self.active_accounts
            body["role"] = "champion" if d.policy_name == self.policies.policy.name else "challenger"
            outs.append(Out(T_DECISIONS, entity.encode(), orjson.dumps(body), d.action))
        restricted = any(a in (memories.get("champion") or {}).get("last", {}) for a in RESTRICTIVE)
        if facts["cured"] and restricted:
            outs.append(Out(T_DECISIONS, entity.encode(), orjson.dumps(
                {"kind": "cure", "account_id": entity, "event_id": event["event_id"], "event_time": t}), "CURE"))
        record = pack(encode_state(state, config=self.config.features),
                      orjson.dumps(memories, option=orjson.OPT_SORT_KEYS), lab_bytes, cf_bytes)
        return record, outs

    # -- actuator: decision/control input -> line state machine -> breaker -> commands ------------------------------
    def actuate(self, line: bytes | None, value: bytes, *, active_accounts: int = 0
                ) -> tuple[bytes | None, list[Out], list[dict]]:
        """One decision or control input for one account; returns (new line, commands, audit records).

        Time is the input's own time (decision event time / control time), so replays behave the same.
        """
        inp = orjson.loads(value)
        kind = inp.get("kind")
        now = int(inp.get("event_time") or inp.get("time") or 0)
        audit: list[dict] = []
        if kind == "breaker_reset":
            # The control agent copies a reset to every partition; apply each reset once.
            cid = inp.get("control_id")
            if cid in self._resets_done:
                return None, [], []
            self._resets_done = (self._resets_done + [cid])[-32:]
            released, dropped, audit = self.breaker.reset(inp.get("how", "release"), now, inp.get("by"),
                                                          inp.get("reason"))
            self.dropped.extend(dropped)
            audit.extend({"kind": "command", "time": now, "payload": c} for c in released)
            outs = [command_out(c) for c in released]
            return None, outs, audit
        if inp.get("decision_id"):
            audit.append({"kind": "decision", "time": now, "payload": {
                k: inp.get(k) for k in ("decision_id", "account_id", "action", "rule_id", "reasons", "policy_name",
                                        "policy_version", "model_version", "feature_hash", "mode", "event_id")}})
        account = inp.get("account_id") or ""
        current = decode_line(line, account) if line else None
        new_line, commands, step_audit = step(current, inp, now, self.config.actuator)
        audit.extend(step_audit)
        self.active_accounts = max(int(inp.get("active_accounts") or 0), active_accounts, 1)
        send, breaker_audit = self.breaker.offer(commands, now, self.active_accounts)
        audit.extend(breaker_audit)
        for c in send:
            audit.append({"kind": "command", "time": now, "payload": c})
        outs = [command_out(c) for c in send]
        return encode_line(new_line), outs, audit

    def undo_dropped(self, line: bytes | None, command: dict) -> tuple[bytes, list[dict]]:
        """A held command that a reset dropped never left: its line goes back to how it was before it."""
        current = decode_line(line, command["account_id"]) if line else None
        new_line, _, audit = step(current, {"kind": "dropped", "command": command}, int(command.get("issued_at", 0)),
                                  self.config.actuator)
        return encode_line(new_line), audit


def initial_model(model_config: dict):
    """Version 0 of the PD model, identical on every worker: warmed on the documented synthetic stream."""
    from riskstream.core.models.synthetic import default_scorer

    scorer = default_scorer(n=1500, config=model_config)
    scorer.version = 0
    return scorer


def _decode_cashflow(blob: bytes, model_config: dict):
    from riskstream.core.models.cashflow import CashflowForecaster

    return CashflowForecaster.decode(blob) if blob else CashflowForecaster(model_config)
