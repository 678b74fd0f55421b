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
from river.tree.padded import PaddedBranch

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
        return float(min(1.0, max(0.0, self._score(self._scale(x)))))

    def learn_one(self, x: dict) -> None:
        self._frozen = None  # the masses change: the flat copy is stale
        self.model.learn_one(self._scale(x))

    def _score(self, x: dict[str, float]):
        """`HalfSpaceTrees.score_one`, the same arithmetic in the same order, over a copy of the trees as nested
        tuples (the object walk's attribute lookups were most of its cost). Scoring never changes the trees: the copy
        is made once per model state and dropped by `learn_one`."""
        m = self.model
        if m._first_window:
            return 0
        key = (m.counter, len(m.trees))
        frozen = getattr(self, "_frozen", None)
        if frozen is None or frozen[0] != key:
            if any(_features(t) - set(x) for t in m.trees):
                return m.score_one(x)  # a split feature missing from x: river's own fallback path
            frozen = self._frozen = (key, tuple(_as_tuples(t) for t in m.trees))
        size_limit = 0.1 * m.window_size
        height = m.height
        score = 0.0
        for root in frozen[1]:
            node = root
            depth_pow = 1
            tree = 0.0
            for _ in range(height):
                feature, threshold, r, left, right = node
                tree += r * depth_pow
                if r < size_limit:
                    break
                node = left if x[feature] < threshold else right
                depth_pow <<= 1
            else:
                tree += node[2] * depth_pow
            score += tree
        return 1 - score / m._max_score

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_frozen", None)  # not part of the model (and snapshots stay byte-identical)
        return state


def _as_tuples(node):
    """(feature, threshold, r_mass, left, right) per branch, (None, None, r_mass, None, None) per leaf."""
    if isinstance(node, PaddedBranch):
        left, right = node.children
        return node.feature, node.threshold, node.r_mass, _as_tuples(left), _as_tuples(right)
    return None, None, node.r_mass, None, None


def _features(node) -> set:
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if isinstance(n, PaddedBranch):
            out.add(n.feature)
            stack.extend(n.children)
    return out


def make_anomaly_detector(config: dict | None = None) -> AnomalyDetector:
    return AnomalyDetector(config)
