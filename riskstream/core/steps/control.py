"""Control step: a control message → verified → the decisions-topic records it becomes (overrides to their
account's partition; a breaker reset, and a trip one partition's breaker announced, to every partition, so every
partition's breaker sees it once).

Only a signed message passes (`riskstream.core.signing`): an unsigned, tampered or unknown-key one, and a policy
version short of its signers, comes back refused, with its audit record and its metric label, and routes nowhere.
Policy versions on the control topic are read by every worker as context, not routed here.

A `review` verdict (`riskstream control review`, the console's review queue) goes to its account's partition like
a manual decision, and a `fraud` or `clear` verdict also becomes a label on the labels topic (`review_label`):
the decision's point-in-time `features` and `snapshot_time`, which the sender copied from the REVIEW decision
record, with label True (fraud) or False (clear). A verdict without features is applied but teaches nothing.

>>> from riskstream.core.steps.context import PipelineConfig
>>> cfg = PipelineConfig(partitions=4)
>>> signed = lambda m: orjson.dumps(cfg.control_signer.sign(m))
>>> [o.partition for o in route_control(cfg, signed({"kind": "breaker_reset", "how": "release", "control_id": "c1"})).outs]
[0, 1, 2, 3]
>>> [(o.key, o.partition) for o in route_control(cfg, signed({"kind": "legal_hold", "account_id": "A1", "on": True})).outs]
[(b'A1', None)]
>>> review = {"kind": "review", "account_id": "A1", "decision_id": "d1", "verdict": "fraud", "control_id": "r1",
...           "time": 9, "features": {"utilisation": 0.95}, "snapshot_time": 5}
>>> [(o.topic, o.label) for o in route_control(cfg, signed(review)).outs]
[('riskstream.decisions', 'review'), ('riskstream.labels', 'label')]
>>> [o.topic for o in route_control(cfg, signed(dict(review, verdict="hold"))).outs]
['riskstream.decisions']
>>> r = route_control(cfg, b'{"kind": "breaker_reset", "how": "drop"}', now_ms=5)
>>> r.outs, r.refused, r.audit[0]["kind"], r.audit[0]["payload"]["reason"]
([], 'unsigned', 'control_refused', 'unsigned')
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from riskstream.core.names import DECISIONS, LABELS
from riskstream.core.signing import Refused, refusal_audit, verify
from riskstream.core.steps.records import Out

ROUTED_TO_ACCOUNT = ("legal_hold", "allow_list", "manual", "review")
#: Review verdicts that are an outcome the trainer learns: True = bad, as the labels of missed payments.
LABEL_OF_VERDICT = {"fraud": True, "clear": False}
BROADCAST = ("breaker_reset", "breaker_trip")


class Routed(NamedTuple):
    outs: list               # decisions-topic records to publish
    audit: list              # audit records (a refusal), appended before the outputs leave
    refused: str | None      # the refusal reason (a bounded metric label), None when accepted


def route_control(config, raw: bytes, now_ms: int = 0, *, source: str = "control") -> Routed:
    """Verify one control message against `config.control_keys` and route it."""
    checked = verify(raw, config.control_keys, policy_signers=config.policy_signers)
    if isinstance(checked, Refused):
        return Routed([], [refusal_audit(raw, checked, time_ms=now_ms, source=source)], checked.reason)
    msg = checked.msg
    kind = msg.get("kind")
    if kind in BROADCAST:
        outs = [Out(DECISIONS, b"__breaker__", raw, kind, partition=p) for p in range(config.partitions)]
    elif kind in ROUTED_TO_ACCOUNT and msg.get("account_id"):
        outs = [Out(DECISIONS, str(msg["account_id"]).encode(), raw, kind)]
        label = review_label(config, msg) if kind == "review" else None
        if label is not None:
            outs.append(Out(LABELS, b"label", orjson.dumps(label), "label", str(msg.get("control_id") or "")))
    else:
        outs = []
    return Routed(outs, [], None)


def review_label(config, msg: dict) -> dict | None:
    """The label record a review verdict teaches the trainer (the account step's label format plus `outcome`,
    `source`, `decision_id`, `control_id`), or None: a `hold`, or no point-in-time features to learn from."""
    verdict, features, snap = msg.get("verdict"), msg.get("features"), msg.get("snapshot_time")
    if verdict not in LABEL_OF_VERDICT or not isinstance(features, dict) or not features \
            or not isinstance(snap, int) or isinstance(snap, bool):
        return None
    return {"kind": "label", "entity": config.pseudonymizer.pseudonym(str(msg["account_id"])),
            "snapshot_time": snap, "label_time": int(msg.get("time") or snap), "features": features,
            "label": LABEL_OF_VERDICT[verdict], "outcome": verdict, "source": "review",
            "decision_id": msg.get("decision_id"), "control_id": msg.get("control_id")}
