import copy

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.models.labels import LabelTracker
from riskstream.core.models.snapshot import Trainer

DAY = 86_400_000
CFG = {"bad_dpd": 30, "horizon_cycles": 2, "horizon_ms": 100 * DAY, "min_snapshot_gap_ms": DAY,
       "max_open_per_entity": 3, "max_open_total": 5}


def ev(kind, t, entity="a1", **payload):
    return {"event_id": f"{kind}-{t}", "type": kind, "family": "repayment", "entity": entity, "event_time": t,
            "payload": payload}


def statement(t, sid, due_in=20 * DAY, amount=100.0, entity="a1"):
    return ev("statement_issued", t, entity, statement_id=sid, amount_due=amount, due_date=t + due_in, balance=500.0)


def test_two_on_time_cycles_make_a_good_label():
    tr = LabelTracker(CFG)
    assert tr.snapshot("a1", 0, {"utilisation": 0.4})
    assert tr.on_repayment(statement(1 * DAY, "s1")) == []
    assert tr.on_repayment(ev("payment_received", 10 * DAY, amount=100.0, statement_id="s1")) == []
    assert tr.on_repayment(statement(31 * DAY, "s2")) == []
    out = tr.on_repayment(ev("payment_received", 40 * DAY, amount=100.0))  # no statement_id: oldest unpaid
    assert [(e.label, e.snapshot_time, e.features) for e in out] == [(False, 0, {"utilisation": 0.4})]
    assert tr.n_open == 0


def test_partial_payments_add_up_and_late_payment_is_indeterminate():
    tr = LabelTracker(CFG)
    tr.snapshot("a1", 0, {"x": 1.0})
    tr.on_repayment(statement(DAY, "s1"))
    tr.on_repayment(ev("payment_partial", 5 * DAY, amount=60.0, amount_due=100.0, statement_id="s1"))
    tr.on_repayment(ev("payment_partial", 25 * DAY, amount=40.0, amount_due=100.0, statement_id="s1"))  # late
    tr.on_repayment(statement(31 * DAY, "s2"))
    assert tr.on_repayment(ev("payment_received", 40 * DAY, amount=100.0, statement_id="s2")) == []
    assert tr.expire(101 * DAY) == 1 and tr.counts["expired"] == 1


def test_missed_30_dpd_is_bad_and_only_for_earlier_snapshots():
    tr = LabelTracker(CFG)
    tr.snapshot("a1", 0, {"x": 1.0})
    tr.on_repayment(statement(DAY, "s1"))
    tr.snapshot("a1", 60 * DAY, {"x": 2.0})  # taken after the miss happened? no: miss below is at 55 days
    out = tr.on_repayment(ev("payment_missed", 55 * DAY, statement_id="s1", days_past_due=34, amount_due=100.0))
    assert [(e.features, e.label) for e in out] == [({"x": 1.0}, True)]
    assert tr.n_open == 1  # the snapshot at 60 days is later than the event: it must not learn from it


def test_small_dpd_is_not_bad():
    tr = LabelTracker(CFG)
    tr.snapshot("a1", 0, {"x": 1.0})
    assert tr.on_repayment(ev("payment_missed", 5 * DAY, statement_id="s0", days_past_due=5, amount_due=1.0)) == []


def test_caps_per_entity_and_global():
    tr = LabelTracker(CFG)
    for i in range(5):
        tr.snapshot("a1", i * DAY, {"i": float(i)})
    assert tr.n_open == 3
    assert not tr.snapshot("a1", 4 * DAY + 1, {"i": 9.0})  # within min_snapshot_gap_ms
    for e in "bcdef":
        tr.snapshot(e, 0, {})
    assert tr.n_open == 5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 400), st.booleans()), max_size=80))
def test_open_snapshots_stay_bounded(ops):
    tr = LabelTracker(CFG)
    for entity, day, is_snap in sorted(ops, key=lambda o: o[1]):
        if is_snap:
            tr.snapshot(entity, day * DAY, {"d": float(day)})
        else:
            tr.on_repayment(ev("payment_missed", day * DAY, entity, statement_id="s", days_past_due=40, amount_due=1))
        assert tr.n_open <= CFG["max_open_total"]
        assert all(len(s) <= CFG["max_open_per_entity"] for s in tr._open.values())
        assert tr.n_open == sum(len(s) for s in tr._open.values())


def test_encode_decode_round_trip_continues_identically():
    tr = LabelTracker(CFG)
    tr.snapshot("a1", 0, {"x": 1.5})
    tr.on_repayment(statement(DAY, "s1"))
    clone = LabelTracker.decode(tr.encode(), CFG)
    miss = ev("payment_missed", 40 * DAY, statement_id="s1", days_past_due=39, amount_due=100.0)
    assert clone.on_repayment(miss) == tr.on_repayment(miss)


# -- leakage ------------------------------------------------------------------------------------------------------
def test_mutating_the_live_features_after_snapshot_changes_nothing():
    tr = LabelTracker(CFG)
    live = {"days_past_due": 0.0, "utilisation": 0.2}
    tr.snapshot("a1", 0, live)
    live["days_past_due"] = 45.0  # later feature updates reuse the same dict in the stream layer
    live["new_feature"] = 1.0
    out = tr.on_repayment(ev("payment_missed", 50 * DAY, statement_id="s", days_past_due=45, amount_due=1.0))
    assert out[0].features == {"days_past_due": 0.0, "utilisation": 0.2}


class SpyScorer:
    """Records what reaches learn_one."""

    kind = "spy"
    version = 0
    n_learned = 0

    def __init__(self):
        self.learned = []

    def predict_pd(self, x):
        return 0.5

    def learn_one(self, x, y):
        self.learned.append((dict(x), y))
        self.n_learned += 1


def test_features_computed_after_the_snapshot_never_reach_learn_one():
    spy = SpyScorer()
    trainer = Trainer(key=b"k", scorer=spy)
    tr = LabelTracker(CFG)
    # the feature value encodes the time it was computed at; the snapshot is at day 10
    computed = {day: {"computed_at_day": float(day)} for day in range(0, 60)}
    for day in range(0, 60):
        if day == 10:
            tr.snapshot("a1", day * DAY, computed[day])
        if day == 12:
            tr.on_repayment(statement(day * DAY, "s1"))
        if day == 50:
            for example in tr.on_repayment(
                    ev("payment_missed", day * DAY, statement_id="s1", days_past_due=30, amount_due=100.0)):
                trainer.learn(example)
    assert spy.learned == [({"computed_at_day": 10.0}, True)]
    assert all(x["computed_at_day"] <= 10 for x, _ in spy.learned)


def _tracker_with_history():
    from riskstream.core.account.feature_list import FEATURE_NAMES

    tr = LabelTracker({"bad_dpd": 30, "horizon_cycles": 2, "min_snapshot_gap_ms": 0, "max_open_per_entity": 3})
    for i in range(5):
        tr.snapshot("a1", 1_000 * i, {FEATURE_NAMES[0]: 0.1 * i + 1e-9, FEATURE_NAMES[3]: 2.0, "not_declared": 1.5,
                                      FEATURE_NAMES[5]: -3.0, FEATURE_NAMES[6]: 2.0 ** 60, FEATURE_NAMES[7]: -0.0})
    tr.on_repayment({"type": "statement_issued", "entity": "a1", "event_time": 10_000,
                     "payload": {"statement_id": "s1", "due_date": 20_000, "amount_due": 50.0}})
    tr.on_repayment({"type": "payment_partial", "entity": "a1", "event_time": 11_000,
                     "payload": {"statement_id": "s1", "amount": 20.0}})
    return tr


def _view(tr):
    return (tr._open, tr._statements, list(tr._order), dict(tr.counts), tr.n_open, next(copy.copy(tr._ids)))


def test_compact_encoding_round_trips_exactly_and_reads_the_json_format():
    import math

    tr = _tracker_with_history()
    blob = tr.encode()
    back = LabelTracker.decode(blob, tr.config)
    assert _view(back) == _view(tr.as_reloaded())
    feats = [s["features"] for s in back._open["a1"]]
    assert all(type(v) is float for f in feats for v in f.values())
    assert all(math.copysign(1.0, f[k]) == -1.0 for f in feats for k in f if f[k] == 0)  # -0.0 kept
    assert [list(f) for f in feats] == [list(s["features"]) for s in tr._open["a1"]]  # key order kept
    v1 = orjson.dumps({"v": 1, "open": tr._open, "statements": tr._statements, "order": list(tr._order),
                       "counts": dict(tr.counts)})
    assert _view(LabelTracker.decode(v1, tr.config)) == _view(back)
    assert len(blob) < len(v1) * 0.6
