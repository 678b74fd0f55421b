"""`riskstream evaluate`: replay a labelled CSV as a stream and compare the online scorer with a batch reference.

Each row is an application, scored before its label is known; its label arrives `--label-delay` rows later
(prequential test-then-train: every row is predicted once, in file order, before the model has learned from it).
The reference is a batch L2 logistic regression (numpy IRLS) on the same encoding, by k-fold cross-validation.

Any CSV works: a column is numeric when every non-missing value parses as a number, else categorical (one-hot,
dense over the categories seen so far). Missing values (empty, NA, N/A, ?, nan, null, none) are imputed - running
mean for numbers, a `__missing__` category for strings - with a `<col>__missing` indicator for numbers.

Imbalanced data (`--bad-share S --repeats R --seed K`): each repeat keeps every good row and a seeded random sample
of the bad rows (seed K + repeat) so that bads are a share S of the rows, in file order, then runs the same
prequential replay and the same batch reference on that subsample. It prints each repeat and the mean and standard
deviation over the repeats; the JSON summary's `prequential_auc`, `batch_auc` and `auc_gap` are the means.

>>> import io
>>> text = "x,c,y\\n" + "".join(f"{i % 7},{'ab'[i % 2]},{'bad' if i % 7 > 4 else 'good'}\\n" for i in range(200))
>>> header, rows = read_csv(io.StringIO(text))
>>> res = evaluate_rows(header, rows, target="y", bad="bad")
>>> res["rows"], res["prequential_auc"] > 0.8, res["batch_auc"] > 0.8
(200, True, True)

"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import sys
import time

import numpy as np

from riskstream.core.models.config import load_config
from riskstream.core.models.quality import auc, ece, log_loss
from riskstream.core.models.scorer import make_scorer

__all__ = ["TabularEncoder", "read_csv", "evaluate_rows", "evaluate_imbalanced", "subsample_bad", "auc", "log_loss", "ece",
           "batch_logistic_cv", "register"]

# The scorer settings the JSON summary reports (those present in the config).
ONLINE_SETTINGS = ("learning_rate", "l2", "intercept_lr", "bad_weight", "balance", "max_bad_weight", "pd_correction",
                   "n_models", "seed")

MISSING = {"", "na", "n/a", "?", "nan", "null", "none"}


def _is_missing(v: str | None) -> bool:
    return v is None or v.strip().lower() in MISSING


def _to_float(v: str) -> float | None:
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def read_csv(fh) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(fh)
    return list(reader.fieldnames or []), list(reader)


def numeric_columns(columns: list[str], rows: list[dict[str, str]]) -> set[str]:
    out = set()
    for c in columns:
        values = [r.get(c) for r in rows if not _is_missing(r.get(c))]
        if values and all(_to_float(v) is not None for v in values):
            out.add(c)
    return out


class TabularEncoder:
    """Online row encoder: numbers (running-mean imputation + missing indicator) and dense one-hot strings."""

    def __init__(self, columns: list[str], numeric: set[str]):
        self.columns = columns
        self.numeric = numeric
        self.sums = collections.defaultdict(float)
        self.counts = collections.defaultdict(int)
        self.categories: dict[str, dict[str, None]] = collections.defaultdict(dict)

    def transform_one(self, row: dict[str, str]) -> dict[str, float]:
        x: dict[str, float] = {}
        for c in self.columns:
            v = row.get(c)
            if c in self.numeric:
                f = None if _is_missing(v) else _to_float(v)
                mean = self.sums[c] / self.counts[c] if self.counts[c] else 0.0
                x[c] = mean if f is None else f
                x[f"{c}__missing"] = 1.0 if f is None else 0.0
            else:
                for cat in self.categories[c]:
                    x[f"{c}={cat}"] = 0.0
                cat = "__missing__" if _is_missing(v) else v.strip()
                x[f"{c}={cat}"] = 1.0
        return x

    def learn_one(self, row: dict[str, str]) -> None:
        for c in self.columns:
            v = row.get(c)
            if c in self.numeric:
                f = None if _is_missing(v) else _to_float(v)
                if f is not None:
                    self.sums[c] += f
                    self.counts[c] += 1
            else:
                self.categories[c].setdefault("__missing__" if _is_missing(v) else v.strip(), None)


# -- metrics ----------------------------------------------------------------------------------------------------
def _irls(a: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    n, d = a.shape
    a1 = np.c_[np.ones(n), a]
    w = np.zeros(d + 1)
    reg = np.eye(d + 1) * l2
    reg[0, 0] = 0.0  # the intercept is not penalised
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a1 @ w, -35, 35)))
        hess = a1.T @ (a1 * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(hess, a1.T @ (p - y) + reg @ w)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def batch_logistic_cv(matrix: np.ndarray, y: np.ndarray, *, folds: int = 5, l2: float = 1.0, seed: int = 0) -> np.ndarray:
    """Out-of-fold PDs of an L2 logistic regression (IRLS) on standardised columns (train-fold statistics)."""
    idx = np.arange(len(y))
    np.random.default_rng(seed).shuffle(idx)
    out = np.zeros(len(y))
    for part in np.array_split(idx, folds):
        train = np.setdiff1d(idx, part)
        mu, sd = matrix[train].mean(0), matrix[train].std(0)
        sd[sd == 0] = 1.0
        w = _irls((matrix[train] - mu) / sd, y[train], l2)
        z = w[0] + ((matrix[part] - mu) / sd) @ w[1:]
        out[part] = 1 / (1 + np.exp(-np.clip(z, -35, 35)))
    return out


def _batch_matrix(columns, numeric, rows) -> np.ndarray:
    enc = TabularEncoder(columns, numeric)
    for r in rows:  # the reference sees every category and the full-data mean (it is the batch upper bound)
        enc.learn_one(r)
    xs = [enc.transform_one(r) for r in rows]
    keys = sorted({k for x in xs for k in x})
    return np.array([[x.get(k, 0.0) for k in keys] for x in xs])


# -- the replay -------------------------------------------------------------------------------------------------
def _is_bad(value: str | None, bad: str) -> bool:
    if value is None:
        return False
    if value.strip() == bad.strip():
        return True
    a, b = _to_float(value), _to_float(bad)
    return a is not None and b is not None and a == b


def subsample_bad(labels, share: float, seed: int) -> np.ndarray:
    """Row indices (file order) keeping every good row and a seeded sample of bads that makes `share` of the rows.

    >>> labels = np.array([True, False] * 50)
    >>> idx = subsample_bad(labels, 0.1, seed=1)
    >>> len(idx), int(labels[idx].sum()), bool((np.diff(idx) > 0).all())
    (56, 6, True)

    """
    labels = np.asarray(labels, bool)
    bad, good = np.flatnonzero(labels), np.flatnonzero(~labels)
    if not 0 < share < 1:
        raise ValueError(f"--bad-share must be between 0 and 1 (got {share})")
    k = int(round(share * len(good) / (1 - share)))
    if k > len(bad):
        raise ValueError(f"--bad-share {share} needs {k} bad rows but the data has {len(bad)} "
                         f"(its bad share is {len(bad) / len(labels):.3f}); use a smaller share")
    if k < 2:
        raise ValueError(f"--bad-share {share} leaves {k} bad row(s) of {len(good) + k}; use a larger share")
    return np.sort(np.r_[good, np.random.default_rng(seed).choice(bad, k, replace=False)])


def evaluate_rows(header: list[str], rows: list[dict[str, str]], *, target: str, bad: str, label_delay: int = 0,
                  model: str = "logistic", config: dict | None = None, folds: int = 5, batch_l2: float = 1.0,
                  seed: int = 0, progress=None) -> dict:
    if target not in header:
        raise ValueError(f"target column {target!r} is not in the CSV header ({', '.join(header)})")
    rows = [r for r in rows if not _is_missing(r.get(target))]
    columns = [c for c in header if c != target]
    numeric = numeric_columns(columns, rows)
    labels = np.array([_is_bad(r[target], bad) for r in rows])
    if labels.all() or not labels.any():
        raise ValueError(f"--bad {bad!r} must match some but not all values of column {target!r}")

    cfg = config or load_config()
    scorer = make_scorer({**cfg["scorer"], "kind": model})
    encoder = TabularEncoder(columns, numeric)
    pending: collections.deque = collections.deque()
    preds = np.zeros(len(rows))
    started = time.monotonic()
    for i, row in enumerate(rows):
        x = encoder.transform_one(row)
        preds[i] = scorer.predict_one(x).pd  # test ...
        pending.append((row, x, bool(labels[i])))
        if len(pending) > label_delay:  # ... then train on the label that arrives now
            old_row, old_x, y = pending.popleft()
            encoder.learn_one(old_row)
            scorer.learn_one(old_x, y)
        if progress is not None and (i + 1) % 10000 == 0:
            progress(f"evaluate: {i + 1}/{len(rows)} rows, {time.monotonic() - started:.1f}s")

    batch = batch_logistic_cv(_batch_matrix(columns, numeric, rows), labels.astype(float), folds=folds, l2=batch_l2,
                              seed=seed)
    p_auc, b_auc = auc(preds, labels), auc(batch, labels)
    return {
        "rows": len(rows),
        "model": model,
        "prequential_auc": round(p_auc, 4),
        "prequential_logloss": round(log_loss(preds, labels), 4),
        "prequential_ece": round(ece(preds, labels), 4),
        "batch_auc": round(b_auc, 4),
        "batch_logloss": round(log_loss(batch, labels), 4),
        "batch_ece": round(ece(batch, labels), 4),
        "auc_gap": round(b_auc - p_auc, 4),
        "label_delay": label_delay,
        "bad_rate": round(float(labels.mean()), 4),
        "settings": {
            "online": {k: cfg["scorer"][k] for k in ONLINE_SETTINGS if k in cfg["scorer"]},
            "batch": {"method": "IRLS L2 logistic regression", "l2": batch_l2, "folds": folds, "seed": seed},
            "encoding": {"numeric": len(numeric), "categorical": len(columns) - len(numeric)},
        },
    }


def _mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, float)
    return round(float(a.mean()), 4), round(float(a.std()), 4)


def evaluate_imbalanced(header: list[str], rows: list[dict[str, str]], *, target: str, bad: str, bad_share: float,
                        repeats: int = 10, seed: int = 0, progress=None, **kwargs) -> dict:
    """`evaluate_rows` on `repeats` seeded subsamples whose bad share is `bad_share`; means and spreads.

    Repeat r keeps all good rows and the bads drawn with seed `seed + r` (`subsample_bad`), in file order. The batch
    reference is the same as without subsampling (k-fold L2 logistic, fold seed 0), fitted on each subsample.
    """
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1 (got {repeats})")
    if target not in header:
        raise ValueError(f"target column {target!r} is not in the CSV header ({', '.join(header)})")
    rows = [r for r in rows if not _is_missing(r.get(target))]
    labels = np.array([_is_bad(r[target], bad) for r in rows])
    runs = []
    for r in range(repeats):
        idx = subsample_bad(labels, bad_share, seed + r)
        res = evaluate_rows(header, [rows[i] for i in idx], target=target, bad=bad, **kwargs)
        runs.append({"repeat": r, "seed": seed + r, "rows": res["rows"], "bads": int(labels[idx].sum()),
                     **{k: res[k] for k in ("prequential_auc", "batch_auc", "auc_gap", "prequential_logloss",
                                            "prequential_ece", "batch_logloss", "batch_ece")}})
        if progress is not None:
            progress(f"evaluate: repeat {r + 1}/{repeats}: prequential AUC {res['prequential_auc']:.4f}, "
                     f"batch {res['batch_auc']:.4f}")
    out = {"rows": res["rows"], "model": res["model"], "label_delay": res["label_delay"], "bad_share": bad_share,
           "bad_rate": round(float(np.mean([u["bads"] / u["rows"] for u in runs])), 4), "bads": runs[0]["bads"],
           "repeats": repeats, "seed": seed, "rows_full": len(rows), "bads_full": int(labels.sum())}
    for key in ("prequential_auc", "batch_auc", "auc_gap", "prequential_logloss", "prequential_ece", "batch_logloss",
                "batch_ece"):
        out[key], out[f"{key}_std"] = _mean_std([u[key] for u in runs])
    out["settings"] = {**res["settings"], "subsample": {"bad_share": bad_share, "repeats": repeats, "seed": seed,
                                                        "keeps": "all good rows, seeded sample of bad rows, file order"}}
    out["per_repeat"] = runs
    return out


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        with open(args.csv, newline="", encoding="utf-8") as fh:
            header, rows = read_csv(fh)
        common = dict(target=args.target, bad=args.bad, label_delay=args.label_delay, model=args.model, config=cfg,
                      folds=args.folds, batch_l2=args.batch_l2,
                      progress=lambda msg: print(msg, file=sys.stderr, flush=True))
        if args.bad_share is None:
            if args.repeats is not None:
                raise ValueError("--repeats needs --bad-share (without subsampling the replay is deterministic)")
            res = evaluate_rows(header, rows, **common)
        else:
            res = evaluate_imbalanced(header, rows, bad_share=args.bad_share,
                                      repeats=10 if args.repeats is None else args.repeats, seed=args.seed, **common)
    except (OSError, ValueError) as exc:
        print(f"riskstream evaluate: {exc}", file=sys.stderr)
        return 2
    if args.bad_share is not None:
        return _print_imbalanced(res, args.folds)
    print(f"rows {res['rows']}  bad rate {res['bad_rate']:.3f}  label delay {res['label_delay']}  model {res['model']}")
    print(f"prequential (online, test-then-train once): AUC {res['prequential_auc']:.4f}  "
          f"log-loss {res['prequential_logloss']:.4f}  ECE {res['prequential_ece']:.4f}")
    print(f"batch reference ({args.folds}-fold CV L2 logistic): AUC {res['batch_auc']:.4f}  "
          f"log-loss {res['batch_logloss']:.4f}  ECE {res['batch_ece']:.4f}")
    print(json.dumps(res, sort_keys=True))
    return 0


def _print_imbalanced(res: dict, folds: int) -> int:
    print(f"bad share {res['bad_share']}: {res['rows']} rows ({res['bads']} bad) of {res['rows_full']} "
          f"({res['bads_full']} bad), {res['repeats']} seeded repeats from seed {res['seed']}  "
          f"label delay {res['label_delay']}  model {res['model']}")
    for u in res["per_repeat"]:
        print(f"  repeat {u['repeat']} (seed {u['seed']}): prequential AUC {u['prequential_auc']:.4f}  "
              f"batch AUC {u['batch_auc']:.4f}  gap {u['auc_gap']:+.4f}")
    print(f"prequential (online, test-then-train once): AUC {res['prequential_auc']:.4f} ± "
          f"{res['prequential_auc_std']:.4f}  log-loss {res['prequential_logloss']:.4f}  ECE {res['prequential_ece']:.4f}")
    print(f"batch reference ({folds}-fold CV L2 logistic): AUC {res['batch_auc']:.4f} ± {res['batch_auc_std']:.4f}  "
          f"log-loss {res['batch_logloss']:.4f}  ECE {res['batch_ece']:.4f}")
    print(f"gap (batch - prequential), mean ± std over repeats: {res['auc_gap']:+.4f} ± {res['auc_gap_std']:.4f}")
    print(json.dumps(res, sort_keys=True))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `evaluate` to an argparse subparsers object; sets `func` (args.func(args) -> int)."""
    p = subparsers.add_parser(
        "evaluate",
        help="replay a labelled CSV as a stream: prequential AUC/log-loss/ECE vs a batch logistic regression",
        description=__doc__.split("\n\n>>>")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", required=True, metavar="FILE", help="CSV with a header row, one application per row")
    p.add_argument("--target", required=True, metavar="COL", help="the outcome column")
    p.add_argument("--bad", required=True, metavar="VALUE", help="the value of COL that means default/bad")
    p.add_argument("--label-delay", type=int, default=0, metavar="N",
                   help="a row's label arrives N rows after it is scored (default 0)")
    p.add_argument("--model", choices=("logistic", "tree"), default="logistic", help="online model (default logistic)")
    p.add_argument("--config", metavar="FILE", help="models.yaml overlay (default: the bundled riskstream/data/models.yaml)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the batch reference (default 5)")
    p.add_argument("--batch-l2", type=float, default=1.0, help="L2 penalty of the batch reference (default 1.0)")
    p.add_argument("--bad-share", type=float, metavar="S",
                   help="subsample the bad rows to this share of the rows (e.g. 0.05), seeded; all good rows kept")
    p.add_argument("--repeats", type=int, metavar="R",
                   help="with --bad-share: number of seeded subsamples, reported as mean ± std (default 10)")
    p.add_argument("--seed", type=int, default=0, help="with --bad-share: seed of the first subsample (default 0)")
    p.set_defaults(func=_run)
    return p
