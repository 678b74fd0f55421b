"""Policy as data: a versioned YAML file of thresholds, actions and rules, and the engine that applies it.

>>> from riskstream.data import DEFAULT_POLICY
>>> policy = load_policy(DEFAULT_POLICY)
>>> ctx = {"account_id": "a1", "event_id": "e9", "event_time": 1_000, "model_version": "m1", "feature_hash": "h"}
>>> d, memory = decide(policy, {"product": "credit_line", "pd": 0.7, "days_past_due": 50}, [], ctx, {})
>>> d.action, d.immediate, d.mode
('CLOSE', False, 'live')
"""

from riskstream.core.policy.engine import Decision, decide, decide_all, decision_id
from riskstream.core.policy.holder import PolicyHolder
from riskstream.core.policy.loader import ActionSpec, Condition, Group, Policy, PolicyError, Rule, load_policy
from riskstream.core.policy.vocabulary import ACTIONS, FACTS, NUMERIC_FACTS, OPS, STRING_FACTS, parse_duration

__all__ = [
    "ACTIONS", "FACTS", "NUMERIC_FACTS", "OPS", "STRING_FACTS", "ActionSpec", "Condition", "Decision",
    "Group", "Policy", "PolicyError", "PolicyHolder", "Rule", "decide", "decide_all", "decision_id",
    "load_policy", "parse_duration",
]
