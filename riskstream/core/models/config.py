"""Model configuration: the bundled `riskstream/data/models.yaml`, optionally overlaid by an operator file.

Invalid values are refused with `ModelConfigError`, in the one operator-error format
``FILE: FIELD: problem. Fix: ...``. ``anomaly.limits`` must name exactly the features the declared feature list
gives the anomaly model (`riskstream.core.account.feature_list.BEHAVIOUR_FEATURES`).

>>> cfg = load_config()
>>> cfg["scorer"]["kind"]
'logistic'
>>> validate_config({**cfg, "scorer": {**cfg["scorer"], "kind": "forest"}}, "models.yaml")
Traceback (most recent call last):
...
riskstream.core.models.config.ModelConfigError: models.yaml: scorer.kind: 'forest' is not allowed. Fix: use one of logistic, tree

"""

from __future__ import annotations

import copy
import pathlib

import yaml

from riskstream.core.account.feature_list import BEHAVIOUR_FEATURES
from riskstream.core.errors import TOP, OperatorError, read_yaml
from riskstream.data import MODELS

__all__ = ["ModelConfigError", "load_config", "DEFAULT_CONFIG_PATH", "validate_config"]

DEFAULT_CONFIG_PATH = MODELS

_CHOICES = {
    ("scorer", "kind"): ("logistic", "tree"),
    ("drift", "detector"): ("adwin", "page_hinkley"),
    ("drift", "reaction"): ("alert_only", "reset", "retrain_window"),
}
_POSITIVE = {
    ("scorer", "learning_rate"), ("scorer", "intercept_lr"), ("scorer", "bad_weight"), ("scorer", "max_bad_weight"), ("scorer", "n_models"), ("scorer", "reasons_top_k"),
    ("scorer", "base_odds"), ("scorer", "pdo"), ("labels", "bad_dpd"), ("labels", "horizon_cycles"),
    ("labels", "horizon_ms"), ("labels", "max_open_per_entity"), ("labels", "max_open_total"),
    ("trainer", "publish_every"), ("drift", "delta"), ("drift", "window"), ("anomaly", "n_trees"),
    ("anomaly", "height"), ("anomaly", "window_size"), ("cashflow", "alpha"), ("cashflow", "min_periods"),
    ("cashflow", "max_history"),
}

_NON_NEGATIVE = {("scorer", "balance")}


class ModelConfigError(OperatorError):
    """The model configuration cannot be used: ``FILE: FIELD: problem. Fix: ...``."""


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def validate_config(cfg: dict, source: str = "<config>") -> dict:
    """Check types and ranges; return `cfg` unchanged or raise `ModelConfigError`."""
    defaults = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    for section, fields in defaults.items():
        if not isinstance(cfg.get(section), dict):
            raise ModelConfigError(source, section, "must be a mapping", f"copy it from {DEFAULT_CONFIG_PATH}")
        for name, default in fields.items():
            value = cfg[section].get(name)
            where = f"{section}.{name}"
            if (section, name) in _CHOICES:
                if value not in _CHOICES[(section, name)]:
                    raise ModelConfigError(source, where, f"{value!r} is not allowed",
                                           f"use one of {', '.join(_CHOICES[(section, name)])}")
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ModelConfigError(source, where, f"must be true or false (got {value!r})",
                                           f"write {str(default).lower()} or {str(not default).lower()}")
            elif isinstance(default, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ModelConfigError(source, where, f"must be a number (got {type(value).__name__})",
                                           f"write a number, e.g. {default}")
                if (section, name) in _POSITIVE and value <= 0:
                    raise ModelConfigError(source, where, f"must be > 0 (got {value})", f"use e.g. {default}")
                if (section, name) in _NON_NEGATIVE and value < 0:
                    raise ModelConfigError(source, where, f"must be >= 0 (got {value})", f"use e.g. {default}")
    limits = cfg["anomaly"].get("limits") or {}
    if not isinstance(limits, dict):
        raise ModelConfigError(source, "anomaly.limits", "must be a mapping of feature to [low, high]",
                               "write e.g. {utilisation: [0, 1.5]}")
    for feat, lim in limits.items():
        if feat not in BEHAVIOUR_FEATURES:
            raise ModelConfigError(source, f"anomaly.limits.{feat}", "is not an input of the anomaly model",
                                   f"remove it, or limit one of {', '.join(BEHAVIOUR_FEATURES)}")
        if not (isinstance(lim, (list, tuple)) and len(lim) == 2 and all(isinstance(v, (int, float)) for v in lim)
                and lim[0] < lim[1]):
            raise ModelConfigError(source, f"anomaly.limits.{feat}", "must be [low, high] with low < high",
                                   "write e.g. [0, 10]")
    missing = [f for f in BEHAVIOUR_FEATURES if f not in limits]
    if missing:
        raise ModelConfigError(source, "anomaly.limits", f"no limits for {', '.join(missing)}",
                               "give every anomaly input a [low, high], e.g. " + f"{missing[0]}: [0, 10]")
    return cfg


def load_config(path: str | pathlib.Path | None = None) -> dict:
    """Return the bundled defaults, overlaid by the YAML file at `path` (if given), validated."""
    cfg = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    source = str(DEFAULT_CONFIG_PATH)
    if path is not None:
        source = str(path)
        over = read_yaml(path, error=ModelConfigError, fix="pass the path of a readable models.yaml") or {}
        if not isinstance(over, dict):
            raise ModelConfigError(source, TOP, "must be a mapping of sections (scorer, labels, ...)",
                                   f"see {DEFAULT_CONFIG_PATH}")
        cfg = _merge(cfg, over)
    return validate_config(cfg, source)
