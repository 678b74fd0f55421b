"""Train step: labels and behaviour samples → PD model, anomaly model and drift → signed model snapshots.

The state is the model being trained (River models learn in place, so the state object is updated and returned);
a snapshot on the `models` topic is its durable copy. Live, the trainer agent feeds it the labels topic; offline,
the driver feeds it the labels the account step returns, and swaps each published version into the context at
the point it was published.

>>> from riskstream.core.steps.context import Context
>>> state = new_train_state(Context())
>>> label = orjson.dumps({"kind": "label", "entity": "p1", "snapshot_time": 0, "label_time": 5,
...                       "features": {"days_past_due": 40.0}, "label": True})
>>> res = train_batch(state, [label] * 3, publish_every=2)
>>> res.report["learned"], [o.ident for o in res.outs]
(3, ['1'])
"""

from __future__ import annotations

import collections
import copy
from typing import NamedTuple

import orjson

from riskstream.core.names import MODELS
from riskstream.core.steps.records import Out


#: Review verdicts' control ids the trainer remembers, so one sent twice is learned once (in memory: after a restart
#: the labels redelivered from the last commit can be learned again, as every label can).
REVIEWS_REMEMBERED = 100_000


class TrainState:
    def __init__(self, trainer, anomaly):
        self.trainer = trainer
        self.anomaly = anomaly
        # (pd, label) of the last 1000 labels, for AUC and log-loss (only while the caller asks for them)
        self.recent: collections.deque = collections.deque(maxlen=1000)
        # control ids of the review verdicts learned (a verdict published twice is learned once), oldest first
        self.reviews: dict[str, None] = {}


class TrainResult(NamedTuple):
    state: TrainState
    outs: list      # at most one signed snapshot
    report: dict    # learned, behaviour, drifts, label_delays_s, auc, log_loss, version, [duplicates]


def new_train_state(ctx) -> TrainState:
    """Start from the model in force (a copy: the scoring side must not see half-learned weights)."""
    from riskstream.core.models.anomaly import make_anomaly_detector
    from riskstream.core.models.snapshot import Trainer

    start = copy.deepcopy(ctx.model)
    trainer = Trainer(ctx.model_config, scorer=start, version=int(getattr(start, "version", 0)))
    return TrainState(trainer, getattr(start, "anomaly", None) or make_anomaly_detector(ctx.model_config))


def train_batch(state: TrainState, values, *, publish_every: int | None = None, quality: bool = True) -> TrainResult:
    """Learn `values` (labels and behaviour samples) in order; publish a snapshot every `publish_every` labels.

    `quality`: also score each label before it is learned and report the rolling AUC and log-loss (the live
    trainer's gauges). Off, the model learns and publishes exactly the same: a driver that never reads the
    report (the backtest) does not pay for it.
    """
    from riskstream.core.models.labels import LabeledExample
    from riskstream.core.models.quality import auc, log_loss

    tr = state.trainer
    report = {"learned": 0, "behaviour": 0, "drifts": 0, "label_delays_s": [], "version": tr.version,
              "detector": str(tr.drift.config.get("detector", "adwin"))}
    for raw in values:
        msg = orjson.loads(raw)
        if msg.get("kind") == "behaviour":
            state.anomaly.learn_one(msg["features"])
            report["behaviour"] += 1
            continue
        if msg.get("kind") != "label":
            continue
        if msg.get("source") == "review":
            if msg.get("control_id") in state.reviews:
                report["duplicates"] = report.get("duplicates", 0) + 1
                continue
            state.reviews[msg.get("control_id")] = None
            if len(state.reviews) > REVIEWS_REMEMBERED:
                del state.reviews[next(iter(state.reviews))]
        ex = LabeledExample(msg["entity"], msg["snapshot_time"], msg["features"], bool(msg["label"]))
        if quality:
            state.recent.append((tr.scorer.predict_pd(ex.features), ex.label))
        report["drifts"] += int(tr.learn(ex))
        report["learned"] += 1
        report["label_delays_s"].append(max(0.0, (msg.get("label_time", 0) - ex.snapshot_time) / 1000))
    outs = []
    every = publish_every or int(tr.config["trainer"]["publish_every"])
    if tr.since_publish >= every:
        tr.scorer.anomaly = state.anomaly  # one signed snapshot carries both models
        tr.scorer.drift_active = int(tr.drift.stats().get("error_drifts", 0) > 0) if hasattr(tr.drift, "stats") else 0
        blob = tr.maybe_publish(every_n=every)
        outs.append(Out(MODELS, b"model", blob, "published", str(tr.version)))
        report["version"] = tr.version
    if quality and len(state.recent) >= 50:
        ys = [y for _, y in state.recent]
        ps = [p for p, _ in state.recent]
        if 0 < sum(ys) < len(ys):
            report["auc"] = auc(ps, ys)
        report["log_loss"] = log_loss(ps, ys)
    return TrainResult(state, outs, report)
