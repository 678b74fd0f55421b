"""Model quality measures shared by the train step and the offline evaluation: AUC, log-loss, calibration error.

>>> auc([0.1, 0.9, 0.8, 0.2], [0, 1, 1, 0])
1.0
"""

from __future__ import annotations

import numpy as np


def _ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged: a tie group at sorted positions i..j gets (i + j) / 2 + 1.

    >>> _ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    n = len(s)
    ranks = np.empty(n)
    if n == 0:
        return ranks
    # tie groups: where a new value starts in the sorted scores (NaN never equals itself, as in a pairwise check)
    starts = np.flatnonzero(np.concatenate(([True], sorted_s[1:] != sorted_s[:-1])))
    ends = np.append(starts[1:], n) - 1
    ranks[order] = np.repeat((starts + ends) / 2 + 1, ends - starts + 1)
    return ranks


def auc(scores, labels) -> float:
    """Exact ROC AUC (ties count half).

    >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75

    """
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(p, labels) -> float:
    p = np.clip(np.asarray(p, float), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ece(p, labels, bins: int = 10) -> float:
    """Expected calibration error over equal-width PD bins."""
    p = np.asarray(p, float)
    y = np.asarray(labels, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return float(total)


# -- batch reference --------------------------------------------------------------------------------------------
