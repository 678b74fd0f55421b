"""Engine: deterministic ids, tie order, cooldown and hysteresis, champion/challenger, hot reload.

The mechanics are tested on the version-1 policies (tests/fixtures/policy-v1.yaml and challenger-v1.yaml: pure PD
cutoffs, so one `pd` fact drives every rule); the bundled champion's intent is tested in test_bundled_champion.py.
"""

import json
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.policy import PolicyHolder, decide, decide_all, decision_id, load_policy

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CHAMP = load_policy(FIXTURES / "policy-v1.yaml")
CHALL = load_policy(FIXTURES / "challenger-v1.yaml")
HOUR = 3_600_000


def ctx(event_id="e1", t=0, account="a1"):
    return {"account_id": account, "event_id": event_id, "event_time": t, "model_version": "m7", "feature_hash": "fh"}


def retail(**f):
    return {"product": "credit_line", "segment": "retail", **f}


def test_decision_id_is_deterministic_and_distinct():
    d1, _ = decide(CHAMP, retail(pd=0.5), ["r"], ctx(), {})
    d2, _ = decide(CHAMP, retail(pd=0.5), ["r"], ctx(), {})
    assert d1.decision_id == d2.decision_id == decision_id("a1", "e1", CHAMP.name, CHAMP.version)
    assert decision_id("a1", "e2", CHAMP.name, CHAMP.version) != d1.decision_id
    assert decision_id("a1", "e1", CHAMP.name, 2) != d1.decision_id
    assert decision_id("a1", "e1", CHALL.name, CHAMP.version) != d1.decision_id


def test_decision_fields_and_json():
    d, _ = decide(CHAMP, retail(pd=0.5), ["missed payments"], ctx(), {})
    out = d.to_dict()
    for k in ("decision_id", "account_id", "action", "params", "immediate", "rule_id", "reasons", "policy_name",
              "policy_version", "model_version", "feature_hash", "event_id", "event_time", "mode"):
        assert k in out
    assert out["reasons"] == ["probability of default at or above the closing line", "missed payments"]
    assert out["params"]["grace_ms"] == 72 * HOUR
    json.dumps(out)


def test_fraud_beats_everything_and_is_immediate():
    d, _ = decide(CHAMP, retail(pd=0.9, fraud_confirmed=1, failed_logins_24h=9, new_device_before_drawdown=1),
                  [], ctx(), {})
    assert (d.action, d.rule_id, d.immediate) == ("CLOSE", "fraud-confirmed", True)


def test_action_order_then_file_order():
    # REDUCE_LIMIT outranks WARN although both hold
    d, _ = decide(CHAMP, retail(pd=0.3), [], ctx(), {})
    assert d.action == "REDUCE_LIMIT"
    # two rules with the same action: the earlier one in the file wins
    doc = yaml.safe_load(CHAMP.text)
    doc["rules"].insert(0, {"id": "first-warn", "product": "credit_line", "action": "WARN", "reason": "first",
                            "when": [{"fact": "pd", "op": ">=", "value": 0.01}]})
    p = load_policy(yaml.safe_dump(doc, sort_keys=False))
    d, _ = decide(p, retail(pd=0.13), [], ctx(), {})
    assert d.rule_id == "first-warn"


def test_reduce_limit_keeps_headroom():
    d, _ = decide(CHAMP, retail(pd=0.1, utilisation=0.95, drawdown_velocity_ratio=4.0), [], ctx(), {})
    assert d.action == "REDUCE_LIMIT"
    assert d.params["limit_factor"] == 1.0 and d.params["reduce_pct"] == 0.0
    d, _ = decide(CHAMP, retail(pd=0.3, utilisation=0.2), [], ctx(), {})
    assert d.params == {"reduce_pct": 0.3, "limit_factor": 0.7}


def test_project_rules():
    f = {"product": "project_facility", "segment": "energy", "dscr": 0.9, "covenant_breach_in_periods": -1}
    assert decide(CHAMP, f, [], ctx(), {})[0].action == "REPAYMENT_PLAN"
    f = {"product": "project_facility", "dscr": 1.3, "covenant_breach_in_periods": 2}
    assert decide(CHAMP, f, [], ctx(), {})[0].action == "REPAYMENT_PLAN"
    f = {"product": "project_facility", "dscr": 1.3, "covenant_breach_in_periods": -1, "covenant_headroom": -0.1}
    assert decide(CHAMP, f, [], ctx(), {})[0].action == "WARN"
    assert decide(CHAMP, {"product": "project_facility", "dscr": 1.5}, [], ctx(), {})[0] is None


def test_missing_facts_never_trigger_and_unknown_product_is_ignored():
    assert decide(CHAMP, retail(), [], ctx(), {})[0] is None
    assert decide(CHAMP, {"product": "mortgage", "pd": 0.99}, [], ctx(), {})[0] is None


def test_memory_is_small_json_and_not_mutated():
    mem0 = {}
    d, mem = decide(CHAMP, retail(pd=0.13), [], ctx(), mem0)
    assert mem0 == {}
    assert json.loads(json.dumps(mem)) == mem
    assert mem == {"last": {"WARN": 0}, "off": ["pd-warn"]}


def test_close_repeats_after_cooldown_while_still_bad():
    # CLOSE has no hysteresis: the repeat after the grace is what lets the actuator close
    mem, actions = {}, []
    for i in range(10):
        d, mem = decide(CHAMP, retail(pd=0.6), [], ctx(f"e{i}", i * 12 * HOUR), mem)
        actions.append(d.action if d else None)
    assert actions.count("CLOSE") == 2  # t=0 and t=72h
    assert actions[0] == "CLOSE" and actions[6] == "CLOSE"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60),
       st.integers(min_value=1, max_value=10 * HOUR))
def test_warn_never_flaps(pds, gap):
    """Around the warning line, WARN fires at most once per hysteresis episode and per cooldown."""
    p = CHAMP
    th = p.thresholds["credit_line"]
    margin = p.actions["WARN"].hysteresis["pd"]
    cooldown = p.actions["WARN"].cooldown_ms
    # keep pd in the WARN-only band or below it so other actions do not interfere
    pds = [th["warn_pd"] - 0.05 + x * (th["limit_pd"] - th["warn_pd"]) for x in pds]
    mem, fired = {}, []
    armed = True
    for i, pd in enumerate(pds):
        t = i * gap
        d, mem = decide(p, retail(pd=pd), [], ctx(f"e{i}", t), mem)
        if d is not None:
            assert d.action == "WARN"
            assert armed, "fired again inside the hysteresis band"
            assert not fired or t - fired[-1] >= cooldown
            fired.append(t)
            armed = False
        elif pd < th["warn_pd"] - margin:
            armed = True


def test_hysteresis_rearms_only_below_margin():
    mem = {}
    d, mem = decide(CHAMP, retail(pd=0.13), [], ctx("e1", 0), mem)
    assert d.action == "WARN"
    later = 8 * 24 * HOUR  # past the cooldown
    d, mem = decide(CHAMP, retail(pd=0.11), [], ctx("e2", later), mem)  # below warn_pd but inside margin
    assert d is None and "pd-warn" in mem["off"]
    d, mem = decide(CHAMP, retail(pd=0.13), [], ctx("e3", later + 1), mem)
    assert d is None
    d, mem = decide(CHAMP, retail(pd=0.09), [], ctx("e4", later + 2), mem)  # below warn_pd - 0.02: re-armed
    assert d is None and "pd-warn" not in mem["off"]
    d, mem = decide(CHAMP, retail(pd=0.13), [], ctx("e5", later + 3), mem)
    assert d.action == "WARN"


def test_decide_all_runs_challenger_in_shadow():
    facts = retail(pd=0.42)  # challenger closes at 0.40, champion reduces the limit
    ds, mems = decide_all(CHAMP, [CHALL], facts, [], ctx(), {})
    assert [(d.policy_name, d.action, d.mode) for d in ds] == [
        ("retail-champion", "REDUCE_LIMIT", "live"), ("retail-challenger", "CLOSE", "shadow")]
    assert ds[0].decision_id != ds[1].decision_id
    assert set(mems) == {"champion", "challenger:retail-challenger"}
    live = load_policy(CHALL.text.replace("mode: shadow", "mode: live"))
    ds, _ = decide_all(CHAMP, [live], facts, [], ctx(), {})
    assert ds[1].mode == "shadow"


def test_holder_refuses_broken_and_keeps_old():
    h = PolicyHolder(CHAMP)
    ok, err = h.offer(CHAMP.text.replace("action: WARN", "action: WARNN", 1), source="control:policy@v2")
    assert not ok and err.startswith("control:policy@v2: rules[") and "].action: " in err
    assert h.policy is CHAMP and h.refusals == 1
    ok, err = h.offer(CHALL.text, source="v3")
    assert ok and err is None and h.policy.name == "retail-challenger"
    rec = h.change_record(CHAMP)
    assert rec["from"]["name"] == "retail-champion" and rec["to"]["sha256"] == h.policy.digest


def test_to_dict_is_asdict():
    import dataclasses

    from riskstream.core.policy.engine import Decision

    d = Decision("id", "a1", "REDUCE_LIMIT", {"reduce_pct": 0.3, "nested": {"x": [1, (2, 3)]}}, False, "r1",
                 ["why", "model"], "p", 3, "pd@1", "fh", "e1", 5, "live", "credit_line")
    got = d.to_dict()
    assert got == dataclasses.asdict(d) and list(got) == list(dataclasses.asdict(d))
    assert got["params"] is not d.params and got["params"]["nested"] is not d.params["nested"]
    assert got["reasons"] is not d.reasons
