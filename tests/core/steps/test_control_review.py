"""The control step on review verdicts: routed to the account's partition, and fraud/clear become labels the
train step learns; the actuate step turns a routed fraud verdict into one CLOSE that does not wait the breaker."""

import orjson
import pytest

from riskstream.core.actuator import SentCommands
from riskstream.core.names import DECISIONS, LABELS
from riskstream.core.steps import Context, Decision, PipelineConfig, actuate_batch, route_control
from riskstream.core.steps.train import new_train_state, train_batch

CFG = PipelineConfig(partitions=4)
FEATURES = {"utilisation": 0.97, "drawdown_velocity_ratio": 4.2, "days_past_due": 0.0}


def review(verdict, **more):
    msg = {"kind": "review", "control_id": "r1", "time": 10_000, "account_id": "A1", "decision_id": "d1",
           "verdict": verdict, "note": "called the customer", "by": "ann", "features": FEATURES,
           "snapshot_time": 4_000, **more}
    return orjson.dumps(CFG.control_signer.sign(msg))


@pytest.mark.parametrize("verdict, label", [("fraud", True), ("clear", False)])
def test_fraud_and_clear_route_to_the_account_and_become_a_label(verdict, label):
    r = route_control(CFG, review(verdict))
    assert r.refused is None and r.audit == []
    to_account, to_labels = r.outs
    assert (to_account.topic, to_account.key, to_account.partition) == (DECISIONS, b"A1", None)
    assert to_labels.topic == LABELS and to_labels.ident == "r1"
    rec = orjson.loads(to_labels.value)
    assert rec == {"kind": "label", "entity": CFG.pseudonymizer.pseudonym("A1"), "snapshot_time": 4_000,
                   "label_time": 10_000, "features": FEATURES, "label": label, "outcome": verdict,
                   "source": "review", "decision_id": "d1", "control_id": "r1"}


def test_hold_and_a_verdict_without_features_make_no_label():
    assert [o.topic for o in route_control(CFG, review("hold")).outs] == [DECISIONS]
    assert [o.topic for o in route_control(CFG, review("fraud", features={})).outs] == [DECISIONS]
    assert [o.topic for o in route_control(CFG, review("fraud", snapshot_time=None)).outs] == [DECISIONS]


def test_an_unsigned_review_routes_nowhere():
    r = route_control(CFG, orjson.dumps(orjson.loads(review("fraud")) | {"signatures": []}))
    assert r.outs == [] and r.refused == "unsigned"


def test_the_trainer_learns_the_review_label():
    ctx = Context(CFG)
    state = new_train_state(ctx)
    before = state.trainer.scorer.predict_pd(FEATURES)
    labels = [route_control(CFG, review("fraud", control_id=f"r{i}")).outs[1].value for i in range(20)]
    res = train_batch(state, labels, publish_every=10**6)
    assert res.report["learned"] == 20
    assert state.trainer.scorer.predict_pd(FEATURES) > before, "a confirmed fraud raises the PD of its features"


def test_a_verdict_published_twice_is_learned_once():
    state = new_train_state(Context(CFG))
    label = route_control(CFG, review("clear")).outs[1].value
    res = train_batch(state, [label, label], publish_every=10**6)
    assert (res.report["learned"], res.report["duplicates"]) == (1, 1)
    assert train_batch(state, [label], publish_every=10**6).report["learned"] == 0


def test_a_routed_fraud_verdict_is_one_close_that_does_not_wait_the_breaker():
    routed = route_control(CFG, review("fraud")).outs[0]
    table, sent = {}, SentCommands()
    rec = Decision(routed.key, routed.value, 2, 0)
    r1 = actuate_batch(CFG, table.get, [rec], sent)
    table.update(r1.dirty)
    sent.update(r1.sent_ids)
    [cmd] = [orjson.loads(o.value) for o in r1.outs]
    assert (cmd["action"], cmd["decision_id"], cmd["account_id"]) == ("CLOSE", "review:r1", "A1")
    kinds = [(a["kind"], a["payload"].get("event")) for a in r1.audit]
    assert ("override", "review") in kinds and ("command", None) in kinds
    assert ("decision", None) not in kinds, "a verdict is not audited as a policy decision"
    r2 = actuate_batch(CFG, table.get, [rec._replace(offset=1)], sent)  # redelivered
    assert r2.outs == [] and r2.sent_ids == []
