import pickle
import random

from riskstream.core.models.anomaly import make_anomaly_detector
from riskstream.core.models.cashflow import CashflowForecaster


def test_anomaly_scores_in_unit_interval_and_flags_outliers():
    det = make_anomaly_detector()
    rng = random.Random(0)
    for _ in range(600):
        x = {"drawdown_sum_1h": rng.uniform(0, 500), "drawdown_count_1h": rng.randint(0, 2), "failed_logins_24h": 0,
             "distinct_devices_7d": 1, "utilisation": rng.uniform(0.2, 0.5)}
        assert 0.0 <= det.score_one(x) <= 1.0
        det.learn_one(x)
    normal = det.score_one({"drawdown_sum_1h": 200, "drawdown_count_1h": 1, "distinct_devices_7d": 1,
                            "utilisation": 0.3})
    odd = det.score_one({"drawdown_sum_1h": 45000, "drawdown_count_1h": 15, "failed_logins_24h": 12,
                         "distinct_devices_7d": 6, "new_device_before_drawdown": 1, "utilisation": 1.4})
    assert odd > normal
    assert 0.0 <= det.score_one({"unknown": "x", "utilisation": 99}) <= 1.0


def test_the_generated_score_is_rivers_score_exactly():
    det = make_anomaly_detector()
    rng = random.Random(4)
    draw = {k: [0.0, hi / 3, hi, 2 * hi] for k, (_, hi) in det.limits.items()}

    def x():
        return {k: rng.choice(v) if rng.random() < 0.5 else rng.uniform(0, v[2]) for k, v in draw.items()}
    for i in range(1200):
        det.learn_one(x())
        if i % 97 == 0 and i > 300:  # a new model state between scores: the generated function is made again
            for _ in range(50):
                scaled = det._scale(x())
                assert det._score(scaled) == det.model.score_one(scaled)  # the same float, not just close


def test_a_pickled_detector_scores_learns_and_rebuilds_as_the_original():
    det = make_anomaly_detector()
    rng = random.Random(5)

    def x():
        return {k: rng.uniform(0, 2 * hi) if rng.random() < 0.6 else 0.0 for k, (_, hi) in det.limits.items()}
    for _ in range(700):
        det.learn_one(x())
    loaded = pickle.loads(pickle.dumps(det))
    assert loaded._hst is None  # packed: a worker that only scores never rebuilds river's objects
    for _ in range(200):
        v = x()
        assert loaded.score_one(v) == det.score_one(v)
    assert pickle.dumps(loaded.model) == pickle.dumps(det.model)  # rebuilt: the same object graph, byte for byte
    for _ in range(300):
        v = x()
        det.learn_one(v)
        loaded.learn_one(v)
        assert loaded.score_one(v) == det.score_one(v)
    old = make_anomaly_detector()  # a snapshot from before the packed trees held river's objects as `model`
    old.__dict__ = {"config": det.config, "limits": det.limits, "model": det.model}
    again = pickle.loads(pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL))
    assert again.score_one(v) == det.score_one(v)


def test_anomaly_is_deterministic():
    a, b = make_anomaly_detector(), make_anomaly_detector()
    for i in range(300):
        x = {"drawdown_count_1h": i % 3}
        a.learn_one(x)
        b.learn_one(x)
    assert a.score_one({"drawdown_count_1h": 9}) == b.score_one({"drawdown_count_1h": 9})


def test_declining_cash_flow_predicts_a_breach():
    fc = CashflowForecaster()
    for cash in [150, 146, 141, 137, 132, 128]:
        fc.learn_one(cash, debt_service=100)
    dscr = fc.projected_dscr(12)
    assert dscr[0] > dscr[-1]
    n = fc.breach_in_periods(min_dscr=1.2)
    assert n is not None and 1 <= n <= 6
    assert fc.breach_in_periods(min_dscr=0.1) is None


def test_cashflow_short_history_and_encoding():
    fc = CashflowForecaster()
    assert fc.forecast(3) == [0.0, 0.0, 0.0] and fc.projected_dscr(2) == [None, None]
    fc.learn_one(120.0, debt_service=100.0)
    assert fc.forecast(2) == [120.0, 120.0]
    blob = fc.encode()
    assert len(blob) < 2000
    assert CashflowForecaster.decode(blob).forecast(2) == fc.forecast(2)
    assert pickle.loads(pickle.dumps(fc)).n == 1


def test_flat_score_is_rivers_score_through_learning():
    """The tuple walk gives HalfSpaceTrees.score_one exactly, before and after every window pivot."""
    import random

    from riskstream.core.models.anomaly import make_anomaly_detector

    rng = random.Random(4)
    det = make_anomaly_detector({"window_size": 40, "n_trees": 6, "height": 5,
                                 "limits": {"a": [0, 10], "b": [0, 1], "c": [0, 100]}})
    for i in range(400):
        x = {"a": rng.choice([0, 1, 9, rng.uniform(0, 12)]), "b": rng.random(), "c": rng.expovariate(0.05)}
        want = float(min(1.0, max(0.0, det.model.score_one(det._scale(x)))))
        assert det.score_one(x) == want
        if i % 3:
            det.learn_one(x)
