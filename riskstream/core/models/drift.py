"""Drift detection on the scorer's prequential error and on its score distribution.

`update_error(e)` takes |y - pd| (or any loss) of each labelled example, scored BEFORE learning; `update_score(s)`
takes each PD served. Both return True when the detector (ADWIN or PageHinkley, config section `drift`) fires.
`reaction` tells the Trainer what to do on an error drift: `alert_only`, `reset` (a fresh model) or
`retrain_window` (a fresh model trained on the last `window` labelled examples).

>>> mon = DriftMonitor({"detector": "adwin", "delta": 0.002})
>>> fired = [mon.update_error(0.1 if i < 500 else 0.9) for i in range(1000)]
>>> mon.n_error_drifts >= 1, fired.index(True) > 500
(True, True)

"""

from __future__ import annotations

from river import drift

from riskstream.core.models.config import load_config

__all__ = ["DriftMonitor"]

_DEFAULTS = load_config()["drift"]


class DriftMonitor:
    def __init__(self, config: dict | None = None):
        config = config or {}
        section = config["drift"] if isinstance(config.get("drift"), dict) else config
        self.config = {**_DEFAULTS, **section}
        self.reaction = self.config["reaction"]
        self._error = self._make(mode="up")  # only a worse error is a problem; learning makes it fall
        self._score = self._make(mode="both")
        self.n_error_drifts = 0
        self.n_score_drifts = 0
        self.n_errors = 0
        self.n_error_improvements = 0  # ADWIN changes where the error fell (ignored)
        self.last_error_drift_at: int | None = None  # index (0-based) of the error that fired

    def _make(self, mode: str):
        if self.config["detector"] == "page_hinkley":
            return drift.PageHinkley(delta=self.config["ph_delta"], threshold=self.config["ph_threshold"], mode=mode)
        return drift.ADWIN(delta=self.config["delta"])

    def update_error(self, e: float) -> bool:
        """Feed one prequential error; True when the error has drifted UP (the model got worse)."""
        before = getattr(self._error, "estimation", None)
        self._error.update(float(e))
        self.n_errors += 1
        if self._error.drift_detected:
            after = getattr(self._error, "estimation", None)
            if before is not None and after is not None and after <= before:
                self.n_error_improvements += 1
                return False
            self.n_error_drifts += 1
            self.last_error_drift_at = self.n_errors - 1
            return True
        return False

    def update_score(self, s: float) -> bool:
        self._score.update(float(s))
        if self._score.drift_detected:
            self.n_score_drifts += 1
            return True
        return False

    def stats(self) -> dict:
        return {"error_drifts": self.n_error_drifts, "score_drifts": self.n_score_drifts, "reaction": self.reaction}
