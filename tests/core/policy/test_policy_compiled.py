"""Compiled conditions: the flat checks and the engine built on them decide exactly what walking the rule tree does."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.policy import decide, load_policy
from riskstream.core.policy.compiled import compiled, interpret
from riskstream.core.policy.engine import Decision, _clean_memory, _params, decision_id
from riskstream.core.policy.vocabulary import NUMERIC_FACTS
from riskstream.data import DEFAULT_POLICY

POLICIES = [load_policy(p) for p in sorted(DEFAULT_POLICY.parent.glob("*.yaml"))]
PRODUCTS = sorted({p for pol in POLICIES for p in pol.thresholds} | {"unknown_product"})
SEGMENTS = sorted({s for pol in POLICIES for r in pol.rules for s in (r.segments or ())} | {"retail", "other"})


def _rhs_values():
    out = {0.0, 1.0, -1.0, 30.0, 90.0}
    for pol in POLICIES:
        for th in pol.thresholds.values():
            out.update(float(v) for v in th.values())
    return sorted(out)


RHS = _rhs_values()
# Values on and next to every threshold (and margin-moved threshold), plus odd types the engine must survive.
near = st.sampled_from(RHS).flatmap(lambda v: st.sampled_from(
    [v, math.nextafter(v, math.inf), math.nextafter(v, -math.inf), v + 0.02, v - 0.02, v + 0.05, v - 0.05]))
value = st.one_of(near, st.integers(-5, 100), st.booleans(), st.none(), st.just(float("nan")), st.text(max_size=3))
facts_st = st.fixed_dictionaries(
    {"product": st.sampled_from(PRODUCTS), "segment": st.sampled_from(SEGMENTS)},
    optional={f: value for f in sorted(NUMERIC_FACTS)})


def reference_decide(policy, facts, reasons_from_model, ctx, memory):
    """The engine as it was before compilation (rule tree walked per event), kept here as the oracle."""
    mem = _clean_memory(memory)
    product, segment = facts.get("product"), facts.get("segment")
    thresholds = policy.thresholds.get(product)
    if thresholds is None:
        return None, mem
    t = int(ctx["event_time"])
    known_ids, candidates = set(), []
    for rule in policy.rules:
        if product not in rule.products or (rule.segments is not None and segment not in rule.segments):
            continue
        known_ids.add(rule.id)
        margins = rule.hysteresis if rule.hysteresis is not None else policy.actions[rule.action].hysteresis
        if rule.id in mem["off"]:
            if interpret(rule.when, facts, thresholds, margins or {}):
                continue
            mem["off"].remove(rule.id)
            continue
        if interpret(rule.when, facts, thresholds):
            candidates.append((policy.rank(rule.action), rule.index, rule, margins))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for _, _, rule, margins in candidates:
        last = mem["last"].get(rule.action)
        if last is not None and t - last < policy.actions[rule.action].cooldown_ms:
            continue
        mem["last"][rule.action] = t
        if margins is not None and rule.id not in mem["off"]:
            mem["off"].append(rule.id)
        reasons = [rule.reason]
        for r in reasons_from_model or ():
            if r not in reasons:
                reasons.append(r)
        return Decision(decision_id(ctx["account_id"], ctx["event_id"], policy.name, policy.version),
                        ctx["account_id"], rule.action, _params(policy, rule, facts, t), rule.immediate, rule.id,
                        reasons, policy.name, policy.version, ctx.get("model_version"), ctx.get("feature_hash"),
                        ctx["event_id"], t, policy.mode, product), mem
    mem["off"] = [r for r in mem["off"] if r in known_ids]
    return None, mem


@settings(max_examples=400, deadline=None)
@given(facts=facts_st, which=st.integers(0, len(POLICIES) - 1))
def test_compiled_checks_equal_the_interpreter(facts, which):
    policy = POLICIES[which]
    plan = compiled(policy).plan(facts["product"], facts["segment"])
    thresholds = policy.thresholds.get(facts["product"])
    if plan is None:
        assert thresholds is None
        return
    for rule, holds, holds_in_band, margins in plan.rules:
        assert holds(facts) == interpret(rule.when, facts, thresholds)
        assert holds_in_band(facts) == interpret(rule.when, facts, thresholds, margins or {})
    assert plan.any_holds(facts) == any(interpret(rule.when, facts, thresholds) for rule, *_ in plan.rules)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(facts_st, st.integers(0, 48)), min_size=1, max_size=8),
       which=st.integers(0, len(POLICIES) - 1))
def test_decide_equals_the_reference_over_a_sequence(steps, which):
    """Memory (cooldowns, disarmed rules) carried over several events gives the same decisions and memory."""
    policy = POLICIES[which]
    mine = ref = None
    t = 0
    for i, (facts, hours) in enumerate(steps):
        t += hours * 3_600_000
        ctx = {"account_id": "a1", "event_id": f"e{i}", "event_time": t, "model_version": "m", "feature_hash": "h"}
        d1, mine = decide(policy, facts, ["model says"], ctx, mine)
        d2, ref = reference_decide(policy, facts, ["model says"], ctx, ref)
        assert d1 == d2
        assert mine == ref


def test_model_reasons_are_computed_only_for_a_decision():
    policy = POLICIES[0]
    calls = []

    def reasons():
        calls.append(1)
        return ["late payments"]

    ctx = {"account_id": "a1", "event_id": "e1", "event_time": 0}
    none, _ = decide(policy, {"product": "credit_line", "segment": "retail"}, reasons, ctx, {})
    assert none is None and calls == []
    d, _ = decide(policy, {"product": "credit_line", "segment": "retail", "fraud_confirmed": 1.0}, reasons, ctx, {})
    assert d is not None and calls == [1] and d.reasons[-1] == "late payments"
