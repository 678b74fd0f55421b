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
from river.tree.padded import PaddedBranch, PaddedLeaf

from riskstream.core.models.config import load_config

__all__ = ["AnomalyDetector", "make_anomaly_detector"]

_DEFAULTS = load_config()["anomaly"]


class AnomalyDetector:
    def __init__(self, config: dict | None = None):
        config = config or {}
        section = config["anomaly"] if isinstance(config.get("anomaly"), dict) else config
        self.config = {**_DEFAULTS, **section}
        self.limits = {k: (float(v[0]), float(v[1])) for k, v in self.config["limits"].items()}
        self._hst = anomaly.HalfSpaceTrees(
            n_trees=int(self.config["n_trees"]), height=int(self.config["height"]),
            window_size=int(self.config["window_size"]), seed=int(self.config["seed"]),
        )
        self._packed = None

    @property
    def model(self) -> anomaly.HalfSpaceTrees:
        """River's detector (rebuilt from the packed trees of a snapshot the first time it is needed)."""
        if self._hst is None:
            self._hst, self._packed = _unpack_hst(self._packed), None
        return self._hst

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
        self._frozen = None  # the masses change: the generated score is stale
        self.model.learn_one(self._scale(x))

    def _score(self, x: dict[str, float]):
        """`HalfSpaceTrees.score_one`, the same arithmetic in the same order, by a function generated from the trees
        (`_compile`: a tree's walk becomes nested comparisons ending in the tree's sum, computed when generating
        with the same operations). Scoring never changes the trees: the function is made once per model state and
        dropped by `learn_one`. A detector loaded from a snapshot scores from its packed trees (never rebuilt)."""
        if self._hst is not None:
            m = self._hst
            if m._first_window:
                return 0
            key, packed = (m.counter, len(m.trees)), None
            height, window, n_trees = m.height, m.window_size, m.n_trees
        else:
            rest, packed = self._packed
            if rest["_first_window"]:
                return 0
            key = (rest["counter"], len(packed))
            height, window, n_trees = rest["height"], rest["window_size"], rest["n_trees"]
        frozen = getattr(self, "_frozen", None)
        if frozen is None or frozen[0] != key:
            if packed is None:
                packed = [_pack(t) for t in m.trees]
            if any(_features(t) - set(x) for t in packed):
                return self.model.score_one(x)  # a split feature missing from x: river's own fallback path
            frozen = self._frozen = (key, _compile(packed, height, 0.1 * window))
        return 1 - frozen[1](x) / (n_trees * window * (2 ** (height + 1) - 1))  # HalfSpaceTrees._max_score

    def __getstate__(self) -> dict:
        """The trees packed as nested tuples: a snapshot loads ~30x faster than river's node objects (every model
        version a worker loads), and a worker that only scores never rebuilds them."""
        state = dict(self.__dict__)
        state.pop("_frozen", None)  # not part of the model
        if state.get("_hst") is not None:
            try:
                state["_packed"], state["_hst"] = _pack_hst(state["_hst"]), None
            except ValueError:  # another river's trees: pickled as they are (slower to load, as before)
                pass
        return state

    def __setstate__(self, state: dict) -> None:
        if "model" in state:  # a snapshot from before the packed trees: river's objects
            state = dict(state)
            state["_hst"], state["_packed"] = state.pop("model"), None
        self.__dict__.update(state)


_BRANCH = ("children", "feature", "threshold", "l_mass", "r_mass")  # a node's attributes, in river's order
_LEAF = ("r_mass", "l_mass")


def _pack(node):
    """(feature, threshold, l_mass, r_mass, left, right) per branch, (l_mass, r_mass) per leaf."""
    if isinstance(node, PaddedBranch):
        if tuple(node.__dict__) != _BRANCH or type(node) is not PaddedBranch:
            raise ValueError("a half-space tree branch with other attributes than river 0.21's")
        left, right = node.children
        return node.feature, node.threshold, node.l_mass, node.r_mass, _pack(left), _pack(right)
    if tuple(node.__dict__) != _LEAF or type(node) is not PaddedLeaf:
        raise ValueError("a half-space tree leaf with other attributes than river 0.21's")
    return node.l_mass, node.r_mass


def _unpack(packed):
    if len(packed) == 6:
        feature, threshold, l_mass, r_mass, left, right = packed
        node = PaddedBranch.__new__(PaddedBranch)
        node.__dict__.update(children=(_unpack(left), _unpack(right)), feature=feature, threshold=threshold,
                             l_mass=l_mass, r_mass=r_mass)
        return node
    node = PaddedLeaf.__new__(PaddedLeaf)
    node.__dict__.update(r_mass=packed[1], l_mass=packed[0])
    return node


def _pack_hst(hst: anomaly.HalfSpaceTrees):
    """(river's attributes but the trees, packed trees); `_unpack_hst` rebuilds the same object."""
    if type(hst) is not anomaly.HalfSpaceTrees:
        raise ValueError("not river's HalfSpaceTrees")
    rest = {k: (None if k in ("trees", "_tree_nodes") else v) for k, v in hst.__dict__.items()}
    return rest, [_pack(t) for t in hst.trees]


def _unpack_hst(packed) -> anomaly.HalfSpaceTrees:
    rest, trees = packed
    hst = anomaly.HalfSpaceTrees.__new__(anomaly.HalfSpaceTrees)
    hst.__dict__.update(rest)
    hst.trees = [_unpack(t) for t in trees]
    if "_tree_nodes" in rest:  # the flat node list of each tree, as learn_one makes it
        hst._tree_nodes = [list(t.iter_dfs()) for t in hst.trees]
    return hst


def _compile(trees, height: int, size_limit: float):
    """The sum over the packed `trees` (`_pack`) of river's `_walk_score`, as one generated function of x.

    The walk adds r_mass * 2**depth of each node it passes, stops below `size_limit` or at `height`; every path's
    sum is computed here with the same float operations in the same order, so the function only compares and adds
    the trees' sums, in tree order, as the walk does.

    >>> tree = ("a", 0.5, 0, 30, (0, 1), (0, 3))
    >>> f = _compile([tree, tree], 1, 25.0)
    >>> f({"a": 0.2}), f({"a": 0.9}), 2 * (30 + 1 * 2), 2 * (30 + 3 * 2)
    (64.0, 72.0, 64, 72)
    """
    names = sorted(set().union(*(_features(t) for t in trees)))
    var = {n: f"v{i}" for i, n in enumerate(names)}
    lines = ["def score(x):"] + [f"    {var[n]} = x[{n!r}]" for n in names] + ["    s = 0.0"]

    def walk(node, depth: int, tree: float, depth_pow: int, indent: str) -> None:
        if depth == height:
            lines.append(f"{indent}s += {tree + node[-3 if len(node) == 6 else 1] * depth_pow!r}")
            return
        if len(node) != 6:
            raise ValueError("a leaf above the trees' height")
        feature, threshold, _, r_mass, left, right = node
        tree += r_mass * depth_pow
        if r_mass < size_limit:
            lines.append(f"{indent}s += {tree!r}")
            return
        lines.append(f"{indent}if {var[feature]} < {threshold!r}:")
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
    """The split features of a packed tree."""
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if len(n) == 6:
            out.add(n[0])
            stack.append(n[4])
            stack.append(n[5])
    return out


def make_anomaly_detector(config: dict | None = None) -> AnomalyDetector:
    return AnomalyDetector(config)
