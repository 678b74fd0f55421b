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
        """`HalfSpaceTrees.score_one`, the same arithmetic in the same order, by a function generated from the trees
        (`_compile`: a tree's walk becomes nested comparisons ending in the tree's sum, computed when generating
        with the same operations). Scoring never changes the trees: the function is made once per model state and
        dropped by `learn_one`."""
        m = self.model
        if m._first_window:
            return 0
        key = (m.counter, len(m.trees))
        frozen = getattr(self, "_frozen", None)
        if frozen is None or frozen[0] != key:
            if any(_features(t) - set(x) for t in m.trees):
                return m.score_one(x)  # a split feature missing from x: river's own fallback path
            frozen = self._frozen = (key, _compile(m.trees, m.height, 0.1 * m.window_size))
        return 1 - frozen[1](x) / m._max_score

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_frozen", None)  # not part of the model (and snapshots stay byte-identical)
        return state


def _compile(trees, height: int, size_limit: float):
    """The sum over `trees` of river's `_walk_score`, as one generated function of x.

    The walk adds r_mass * 2**depth of each node it passes, stops below `size_limit` or at `height`; every path's
    sum is computed here with the same float operations in the same order, so the function only compares and adds
    the trees' sums, in tree order, as the walk does.

    >>> from river.tree.padded import PaddedLeaf
    >>> leaf = lambda r: PaddedLeaf(r_mass=r, l_mass=0)
    >>> tree = PaddedBranch(leaf(1), leaf(3), feature="a", threshold=0.5, r_mass=30, l_mass=0)
    >>> f = _compile([tree, tree], 1, 25.0)
    >>> f({"a": 0.2}), f({"a": 0.9}), 2 * (30 + 1 * 2), 2 * (30 + 3 * 2)
    (64.0, 72.0, 64, 72)
    """
    names = sorted(set().union(*(_features(t) for t in trees)))
    var = {n: f"v{i}" for i, n in enumerate(names)}
    lines = ["def score(x):"] + [f"    {var[n]} = x[{n!r}]" for n in names] + ["    s = 0.0"]

    def walk(node, depth: int, tree: float, depth_pow: int, indent: str) -> None:
        if depth == height:
            lines.append(f"{indent}s += {tree + node.r_mass * depth_pow!r}")
            return
        if not isinstance(node, PaddedBranch):
            raise ValueError("a leaf above the trees' height")
        tree += node.r_mass * depth_pow
        if node.r_mass < size_limit:
            lines.append(f"{indent}s += {tree!r}")
            return
        left, right = node.children
        lines.append(f"{indent}if {var[node.feature]} < {node.threshold!r}:")
        walk(left, depth + 1, tree, depth_pow << 1, indent + " ")
        lines.append(f"{indent}else:")
        walk(right, depth + 1, tree, depth_pow << 1, indent + " ")

    for t in trees:
        walk(t, 0, 0.0, 1, "    ")
    lines.append("    return s")
    scope: dict = {}
    exec(compile("\n".join(lines), "<anomaly trees>", "exec"), scope)  # noqa: S102 (source built from numbers)
    return scope["score"]


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
