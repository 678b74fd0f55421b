"""Read and validate a policy file into an immutable `Policy`.

Everything an operator can get wrong is refused here with a `PolicyError` in the one operator-error format,
``FILE: FIELD: problem. Fix: ...`` (a rule's fields are ``rules[<id>].<field>``), so that a broken file never
reaches the engine.

>>> policy = load_policy('''
... name: tiny
... version: 1
... mode: live
... segments:
...   credit_line: {thresholds: {warn_pd: 0.2, limit_pd: 0.3, close_pd: 0.5}}
... actions:
...   WARN: {cooldown: 24h, grace: 72h}
... rules:
...   - id: pd-warn
...     when: {all: [{fact: pd, op: ">=", threshold: warn_pd}]}
...     action: WARN
...     reason: probability of default above the warning line
... ''', source="tiny.yaml")
>>> policy.name, policy.version, [r.id for r in policy.rules]
('tiny', 1, ['pd-warn'])
>>> load_policy(policy.text.replace("op: \\">=\\"", "op: \\"=>\\""), source="tiny.yaml")
Traceback (most recent call last):
...
riskstream.core.policy.loader.PolicyError: tiny.yaml: rules[pd-warn].when.all[0].op: unknown operator '=>'. Fix: use one of <, <=, >, >=, ==, !=
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.errors import FILE, TOP, OperatorError, parse_yaml
from riskstream.core.policy.vocabulary import (
    ACTION_PARAMS, ACTIONS, FACTS, NUMERIC_FACTS, OPS, PRODUCTS, STRING_FACTS, parse_duration,
)


_FACT_EXAMPLES = "pd, utilisation, dscr"


class PolicyError(OperatorError):
    """A policy file that cannot be used: ``FILE: FIELD: problem. Fix: ...`` (in a rule, FIELD is
    ``rules[<id>].<field>``)."""


@dataclass(frozen=True)
class Condition:
    """`fact op value`, where value is either a literal or a named threshold of the rule's product."""

    fact: str
    op: str
    value: Any = None
    threshold: str | None = None

    def describe(self) -> str:
        rhs = self.threshold if self.threshold else repr(self.value)
        return f"{self.fact} {self.op} {rhs}"


@dataclass(frozen=True)
class Group:
    """`all` (every part holds) or `any` (at least one part holds) over conditions or nested groups."""

    kind: str
    parts: tuple


@dataclass(frozen=True)
class ActionSpec:
    name: str
    cooldown_ms: int = 0
    hysteresis: dict | None = None  # fact -> margin; None = the rule may fire again while still true
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    id: str
    index: int
    action: str
    reason: str
    when: Group
    products: tuple
    segments: tuple | None = None
    immediate: bool = False
    hysteresis: dict | None = None  # rule-level override of the action's margins


@dataclass(frozen=True)
class Policy:
    name: str
    version: Any
    mode: str
    thresholds: dict           # product -> {threshold name -> value}
    actions: dict              # action -> ActionSpec
    action_order: tuple
    rules: tuple
    source: str = "<policy>"
    text: str = ""
    digest: str = ""

    def rank(self, action: str) -> int:
        return self.action_order.index(action)

    def summary(self) -> str:
        lines = [f"policy {self.name!r} version {self.version} mode {self.mode} ({self.source}, sha256 {self.digest[:12]})"]
        for product, th in self.thresholds.items():
            lines.append(f"  {product}: " + ", ".join(f"{k}={v}" for k, v in th.items()))
        lines.append("  action order: " + " > ".join(self.action_order))
        for r in self.rules:
            flag = " immediate" if r.immediate else ""
            lines.append(f"  rule {r.id}: {r.action}{flag} for {'/'.join(r.products)}")
        return "\n".join(lines)


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str | None, fld: str, problem: str, fix: str):
        """Refuse the policy; ``where`` is the rule (its id, or its index while it has none), None outside rules."""
        raise PolicyError(self.source, f"rules[{where}].{fld}" if where is not None else fld, problem, fix)

    def duration(self, value, fld: str) -> int:
        return parse_duration(value, file=self.source, field=fld, error=PolicyError)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load_policy(text_or_path, *, source: str | None = None) -> Policy:
    """Parse a policy from YAML text or a file path; raise `PolicyError` if anything is wrong."""
    text = text_or_path
    if isinstance(text_or_path, os.PathLike) or (
        isinstance(text_or_path, str) and "\n" not in text_or_path
        and (text_or_path.endswith((".yaml", ".yml")) or os.path.isfile(text_or_path))
    ):
        path = os.fspath(text_or_path)
        source = source or path
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise PolicyError(path, FILE, f"cannot read the policy file ({e.strerror})",
                              "give the path of a readable YAML file") from None
    source = source or "<policy>"
    c = _Checker(source)
    doc = parse_yaml(text, source=source, error=PolicyError)
    if not isinstance(doc, dict):
        c.fail(None, TOP, "the file is not a mapping", "start with 'name:', 'version:', 'mode:', 'segments:', 'actions:', 'rules:'")
    known_top = {"name", "version", "mode", "segments", "actions", "action_order", "rules", "description"}
    for k in doc:
        if k not in known_top:
            c.fail(None, str(k), "unknown top-level field", f"use only {', '.join(sorted(known_top))}")

    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        c.fail(None, "name", "missing or not a text", "add e.g. 'name: retail-champion'")
    version = doc.get("version")
    if version is None or isinstance(version, bool) or not isinstance(version, (int, str)) or str(version).strip() == "":
        c.fail(None, "version", "missing or not an integer/text", "add e.g. 'version: 3'")
    mode = doc.get("mode", "live")
    if mode not in ("live", "shadow"):
        c.fail(None, "mode", f"unknown mode {mode!r}", "use 'live' or 'shadow'")

    thresholds = _segments(c, doc.get("segments"))
    actions = _actions(c, doc.get("actions"))
    order = _order(c, doc.get("action_order"), actions, doc.get("actions"))
    rules = _rules(c, doc.get("rules"), thresholds, actions)
    return Policy(
        name=name.strip(), version=version, mode=mode, thresholds=thresholds, actions=actions,
        action_order=order, rules=rules, source=source, text=text,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def _segments(c: _Checker, segs) -> dict:
    if not isinstance(segs, dict) or not segs:
        c.fail(None, "segments", "missing or empty", "add 'segments: {credit_line: {thresholds: {warn_pd: .., limit_pd: .., close_pd: ..}}}'")
    out = {}
    for product, body in segs.items():
        if product not in PRODUCTS:
            c.fail(None, f"segments.{product}", "unknown product", f"use one of {', '.join(PRODUCTS)}")
        th = body.get("thresholds") if isinstance(body, dict) else None
        if not isinstance(th, dict):
            c.fail(None, f"segments.{product}.thresholds", "missing or not a mapping", "add 'thresholds: {warn_pd: 0.1, limit_pd: 0.2, close_pd: 0.4}'")
        for tname, v in th.items():
            f = f"segments.{product}.thresholds.{tname}"
            if not str(tname).endswith("_pd"):
                c.fail(None, f, "thresholds are PD cutoffs and their names end in '_pd'", "rename it (e.g. review_pd) or write the number in the rule")
            if not _number(v) or not 0.0 <= v <= 1.0:
                c.fail(None, f, f"{v!r} is not a probability", "use a number between 0 and 1")
        for need in ("warn_pd", "limit_pd", "close_pd"):
            if need not in th:
                c.fail(None, f"segments.{product}.thresholds.{need}", "missing", f"add '{need}: <0..1>'")
        if not th["warn_pd"] <= th["limit_pd"] <= th["close_pd"]:
            c.fail(None, f"segments.{product}.thresholds", "warn_pd <= limit_pd <= close_pd does not hold", "order the cutoffs from warning to closing")
        out[product] = {k: float(v) for k, v in th.items()}
    return out


def _margins(c: _Checker, where: str | None, fld: str, h):
    if h is None or h is False:
        return None
    if h is True:
        return {}
    if not isinstance(h, dict):
        c.fail(where, fld, f"{h!r} is not a mapping of fact to margin", "write e.g. 'hysteresis: {pd: 0.02}' or 'hysteresis: false'")
    out = {}
    for fact, m in h.items():
        if fact not in NUMERIC_FACTS:
            c.fail(where, f"{fld}.{fact}", "unknown numeric fact",
                   f"use a feature of docs/features.md or a signal of docs/policy.md, e.g. {_FACT_EXAMPLES}")
        if not _number(m) or m < 0:
            c.fail(where, f"{fld}.{fact}", f"margin {m!r} is not a number >= 0", "use a non-negative number in the fact's units")
        out[fact] = float(m)
    return out


def _actions(c: _Checker, acts) -> dict:
    if not isinstance(acts, dict) or not acts:
        c.fail(None, "actions", "missing or empty", "add 'actions: {WARN: {cooldown: 24h, grace: 72h}, ...}'")
    out = {}
    for name, body in acts.items():
        f = f"actions.{name}"
        if name not in ACTIONS:
            c.fail(None, f, f"unknown action {name!r}", f"use one of {', '.join(ACTIONS)}")
        body = body or {}
        if not isinstance(body, dict):
            c.fail(None, f, "not a mapping", "write e.g. '{cooldown: 24h}'")
        cooldown = c.duration(body.get("cooldown", 0), f"{f}.cooldown")
        hyst = _margins(c, None, f"{f}.hysteresis", body.get("hysteresis"))
        params = {}
        for k, v in body.items():
            if k in ("cooldown", "hysteresis", "priority"):
                continue
            kind = ACTION_PARAMS[name].get(k)
            pf = f"{f}.{k}"
            if kind is None:
                allowed = ", ".join(["cooldown", "hysteresis", *ACTION_PARAMS[name]])
                c.fail(None, pf, f"unknown parameter for {name}", f"use only {allowed}")
            if kind == "duration":
                params[k + "_ms"] = c.duration(v, pf)
                params[k] = v
            elif kind == "fraction":
                if not _number(v) or not 0 <= v <= 1:
                    c.fail(None, pf, f"{v!r} is not a fraction", "use a number between 0 and 1 (0.3 = 30 %)")
                params[k] = float(v)
            elif kind == "count":
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    c.fail(None, pf, f"{v!r} is not a whole number >= 0", "use e.g. 12")
                params[k] = v
            elif kind == "number":
                if not _number(v):
                    c.fail(None, pf, f"{v!r} is not a number", "use e.g. 150")
                params[k] = v
            else:
                if not isinstance(v, str):
                    c.fail(None, pf, f"{v!r} is not a text", "use e.g. 'fraud-desk'")
                params[k] = v
        out[name] = ActionSpec(name=name, cooldown_ms=cooldown, hysteresis=hyst, params=params)
    return out


def _order(c: _Checker, order, actions, raw_actions) -> tuple:
    prio = {a: b["priority"] for a, b in raw_actions.items() if isinstance(b, dict) and "priority" in b}
    if prio:
        if order is not None:
            c.fail(None, "action_order", "given together with 'priority' on actions", "use one of the two, not both")
        for a in actions:
            p = prio.get(a)
            if p is None or not isinstance(p, int) or isinstance(p, bool):
                c.fail(None, f"actions.{a}.priority", f"missing or not a whole number ({p!r})",
                       "give every action a priority (1 = most severe) or use 'action_order' instead")
        if len(set(prio.values())) != len(prio):
            c.fail(None, "actions.*.priority", "two actions share a priority", "give each action its own number")
        return tuple(sorted(actions, key=lambda a: prio[a]))
    if order is None:
        return tuple(a for a in ACTIONS if a in actions)
    if not isinstance(order, list) or not all(isinstance(a, str) for a in order):
        c.fail(None, "action_order", "not a list of action names", f"write e.g. [{', '.join(ACTIONS)}]")
    for a in order:
        if a not in actions:
            c.fail(None, "action_order", f"{a!r} is not defined under 'actions'", "define it under 'actions' or remove it from the list")
    if len(set(order)) != len(order):
        c.fail(None, "action_order", "an action is listed twice", "list each action once")
    missing = [a for a in actions if a not in order]
    if missing:
        c.fail(None, "action_order", f"{', '.join(missing)} missing", "list every action defined under 'actions', most severe first")
    return tuple(order)


def _rules(c: _Checker, rules, thresholds, actions) -> tuple:
    if not isinstance(rules, list) or not rules:
        c.fail(None, "rules", "missing or empty", "add a list of rules with id, when, action, reason")
    seen, out = set(), []
    known = {"id", "product", "segment", "when", "action", "reason", "immediate", "hysteresis", "description"}
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            c.fail(None, f"rules[{i}]", "a rule is not a mapping", "write each rule as 'id: .., when: .., action: .., reason: ..'")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid.strip():
            c.fail(str(i), "id", "missing or not a text", "give every rule a unique id such as 'pd-close'")
        if rid in seen:
            c.fail(str(i), "id", f"duplicate rule id {rid!r}", "give every rule its own id")
        seen.add(rid)
        for k in r:
            if k not in known:
                c.fail(rid, str(k), "unknown rule field", f"use only {', '.join(sorted(known))}")
        action = r.get("action")
        if action not in ACTIONS:
            c.fail(rid, "action", f"unknown action {action!r}", f"use one of {', '.join(ACTIONS)}")
        if action not in actions:
            c.fail(rid, "action", f"{action} is not configured under 'actions'", f"add 'actions: {{{action}: {{cooldown: ..}}}}'")
        reason = r.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            c.fail(rid, "reason", "missing", "explain the rule in plain words, e.g. 'confirmed fraud'")
        immediate = r.get("immediate", False)
        if not isinstance(immediate, bool):
            c.fail(rid, "immediate", f"{immediate!r} is not true/false", "write 'immediate: true' or leave it out")
        if immediate and action != "CLOSE":
            c.fail(rid, "immediate", f"immediate is only allowed on CLOSE rules, not {action}", "remove 'immediate' (every other action already acts at once)")
        prod = r.get("product")
        if prod is None:
            products = tuple(thresholds)
        else:
            plist = [prod] if isinstance(prod, str) else prod
            if not isinstance(plist, list) or not plist:
                c.fail(rid, "product", f"{prod!r} is not a product", f"use one of {', '.join(thresholds)}")
            for p in plist:
                if p not in thresholds:
                    c.fail(rid, "product", f"{p!r} has no 'segments' entry", f"use one of {', '.join(thresholds)} or add it under 'segments'")
            products = tuple(plist)
        seg = r.get("segment")
        segments = None
        if seg is not None:
            slist = [seg] if isinstance(seg, str) else seg
            if not isinstance(slist, list) or not all(isinstance(s, str) for s in slist):
                c.fail(rid, "segment", f"{seg!r} is not a text or list of texts", "write e.g. 'segment: retail'")
            segments = tuple(slist)
        if "when" not in r:
            c.fail(rid, "when", "missing", "add 'when: {all: [{fact: pd, op: \">=\", threshold: close_pd}]}'")
        when = _group(c, rid, "when", r["when"], products, thresholds)
        hyst = _margins(c, rid, "hysteresis", r["hysteresis"]) if "hysteresis" in r else None
        out.append(Rule(id=rid, index=i, action=action, reason=reason.strip(), when=when, products=products,
                        segments=segments, immediate=immediate, hysteresis=hyst))
    return tuple(out)


def _group(c: _Checker, rid, fld, node, products, thresholds) -> Group:
    if isinstance(node, list):
        node = {"all": node}
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in ("all", "any"):
        if isinstance(node, dict) and "fact" in node:
            return Group("all", (_condition(c, rid, fld, node, products, thresholds),))
        c.fail(rid, fld, "must be 'all: [..]' or 'any: [..]' (exactly one of them)", "write e.g. 'when: {any: [{fact: pd, op: \">=\", threshold: close_pd}]}'")
    kind, parts = next(iter(node.items()))
    if not isinstance(parts, list) or not parts:
        c.fail(rid, f"{fld}.{kind}", "empty or not a list", "list one or more conditions")
    built = []
    for j, p in enumerate(parts):
        pf = f"{fld}.{kind}[{j}]"
        if isinstance(p, dict) and ("all" in p or "any" in p):
            built.append(_group(c, rid, pf, p, products, thresholds))
        else:
            built.append(_condition(c, rid, pf, p, products, thresholds))
    return Group(kind, tuple(built))


def _condition(c: _Checker, rid, fld, node, products, thresholds) -> Condition:
    if not isinstance(node, dict):
        c.fail(rid, fld, f"{node!r} is not a condition", "write '{fact: .., op: .., value: ..}' or '{fact: .., op: .., threshold: ..}'")
    for k in node:
        if k not in ("fact", "op", "value", "threshold"):
            c.fail(rid, f"{fld}.{k}", "unknown condition field", "use only fact, op, value, threshold")
    fact, op = node.get("fact"), node.get("op")
    if fact not in FACTS:
        close = difflib.get_close_matches(str(fact), sorted(FACTS), n=1)
        c.fail(rid, f"{fld}.fact", f"unknown fact {fact!r}", (f"did you mean {close[0]!r}? " if close else "")
               + f"use a feature of docs/features.md or a signal of docs/policy.md, e.g. {_FACT_EXAMPLES}")
    if op not in OPS:
        c.fail(rid, f"{fld}.op", f"unknown operator {op!r}", "use one of " + ", ".join(OPS))
    has_v, has_t = "value" in node, "threshold" in node
    if has_v == has_t:
        c.fail(rid, fld, "needs exactly one of 'value' or 'threshold'", "write 'value: 0.9' or 'threshold: close_pd'")
    if fact in STRING_FACTS:
        if op not in ("==", "!=") or not has_v or not isinstance(node["value"], str):
            c.fail(rid, f"{fld}.op", f"{fact} is a text: compare it with == or != to a text value", f"write '{{fact: {fact}, op: \"==\", value: retail}}'")
        return Condition(fact, op, node["value"])
    if has_t:
        tname = node["threshold"]
        for p in products:
            if tname not in thresholds[p]:
                c.fail(rid, f"{fld}.threshold", f"threshold {tname!r} does not exist in segments.{p}.thresholds",
                       f"use one of {', '.join(thresholds[p])} or define it")
        return Condition(fact, op, None, tname)
    v = node["value"]
    if isinstance(v, bool):
        v = int(v)
    if not _number(v):
        c.fail(rid, f"{fld}.value", f"{v!r} is not a number ({fact} is numeric)", "use a number, e.g. 0.9")
    return Condition(fact, op, v)
