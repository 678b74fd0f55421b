"""Behaviour anomaly score with River's HalfSpaceTrees.

Each configured behaviour feature is scaled into [0, 1] with FIXED limits (config `anomaly.limits`, values clipped),
which keeps scoring deterministic and identical across workers and replays. `score_one` comes before `learn_one`;
the score is 0 until the first window (`window_size` events) has been seen, then in [0, 1], higher = more unusual.

>>> det = make_anomaly_detector({"window_size": 50, "limits": {"failed_logins_24h": [0, 20]}})
>>> for i in range(200):
...     _ = det.score_one({"failed_logins_24h": i % 2}); det.learn_one({"failed_logins_24h": i % 2})
>>> det.score_one({"failed_logins_24h": 19}) > det.score_one({"failed_logins_24h": 0})
True

"""

from __future__ import annotations

from river import anomaly

from riskstream.core.models.config import load_config

__all__ = ["AnomalyDetector", "make_anomaly_detector"]

_DEFAULTS = load_config()["anomaly"]


class AnomalyDetector:
    def __init__(self, config: dict | None = None):
        config = config or {}
        section = config["anomaly"] if isinstance(config.get("anomaly"), dict) else config
        self.config = {**_DEFAULTS, **section}
        self.limits = {k: (float(v[0]), float(v[1])) for k, v in self.config["limits"].items()}
        self.model = anomaly.HalfSpaceTrees(
            n_trees=int(self.config["n_trees"]), height=int(self.config["height"]),
            window_size=int(self.config["window_size"]), seed=int(self.config["seed"]),
        )

    def _scale(self, x: dict) -> dict[str, float]:
        out = {}
        for k, (lo, hi) in self.limits.items():
            try:
                v = float(x.get(k, 0.0))
            except (TypeError, ValueError):
                v = 0.0
            out[k] = min(1.0, max(0.0, (v - lo) / (hi - lo)))
        return out

    def score_one(self, x: dict) -> float:
        return float(min(1.0, max(0.0, self.model.score_one(self._scale(x)))))

    def learn_one(self, x: dict) -> None:
        self.model.learn_one(self._scale(x))


def make_anomaly_detector(config: dict | None = None) -> AnomalyDetector:
    return AnomalyDetector(config)
