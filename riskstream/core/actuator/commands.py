"""Commands for downstream services, with ids that let every consumer drop duplicates.

>>> cmd = make_command("d1", "a1", "WARN", {"grace_ms": 1}, issued_at=5, policy_version=3)
>>> cmd["command_id"] == command_id("d1", "WARN")
True
>>> sorted(cmd)
['account_id', 'action', 'command_id', 'decision_id', 'issued_at', 'params', 'policy_version']
"""

from __future__ import annotations

import hashlib

#: Commands the actuator may send: the policy actions plus REINSTATE (after a cure or a manual decision).
COMMAND_ACTIONS = ("CLOSE", "FREEZE", "REDUCE_LIMIT", "REPAYMENT_PLAN", "REPRICE", "WARN", "REVIEW", "REINSTATE")
#: Actions the mass-close breaker counts and holds.
BREAKER_ACTIONS = frozenset({"CLOSE", "FREEZE"})
#: Of those, the ones that wait one breaker window before they leave. A CLOSE ends the customer's line; a FREEZE is
#: the answer to an account takeover, must beat the fraudulent drawdown and is undone by a reinstatement, so it is
#: counted and held on a trip but leaves at once.
WAITING_ACTIONS = frozenset({"CLOSE"})


def command_id(decision_id: str, action: str) -> str:
    """Deterministic id of the command `action` taken for decision `decision_id`."""
    return hashlib.sha256(f"{decision_id}\x1f{action}".encode("utf-8")).hexdigest()[:24]


def make_command(decision_id, account_id, action, params, *, issued_at, policy_version) -> dict:
    return {
        "command_id": command_id(decision_id, action),
        "decision_id": decision_id,
        "account_id": account_id,
        "action": action,
        "params": dict(params or {}),
        "issued_at": int(issued_at),
        "policy_version": policy_version,
    }
