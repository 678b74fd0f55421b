"""Control step: a control message → the decisions-topic records it becomes (overrides to their account's
partition; a breaker reset, and a trip one partition's breaker announced, to every partition, so every
partition's breaker sees it once).

Policy versions on the control topic are read by every worker as context, not routed here.

>>> [o.partition for o in route_control(b'{"kind": "breaker_reset", "how": "release", "control_id": "c1"}', 4)]
[0, 1, 2, 3]
>>> [(o.key, o.partition) for o in route_control(b'{"kind": "legal_hold", "account_id": "A1", "on": true}', 4)]
[(b'A1', None)]
>>> route_control(b'not json', 4)[0].label
'undecodable'
"""

from __future__ import annotations

import orjson

from riskstream.core.names import DECISIONS
from riskstream.core.steps.records import Out

ROUTED_TO_ACCOUNT = ("legal_hold", "allow_list", "manual")
BROADCAST = ("breaker_reset", "breaker_trip")


def route_control(raw: bytes, partitions: int) -> list[Out]:
    """Records to publish for one control message; an unreadable one comes back as a single `undecodable` Out
    with no topic, which the shell counts and skips."""
    try:
        msg = orjson.loads(raw)
        kind = msg.get("kind")
    except (orjson.JSONDecodeError, AttributeError):
        return [Out("", b"", raw, "undecodable")]
    if kind in BROADCAST:
        return [Out(DECISIONS, b"__breaker__", raw, kind, partition=p) for p in range(partitions)]
    if kind in ROUTED_TO_ACCOUNT and msg.get("account_id"):
        return [Out(DECISIONS, str(msg["account_id"]).encode(), raw, kind)]
    return []
