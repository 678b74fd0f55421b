import pickle

import pytest

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


def test_bad_weight_follows_the_label_counts_and_is_clipped():
    scorer = make_scorer({"balance": 0.5, "max_bad_weight": 4.0})
    assert scorer.bad_weight() == 1.0  # nothing learned: (0 + 1) / (0 + 1)
    for i in range(99):
        scorer.learn_one({"a": float(i % 10)}, i < 8)  # 8 bad, 91 good
    assert scorer.n_bad == 8 and scorer.bad_weight() == pytest.approx((92 / 9) ** 0.5)
    for _ in range(200):
        scorer.learn_one({"a": 1.0}, False)
    assert scorer.bad_weight() == 4.0  # clipped at max_bad_weight
    assert make_scorer({"balance": 0.0, "bad_weight": 2.0}).bad_weight() == 2.0


def test_weighted_training_with_pd_correction_keeps_pds_calibrated():
    data = list(synthetic_stream(4000, seed=5))
    rate = sum(y for _, y in data[2000:]) / 2000
    mean_pd = {}
    for correction in (True, False):
        scorer = make_scorer({"balance": 0.5, "pd_correction": correction})
        pds = []
        for i, (x, y) in enumerate(data):
            if i >= 2000:
                pds.append(scorer.predict_pd(x))
            scorer.learn_one(x, y)
        mean_pd[correction] = sum(pds) / len(pds)
    assert abs(mean_pd[True] - rate) < 0.015
    assert mean_pd[False] > rate + 0.03  # the weighting alone inflates PDs; the correction undoes it


def test_snapshot_pickled_before_balancing_keeps_its_behaviour():
    scorer = make_scorer({"balance": 0.0, "pd_correction": False})
    for x, y in synthetic_stream(300, seed=2):
        scorer.learn_one(x, y)
    x = next(synthetic_stream(1, seed=4))[0]
    expected = scorer.predict_one(x)
    state = dict(scorer.__dict__)
    del state["n_bad"]  # what an older riskstream pickled: no counts, no balancing keys in its config
    state["config"] = {k: v for k, v in state["config"].items() if k not in ("balance", "max_bad_weight", "pd_correction")}
    old = object.__new__(type(scorer))
    old.__dict__.update(state)
    clone = pickle.loads(pickle.dumps(old))
    assert clone.predict_one(x) == expected and clone.bad_weight() == 1.0
    clone.learn_one(x, True)
    assert clone.n_bad == 1
