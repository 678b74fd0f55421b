"""The PD scorer: an online River classifier that turns a feature dict into a calibrated PD, a score and reasons.

It is used prequentially: `predict_one` for every scoring event, `learn_one` later, when the delayed label for
that point-in-time snapshot arrives (see `riskstream.core.models.labels`).

Score mapping (points to double the odds): ``score = base_points + pdo * log2(odds_good / base_odds)`` with
``odds_good = (1 - pd) / pd``, clipped to 0..1000. Defaults: 600 points at 50:1 good:bad odds, 50 points to double
the odds; so PD 2 % -> 600, PD 50 % -> 318, PD 0.1 % -> 816. Higher is safer.

>>> scorer = make_scorer({"kind": "logistic"})
>>> for i in range(200):
...     bad = i % 4 == 0
...     scorer.learn_one({"days_past_due": 45.0 if bad else 0.0, "utilisation": 0.5}, bad)
>>> s = scorer.predict_one({"days_past_due": 60.0, "utilisation": 0.5})
>>> s.pd > 0.5, 0 <= s.score <= 1000, s.reasons[0].feature
(True, True, 'days_past_due')

"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from river import linear_model, optim, preprocessing, stats

from riskstream.core.account.feature_list import REASON_TEXT
from riskstream.core.models.config import load_config

__all__ = ["Reason", "Score", "Scorer", "make_scorer", "pd_to_score", "FEATURE_TEXT"]

# Plain words per feature, phrased for a value that RAISES risk: from the declared feature list.
FEATURE_TEXT = REASON_TEXT

_DEFAULTS = load_config()["scorer"]


@dataclasses.dataclass(frozen=True)
class Reason:
    """One factor behind a score: `contribution` is in log-odds (linear) or PD points (tree); > 0 raises risk."""

    feature: str
    contribution: float
    text: str


@dataclasses.dataclass(frozen=True)
class Score:
    pd: float
    score: int
    reasons: tuple[Reason, ...]
    model_version: str


def pd_to_score(pd: float, *, base_points: float = 600, base_odds: float = 50, pdo: float = 50) -> int:
    """Map a PD to 0..1000 points (higher = safer), see the module docstring.

    >>> pd_to_score(1 / 51), pd_to_score(0.5), pd_to_score(0.0), pd_to_score(1.0)
    (600, 318, 1000, 0)

    """
    pd = min(max(pd, 1e-12), 1 - 1e-12)
    points = base_points + pdo * math.log2(((1 - pd) / pd) / base_odds)
    return int(round(min(max(points, 0.0), 1000.0)))


def _reason_text(feature: str, value: float, mean: float, contribution: float) -> str:
    words = FEATURE_TEXT.get(feature, feature.replace("_", " "))
    direction = "higher" if value > mean else "lower"
    effect = "raises" if contribution > 0 else "lowers"
    return f"{words}: {value:.4g} is {direction} than the typical {mean:.4g}, which {effect} the risk"


# What a snapshot pickled before class balancing existed (no `balance` in its config) keeps doing after it is loaded.
_LEGACY = {"balance": 0.0, "max_bad_weight": 1.0, "pd_correction": False}


class Scorer:
    """An online PD model over `dict[str, float]` features; missing keys count as 0.

    `kind` is "logistic" (StandardScaler | LogisticRegression with AdaGrad, L2 and an SGD intercept) or "tree"
    (ARFClassifier). `version` is set by the Trainer when it publishes a snapshot.

    Class balancing: a bad example weighs ``bad_weight * clip(((goods + 1) / (bads + 1)) ** balance, 1,
    max_bad_weight)``, counted over the labels learned so far, so rare defaults move the model as much as their
    information warrants (``balance: 0.5`` is half-way, in log terms, between no weighting and fully balanced
    classes). Weighting bads by w multiplies the model's odds of bad by about w; with ``pd_correction`` the
    served PD divides the odds by the current weight again (prior correction), so PDs stay calibrated. The
    correction is the same for every row, so it changes no ranking.
    """

    def __init__(self, config: dict):
        self.config = {**_DEFAULTS, **config}
        self.kind = self.config["kind"]
        self.version = 0
        self.n_learned = 0
        self.n_bad = 0
        self.features: dict[str, None] = {}  # ordered set of every feature name seen
        self.means: dict[str, stats.Mean] = {}
        if self.kind == "logistic":
            self.scaler = preprocessing.StandardScaler()
            self.model = linear_model.LogisticRegression(
                optimizer=optim.AdaGrad(self.config["learning_rate"]), l2=self.config["l2"],
                intercept_lr=self.config["intercept_lr"],
            )
        elif self.kind == "tree":
            self.scaler = None
            from river import forest  # imported only when chosen: it pulls in scipy (~2 s at start-up)

            self.model = forest.ARFClassifier(n_models=int(self.config["n_models"]), seed=int(self.config["seed"]))
        else:
            raise ValueError(f"scorer.kind must be 'logistic' or 'tree', got {self.kind!r}")

    def __setstate__(self, state: dict) -> None:
        # A snapshot from before class balancing: keep its behaviour (no weighting it was not trained with).
        state["config"] = {**_DEFAULTS, **_LEGACY, **state["config"]}
        state.setdefault("n_bad", 0)
        self.__dict__.update(state)

    @property
    def model_version(self) -> str:
        return f"{self.kind}@{self.version}"

    def bad_weight(self) -> float:
        """The weight the next bad example gets (see the class docstring); 1.0 means no weighting."""
        cfg = self.config
        w = float(cfg["bad_weight"])
        if cfg["balance"]:
            ratio = (self.n_learned - self.n_bad + 1) / (self.n_bad + 1)
            w *= min(max(ratio ** float(cfg["balance"]), 1.0), float(cfg["max_bad_weight"]))
        return w if self.kind == "logistic" else float(max(1, round(w)))  # trees learn a bad w times

    def _dense(self, x: dict) -> dict[str, float]:
        # Every known feature is present (0 if missing) so the scaler sees zeros too; unknown new keys are kept.
        out = dict.fromkeys(self.features, 0.0)
        for k, v in x.items():
            if v.__class__ is float:  # the usual case, as below without the calls
                out[k] = v if v - v == 0.0 else 0.0  # inf - inf and nan - nan are nan: not finite
                continue
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(out[k]):
                out[k] = 0.0
        return out

    def _pd_of(self, xd: dict[str, float], z: dict[str, float] | None = None) -> float:
        if self.kind == "logistic":
            proba = self.model.predict_proba_one(self.scaler.transform_one(xd) if z is None else z)
        else:
            proba = self.model.predict_proba_one(xd)
        pd = float(proba.get(True, 0.0)) if proba else 0.0
        if self.config["pd_correction"]:
            w = self.bad_weight()
            if w != 1.0:
                pd = pd / (pd + w * (1.0 - pd)) if pd > 0.0 else 0.0  # odds / w
        return pd

    def _mean(self, k: str) -> float:
        if self.kind == "logistic":
            return float(self.scaler.means.get(k, 0.0))  # the scaler already keeps running means
        return self.means[k].get() if k in self.means else 0.0

    def predict_pd(self, x: dict) -> float:
        """The PD alone, without reasons (cheaper)."""
        return self._pd_of(self._dense(x))

    def predict_one(self, x: dict) -> Score:
        score, explain = self.predict_lazy(x)
        return dataclasses.replace(score, reasons=explain())

    def predict_lazy(self, x: dict) -> tuple[Score, Callable[[], tuple[Reason, ...]]]:
        """`predict_one` without the reasons: the Score has none, the function returns them when called.

        Reasons cost more than the PD and only a decision needs them, so the account step asks for them only then.
        """
        xd = self._dense(x)
        z = self.scaler.transform_one(xd) if self.kind == "logistic" else None
        pd = self._pd_of(xd, z)
        if self.n_learned == 0:
            pd = 0.5  # an untrained model knows nothing: say so plainly rather than an arbitrary value
        cfg = self.config
        score = Score(pd=pd, score=pd_to_score(pd, base_points=cfg["base_points"], base_odds=cfg["base_odds"],
                                               pdo=cfg["pdo"]), reasons=(), model_version=self.model_version)
        return score, lambda: self._reasons(xd, pd, z)

    def _reasons(self, xd: dict[str, float], pd: float, z: dict[str, float] | None) -> tuple[Reason, ...]:
        if self.n_learned == 0:
            return ()
        contributions: dict[str, float] = {}
        if z is not None:
            weights = self.model.weights
            for k, zv in z.items():
                contributions[k] = weights.get(k, 0.0) * zv
        else:
            # Attribution: how much the PD drops when the feature is set to its running mean.
            for k in xd:
                mean = self._mean(k)
                if xd[k] == mean:
                    continue
                contributions[k] = pd - self._pd_of({**xd, k: mean})
        top = sorted((c for c in contributions.items() if c[1] > 0), key=lambda kv: (-kv[1], kv[0]))
        return tuple(
            Reason(k, c, _reason_text(k, xd[k], self._mean(k), c))
            for k, c in top[: int(self.config["reasons_top_k"])]
        )

    def learn_one(self, x: dict, y: bool) -> None:
        for k in x:
            if k not in self.features:
                self.features[k] = None
        xd = self._dense(x)
        if self.kind == "tree":
            for k, v in xd.items():
                self.means.setdefault(k, stats.Mean()).update(v)
        y = bool(y)
        w = self.bad_weight() if y else 1.0
        if self.kind == "logistic":
            self.scaler.learn_one(xd)
            self.model.learn_one(self.scaler.transform_one(xd), y, w=w)
        else:
            for _ in range(int(w)):
                self.model.learn_one(xd, y)
        self.n_learned += 1
        self.n_bad += y


def make_scorer(config: dict | None = None) -> Scorer:
    """Build a scorer from the full model config (uses its `scorer` section) or from the section itself."""
    config = config or {}
    section = config.get("scorer", config) if isinstance(config.get("scorer"), dict) else config
    return Scorer(section)
