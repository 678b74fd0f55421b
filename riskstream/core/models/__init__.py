"""Online models for riskstream (pure functional core, no I/O): PD scorer, delayed labels, signed snapshots,
anomaly, drift, cash-flow forecasts, scenarios and evaluation. See docs/models.md."""

from riskstream.core.models.config import ModelConfigError, load_config
from riskstream.core.models.labels import LabeledExample, LabelTracker
from riskstream.core.models.scorer import Reason, Score, Scorer, make_scorer, pd_to_score
from riskstream.core.models.snapshot import TamperedSnapshot, Trainer, dump_snapshot, load_snapshot, model_key

__all__ = [
    "ModelConfigError", "load_config", "LabeledExample", "LabelTracker", "Reason", "Score", "Scorer", "make_scorer",
    "pd_to_score", "TamperedSnapshot", "Trainer", "dump_snapshot", "load_snapshot", "model_key",
]
