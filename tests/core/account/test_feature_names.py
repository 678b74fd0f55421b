"""One feature list: every consumer of feature names agrees with riskstream.core.account.feature_list.

Fails when a declared feature is missing from the policy vocabulary, the scorer's reason texts or the model inputs
(what compute_features emits and the PD scorer is fed; the anomaly model's limits), or when a module keeps its own
copy of a derived list that has drifted.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import riskstream.core
from riskstream.core.account.feature_list import BEHAVIOUR_FEATURES, FEATURE_LIST, FEATURE_NAMES, REASON_TEXT
from riskstream.core.account.features import check_emitted, compute_features
from riskstream.core.account.state import apply_event
from riskstream.core.models.config import load_config
from riskstream.core.models.scorer import FEATURE_TEXT, make_scorer
from riskstream.core.policy import load_policy
from riskstream.core.policy.vocabulary import FEATURE_FACTS, NUMERIC_FACTS

DECLARED = set(FEATURE_NAMES)


def _features() -> dict[str, float]:
    ev = {"event_id": "o", "type": "account_opened", "family": "behaviour", "entity": "a", "event_time": 0,
          "payload": {"product": "credit_line", "segment": "retail", "limit": 1000.0}}
    state, _ = apply_event(None, ev)
    state, _ = apply_event(state, {**ev, "event_id": "d", "type": "drawdown", "event_time": 60_000,
                                   "payload": {"amount": 400.0}})
    return compute_features(state, as_of=state.watermark, market=None)


def test_every_entry_is_complete():
    for f in FEATURE_LIST:
        assert f.name and f.definition.strip() and f.reason.strip(), f
    assert BEHAVIOUR_FEATURES and set(BEHAVIOUR_FEATURES) <= DECLARED


def test_policy_vocabulary_is_the_feature_list():
    assert set(FEATURE_FACTS) == DECLARED
    assert DECLARED <= NUMERIC_FACTS


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_a_policy_can_name_every_feature(name):
    policy = load_policy(f"""
name: t
version: 1
segments: {{credit_line: {{thresholds: {{warn_pd: 0.1, limit_pd: 0.2, close_pd: 0.3}}}}}}
actions: {{REVIEW: {{queue: q}}}}
rules:
  - {{id: r, when: [{{fact: {name}, op: ">", value: 0}}], action: REVIEW, reason: test}}
""", source="t.yaml")
    assert policy.rules[0].when.parts[0].fact == name


def test_reason_texts_are_the_feature_list():
    assert set(FEATURE_TEXT) == DECLARED
    assert FEATURE_TEXT == REASON_TEXT


def test_model_inputs_are_the_feature_list():
    features = _features()
    assert tuple(features) == FEATURE_NAMES  # what the account step feeds the PD scorer and the policy
    check_emitted()
    scorer = make_scorer({"kind": "logistic"})
    scorer.learn_one(features, False)
    assert set(scorer.features) == DECLARED


def test_anomaly_limits_are_the_behaviour_features():
    assert set(load_config()["anomaly"]["limits"]) == set(BEHAVIOUR_FEATURES)


def _core_modules():
    for info in pkgutil.walk_packages(riskstream.core.__path__, "riskstream.core."):
        yield importlib.import_module(info.name)


def test_no_module_keeps_a_drifted_copy():
    """A module-level copy of a derived list (e.g. BEHAVIOUR_FEATURES) must equal the declared one."""
    derived = {"BEHAVIOUR_FEATURES": tuple(BEHAVIOUR_FEATURES), "FEATURE_FACTS": tuple(FEATURE_NAMES),
               "FEATURE_NAMES": tuple(FEATURE_NAMES), "FEATURE_TEXT": REASON_TEXT, "REASON_TEXT": REASON_TEXT}
    for module in _core_modules():
        for attr, want in derived.items():
            if hasattr(module, attr):
                got = getattr(module, attr)
                assert (tuple(got) if isinstance(got, (tuple, list)) else got) == want, f"{module.__name__}.{attr}"
