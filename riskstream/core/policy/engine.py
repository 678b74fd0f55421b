"""Turn facts about one account into at most one decision, without flapping.

The engine is a pure function: `decide(policy, facts, model_reasons, ctx, memory)` returns the decision
(or None) and the account's new policy memory. The memory is a tiny JSON-able dict that the stream layer
keeps in its per-account table; replaying the same events from the same memory gives the same decisions.

Choosing: every rule for the account's product (and segment) whose `when` holds is a candidate. The
candidates are ranked by the policy's `action_order`, then by their order in the file. A candidate is
skipped while its action is cooling down (`cooldown` since that action was last decided for this
account) or while the rule is disarmed (`hysteresis`: after firing, a rule re-arms only once its condition
is false even with every threshold moved by the margin towards safety, e.g. pd < close_pd - 0.02).
The first candidate not skipped decides.

>>> from riskstream.core.policy.loader import load_policy
>>> policy = load_policy('''
... name: tiny
... version: 1
... mode: live
... segments:
...   credit_line: {thresholds: {warn_pd: 0.2, limit_pd: 0.3, close_pd: 0.5}}
... actions:
...   WARN: {cooldown: 1h, grace: 72h, hysteresis: {pd: 0.05}}
... rules:
...   - id: pd-warn
...     when: [{fact: pd, op: ">=", threshold: warn_pd}]
...     action: WARN
...     reason: probability of default above the warning line
... ''')
>>> ctx = {"account_id": "a1", "event_id": "e1", "event_time": 0, "model_version": "m3", "feature_hash": "f"}
>>> facts = {"product": "credit_line", "segment": "retail", "pd": 0.25}
>>> d, mem = decide(policy, facts, ["late payments"], ctx, {})
>>> d.action, d.rule_id, d.reasons, d.params["grace_until"]
('WARN', 'pd-warn', ['probability of default above the warning line', 'late payments'], 259200000)
>>> decide(policy, facts, [], dict(ctx, event_id="e2", event_time=7_200_000), mem)[0] is None  # disarmed
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from riskstream.core.policy.compiled import compiled
from riskstream.core.policy.loader import Policy, Rule


@dataclass(frozen=True)
class Decision:
    decision_id: str
    account_id: str
    action: str
    params: dict
    immediate: bool
    rule_id: str
    reasons: list
    policy_name: str
    policy_version: Any
    model_version: Any
    feature_hash: Any
    event_id: str
    event_time: int
    mode: str
    product: str | None = None

    def to_dict(self) -> dict:
        """Plain, JSON-able dict (the value published to riskstream.decisions): what `dataclasses.asdict` gives,
        fields in order, params and reasons copied, built directly (asdict's generic walk was ~9 % of a run)."""
        return {"decision_id": self.decision_id, "account_id": self.account_id, "action": self.action,
                "params": _plain(self.params), "immediate": self.immediate, "rule_id": self.rule_id,
                "reasons": _plain(self.reasons), "policy_name": self.policy_name,
                "policy_version": self.policy_version, "model_version": self.model_version,
                "feature_hash": self.feature_hash, "event_id": self.event_id, "event_time": self.event_time,
                "mode": self.mode, "product": self.product}


def _plain(v):
    """A copy of nested dicts, lists and tuples, as `dataclasses.asdict` copies them."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    return v


def decision_id(account_id, event_id, policy_name, policy_version) -> str:
    """Same account, event and policy version -> same id, so reprocessing is recognised downstream.

    >>> decision_id("a1", "e1", "retail", 3) == decision_id("a1", "e1", "retail", 3)
    True
    >>> len(decision_id("a1", "e1", "retail", 3))
    24
    """
    key = "\x1f".join(str(x) for x in (account_id, event_id, policy_name, policy_version))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _params(policy: Policy, rule: Rule, facts: dict, t: int) -> dict:
    spec = policy.actions[rule.action].params
    p: dict = {}
    if rule.action == "WARN":
        if "grace_ms" in spec:
            p.update(grace=spec["grace"], grace_ms=spec["grace_ms"], grace_until=t + spec["grace_ms"])
    elif rule.action == "CLOSE":
        # the actuator warns first on a non-immediate close: tell it how long the grace is
        src = spec if "grace_ms" in spec else policy.actions.get("WARN").params if "WARN" in policy.actions else {}
        if "grace_ms" in src:
            p.update(grace=src["grace"], grace_ms=src["grace_ms"])
    elif rule.action == "FREEZE":
        if "duration_ms" in spec:
            p.update(duration=spec["duration"], duration_ms=spec["duration_ms"], until=t + spec["duration_ms"])
    elif rule.action == "REDUCE_LIMIT":
        cut = spec.get("reduce_pct", 0.0)
        factor = 1.0 - cut
        util = facts.get("utilisation")
        if "keep_headroom_pct" in spec and isinstance(util, (int, float)):
            # never cut below what the customer already uses plus a little headroom
            factor = max(factor, min(1.0, float(util) + spec["keep_headroom_pct"]))
        p.update(reduce_pct=round(1.0 - factor, 6), limit_factor=round(factor, 6))
    else:
        p.update(spec)
    return p


def _clean_memory(memory) -> dict:
    memory = memory or {}
    return {"last": dict(memory.get("last") or {}), "off": list(memory.get("off") or [])}


def decide(policy: Policy, facts: dict, reasons_from_model, ctx: dict, memory: dict | None):
    """Return `(Decision | None, new_memory)` for one account's current facts; `memory` is not modified.

    `reasons_from_model` is a list of texts, or a function returning one (called only if a decision is made).
    """
    mem = _clean_memory(memory)
    product = facts.get("product")
    plan = compiled(policy).plan(product, facts.get("segment"))
    if plan is None:
        return None, mem
    t = int(ctx["event_time"])
    off = mem["off"]
    was_off = frozenset(off) if off else frozenset()
    if was_off:
        for rule, _holds_now, holds_in_band, _margins in plan.rules:
            if rule.id in was_off and not holds_in_band(facts):
                off.remove(rule.id)  # re-armed now; its own condition is false anyway
    last_by_action = mem["last"]
    if not plan.any_holds(facts):
        # No condition holds: no candidate, as the loop below would find (a disarmed rule whose condition is false
        # stays disarmed or was re-armed above; the memory is cleaned the same way).
        if off:
            mem["off"] = [r for r in off if r in plan.known_ids]
        return None, mem
    # Candidates in rank order (action_order, then file order): the first one not cooling down decides.
    for rule, holds_now, _holds_in_band, margins in plan.ranked:
        if rule.id in was_off or not holds_now(facts):
            continue  # disarmed (still inside the hysteresis band, or re-armed just now), or not true
        last = last_by_action.get(rule.action)
        if last is not None and t - last < policy.actions[rule.action].cooldown_ms:
            continue
        last_by_action[rule.action] = t
        if margins is not None and rule.id not in off:
            off.append(rule.id)
        reasons = [rule.reason]
        for r in (reasons_from_model() if callable(reasons_from_model) else reasons_from_model) or ():
            if r not in reasons:
                reasons.append(r)
        d = Decision(
            decision_id=decision_id(ctx["account_id"], ctx["event_id"], policy.name, policy.version),
            account_id=ctx["account_id"], action=rule.action, params=_params(policy, rule, facts, t),
            immediate=rule.immediate, rule_id=rule.id, reasons=reasons, policy_name=policy.name,
            policy_version=policy.version, model_version=ctx.get("model_version"),
            feature_hash=ctx.get("feature_hash"), event_id=ctx["event_id"], event_time=t,
            mode=policy.mode, product=product,
        )
        return d, mem
    # forget disarmed ids of rules the (reloaded) policy no longer has, so memory stays small
    if off:
        mem["off"] = [r for r in off if r in plan.known_ids]
    return None, mem


def _once(fn):
    memo: list = []

    def call():
        if not memo:
            memo.append(fn())
        return memo[0]
    return call


def decide_all(champion: Policy, challengers, facts: dict, reasons_from_model, ctx: dict, memories: dict | None):
    """Run the champion and every challenger on the same facts; challengers are always shadow.

    `memories` maps "champion" / "challenger:<name>" to each policy's memory; returns
    `(decisions, new_memories)` with the champion's decision (if any) first.

    >>> from riskstream.core.policy.loader import load_policy
    >>> from riskstream.data import DEFAULT_POLICY
    >>> champ = load_policy(DEFAULT_POLICY)
    >>> ctx = {"account_id": "a1", "event_id": "e1", "event_time": 0}
    >>> ds, mems = decide_all(champ, [champ], {"product": "credit_line", "fraud_confirmed": 1}, [], ctx, {})
    >>> [(d.action, d.mode) for d in ds]
    [('CLOSE', 'live'), ('CLOSE', 'shadow')]
    """
    memories = dict(memories or {})
    out = []
    if callable(reasons_from_model):
        reasons_from_model = _once(reasons_from_model)
    d, memories["champion"] = decide(champion, facts, reasons_from_model, ctx, memories.get("champion"))
    if d is not None:
        out.append(d)
    for ch in challengers or ():
        key = f"challenger:{ch.name}"
        d, memories[key] = decide(ch, facts, reasons_from_model, ctx, memories.get(key))
        if d is not None:
            if d.mode != "shadow":
                d = replace(d, mode="shadow")
            out.append(d)
    return out, memories
