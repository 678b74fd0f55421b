"""Micro-benchmark of the default PD model: predict_one + learn_one per event on stream-like feature dicts.

>>> out = bench_models(n=200)
>>> sorted(out)
['events', 'score_learn_ev_s']

"""

from __future__ import annotations

import time

from riskstream.core.models.config import load_config
from riskstream.core.models.scorer import make_scorer
from riskstream.core.models.synthetic import synthetic_stream

__all__ = ["bench_models"]


def bench_models(n: int = 20000) -> dict:
    """Events per second of `predict_one` (with reasons) followed by `learn_one`, on `n` synthetic events."""
    data = list(synthetic_stream(n, seed=11))
    scorer = make_scorer(load_config())
    started = time.thread_time()  # measuring (CPU time), not deciding: the only clock use in riskstream.models
    for x, y in data:
        scorer.predict_one(x)
        scorer.learn_one(x, y)
    elapsed = time.thread_time() - started
    return {"score_learn_ev_s": round(n / elapsed, 1) if elapsed > 0 else float("inf"), "events": n}
