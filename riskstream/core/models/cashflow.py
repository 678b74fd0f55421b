"""Per-facility cash-flow forecast (River Holt linear trend) and the DSCR covenant it implies.

Each period the facility reports the cash available for debt service (CFADS) and the debt service due.
`forecast(h)` gives CFADS for the next h periods; `projected_dscr(h)` divides it by the last debt service;
`breach_in_periods(min_dscr)` answers "covenant breach expected in N periods" (1 = next period) or None.
Until `min_periods` observations exist the forecast is the last value (naive), so it is never empty.

>>> fc = CashflowForecaster()
>>> for cash in [130, 125, 120, 115, 110, 105]:
...     fc.learn_one(cash, debt_service=100)
>>> fc.breach_in_periods(min_dscr=1.0, horizon=6)
1

"""

from __future__ import annotations

import pickle

from river import time_series

from riskstream.core.models.config import load_config

__all__ = ["CashflowForecaster"]

_DEFAULTS = load_config()["cashflow"]


class CashflowForecaster:
    def __init__(self, config: dict | None = None):
        config = config or {}
        section = config["cashflow"] if isinstance(config.get("cashflow"), dict) else config
        self.config = {**_DEFAULTS, **section}
        self.model = time_series.HoltWinters(alpha=float(self.config["alpha"]), beta=float(self.config["beta"]))
        self.n = 0
        self.last_cash = 0.0
        self.debt_service = 0.0

    def learn_one(self, cash: float, debt_service: float | None = None) -> None:
        self.model.learn_one(float(cash))
        self.n += 1
        self.last_cash = float(cash)
        if debt_service is not None:
            self.debt_service = float(debt_service)

    def forecast(self, horizon: int) -> list[float]:
        if horizon <= 0:
            return []
        if self.n < max(int(self.config["min_periods"]), 2):
            return [self.last_cash] * horizon
        return [float(v) for v in self.model.forecast(horizon=horizon)]

    def projected_dscr(self, horizon: int) -> list[float | None]:
        if self.debt_service <= 0:
            return [None] * horizon
        return [c / self.debt_service for c in self.forecast(horizon)]

    def breach_in_periods(self, min_dscr: float, horizon: int = 12) -> int | None:
        for i, d in enumerate(self.projected_dscr(horizon), start=1):
            if d is not None and d < min_dscr:
                return i
        return None

    def encode(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(blob: bytes) -> "CashflowForecaster":
        """Only for blobs from a table this service owns (pickle runs code)."""
        return pickle.loads(blob)
