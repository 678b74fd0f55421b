"""A synthetic credit population with ground truth: events as upstream systems publish them, plus the outcomes.

SYNTHETIC DATA. Nothing here describes real people; every event's `source` is ``synthetic-population`` and every
truth record carries ``"synthetic": true``. File formats: docs/files.md. The default definition is the one in
`riskstream.core.outcomes` (>= 90 days past due or charged off).

What is simulated (all parameters in `PopulationConfig`, all randomness from one seed):

* **Retail credit lines.** Each has a limit, a statement cycle (statement, due date 25 days later, minimum payment
  5 % of the balance, at least 25), a payment style (transactors pay in full, revolvers hold a target
  utilisation) and a latent risk. Most accounts stay healthy. Some drift into **distress**: their latent risk rises
  over a lead period (30-150 days, or 0-15 days for a *sudden* default) and behaviour follows it. Each lead signal
  is present only with a probability (scaled by ``lead_strength``): utilisation creep and faster, larger drawdowns;
  partial payments; bursts of hard bureau inquiries; new debt elsewhere; a delinquency at another lender; contact
  and device changes. Then payments stop: ``payment_missed`` the day after each due date (1, 31, 61 days past due)
  and the default at 90 days past due (truth time). Some distress episodes **cure** (``cure_rate``): the same
  kinds of signals, milder on average, sometimes a missed payment of up to ~55 days, then the arrears are paid
  in full and behaviour returns to normal. Cured accounts are *good* in the truth.
* **Benign noise** in good accounts (scaled by ``noise``): a one-off missed payment paid 2-50 days late, a partial
  payment, a mortgage-shopping burst of inquiries, a car loan, high-utilisation revolvers, large occasional
  drawdowns, device and contact changes, a few failed logins.
* **Account takeover** (``fraud_share``): failed logins (usually >= 5, sometimes only 1-4), a new device and often
  a changed phone number, then 1-4 large drawdowns within the hour. Truth: ``fraud`` at the first such drawdown.
* **Project-finance facilities.** Quarterly financial statements (EBITDA, debt service, revenue, cash) and DSCR
  covenant tests (minimum 1.2), monthly cash flow against plan, monthly milestone reports for the third under
  construction. Distressed facilities' DSCR slides below 1.2 (breach) and below 1.0 over 90-180 days, cash falls
  behind plan, milestones slip; debt service stops and the facility defaults 90 days later. Some breach and
  recover; good facilities have noisy quarters.
* **Market.** A daily sector index per segment, a monthly benchmark rate and unemployment rate. An optional
  **shock** (``shock_day``) drops one segment's index by ``shock_size`` within 3 days, raises rates 50 bp (and
  unemployment 1 point for the retail segment) and starts extra distress among that segment's accounts and
  facilities (``shock_default_share``), on top of ``bad_share``.

Every distress episode is scheduled to resolve inside the history (no censored outcome): an account the truth
calls *good* really paid.

>>> pop = generate(PopulationConfig(accounts=40, facilities=3, days=200, seed=1, bad_share=0.1))
>>> sorted({t["outcome"] for t in pop.truth}), pop.records[0][1]["source"]
(['default', 'good'], 'synthetic-population')
>>> all(a[1]["event_time"] <= b[1]["event_time"] for a, b in zip(pop.records, pop.records[1:]))
True
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from typing import Iterator

from riskstream.core.contracts import make_event
from riskstream.core.outcomes import DEFAULT_DPD

BEHAVIOUR = "riskstream.events.behaviour"
REPAYMENT = "riskstream.events.repayment"
CREDIT = "riskstream.events.credit"
MARKET = "riskstream.events.market"
PROJECT = "riskstream.events.project"

SOURCE = "synthetic-population"
DAY = 86_400_000
HOUR = 3_600_000
MINUTE = 60_000
DEFAULT_START_MS = 1_760_000_000_000      # 2025-10-09: fixed, so the same flags write the same files
SEGMENTS = ("retail", "energy", "real_estate", "transport")
ACCOUNT_SEGMENT_WEIGHTS = (0.55, 0.15, 0.15, 0.15)
FACILITY_SEGMENTS = ("energy", "real_estate", "transport")
LIMITS = (1000.0, 2500.0, 5000.0, 10000.0)
LIMIT_WEIGHTS = (0.3, 0.35, 0.25, 0.1)
CYCLE_DAYS = 30
DUE_DAYS = 25
QUARTER_DAYS = 91


@dataclasses.dataclass(frozen=True)
class PopulationConfig:
    accounts: int = 10_000
    facilities: int = 200
    days: int = 300                       # length of the history
    seed: int = 7
    start_ms: int = DEFAULT_START_MS      # event time of the start of the history
    bad_share: float = 0.06               # credit lines that default within the history
    cure_rate: float = 0.4                # share of distress episodes that cure (cured accounts are good)
    fraud_share: float = 0.003            # credit lines hit by an account-takeover burst
    lead_strength: float = 1.0            # how often lead signals precede a default (1 = as documented, 0 = never)
    noise: float = 1.0                    # how much benign noise good accounts show (1 = as documented)
    facility_bad_share: float = 0.08      # facilities that default within the history
    facility_cure_rate: float = 0.4
    shock_day: int | None = None          # day of the market shock (None = no shock)
    shock_segment: str = "transport"
    shock_size: float = 0.25              # fall of the segment's sector index
    shock_default_share: float = 0.06     # extra defaults among the shocked segment's accounts and facilities

    def check(self) -> None:
        if self.accounts < 0 or self.facilities < 0:
            raise ValueError("accounts and facilities must be >= 0")
        if self.days < 2 * DEFAULT_DPD:
            raise ValueError(f"days must be >= {2 * DEFAULT_DPD}: a default needs a lead period plus {DEFAULT_DPD} "
                             "days past due inside the history")
        for name in ("bad_share", "cure_rate", "fraud_share", "facility_bad_share", "facility_cure_rate",
                     "shock_size", "shock_default_share"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if self.lead_strength < 0 or self.noise < 0:
            raise ValueError("lead_strength and noise must be >= 0")
        if self.shock_segment not in SEGMENTS:
            raise ValueError(f"shock_segment must be one of {', '.join(SEGMENTS)}")
        if self.shock_day is not None and not 0 <= self.shock_day < self.days - 30:
            raise ValueError(f"shock_day must be in 0..{self.days - 31}")


@dataclasses.dataclass
class Population:
    records: list[tuple[str, dict]]       # (upstream topic, event as published), in publication order
    truth: list[dict]                     # one per account / facility
    summary: dict


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    n, p, target = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= target:
            return n
        n += 1


class _Out:
    """One entity's events as (t_ms, local seq, topic, type, payload); ids and envelopes are added at the end."""

    __slots__ = ("entity", "index", "items", "start", "end")

    def __init__(self, entity: str, index: int, start_ms: int, end_ms: int):
        self.entity, self.index, self.items = entity, index, []
        self.start, self.end = start_ms, end_ms

    def add(self, t_ms: int, topic: str, type_: str, payload: dict) -> None:
        if self.start <= t_ms < self.end:
            self.items.append((int(t_ms), len(self.items), topic, type_, payload))


# ---- retail credit lines ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Plan:
    """What happens to one credit line (decided up front, then acted out)."""
    role: str = "steady"                  # steady | default | cure | fraud
    cohort: str = "steady"
    onset: float = 0.0                    # distress: day the latent risk starts to rise
    first_miss: float = 0.0               # default: the first due date left unpaid (the day)
    peak: float = 0.0                     # cure: day of the worst point
    recover: float = 0.0                  # cure: day the latent risk is back to normal
    severity: float = 0.0                 # cure: peak latent risk
    fraud_day: float = 0.0
    after: float = 0.0                    # one-off miss / shock: earliest day for the miss


class _Line:
    def __init__(self, pop: "_Generator", index: int, plan: _Plan, segment: str):
        self.g, self.c, self.plan, self.segment = pop, pop.c, plan, segment
        self.rng = random.Random(f"{pop.c.seed}/acc/{index}")
        self.id = f"ACC{index:06d}"
        self.out = _Out(self.id, index, pop.start, pop.end)

    # latent risk 0..1 at day d
    def risk(self, d: float) -> float:
        p = self.plan
        if p.role == "default":
            if d >= p.first_miss:
                return 1.0
            span = max(p.first_miss - p.onset, 1.0)
            return _clip((d - p.onset) / span) ** 1.3
        if p.role == "cure":
            if d <= p.onset or d >= p.recover:
                return 0.0
            if d <= p.peak:
                return p.severity * (d - p.onset) / max(p.peak - p.onset, 1.0)
            return p.severity * (p.recover - d) / max(p.recover - p.peak, 1.0)
        return 0.0

    def ms(self, day: float) -> int:
        return self.g.start + int(day * DAY)

    def build(self) -> dict:
        c, rng, plan, out = self.c, self.rng, self.plan, self.out
        s, noise = c.lead_strength, c.noise
        limit = rng.choices(LIMITS, LIMIT_WEIGHTS)[0]
        revolver = rng.random() < 0.65
        high_util = revolver and rng.random() < 0.12 * noise
        target = rng.uniform(0.82, 0.97) if high_util else rng.uniform(0.1, 0.7) if revolver else 0.0
        spend = limit * (rng.uniform(0.04, 0.12) if revolver else rng.uniform(0.05, 0.25))
        open_day = rng.uniform(0.0, 3.0)
        fp = f"fp-{self.id}-0"
        ip = f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        out.add(self.ms(open_day), BEHAVIOUR, "account_opened", {
            "product": "credit_line", "segment": self.segment, "limit": limit, "currency": "EUR",
            "name": f"Synthetic Customer {self.id}", "national_id": f"SYN-{self.id}", "phone": f"+00-{self.id}"})

        distressed = plan.role in ("default", "cure")
        scale = 1.0 if plan.role == "default" else min(1.0, plan.severity / 0.7)

        def signal(q: float) -> bool:
            return distressed and rng.random() < min(1.0, q * s * scale)

        creep, partial, inquiries, new_debt, ext_del, contact = (
            signal(0.85), signal(0.75), signal(0.6), signal(0.4), signal(0.35), signal(0.2))
        partial_at = rng.uniform(0.25, 0.5)
        token_payer = plan.role == "default" and rng.random() < 0.3
        # benign noise
        one_off = plan.cohort == "one_off_miss"
        noise_partial = plan.role in ("steady", "fraud") and rng.random() < 0.03 * noise
        shopping = rng.random() < 0.06 * noise
        car_loan = rng.random() < 0.05 * noise
        other_delinquency = plan.role == "steady" and rng.random() < 0.005 * noise
        big_drawdown_rate = 0.05 * noise / 12            # per cycle
        end_day = (plan.first_miss + DEFAULT_DPD) if plan.role == "default" else float(c.days)

        # -- balance-moving events, in time order through a heap -------------------------------------------------
        heap: list = []
        seq = 0

        def push(day, kind, data=None):
            nonlocal seq
            seq += 1
            heapq.heappush(heap, (day, seq, kind, data))

        carried = target * limit if revolver else spend * rng.uniform(0.3, 1.0)
        if carried >= 1:
            push(open_day + 1 / 1440, "carried", round(carried, 2))
        first_statement = open_day + rng.uniform(5.0, 35.0)
        if plan.role == "default":                        # the first miss falls on a due date
            lead = plan.first_miss - plan.onset
            first_due = first_statement + DUE_DAYS
            k = max(0, math.ceil((plan.first_miss - first_due) / CYCLE_DAYS))
            while k > 0 and first_due + k * CYCLE_DAYS + DEFAULT_DPD > c.days - 1:
                k -= 1
            plan.first_miss = first_due + k * CYCLE_DAYS
            plan.onset = max(0.0, plan.first_miss - lead)
            end_day = plan.first_miss + DEFAULT_DPD
        d = first_statement
        while d < end_day:
            push(d, "statement")
            d += CYCLE_DAYS
        # spending: one Poisson draw per 10-day slice, at the slice's latent risk
        d = open_day
        while d < end_day:
            r = self.risk(d)
            after_miss = plan.role == "default" and d >= plan.first_miss
            boost = r if creep else 0.0
            for _ in range(_poisson(rng, (1.2 / 3) * (0.5 if after_miss else 1.0))):
                push(d + rng.uniform(0, 10), "purchase", spend / 2.0 * rng.lognormvariate(0, 0.5))
            for _ in range(_poisson(rng, (0.8 / 3) * (1 + 3 * boost) * (0.5 if after_miss else 1.0))):
                push(d + rng.uniform(0, 10), "drawdown", spend / 2.5 * rng.lognormvariate(0, 0.6) * (1 + 1.5 * boost))
            if rng.random() < big_drawdown_rate / 3:
                push(d + rng.uniform(0, 10), "drawdown_share", rng.uniform(0.3, 0.6))
            d += 10
        if plan.role == "default" and creep:              # bust-out after the first miss
            for _ in range(rng.randint(1, 3)):
                push(plan.first_miss + rng.uniform(0, 25), "drawdown_share", rng.uniform(0.3, 0.8))

        # -- non-balance events ---------------------------------------------------------------------------------
        for _ in range(_poisson(rng, 0.7 * (end_day - open_day) / CYCLE_DAYS)):
            t = self.ms(rng.uniform(open_day, end_day))
            out.add(t, BEHAVIOUR, "login", {"device_fingerprint": fp, "ip": ip})
        for _ in range(_poisson(rng, 0.05 * (end_day - open_day) / CYCLE_DAYS)):
            out.add(self.ms(rng.uniform(open_day, end_day)), CREDIT, "bureau_inquiry",
                    {"bureau": rng.choice(["B1", "B2"]), "inquiry_kind": "soft"})
        if rng.random() < 0.08 * noise:                   # forgot the password
            t = rng.uniform(open_day, end_day)
            for i in range(rng.randint(1, 3)):
                out.add(self.ms(t) + i * 40_000, BEHAVIOUR, "login_failed", {"device_fingerprint": fp, "ip": ip})
        if rng.random() < 0.10 * noise * c.days / 365:    # a new phone
            t = rng.uniform(open_day, end_day)
            fp = f"fp-{self.id}-1"
            out.add(self.ms(t), BEHAVIOUR, "device_change", {"device_fingerprint": fp})
        if rng.random() < 0.05 * noise * c.days / 365:
            out.add(self.ms(rng.uniform(open_day, end_day)), BEHAVIOUR, "contact_change",
                    {"field": rng.choice(["phone", "email", "address"]), "new_value": "synthetic"})
        if shopping:                                      # mortgage or car shopping
            t = rng.uniform(open_day, end_day - 20)
            for _ in range(rng.randint(2, 4)):
                out.add(self.ms(t + rng.uniform(0, 14)), CREDIT, "bureau_inquiry",
                        {"bureau": rng.choice(["B1", "B2"]), "inquiry_kind": "hard"})
        if car_loan:
            out.add(self.ms(rng.uniform(open_day, end_day)), CREDIT, "new_debt",
                    {"amount": float(rng.randint(5, 25) * 1000), "lender_kind": "auto"})
        if other_delinquency:
            out.add(self.ms(rng.uniform(open_day, end_day)), CREDIT, "external_delinquency",
                    {"days_past_due": rng.choice([30, 30, 60]), "amount": float(rng.randint(50, 500))})
        if distressed:
            lo = max(plan.onset, open_day + 1 / 24)           # a history that starts in distress
            hi = plan.first_miss if plan.role == "default" else plan.peak
            if inquiries:
                d = lo
                while d < hi + 15:
                    for _ in range(_poisson(rng, 1.2 * self.risk(d) + 0.2)):
                        out.add(self.ms(d + rng.uniform(0, 15)), CREDIT, "bureau_inquiry",
                                {"bureau": rng.choice(["B1", "B2"]), "inquiry_kind": "hard"})
                    d += 15
            if new_debt:
                for _ in range(1 + (rng.random() < 0.3)):
                    out.add(self.ms(rng.uniform(lo, hi + 10)), CREDIT, "new_debt",
                            {"amount": float(rng.randint(3, 30) * 100), "lender_kind": rng.choice(["payday", "bnpl",
                                                                                                  "personal"])})
            if ext_del and (plan.role == "default" or plan.severity > 0.6):
                t = max(lo, hi - rng.uniform(5, 45))
                out.add(self.ms(t), CREDIT, "external_delinquency",
                        {"days_past_due": rng.choice([30, 30, 60]), "amount": float(rng.randint(100, 2000))})
            if contact:
                t = rng.uniform(lo, hi + 20)
                out.add(self.ms(t), BEHAVIOUR, "contact_change", {"field": "phone", "new_value": "synthetic"})
                if rng.random() < 0.5:
                    fp = f"fp-{self.id}-2"
                    out.add(self.ms(t + rng.uniform(0, 3)), BEHAVIOUR, "device_change", {"device_fingerprint": fp})
        fraud_time = None
        if plan.role == "fraud":
            self._takeover(push, plan.fraud_day, ip)

        # -- act out the balance in time order -------------------------------------------------------------------
        bal = 0.0
        arrears = 0.0                 # unpaid minimum dues (defaulters after the first miss)
        one_off_done = False
        covered_until = -1.0          # a late payment also covered the statements due before this day
        default_time = None
        while heap:
            day, _, kind, data = heapq.heappop(heap)
            t = self.ms(day)
            if kind in ("purchase", "drawdown", "drawdown_share", "carried", "fraud_drawdown"):
                avail = limit - bal
                amount = data if kind in ("purchase", "drawdown", "carried") else avail * data
                amount = round(min(amount, avail), 2)
                if amount < 5:
                    continue
                bal += amount
                if kind in ("purchase", "carried"):
                    out.add(t, BEHAVIOUR, "purchase", {"amount": amount, "merchant_id":
                                                       "carried-balance" if kind == "carried" else
                                                       f"M{rng.randint(1, 400)}"})
                else:
                    out.add(t, BEHAVIOUR, "drawdown", {"amount": amount, "channel": "web" if kind == "fraud_drawdown"
                                                       else "app"})
                    if kind == "fraud_drawdown" and fraud_time is None:
                        fraud_time = t
            elif kind == "statement":
                due_day = day + DUE_DAYS
                minimum = round(max(min(bal, 25.0), 0.05 * bal), 2)
                sid = f"S{self.id}-{int(day)}"
                owed = round(minimum + arrears, 2)
                out.add(t, REPAYMENT, "statement_issued", {"statement_id": sid, "amount_due": owed,
                                                           "due_date": self.ms(due_day), "balance": round(bal, 2)})
                if owed <= 0 or due_day <= covered_until:
                    continue
                r = self.risk(due_day)                   # how the customer stands when the payment is due
                if plan.role == "default" and due_day >= plan.first_miss - 0.5:
                    dpd = int(round(due_day - plan.first_miss))
                    if dpd + 1 < DEFAULT_DPD:
                        push(due_day + 1, "missed", (sid, dpd + 1, owed))
                    arrears = owed
                    if token_payer and rng.random() < 0.5:
                        push(day + rng.uniform(5, 24), "partial", (sid, round(owed * rng.uniform(0.1, 0.4), 2),
                                                                   owed))
                    continue
                if plan.role == "cure" and not one_off_done and plan.severity >= 0.6 and due_day >= plan.peak - 10:
                    one_off_done = True
                    late = 5 + (plan.severity - 0.6) / 0.3 * 50 * rng.uniform(0.6, 1.0)
                    self._late_payment(push, sid, due_day, owed, late, bal)
                    covered_until = due_day + late
                    continue
                if one_off and not one_off_done and day >= plan.after:
                    one_off_done = True
                    u = rng.random()
                    late = rng.uniform(2, 15) if u < 0.7 else rng.uniform(15, 30) if u < 0.9 else rng.uniform(30, 50)
                    self._late_payment(push, sid, due_day, owed, late, bal)
                    covered_until = due_day + late
                    continue
                if (partial and r >= partial_at) or (noise_partial and rng.random() < 0.15):
                    noise_partial = False if not partial else noise_partial
                    push(day + rng.uniform(12, 24.5), "partial", (sid, round(owed * rng.uniform(0.3, 0.9), 2), owed))
                    continue
                if revolver or (creep and r > 0.2):
                    pay = bal - target * limit + spend if not (creep and r > 0.2) else minimum
                    pay = max(minimum, min(pay, bal))
                else:
                    pay = bal
                push(day + rng.uniform(4, 24.5), "pay", (sid, round(pay, 2)))
            elif kind == "pay":
                sid, amount = data
                amount = round(min(amount, max(bal, 0.0)), 2)
                if amount > 0:
                    bal -= amount
                    out.add(t, REPAYMENT, "payment_received", {"amount": amount, "statement_id": sid})
            elif kind == "partial":
                sid, amount, owed = data
                amount = round(min(amount, max(bal, 0.0)), 2)
                if amount > 0 and owed > 0:
                    bal -= amount
                    out.add(t, REPAYMENT, "payment_partial", {"amount": amount, "amount_due": owed,
                                                              "statement_id": sid})
            elif kind == "missed":
                sid, dpd, owed = data
                out.add(t, REPAYMENT, "payment_missed", {"statement_id": sid, "days_past_due": dpd,
                                                         "amount_due": owed})
        if plan.role == "default":
            default_time = self.ms(plan.first_miss + DEFAULT_DPD)
            out.add(default_time, REPAYMENT, "payment_missed", {
                "statement_id": f"S{self.id}-{int(plan.first_miss)}", "days_past_due": DEFAULT_DPD,
                "amount_due": round(arrears, 2)})
            out.end = default_time + 1                    # charged off: nothing after the default
            out.items = [it for it in out.items if it[0] <= default_time]
        truth = {"entity": self.id, "outcome": "good", "time": None, "synthetic": True, "cohort": plan.cohort}
        if plan.role == "default":
            truth.update(outcome="default", time=default_time)
        elif plan.role == "fraud":
            if fraud_time is not None:
                truth.update(outcome="fraud", time=fraud_time)
            else:
                truth["cohort"] = "takeover_without_drawdown"  # the line had nothing left to draw
        return truth

    def _late_payment(self, push, sid, due_day, owed, late, bal):
        """Missed the due date, paid everything `late` days after it (one or two missed-payment events)."""
        push(due_day + 1, "missed", (sid, 1, owed))
        if late > CYCLE_DAYS + 1:
            push(due_day + CYCLE_DAYS + 1, "missed", (sid, CYCLE_DAYS + 1, round(owed * 2, 2)))
        push(due_day + late, "pay", (sid, round(max(owed * (2 if late > CYCLE_DAYS else 1), 0.5 * bal), 2)))

    def _takeover(self, push, day, ip) -> None:
        rng, out = self.rng, self.out
        t0 = self.ms(day)
        n_failed = rng.randint(5, 12) if rng.random() < 0.75 else rng.randint(1, 4)
        start = t0 - int(rng.uniform(0.5, 6) * HOUR)
        bad_ip = f"203.0.113.{rng.randint(1, 254)}"
        for i in range(n_failed):
            out.add(start + i * int(rng.uniform(20, 200) * 1000), BEHAVIOUR, "login_failed",
                    {"device_fingerprint": f"fp-x-{self.id}-{i}", "ip": bad_ip})
        if rng.random() < 0.85:
            out.add(t0 - int(rng.uniform(5, 60) * MINUTE), BEHAVIOUR, "device_change",
                    {"device_fingerprint": f"fp-x-{self.id}"})
        if rng.random() < 0.5:
            out.add(t0 - int(rng.uniform(5, 60) * MINUTE), BEHAVIOUR, "contact_change",
                    {"field": "phone", "new_value": "synthetic"})
        out.add(t0 - int(rng.uniform(1, 4) * MINUTE), BEHAVIOUR, "login",
                {"device_fingerprint": f"fp-x-{self.id}", "ip": bad_ip})
        d = day
        for _ in range(rng.randint(1, 4)):
            push(d, "fraud_drawdown", rng.uniform(0.3, 0.7))
            d += rng.uniform(2, 30) / 1440


# ---- project-finance facilities ---------------------------------------------------------------------------------

class _Facility:
    def __init__(self, pop: "_Generator", index: int, role: str, cohort: str, segment: str, onset: float,
                 lead: float):
        self.g, self.c = pop, pop.c
        self.rng = random.Random(f"{pop.c.seed}/fac/{index}")
        self.id = f"FAC{index:04d}"
        self.role, self.cohort, self.segment, self.onset, self.lead = role, cohort, segment, onset, lead
        self.out = _Out(self.id, 10_000_000 + index, pop.start, pop.end)

    def ms(self, day: float) -> int:
        return self.g.start + int(day * DAY)

    def build(self) -> dict:
        c, rng, out = self.c, self.rng, self.out
        base = rng.uniform(1.35, 1.9)
        ds = float(rng.randint(2, 20) * 100_000)          # debt service per quarter
        construction = rng.random() < 0.3
        noisy_quarter = rng.random() < 0.15 * c.noise
        dip = rng.uniform(0.95, 1.15)                     # cure: lowest DSCR
        first_miss = self.onset + self.lead
        default_day = first_miss + DEFAULT_DPD if self.role == "default" else None
        end = default_day if default_day is not None else float(c.days)
        shock = self.g.shock_factor

        def dscr(d: float) -> float:
            x = base
            if self.role == "default":
                x = base - (base - 0.55) * _clip((d - self.onset) / self.lead)
            elif self.role == "cure":
                mid, half = self.onset + self.lead / 2, self.lead / 2
                x = base - (base - dip) * _clip(1 - abs(d - mid) / half)
            return x * shock(self.segment, d)

        open_day = rng.uniform(0.0, 2.0)
        out.add(self.ms(open_day), BEHAVIOUR, "account_opened", {
            "product": "project_facility", "segment": self.segment, "limit": ds * 20, "currency": "EUR"})
        q_off = rng.uniform(5, QUARTER_DAYS)
        d, q = q_off, 0
        while d < end:
            x = dscr(d) * (1 + rng.gauss(0, 0.04))
            if noisy_quarter and q == 1:
                x = min(x, rng.uniform(1.08, 1.22))
            ebitda = round(ds * max(x, 0.05), 2)
            period = f"Q{q}"
            out.add(self.ms(d), PROJECT, "financial_statement", {
                "period": period, "revenue": round(ebitda * rng.uniform(2.5, 3.5), 2), "ebitda": ebitda,
                "debt_service": ds, "cash": round(max(ebitda - ds, 0) + ds * rng.uniform(0.1, 0.6), 2)})
            out.add(self.ms(d) + HOUR, PROJECT, "covenant_test", {
                "covenant": "dscr_min", "value": round(ebitda / ds, 4), "threshold": 1.2, "direction": "min"})
            d += QUARTER_DAYS
            q += 1
        m_off = open_day + rng.uniform(1, CYCLE_DAYS)
        plan = round(ds / 3 * base, 2)
        d, m = m_off, 0
        while d < end:
            actual = plan * dscr(d) / base * (1 + rng.gauss(0, 0.08 * max(c.noise, 0.1)))
            out.add(self.ms(d), PROJECT, "cashflow_actual", {"period": f"M{m}", "plan": plan,
                                                             "actual": round(actual, 2)})
            d += CYCLE_DAYS
            m += 1
        if construction:
            planned = rng.uniform(90, c.days + 60)
            pace = 100.0 / max(planned - open_day, 30)
            d, done, reached = m_off + 3, rng.uniform(10, 40), None
            while d < end and reached is None:
                slow = 0.35 if self.role == "default" and d > self.onset else (
                    0.7 if self.role == "cure" and self.onset < d < self.onset + self.lead else 1.0)
                done = min(100.0, done + pace * CYCLE_DAYS * slow * rng.uniform(0.8, 1.2))
                if done >= 100.0:
                    reached = d
                out.add(self.ms(d), PROJECT, "milestone_report", {
                    "milestone": "commissioning", "planned_date": self.ms(planned),
                    "actual_date": self.ms(reached) if reached is not None else None,
                    "pct_complete": round(done, 1)})
                d += CYCLE_DAYS
        truth = {"entity": self.id, "outcome": "good", "time": None, "synthetic": True, "cohort": self.cohort}
        if default_day is not None:
            truth.update(outcome="default", time=self.ms(default_day))
        return truth


# ---- the whole population ---------------------------------------------------------------------------------------

class _Generator:
    def __init__(self, config: PopulationConfig):
        config.check()
        self.c = config
        self.rng = random.Random(config.seed)
        self.start = config.start_ms
        self.end = config.start_ms + config.days * DAY

    def shock_factor(self, segment: str, d: float) -> float:
        """Multiplier on a facility's DSCR from the market shock (1 = none)."""
        c = self.c
        if c.shock_day is None or segment != c.shock_segment or d < c.shock_day:
            return 1.0
        return 1.0 - 0.6 * c.shock_size * math.exp(-(d - c.shock_day) / 120.0)

    # -- who is who ---------------------------------------------------------------------------------------------
    def plan_accounts(self) -> tuple[list[_Plan], list[str]]:
        c, rng = self.c, self.rng
        n = c.accounts
        segments = rng.choices(SEGMENTS, ACCOUNT_SEGMENT_WEIGHTS, k=n)
        plans = [_Plan() for _ in range(n)]
        free = list(range(n))
        rng.shuffle(free)
        s = c.lead_strength
        sudden_share = _clip(0.2 + 0.3 * (1 - s), 0, 0.9)
        last_first_miss = c.days - DEFAULT_DPD - 1

        def take(k, pool):
            chosen = pool[:k]
            del pool[:k]
            return chosen

        n_bad = int(round(c.bad_share * n))
        n_cure = int(round(n_bad * c.cure_rate / (1 - c.cure_rate)))
        n_fraud = int(round(c.fraud_share * n))
        for i in take(n_bad, free):
            p = plans[i]
            p.role, p.cohort = "default", "default"
            p.first_miss = rng.uniform(10.0 + 30, last_first_miss)
            if rng.random() < sudden_share:
                lead, p.cohort = rng.uniform(0, 15), "default_sudden"
            else:
                lead = rng.uniform(30, 150)
            p.onset = max(0.0, p.first_miss - lead)
        for i in take(n_cure, free):
            self._cure(plans[i], rng.uniform(0, c.days - 170))
        for i in take(n_fraud, free):
            p = plans[i]
            p.role, p.cohort, p.fraud_day = "fraud", "takeover", rng.uniform(30, c.days - 5)
        shock_pool = [i for i in free if segments[i] == c.shock_segment]
        if c.shock_day is not None:
            k = int(round(c.shock_default_share * len(shock_pool)))
            k_cure = int(round(k * c.cure_rate / (1 - c.cure_rate)))
            for i in shock_pool[:k]:
                onset = c.shock_day + rng.uniform(0, 45)
                lead = min(rng.uniform(20, 90), last_first_miss - onset)
                if lead < 5:
                    continue
                p = plans[i]
                p.role, p.cohort, p.onset, p.first_miss = "default", "default_shock", onset, onset + lead
            for i in shock_pool[k:k + k_cure]:
                if c.shock_day + 170 < c.days:
                    self._cure(plans[i], c.shock_day + rng.uniform(0, 45), cohort="cured_shock")
            taken = set(shock_pool[:k + k_cure])
            free = [i for i in free if i not in taken]
        # benign one-off misses among the remaining good accounts (twice as likely in a shocked segment)
        for i in free:
            if plans[i].role != "steady":
                continue
            shocked = c.shock_day is not None and segments[i] == c.shock_segment
            if rng.random() < 0.07 * c.noise * (2 if shocked else 1):
                plans[i].cohort = "one_off_miss"
                lo = c.shock_day if shocked else 20.0
                plans[i].after = rng.uniform(lo, c.days - 60)
        return plans, segments

    def _cure(self, p: _Plan, onset: float, cohort: str = "cured") -> None:
        rng = self.rng
        p.role, p.cohort = "cure", cohort
        p.onset = onset
        p.peak = onset + rng.uniform(20, 90)
        p.recover = p.peak + rng.uniform(30, 70)
        p.severity = rng.uniform(0.35, 0.9)

    def plan_facilities(self) -> list[tuple[str, str, str, float, float]]:
        c, rng = self.c, self.rng
        n = c.facilities
        segs = [FACILITY_SEGMENTS[i % len(FACILITY_SEGMENTS)] for i in range(n)]
        rng.shuffle(segs)
        roles = [("steady", "steady", 0.0, 1.0)] * n
        order = list(range(n))
        rng.shuffle(order)
        n_bad = int(round(c.facility_bad_share * n))
        n_cure = int(round(n_bad * c.facility_cure_rate / (1 - c.facility_cure_rate)))
        for i in order[:n_bad]:
            lead = rng.uniform(90, 180)
            onset = rng.uniform(0, max(c.days - DEFAULT_DPD - 1 - lead, 0))
            roles[i] = ("default", "default", onset, lead)
        for i in order[n_bad:n_bad + n_cure]:
            lead = rng.uniform(90, 180)
            roles[i] = ("cure", "cured", rng.uniform(0, max(c.days - lead - 5, 0)), lead)
        if c.shock_day is not None:
            pool = [i for i in order[n_bad + n_cure:] if segs[i] == c.shock_segment]
            k = int(round(c.shock_default_share * 3 * len(pool)))   # facilities are more exposed to their sector
            for i in pool[:k]:
                onset = c.shock_day + rng.uniform(0, 30)
                lead = min(rng.uniform(60, 150), c.days - DEFAULT_DPD - 1 - onset)
                if lead >= 30:
                    roles[i] = ("default", "default_shock", onset, lead)
        return [(r, co, segs[i], on, le) for i, (r, co, on, le) in enumerate(roles)]

    # -- market ------------------------------------------------------------------------------------------------
    def market(self) -> _Out:
        c = self.c
        rng = random.Random(f"{c.seed}/market")
        out = _Out("market", -1, self.start, self.end)
        level = {s: 100.0 for s in SEGMENTS}
        rate, unemployment = 3.5, 5.0
        for day in range(c.days):
            for seg in SEGMENTS:
                v = level[seg] * math.exp(rng.gauss(0.0002, 0.008))
                if c.shock_day is not None and seg == c.shock_segment:
                    if c.shock_day <= day < c.shock_day + 3:
                        v *= (1 - c.shock_size) ** (1 / 3)
                    elif c.shock_day + 3 <= day < c.shock_day + 63:
                        v *= (1 / (1 - c.shock_size)) ** (0.3 / 60)   # a partial recovery over two months
                level[seg] = v
                out.items.append((self.start + day * DAY + 5 * MINUTE, len(out.items), MARKET, "sector_index",
                                  (f"sector_index|{seg}", {"value": round(v, 3)})))
            if day % CYCLE_DAYS == 0 or (c.shock_day is not None and day == c.shock_day + 2):
                if c.shock_day is not None and day == c.shock_day + 2:
                    rate += 0.5
                    if c.shock_segment == "retail":
                        unemployment += 1.0
                else:
                    rate = max(0.25, rate + rng.choice([-0.25, 0.0, 0.0, 0.25]))
                    unemployment = max(2.0, unemployment + rng.gauss(0, 0.05))
                t = self.start + day * DAY + 6 * MINUTE
                out.items.append((t, len(out.items), MARKET, "rate_change", ("rate_change|all", {"value": rate})))
                out.items.append((t + 1, len(out.items), MARKET, "macro_indicator",
                                  ("unemployment|all", {"value": round(unemployment, 2)})))
        return out

    def run(self) -> Population:
        c = self.c
        plans, segments = self.plan_accounts()
        outs: list[_Out] = [self.market()]
        truth: list[dict] = []
        for i, plan in enumerate(plans):
            line = _Line(self, i, plan, segments[i])
            truth.append(line.build())
            outs.append(line.out)
        for i, (role, cohort, seg, onset, lead) in enumerate(self.plan_facilities()):
            f = _Facility(self, i, role, cohort, seg, onset, lead)
            truth.append(f.build())
            outs.append(f.out)
        merged = sorted(((it[0], o.index, it[1], o, it) for o in outs for it in o.items), key=lambda x: x[:3])
        records = []
        for t, _, _, o, (_, k, topic, type_, payload) in merged:
            if o.entity == "market":
                entity, payload = payload
            else:
                entity = o.entity
            ev = make_event(type_, entity, payload, event_time=t, event_id=f"pop{c.seed}-{entity}-{k}",
                            producer_time=t + 5, source=SOURCE)
            records.append((topic, ev))
        return Population(records, truth, summarise(c, records, truth))


def summarise(config: PopulationConfig, records: list, truth: list[dict]) -> dict:
    by: dict[str, int] = {}
    for t in truth:
        key = f"{'facility' if t['entity'].startswith('FAC') else 'account'}:{t['outcome']}:{t.get('cohort')}"
        by[key] = by.get(key, 0) + 1
    accounts = sum(1 for t in truth if not t["entity"].startswith("FAC"))
    defaults = sum(1 for t in truth if t["outcome"] == "default" and not t["entity"].startswith("FAC"))
    return {"synthetic": True, "config": dataclasses.asdict(config), "events": len(records),
            "first_event_time": records[0][1]["event_time"] if records else None,
            "last_event_time": records[-1][1]["event_time"] if records else None,
            "accounts": accounts, "facilities": len(truth) - accounts,
            "account_default_share": round(defaults / accounts, 4) if accounts else 0.0,
            "cohorts": dict(sorted(by.items()))}


def generate(config: PopulationConfig = PopulationConfig()) -> Population:
    """The whole population in memory: records in publication (event-time) order, truth, a summary."""
    return _Generator(config).run()


def wire(records: list[tuple[str, dict]]) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value bytes) as a producer would send them."""
    import orjson

    from riskstream.offline.files import entity_key

    for topic, ev in records:
        yield topic, entity_key(ev).encode(), orjson.dumps(ev)
