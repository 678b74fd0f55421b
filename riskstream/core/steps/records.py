"""What a step returns: records to publish, each with a bounded metric label, so the shell never parses them back.

>>> o = command_out({"command_id": "c1", "account_id": "a1", "action": "WARN"})
>>> o.topic, o.key, o.label, o.ident
('riskstream.commands', b'a1', 'WARN', 'c1')
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from riskstream.core.names import COMMANDS


class Out(NamedTuple):
    """One record to publish.

    `label` is a bounded metric label (a reason code, an action, `role/action`), `ident` the record's deterministic
    id (decision or command id), `rule` a bounded rule id and `at_ms` the producer time of the event behind it, for
    the event-to-decision latency. `partition` pins the record to a partition (None: by key)."""
    topic: str
    key: bytes
    value: bytes
    label: str = ""
    ident: str = ""
    rule: str = ""
    at_ms: int = 0
    partition: int | None = None


def command_out(c: dict) -> Out:
    return Out(COMMANDS, c["account_id"].encode(), orjson.dumps(c), c["action"], c["command_id"])
