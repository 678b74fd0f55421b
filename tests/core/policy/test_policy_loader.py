"""Policy validation: every refusal names the file, the rule, the field and a fix."""

import argparse

import pytest
import yaml

from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY
from riskstream.core.policy import PolicyError, load_policy
from riskstream.ops.policy_cli import register

BASE = {
    "name": "t",
    "version": 1,
    "mode": "live",
    "segments": {"credit_line": {"thresholds": {"warn_pd": 0.1, "limit_pd": 0.2, "close_pd": 0.4}}},
    "actions": {"CLOSE": {"cooldown": "1h"}, "WARN": {"cooldown": "24h", "grace": "72h"}},
    "rules": [
        {"id": "r-close", "when": [{"fact": "pd", "op": ">=", "threshold": "close_pd"}], "action": "CLOSE",
         "reason": "high pd"},
        {"id": "r-warn", "when": [{"fact": "pd", "op": ">=", "threshold": "warn_pd"}], "action": "WARN",
         "reason": "pd above warning"},
    ],
}


def text(**changes):
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes.items():
        node = doc
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return yaml.safe_dump(doc, sort_keys=False)


def refuse(t, *needles):
    with pytest.raises(PolicyError) as e:
        load_policy(t, source="ops/policy.yaml")
    msg = str(e.value)
    assert msg.startswith("ops/policy.yaml: "), msg
    assert "Fix: " in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_shipped_policies_load():
    champ, chall = load_policy(DEFAULT_POLICY), load_policy(CHALLENGER_POLICY)
    assert champ.mode == "live" and chall.mode == "shadow"
    assert champ.thresholds["credit_line"] != chall.thresholds["credit_line"]
    assert [r.id for r in champ.rules] == [r.id for r in chall.rules]
    fraud = next(r for r in champ.rules if r.id == "fraud-confirmed")
    assert fraud.immediate and fraud.action == "CLOSE"


def test_base_loads():
    p = load_policy(text(), source="x.yaml")
    assert p.action_order == ("CLOSE", "WARN")
    assert p.actions["WARN"].params["grace_ms"] == 72 * 3_600_000


def test_unknown_fact():
    refuse(text(rules__0__when=[{"fact": "pdd", "op": ">=", "value": 0.3}]),
           "rules[r-close].when.all[0].fact: ", "unknown fact 'pdd'")


def test_bad_op():
    refuse(text(rules__1__when=[{"fact": "pd", "op": "=>", "value": 0.3}]),
           "rules[r-warn].when.all[0].op: ", "<, <=, >, >=, ==, !=")


def test_unknown_action():
    refuse(text(rules__1__action="CLOS"), "rules[r-warn].action: ", "unknown action 'CLOS'")


def test_action_not_configured():
    refuse(text(rules__1__action="FREEZE"), "rules[r-warn].action: ", "not configured")


def test_missing_threshold_reference():
    refuse(text(rules__0__when=[{"fact": "pd", "op": ">=", "threshold": "kill_pd"}]),
           "rules[r-close].when.all[0].threshold: ", "'kill_pd' does not exist")


def test_bad_duration():
    refuse(text(actions__WARN={"cooldown": "24 hours"}), ": actions.WARN.cooldown: ", "'24 hours' is not a duration")
    refuse(text(actions__WARN={"grace": "soon"}), ": actions.WARN.grace: ")


def test_duplicate_rule_id():
    doc = yaml.safe_load(text())
    doc["rules"][1]["id"] = "r-close"
    refuse(yaml.safe_dump(doc), "rules[1].id: ", "duplicate rule id 'r-close'")


def test_immediate_only_on_close():
    refuse(text(rules__1__immediate=True), "rules[r-warn].immediate: ", "only allowed on CLOSE")
    assert load_policy(text(rules__0__immediate=True)).rules[0].immediate


def test_nested_group_error_path():
    bad = {"any": [{"fact": "pd", "op": ">=", "value": 0.3},
                   {"all": [{"fact": "utilisation", "op": "~", "value": 0.9}]}]}
    refuse(text(rules__0__when=bad), "rules[r-close].when.any[1].all[0].op: ")


def test_string_fact_needs_equality():
    refuse(text(rules__0__when=[{"fact": "segment", "op": ">", "value": "retail"}]),
           "rules[r-close].when.all[0].op: ", "segment")


def test_top_level_errors():
    refuse(text(mode="dry-run"), ": mode: ", "'live' or 'shadow'")
    refuse(text(version=None), ": version: ")
    refuse(text(segments={"credit_line": {"thresholds": {"warn_pd": 0.5, "limit_pd": 0.2, "close_pd": 0.4}}}),
           "segments.credit_line.thresholds")
    refuse(text(segments={"credit_line": {"thresholds": {"warn_pd": 0.1, "limit_pd": 0.2, "close_pd": 1.4}}}),
           "segments.credit_line.thresholds.close_pd", "not a probability")
    refuse(text(action_order=["WARN"]), ": action_order: ", "CLOSE missing")
    refuse(text(actions__WARN={"reduce_pct": 0.3}), ": actions.WARN.reduce_pct: ", "unknown parameter")
    refuse(text(rules__0__product="mortgage"), "rules[r-close].product: ")
    refuse("a: [1, 2", "not valid YAML")


def test_load_from_path_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(text(rules__1__action="CLOS"))
    with pytest.raises(PolicyError, match=r"bad\.yaml: rules\[r-warn\]\.action: "):
        load_policy(str(p))


def _cli(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_check(tmp_path, capsys):
    assert _cli(["policy", "check", str(DEFAULT_POLICY)]) == 0
    assert "ok: 15 rules" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(text(rules__0__when=[{"fact": "nope", "op": ">", "value": 1}]))
    assert _cli(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: rules[r-close].when.all[0].fact: unknown fact 'nope'. Fix: " in err


def test_priority_instead_of_action_order():
    p = load_policy(text(actions={"CLOSE": {"priority": 2}, "WARN": {"priority": 1, "grace": "1h"}}))
    assert p.action_order == ("WARN", "CLOSE")
    refuse(text(actions={"CLOSE": {"priority": 1}, "WARN": {"grace": "1h"}}), ": actions.WARN.priority: ")
    refuse(text(actions={"CLOSE": {"priority": 1}, "WARN": {"priority": 1}}), "share a priority")
    refuse(text(actions={"CLOSE": {"priority": 1}, "WARN": {"priority": 2}}, action_order=["CLOSE", "WARN"]),
           ": action_order: ")


def test_path_without_yaml_suffix(tmp_path):
    p = tmp_path / "policy.txt"
    p.write_text(text())
    assert load_policy(str(p)).source == str(p)
