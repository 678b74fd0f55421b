"""A policy's conditions compiled once into flat checks, so the engine does not walk the rule tree per event.

`compiled(policy)` builds (once per policy object) a `Plan` per product and segment: the rules that apply, each
with two checks, ``holds(facts)`` and ``holds_in_band(facts)`` (the condition with every threshold moved by the
hysteresis margin towards safety), and the same rules ranked by action order then file order. A check is a
closure over tuples ``(fact, op, rhs)`` with the threshold and margin already resolved; it gives exactly what
:func:`interpret` gives, which walks the tree and stays the reference.

>>> from riskstream.core.policy.loader import load_policy
>>> policy = load_policy('''
... name: tiny
... version: 1
... mode: live
... segments:
...   credit_line: {thresholds: {warn_pd: 0.2, limit_pd: 0.3, close_pd: 0.5}}
... actions:
...   WARN: {cooldown: 1h, hysteresis: {pd: 0.05}}
... rules:
...   - id: pd-warn
...     when: {any: [{fact: pd, op: ">=", threshold: warn_pd}, {fact: days_past_due, op: ">", value: 30}]}
...     action: WARN
...     reason: probability of default above the warning line
... ''')
>>> plan = compiled(policy).plan("credit_line", "retail")
>>> rule, holds, holds_in_band, margins = plan.ranked[0]
>>> holds({"pd": 0.19}), holds_in_band({"pd": 0.19}), holds({"pd": "x"}), holds({"days_past_due": 31})
(False, True, False, True)
>>> compiled(policy).plan("mortgage", "retail") is None   # no thresholds for the product
True
"""

from __future__ import annotations

import operator
from typing import Callable, NamedTuple

from riskstream.core.policy.loader import Condition, Group, Policy, Rule
from riskstream.core.policy.vocabulary import OPS

__all__ = ["Compiled", "Plan", "compiled", "interpret"]

# The same comparisons as vocabulary.OPS, as C functions.
_FAST_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
             "!=": operator.ne}

Check = Callable[[dict], bool]


def interpret(node, facts, thresholds, margins=None) -> bool:
    """The reference semantics: walk the condition tree for one set of facts."""
    if isinstance(node, Group):
        results = (interpret(p, facts, thresholds, margins) for p in node.parts)
        return all(results) if node.kind == "all" else any(results)
    value = facts.get(node.fact)
    if value is None:
        return False  # a fact we do not know never triggers an action
    rhs = thresholds[node.threshold] if node.threshold else node.value
    if isinstance(rhs, str) or isinstance(value, str):
        if not (isinstance(rhs, str) and isinstance(value, str)):
            return False
        return OPS[node.op](value, rhs)
    rhs = _towards_safety(node.fact, node.op, rhs, margins)
    try:
        return OPS[node.op](float(value), rhs)
    except (TypeError, ValueError):
        return False


def _towards_safety(fact: str, op: str, rhs, margins: dict | None):
    """The threshold moved by the fact's hysteresis margin towards safety (a disarmed rule re-arms past it)."""
    m = margins.get(fact, 0.0) if margins else 0.0
    if not m:
        return rhs
    if op in (">", ">="):
        return rhs - m
    if op in ("<", "<="):
        return rhs + m
    return rhs


def _slow(value, op, rhs) -> bool:
    """A fact that is not a float (int, bool, text, odd type), as `interpret` judges it."""
    if isinstance(value, str):
        return False  # a numeric condition never holds for a text
    try:
        return op(float(value), rhs)
    except (TypeError, ValueError):
        return False


def _leaf(cond: Condition, thresholds: dict, margins: dict | None):
    """`(fact, op, rhs)` with the threshold and margin resolved, or None if only `interpret` can judge it."""
    rhs = thresholds[cond.threshold] if cond.threshold else cond.value
    op = _FAST_OPS[cond.op]
    if isinstance(rhs, str):
        return None  # text facts: rare, judged by the interpreter
    if isinstance(rhs, bool) or not isinstance(rhs, (int, float)):
        return None
    return cond.fact, op, _towards_safety(cond.fact, cond.op, rhs, margins)


def _compile(node, thresholds: dict, margins: dict | None) -> Check:
    if not isinstance(node, Group):
        node = Group("all", (node,))
    leaves, subs = [], []
    for part in node.parts:
        leaf = _leaf(part, thresholds, margins) if isinstance(part, Condition) else None
        if leaf is not None:
            leaves.append(leaf)
        elif isinstance(part, Condition):
            subs.append(lambda facts, _p=part: interpret(_p, facts, thresholds, margins))
        else:
            subs.append(_compile(part, thresholds, margins))
    flat, nested = tuple(leaves), tuple(subs)
    if node.kind == "all":
        def check(facts: dict) -> bool:
            get = facts.get
            for fact, op, rhs in flat:
                v = get(fact)
                if v is None:
                    return False
                if not (op(v, rhs) if v.__class__ is float else _slow(v, op, rhs)):
                    return False
            for sub in nested:
                if not sub(facts):
                    return False
            return True
    else:
        def check(facts: dict) -> bool:
            get = facts.get
            for fact, op, rhs in flat:
                v = get(fact)
                if v is not None and (op(v, rhs) if v.__class__ is float else _slow(v, op, rhs)):
                    return True
            for sub in nested:
                if sub(facts):
                    return True
            return False
    return check


def _expr(node, thresholds: dict, margins: dict | None, ns: dict) -> str:
    """`node` as one Python expression over `facts` (the same semantics as `_compile`'s checks); constants and
    the conditions only `interpret` judges are bound in `ns`."""
    if not isinstance(node, Group):
        node = Group("all", (node,))
    parts = []
    for part in node.parts:
        leaf = _leaf(part, thresholds, margins) if isinstance(part, Condition) else None
        if leaf is not None:
            fact, op, rhs = leaf
            i = len(ns)
            ns[f"f{i}"], ns[f"op{i}"], ns[f"c{i}"] = fact, op, rhs
            sym = {operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "==",
                   operator.ne: "!="}[op]
            parts.append(f"((v := get(f{i})) is not None and (v {sym} c{i} if v.__class__ is float "
                         f"else _slow(v, op{i}, c{i})))")
        elif isinstance(part, Condition):
            i = len(ns)
            ns[f"sub{i}"] = lambda facts, _p=part: interpret(_p, facts, thresholds, margins)
            parts.append(f"sub{i}(facts)")
        else:
            parts.append(_expr(part, thresholds, margins, ns))
    if not parts:
        return "True" if node.kind == "all" else "False"
    return "(" + (" and " if node.kind == "all" else " or ").join(parts) + ")"


def _any_holds(entries) -> Check:
    """One generated function: does any of these rules' conditions hold (no margins)? `decide` asks it first, so
    an event for which no rule holds (most of them) costs one call instead of one closure call per rule."""
    ns: dict = {}
    exprs = [_expr(rule.when, thresholds, None, ns) for rule, thresholds in entries]
    src = "def any_holds(facts):\n    get = facts.get\n    return " + (" or ".join(exprs) or "False") + "\n"
    scope = {"_slow": _slow, **ns}
    exec(compile(src, "<policy plan>", "exec"), scope)  # noqa: S102 - source built from parsed conditions only
    return scope["any_holds"]


class Plan(NamedTuple):
    """The rules that apply to one product and segment: `(rule, holds, holds_in_band, margins)` each, and
    `any_holds(facts)`: whether any of their conditions holds (False: no rule can decide)."""
    rules: tuple     # in file order
    ranked: tuple    # by (action_order, file order): the order candidates are tried
    known_ids: frozenset
    any_holds: Check = lambda facts: True


class Compiled:
    """Every plan of one policy, built on first use per (product, segment)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._plans: dict = {}

    def plan(self, product, segment) -> Plan | None:
        key = (product, segment)
        try:
            return self._plans[key]
        except KeyError:
            pass
        p = self._plans[key] = self._build(product, segment)
        return p

    def _build(self, product, segment) -> Plan | None:
        policy = self.policy
        thresholds = policy.thresholds.get(product)
        if thresholds is None:
            return None
        entries = []
        for rule in policy.rules:
            if not _applies(rule, product, segment):
                continue
            margins = rule.hysteresis if rule.hysteresis is not None else policy.actions[rule.action].hysteresis
            entries.append((rule, _compile(rule.when, thresholds, None), _compile(rule.when, thresholds, margins or {}),
                            margins))
        ranked = sorted(entries, key=lambda e: (policy.rank(e[0].action), e[0].index))
        return Plan(tuple(entries), tuple(ranked), frozenset(e[0].id for e in entries),
                    _any_holds([(e[0], thresholds) for e in ranked]))


def _applies(rule: Rule, product, segment) -> bool:
    if product not in rule.products:
        return False
    return rule.segments is None or segment in rule.segments


_CACHE: dict[int, Compiled] = {}
_KEEP = 64


def compiled(policy: Policy) -> Compiled:
    """The compiled form of `policy` (kept for the policy object's lifetime in a small cache)."""
    c = _CACHE.get(id(policy))
    if c is None or c.policy is not policy:
        c = _CACHE[id(policy)] = Compiled(policy)
        while len(_CACHE) > _KEEP:
            del _CACHE[next(iter(_CACHE))]
    return c
