"""A deterministic synthetic stream of feature dicts and default labels with a documented relation.

Used to warm a default scorer (for `riskstream scenario` without a snapshot), for the benchmark and for drift tests.
The log-odds of default are::

    -4.2 + 0.06*days_past_due + 0.9*missed_payments_90d + 1.6*(utilisation - 0.5) - 1.2*(payment_to_due_ratio_90d - 1)
         + 0.25*external_delinquencies_90d + 0.15*bureau_inquiries_30d - 0.8*(dscr - 1.3) + 0.004*market_rate_change_30d_bp
         - 0.03*market_index_change_7d + 0.25*(market_unemployment - 5) + 0.5*market_shock

`flip_at=k` negates the non-constant terms from the k-th example on (a concept drift).

>>> rows = list(synthetic_stream(3, seed=1))
>>> len(rows), sorted(rows[0][0])[:3]
(3, ['bureau_inquiries_30d', 'cashflow_deviation', 'covenant_headroom'])

"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

__all__ = ["synthetic_features", "synthetic_pd", "synthetic_stream"]

INTERCEPT = -4.2


def synthetic_features(rng: random.Random) -> dict[str, float]:
    stressed = rng.random() < 0.2
    dpd = rng.choice([0, 0, 0, 0, 5, 15, 35, 65]) if stressed else rng.choice([0] * 20 + [3])
    return {
        "drawdown_sum_1h": round(rng.expovariate(1 / 300), 2),
        "drawdown_count_1h": float(rng.randint(0, 3)),
        "drawdown_sum_30d": round(rng.expovariate(1 / 3000), 2),
        "drawdown_velocity_ratio": round(rng.lognormvariate(0, 0.5), 3),
        "utilisation": round(min(1.2, max(0.0, rng.gauss(0.7 if stressed else 0.4, 0.2))), 3),
        "failed_logins_24h": float(rng.choice([0, 0, 0, 1, 2])),
        "distinct_devices_7d": float(rng.choice([1, 1, 1, 2, 3])),
        "new_device_before_drawdown": float(rng.random() < 0.05),
        "days_past_due": float(dpd),
        "missed_payments_90d": float(min(3, dpd // 30 + (rng.random() < 0.1))),
        "partial_payments_90d": float(rng.choice([0, 0, 1]) if stressed else 0),
        "payment_to_due_ratio_90d": round(min(1.2, max(0.0, rng.gauss(0.7 if stressed else 1.0, 0.15))), 3),
        "days_since_last_payment": float(rng.randint(0, 90 if stressed else 35)),
        "bureau_inquiries_30d": float(rng.choice([0, 0, 1, 2, 4] if stressed else [0, 0, 0, 1])),
        "external_delinquencies_90d": float(rng.choice([0, 1, 2]) if stressed else 0),
        "new_debt_sum_90d": round(rng.expovariate(1 / 2000), 2),
        "dscr": round(max(0.2, rng.gauss(1.1 if stressed else 1.5, 0.25)), 3),
        "cashflow_deviation": round(rng.gauss(0, 0.1), 3),
        "milestone_slippage_days": float(rng.choice([0, 0, 0, 10, 30])),
        "covenant_headroom": round(rng.gauss(0.2, 0.1), 3),
        "market_index_change_7d": round(rng.gauss(0, 3), 2),
        "market_rate_change_30d_bp": round(rng.gauss(0, 25), 1),
        "market_unemployment": round(rng.gauss(5, 0.8), 2),
        "market_shock": float(rng.random() < 0.05),
    }


def synthetic_pd(x: dict[str, float], flipped: bool = False) -> float:
    g = x.get
    z = (
        0.06 * g("days_past_due", 0) + 0.9 * g("missed_payments_90d", 0) + 1.6 * (g("utilisation", 0) - 0.5)
        - 1.2 * (g("payment_to_due_ratio_90d", 0) - 1) + 0.25 * g("external_delinquencies_90d", 0)
        + 0.15 * g("bureau_inquiries_30d", 0) - 0.8 * (g("dscr", 0) - 1.3) + 0.004 * g("market_rate_change_30d_bp", 0)
        - 0.03 * g("market_index_change_7d", 0) + 0.25 * (g("market_unemployment", 0) - 5) + 0.5 * g("market_shock", 0)
    )
    z = INTERCEPT + (-z if flipped else z)
    return 1 / (1 + math.exp(-z))


def synthetic_stream(n: int, seed: int = 0, flip_at: int | None = None) -> Iterator[tuple[dict[str, float], bool]]:
    """Yield `n` (features, is_bad) pairs; deterministic for a given seed."""
    rng = random.Random(seed)
    for i in range(n):
        x = synthetic_features(rng)
        p = synthetic_pd(x, flipped=flip_at is not None and i >= flip_at)
        yield x, rng.random() < p


def default_scorer(n: int = 3000, seed: int = 0, config: dict | None = None) -> "Scorer":
    """A scorer warmed on the deterministic synthetic stream (`riskstream.core.models.synthetic`, documented relation).

    Used when no model snapshot is given: an untrained model has no relation between features and PD, so every
    shock would change nothing. (The bundled German credit data has other columns than the stream features, so it
    cannot warm this scorer.)"""
    from riskstream.core.models.config import load_config
    from riskstream.core.models.scorer import make_scorer

    scorer = make_scorer(config or load_config())
    for x, y in synthetic_stream(n, seed=seed):
        scorer.learn_one(x, y)
    return scorer
