"""A deterministic generator of upstream events: retail credit lines, project facilities and market indicators.

Same seed, same events (ids included), so a demo run, a test and a replay see identical input.

>>> sim = Simulator(SimConfig(accounts=3, facilities=1, seed=1))
>>> evs = list(sim.events(20))
>>> evs[0][0], evs[0][1]["type"]
('riskstream.events.behaviour', 'account_opened')
>>> len(evs)
20
"""

from __future__ import annotations

import dataclasses
import random
from typing import Iterator

from riskstream.core.contracts import make_event
from riskstream.core.names import BEHAVIOUR, CREDIT, MARKET, PROJECT, REPAYMENT

SEGMENTS = ("retail", "energy", "real_estate", "transport")
HOUR = 3_600_000
DAY = 24 * HOUR


@dataclasses.dataclass(frozen=True)
class SimConfig:
    accounts: int = 200
    facilities: int = 20
    seed: int = 7
    start_ms: int = 1_780_000_000_000     # event time of the first event
    step_ms: int = 60_000                 # mean event-time gap between consecutive events
    bad_share: float = 0.15               # accounts that drift into distress
    fraud_share: float = 0.02             # accounts hit by takeover-like bursts
    malformed_share: float = 0.0          # share of events corrupted on the wire (dead-letter tests)


class Simulator:
    """Yields `(topic, event_dict)`; `wire()` yields `(topic, key, bytes)` including malformed ones."""

    def __init__(self, config: SimConfig = SimConfig(), *, producer_clock=None):
        """`producer_clock()` (epoch ms) stamps producer_time as a live producer would; default event time + 5 ms."""
        self.c = config
        self.producer_clock = producer_clock
        self.rng = random.Random(config.seed)
        self.t = config.start_ms
        self.accounts = [f"ACC{i:06d}" for i in range(config.accounts)]
        self.facilities = [f"FAC{i:04d}" for i in range(config.facilities)]
        n_bad = int(config.accounts * config.bad_share)
        n_fraud = int(config.accounts * config.fraud_share)
        self.bad = set(self.rng.sample(self.accounts, n_bad)) if n_bad else set()
        self.fraud = set(self.rng.sample(self.accounts, n_fraud)) if n_fraud else set()
        self.segment = {a: "retail" for a in self.accounts}
        self.segment.update({f: self.rng.choice(SEGMENTS[1:]) for f in self.facilities})
        self.index = {s: 100.0 for s in SEGMENTS}
        self.seq = 0

    def _ev(self, type_: str, entity: str, payload: dict) -> dict:
        self.seq += 1
        return make_event(type_, entity, payload, event_time=self.t, event_id=f"sim-{self.c.seed}-{self.seq}",
                          producer_time=self.producer_clock() if self.producer_clock else self.t + 5,
                          source="simulator")

    def opening(self) -> Iterator[tuple[str, dict]]:
        for a in self.accounts:
            yield BEHAVIOUR, self._ev("account_opened", a, {
                "product": "credit_line", "segment": "retail", "limit": float(self.rng.choice([1000, 2500, 5000])),
                "currency": "EUR", "name": f"Customer {a}", "national_id": f"NI-{a}", "phone": f"+44-{a}"})
        for f in self.facilities:
            yield BEHAVIOUR, self._ev("account_opened", f, {
                "product": "project_facility", "segment": self.segment[f], "limit": 5_000_000.0, "currency": "EUR"})

    def step(self) -> tuple[str, dict]:
        r = self.rng
        self.t += int(r.expovariate(1.0 / self.c.step_ms)) + 1
        roll = r.random()
        if roll < 0.02:
            seg = r.choice(SEGMENTS[1:])
            self.index[seg] *= 1 + r.gauss(-0.01, 0.04)
            return MARKET, self._ev("sector_index", f"sector_index|{seg}", {"value": round(self.index[seg], 3)})
        if roll < 0.08 and self.facilities:
            f = r.choice(self.facilities)
            ds = 100_000.0
            stressed = self.index[self.segment[f]] < 90
            ebitda = ds * (r.uniform(0.7, 1.1) if stressed else r.uniform(1.1, 1.8))
            kind = r.random()
            if kind < 0.4:
                return PROJECT, self._ev("financial_statement", f, {"period": f"P{self.seq}", "revenue": ebitda * 3,
                                                                     "ebitda": ebitda, "debt_service": ds, "cash": ebitda / 2})
            if kind < 0.7:
                plan = 150_000.0
                return PROJECT, self._ev("cashflow_actual", f, {"period": f"P{self.seq}", "plan": plan,
                                                                 "actual": plan * r.uniform(0.5, 1.2)})
            if kind < 0.85:
                return PROJECT, self._ev("covenant_test", f, {"covenant": "dscr_min", "value": ebitda / ds,
                                                               "threshold": 1.2, "direction": "min"})
            planned = self.t - 30 * DAY
            return PROJECT, self._ev("milestone_report", f, {"milestone": "commissioning", "planned_date": planned,
                                                              "actual_date": None, "pct_complete": r.uniform(40, 95)})
        a = r.choice(self.accounts)
        bad, fraud = a in self.bad, a in self.fraud
        kind = r.random()
        if fraud and kind < 0.3:
            return BEHAVIOUR, self._ev(r.choice(["login_failed", "device_change", "drawdown"]), a,
                                       {"amount": float(r.randint(300, 900)), "device_fingerprint": f"fp-{r.random()}",
                                        "ip": f"203.0.113.{r.randint(1, 254)}"})
        if kind < 0.35:
            return BEHAVIOUR, self._ev("login", a, {"device_fingerprint": f"fp-{a}", "ip": "198.51.100.7"})
        if kind < 0.55:
            return BEHAVIOUR, self._ev("drawdown", a, {"amount": float(r.randint(20, 400 if not bad else 900)),
                                                       "channel": "app"})
        if kind < 0.65:
            return BEHAVIOUR, self._ev("purchase", a, {"amount": float(r.randint(5, 120)),
                                                       "merchant_id": f"M{r.randint(1, 50)}"})
        if kind < 0.72:
            return REPAYMENT, self._ev("statement_issued", a, {"statement_id": f"S{self.seq}", "amount_due":
                                                               float(r.randint(50, 500)), "due_date": self.t + 20 * DAY,
                                                               "balance": float(r.randint(100, 3000))})
        if kind < 0.85:
            if bad and r.random() < 0.6:
                return REPAYMENT, self._ev("payment_missed", a, {"statement_id": f"S{self.seq}",
                                                                 "days_past_due": r.choice([5, 15, 30, 45, 60]),
                                                                 "amount_due": float(r.randint(50, 500))})
            if bad and r.random() < 0.5:
                return REPAYMENT, self._ev("payment_partial", a, {"amount": 20.0, "amount_due": 100.0})
            return REPAYMENT, self._ev("payment_received", a, {"amount": float(r.randint(50, 500))})
        if kind < 0.9:
            return CREDIT, self._ev("bureau_inquiry", a, {"bureau": "B1", "inquiry_kind": r.choice(["hard", "soft"])})
        if kind < 0.93 and bad:
            return CREDIT, self._ev("external_delinquency", a, {"days_past_due": 60, "amount": 800.0})
        return BEHAVIOUR, self._ev("app_session", a, {"duration_s": float(r.randint(5, 600))})

    def events(self, n: int) -> Iterator[tuple[str, dict]]:
        """Account openings first (as many as fit in n), then n minus those of ongoing activity."""
        count = 0
        for item in self.opening():
            if count >= n:
                return
            yield item
            count += 1
        while count < n:
            yield self.step()
            count += 1

    def wire(self, n: int) -> Iterator[tuple[str, bytes, bytes]]:
        """(topic, key, value bytes); a `malformed_share` of them are corrupted in varied ways."""
        import orjson

        for topic, ev in self.events(n):
            key = (ev.get("account_id") or ev.get("facility_id") or f"{ev.get('indicator')}|{ev.get('segment')}")
            raw = orjson.dumps(ev)
            if self.c.malformed_share and ev["type"] != "account_opened" and self.rng.random() < self.c.malformed_share:
                raw = corrupt(raw, ev, self.rng)
            yield topic, key.encode(), raw


def corrupt(raw: bytes, ev: dict, rng: random.Random) -> bytes:
    """One of many ways upstream data goes wrong."""
    import orjson

    kind = rng.randrange(9)
    bad = dict(ev)
    if kind == 0:
        return raw[: max(1, len(raw) // 2)]                    # truncated / undecodable
    if kind == 1:
        return b"\xff\xfe" + raw                                # not UTF-8
    if kind == 2:
        bad.pop("event_time")                                   # missing field
    elif kind == 3:
        bad["event_time"] = str(bad["event_time"])              # wrong type
    elif kind == 4:
        bad["type"] = "teleport"                                # unknown type
    elif kind == 5:
        bad["schema_version"] = 0                               # unsupported version
    elif kind == 6:
        bad["event_time"] = 4_102_444_800_000                   # far future (2100)
    elif kind == 7:
        return orjson.dumps([1, 2, 3])                          # not an object
    else:
        bad["payload"] = {"padding": "x" * 70_000}              # oversized
    return orjson.dumps(bad)
