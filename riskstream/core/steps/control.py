"""Control step: a control message → verified → the decisions-topic records it becomes (overrides to their
account's partition; a breaker reset, and a trip one partition's breaker announced, to every partition, so every
partition's breaker sees it once).

Only a signed message passes (`riskstream.core.signing`): an unsigned, tampered or unknown-key one, and a policy
version short of its signers, comes back refused, with its audit record and its metric label, and routes nowhere.
Policy versions on the control topic are read by every worker as context, not routed here.

>>> from riskstream.core.steps.context import PipelineConfig
>>> cfg = PipelineConfig(partitions=4)
>>> signed = lambda m: orjson.dumps(cfg.control_signer.sign(m))
>>> [o.partition for o in route_control(cfg, signed({"kind": "breaker_reset", "how": "release", "control_id": "c1"})).outs]
[0, 1, 2, 3]
>>> [(o.key, o.partition) for o in route_control(cfg, signed({"kind": "legal_hold", "account_id": "A1", "on": True})).outs]
[(b'A1', None)]
>>> r = route_control(cfg, b'{"kind": "breaker_reset", "how": "drop"}', now_ms=5)
>>> r.outs, r.refused, r.audit[0]["kind"], r.audit[0]["payload"]["reason"]
([], 'unsigned', 'control_refused', 'unsigned')
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from riskstream.core.names import DECISIONS
from riskstream.core.signing import Refused, refusal_audit, verify
from riskstream.core.steps.records import Out

ROUTED_TO_ACCOUNT = ("legal_hold", "allow_list", "manual")
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
    else:
        outs = []
    return Routed(outs, [], None)
