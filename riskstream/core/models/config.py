"""Model configuration: the bundled `riskstream/data/models.yaml`, optionally overlaid by an operator file.

Invalid values are refused with `ModelConfigError`, naming the file, the field and the fix.

>>> cfg = load_config()
>>> cfg["scorer"]["kind"]
'logistic'

"""

from __future__ import annotations

import copy
import pathlib

import yaml

from riskstream.data import MODELS

__all__ = ["ModelConfigError", "load_config", "DEFAULT_CONFIG_PATH", "validate_config"]

DEFAULT_CONFIG_PATH = MODELS

_CHOICES = {
    ("scorer", "kind"): ("logistic", "tree"),
    ("drift", "detector"): ("adwin", "page_hinkley"),
    ("drift", "reaction"): ("alert_only", "reset", "retrain_window"),
}
_POSITIVE = {
    ("scorer", "learning_rate"), ("scorer", "intercept_lr"), ("scorer", "bad_weight"), ("scorer", "n_models"), ("scorer", "reasons_top_k"),
    ("scorer", "base_odds"), ("scorer", "pdo"), ("labels", "bad_dpd"), ("labels", "horizon_cycles"),
    ("labels", "horizon_ms"), ("labels", "max_open_per_entity"), ("labels", "max_open_total"),
    ("trainer", "publish_every"), ("drift", "delta"), ("drift", "window"), ("anomaly", "n_trees"),
    ("anomaly", "height"), ("anomaly", "window_size"), ("cashflow", "alpha"), ("cashflow", "min_periods"),
    ("cashflow", "max_history"),
}


class ModelConfigError(ValueError):
    """The model configuration is invalid; the message names the file, the field and the fix."""


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
            raise ModelConfigError(f"{source}: field '{section}' must be a mapping; fix: copy it from {DEFAULT_CONFIG_PATH}")
        for name, default in fields.items():
            value = cfg[section].get(name)
            where = f"{source}: field '{section}.{name}'"
            if (section, name) in _CHOICES:
                if value not in _CHOICES[(section, name)]:
                    raise ModelConfigError(f"{where} is {value!r}; fix: use one of {', '.join(_CHOICES[(section, name)])}")
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ModelConfigError(f"{where} must be a number (got {type(value).__name__}); fix: e.g. {default}")
                if (section, name) in _POSITIVE and value <= 0:
                    raise ModelConfigError(f"{where} must be > 0 (got {value}); fix: e.g. {default}")
    limits = cfg["anomaly"].get("limits") or {}
    for feat, lim in limits.items():
        if not (isinstance(lim, (list, tuple)) and len(lim) == 2 and all(isinstance(v, (int, float)) for v in lim)
                and lim[0] < lim[1]):
            raise ModelConfigError(f"{source}: field 'anomaly.limits.{feat}' must be [low, high] with low < high; "
                                   f"fix: e.g. [0, 10]")
    return cfg


def load_config(path: str | pathlib.Path | None = None) -> dict:
    """Return the bundled defaults, overlaid by the YAML file at `path` (if given), validated."""
    cfg = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    source = str(DEFAULT_CONFIG_PATH)
    if path is not None:
        source = str(path)
        try:
            over = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ModelConfigError(f"{source}: not valid YAML ({exc}); fix: check indentation and quoting") from None
        except OSError as exc:
            raise ModelConfigError(f"{source}: cannot be read ({exc.strerror}); fix: pass an existing file") from None
        if not isinstance(over, dict):
            raise ModelConfigError(f"{source}: top level must be a mapping of sections (scorer, labels, ...); "
                                   f"fix: see {DEFAULT_CONFIG_PATH}")
        cfg = _merge(cfg, over)
    return validate_config(cfg, source)
