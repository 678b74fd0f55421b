import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.models.scorer import make_scorer, pd_to_score
from riskstream.core.models.synthetic import synthetic_stream


def _trained(kind="logistic", n=1500):
    scorer = make_scorer({"kind": kind})
    for x, y in synthetic_stream(n, seed=2):
        scorer.learn_one(x, y)
    return scorer


@given(st.floats(0, 1), st.floats(0, 1))
def test_score_is_monotone_and_bounded(a, b):
    lo, hi = min(a, b), max(a, b)
    assert 0 <= pd_to_score(hi) <= pd_to_score(lo) <= 1000


def test_untrained_scorer_says_prior_and_no_reasons():
    s = make_scorer({}).predict_one({"days_past_due": 90})
    assert s.pd == 0.5 and s.reasons == () and s.model_version == "logistic@0"


def test_learns_risk_direction_and_explains_it():
    scorer = _trained()
    x = next(synthetic_stream(1, seed=9))[0]
    safe = scorer.predict_one({**x, "days_past_due": 0.0, "missed_payments_90d": 0.0})
    risky = scorer.predict_one({**x, "days_past_due": 90.0, "missed_payments_90d": 3.0})
    assert risky.pd > safe.pd and risky.score < safe.score
    assert "days_past_due" in [r.feature for r in risky.reasons]
    assert all(r.contribution > 0 and r.text for r in risky.reasons)
    assert len(risky.reasons) <= 3


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(allow_nan=True, allow_infinity=True), max_size=6))
def test_any_feature_dict_is_accepted(x):
    scorer = _SCORER
    s = scorer.predict_one(x)
    assert 0.0 <= s.pd <= 1.0 and 0 <= s.score <= 1000


_SCORER = _trained(n=300)


def test_missing_keys_count_as_zero():
    scorer = _trained(n=300)
    assert scorer.predict_pd({}) == scorer.predict_pd({k: 0.0 for k in scorer.features})


def test_tree_kind_predicts_learns_and_attributes():
    scorer = _trained("tree", n=400)
    s = scorer.predict_one({"days_past_due": 90.0, "missed_payments_90d": 3.0, "utilisation": 1.1})
    assert 0 <= s.pd <= 1 and s.model_version == "tree@0"
    assert all(r.contribution > 0 for r in s.reasons)


def test_scorer_pickles_with_identical_predictions():
    scorer = _trained(n=300)
    clone = pickle.loads(pickle.dumps(scorer))
    x = next(synthetic_stream(1, seed=4))[0]
    assert clone.predict_one(x) == scorer.predict_one(x)
