"""Backtest: run policies over a history with known outcomes and measure what they would have done.

``riskstream backtest --events FILE --truth FILE [--policy FILE ...] [--out DIR]`` (file formats: docs/files.md).
Each policy runs alone, as the live champion, through the offline driver (the same pure steps as live, event time
throughout, every policy from the same model), champion first; by default the bundled champion and challenger.
Then, per policy, from the truth and the commands it would have sent (docs/backtest.md has every definition):

* **catch rate** at 30/60/90 days: the share of credit-line defaulters that got a restrictive command
  (REDUCE_LIMIT, FREEZE or CLOSE) at least that many days before the default, and the lead-time distribution;
* **good-account harm**: the share of good credit lines closed, frozen or limited, only warned;
* **exposure at default** with and without the policy's limit cuts, freezes and closes, and the exposure saved;
* **time to act**: from an account's first lead signal to its first restrictive command;
* **fraud**: the share of takeover bursts frozen (or closed) before the first fraudulent drawdown completes;
* **project finance**: the share of facility defaults preceded by REPAYMENT_PLAN or WARN at least one period
  earlier;
* counts of commands by action, by rule and by reason code.

To draw catch rate against harm, the same run also carries copies of the policy with every PD cutoff scaled by
the ``--sweep`` factors, in shadow; their decisions go through the same actuator state machine and breaker
offline (`OfflineActuator`) while the run goes. Factor 1 is a self-check: it must reproduce the policy's own
commands.

Each policy runs in its own process (``--jobs``), reading the events file as a stream; a run keeps only what the
figures read. The report carries the backtest's own throughput (events/s) and each run's peak memory.

>>> truth = {"A": {"entity": "A", "outcome": "default", "time": 100 * DAY}, "B": {"entity": "B", "outcome": "good",
...          "time": None}}
>>> ledger = Ledger()
>>> ledger.open("A", "credit_line", "retail", 1000.0, 0); ledger.open("B", "credit_line", "retail", 1000.0, 0)
>>> cmds = [{"account_id": "A", "action": "REDUCE_LIMIT", "issued_at": 20 * DAY, "decision_id": "d1",
...          "params": {"limit_factor": 0.7}}]
>>> m = compute_metrics(truth, ledger, [], cmds)
>>> m["catch_rate_30d"], m["catch_rate_60d"], m["catch_rate_90d"], m["lead_days_median"], m["good_limited_share"]
(1.0, 1.0, 0.0, 80.0, 0.0)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from riskstream.core.actuator import ActuatorConfig, MassCloseBreaker, step
from riskstream.core.outcomes import DEFAULT_DEFINITION, RESTRICTIVE_COMMANDS
from riskstream.offline.files import entity_key, iter_events, read_truth

DAY = 86_400_000
HOUR = 3_600_000
DEFAULT_SWEEP = (0.5, 0.7, 1.0, 1.4, 2.0)
PERIOD_DAYS = 30              # one reporting period of a facility (monthly cash-flow reports)
FRAUD_WINDOW_MS = 24 * HOUR   # a freeze counts for a takeover if sent within this window up to the first drawdown
#: Events whose first occurrence on a credit line is its "first lead signal" (time-to-act metric).
LEAD_SIGNAL_TYPES = frozenset({"payment_partial", "payment_missed", "external_delinquency"})
_FLOW_SIGN = {"drawdown": 1.0, "purchase": 1.0, "payment_received": -1.0, "payment_partial": -1.0}
_ACCOUNT_FAMILIES_TOPICS = ("riskstream.events.behaviour", "riskstream.events.repayment", "riskstream.events.credit",
                            "riskstream.events.project")


# ---- the ledger: what the metrics need from the events, collected while the file is read once ------------------

@dataclasses.dataclass
class Entity:
    product: str = ""
    segment: str = ""
    limit: float = 0.0
    opened: int = 0
    flows: list = dataclasses.field(default_factory=list)       # (event time, signed amount, is_draw)
    first_signal: int | None = None


class Ledger:
    """Per entity: product, limit, balance movements and the first lead signal; plus the order of account events
    and the payments that can cure a line (for the offline actuator of the sweep)."""

    def __init__(self, keep_order: bool = True):
        self.entities: dict[str, Entity] = {}
        self.keep_order = keep_order                # False: a streaming run feeds the cures as they come
        self.order: dict[str, int] = {}            # event_id -> position among account events
        self.cures: list[tuple[int, str, str, int]] = []   # (position, account, event_id, event time)

    def open(self, entity: str, product: str, segment: str, limit: float, t: int) -> None:
        e = self.entities.setdefault(entity, Entity())
        e.product, e.segment, e.limit, e.opened = product, segment, float(limit), t

    def add(self, event: dict) -> tuple[str, str, int] | None:
        """One event as published (the upstream dict); market events are ignored. Returns (account, event_id,
        event time) for a payment, which may cure a line, else None."""
        etype = event.get("type")
        entity = event.get("account_id") or event.get("facility_id")
        if not entity or not isinstance(etype, str):
            return None
        t = event.get("event_time")
        if not isinstance(t, int):
            return None
        p = event.get("payload") or {}
        if etype == "account_opened":
            self.open(entity, str(p.get("product", "credit_line")), str(p.get("segment", "")),
                      _num(p.get("limit")), t)
        e = self.entities.get(entity)
        if e is None:
            e = self.entities[entity] = Entity()
        pos = len(self.order)
        eid = event.get("event_id")
        if isinstance(eid, str) and self.keep_order:
            self.order[eid] = pos
        sign = _FLOW_SIGN.get(etype)
        if sign is not None:
            amount = _num(p.get("amount"))
            if amount > 0:
                e.flows.append((t, sign * amount, sign > 0))
        if etype in LEAD_SIGNAL_TYPES and (e.first_signal is None or t < e.first_signal):
            e.first_signal = t
        if etype == "payment_received" and isinstance(eid, str):
            if self.keep_order:
                self.cures.append((pos, entity, eid, t))
            return entity, eid, t
        return None


    def finish(self) -> None:
        """After the last event: balance movements in time order."""
        for e in self.entities.values():
            e.flows.sort(key=lambda f: f[0])


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else 0.0


# ---- reading the events file (a stream: nothing holds all of it) ------------------------------------------------

@dataclasses.dataclass
class Scan:
    events: int
    now_ms: int      # the ingest clock of the runs: just after the last event (nothing is "from the future")
    first_ms: int


def scan_events(path: Path, progress: Callable[[int], None] | None = None) -> Scan:
    """One pass over the events file before the runs: its size in events and the clock the runs judge against.
    A malformed line stops here, before any run starts."""
    n = last = first = 0
    with open(path, "rb") as fh:
        for _topic, ev in iter_events(fh, str(path)):
            n += 1
            t = ev.get("event_time")
            if isinstance(t, int):
                first = t if not first or t < first else first
                pt = ev.get("producer_time")
                last = max(last, t, pt if isinstance(pt, int) else 0)
            if progress is not None and n % 20_000 == 0:
                progress(fh.tell())
    return Scan(n, last + 60_000, first)


def stream_events(path: Path) -> Iterator[tuple[str, dict, bytes]]:
    """(topic, event dict, the event's bytes as published) per line of the events file, in file order."""
    with open(path, "rb") as fh:
        for topic, ev in iter_events(fh, str(path)):
            yield topic, ev, orjson.dumps(ev)


# ---- running a policy (the one place that knows the driver) ------------------------------------------------------

@dataclasses.dataclass
class PolicyRun:
    """What one run keeps: the champion's decisions reduced to what the figures read, every command, the sweep
    copies' commands (actuated offline while the run goes), and the ledger of the events."""
    decisions: list[dict]             # champion decisions: decision_id, rule_id, reasons[:2]
    decision_ids: list[str]           # the same ids in the order the driver made them (parity checks)
    commands: list[dict]
    sweep_commands: dict[str, list[dict]]
    ledger: "Ledger"
    dead: int
    consumed: int
    seconds: float
    cpu_seconds: float = 0.0


def _run_policy(events: Path, policy_path: Path, *, now_ms: int | Callable[[], int], shadow_paths: tuple = (),
                sweep_names: Iterable[str] = (), progress: Callable[[int], None] | None = None) -> PolicyRun:
    """The policy as the live champion (`shadow_paths` beside it in shadow) through the offline driver, over the
    events file read as a stream. The decisions of the policies named in `sweep_names` go, in the driver's order,
    through the offline actuator (`OfflineActuator`); a payment offers a cure after its event's decisions.
    `now_ms` may be a callable: it is asked once the driver is built (a parallel run builds it while the file is
    scanned)."""
    from riskstream.core.names import COMMANDS, DEAD, DECISIONS
    from riskstream.core.steps import PipelineConfig
    from riskstream.offline.driver import OfflineDriver

    # Every policy starts from the same model and learns from the same labels, as the live trainer does.
    # The run's accounts table keeps every record decoded (nothing reads it as bytes): no account is decoded or
    # encoded after its first event (~80 us and ~25 us each). It changes no result (tests/offline/test_backtest.py).
    config = PipelineConfig(policy_path=Path(policy_path), challenger_paths=tuple(shadow_paths),
                            decoded_records=0, keep_decoded=True)
    driver = OfflineDriver(config=config, learn=True, on_output=None, keep_audit=False, actuate_shadow=False)
    sweep = OfflineActuator(sweep_names)
    own, own_ids, commands, dead = [], [], [], 0
    outs: list = []
    driver.on_output = outs.append
    now = now_ms() if callable(now_ms) else now_ms
    ledger = Ledger(keep_order=False)
    account_topics = frozenset(_ACCOUNT_FAMILIES_TOPICS)

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with _few_collections():
        for topic, ev, raw in stream_events(events):
            cure = ledger.add(ev) if topic in account_topics else None
            driver.feed(topic, raw, timestamp_ms=now)
            for o in outs:
                if o.topic == DECISIONS:
                    if o.label.startswith("champion/"):
                        d = orjson.loads(o.value)
                        own.append({"decision_id": d["decision_id"], "rule_id": d.get("rule_id"),
                                    "reasons": (d.get("reasons") or [])[:2]})
                        own_ids.append(d["decision_id"])
                    elif sweep.names and o.label.startswith("challenger/"):
                        sweep.decision(orjson.loads(o.value))
                elif o.topic == COMMANDS:
                    commands.append(orjson.loads(o.value))
                elif o.topic == DEAD:
                    dead += 1
            outs.clear()
            if cure is not None:
                sweep.cure(*cure)
            n += 1
            if progress is not None and n % 1000 == 0:
                progress(n)
        driver.flush()  # the end of the events is not the end of time: the CLOSE still waiting leave
        commands.extend(orjson.loads(o.value) for o in outs if o.topic == COMMANDS)
        outs.clear()
    sweep.finish()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ledger.finish()
    if progress is not None:
        progress(n)
    return PolicyRun(own, own_ids, commands, sweep.commands, ledger, dead, driver.counts["consumed"], seconds, cpu)


@contextlib.contextmanager
def _few_collections():
    """The garbage collector tuned for one long run: what exists before it (modules, model, policies) is frozen
    out of the collections, and young objects are collected in larger steps. Full collections over a heap that
    grows with the run (and the unpickling of each published model snapshot, which allocates many objects) were
    ~5 % of a run's CPU; nothing the steps decide depends on when objects are freed."""
    import gc

    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


# ---- the sweep: PD cutoffs scaled, decisions actuated offline ---------------------------------------------------

def scaled_policy_text(text: str, factor: float, name: str) -> str:
    """The policy with every PD cutoff (segments.*.thresholds.*_pd and literal `pd` conditions) times `factor`,
    renamed and in shadow mode."""
    import yaml

    doc = yaml.safe_load(text)
    for seg in (doc.get("segments") or {}).values():
        th = seg.get("thresholds") or {}
        for k, v in list(th.items()):
            th[k] = round(min(float(v) * factor, 0.999), 6)

    def walk(node):
        if isinstance(node, list):
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            if node.get("fact") == "pd" and isinstance(node.get("value"), (int, float)):
                node["value"] = round(min(float(node["value"]) * factor, 0.999), 6)
            for k in ("all", "any", "when"):
                if k in node:
                    walk(node[k])

    for rule in doc.get("rules") or []:
        walk(rule.get("when"))
    doc["name"], doc["mode"] = name, "shadow"
    return yaml.safe_dump(doc, sort_keys=False)


def as_live(text: str) -> str:
    import yaml

    doc = yaml.safe_load(text)
    doc["mode"] = "live"
    return yaml.safe_dump(doc, sort_keys=False)


def sweep_name(policy_name: str, factor: float) -> str:
    return f"{policy_name} x{factor:g}"


class OfflineActuator:
    """The actuator's state machine (`riskstream.core.actuator.step`) and a mass-close breaker per named policy,
    fed that policy's (shadow) decisions and every cure in the order the driver produced them: the commands each
    would have sent as the live champion. A cure reaches only a line that exists (sending a cure to a line that was
    never restricted changes nothing there, so every payment can be offered as one)."""

    def __init__(self, policy_names: Iterable[str], *, actuator: ActuatorConfig | None = None,
                 breaker_max_share: float = 0.2, breaker_max_count: int = 200):
        self.cfg = actuator or ActuatorConfig()
        self.names = set(policy_names)
        self.lines: dict[str, dict] = {n: {} for n in self.names}
        self.breakers = {n: MassCloseBreaker(breaker_max_share, breaker_max_count) for n in self.names}
        self.commands: dict[str, list[dict]] = {n: [] for n in self.names}

    def decision(self, d: dict) -> None:
        name = d.get("policy_name")
        if name in self.names and d.get("decision_id"):
            self._step(name, dict(d, mode="live"))

    def cure(self, account: str, event_id: str, t: int) -> None:
        inp = {"kind": "cure", "account_id": account, "event_id": event_id, "event_time": t}
        for n in self.names:
            if account in self.lines[n]:     # no line, nothing to cure (the driver would send nothing either)
                self._step(n, inp)

    def _step(self, name: str, inp: dict) -> None:
        now = int(inp.get("event_time") or 0)
        lines = self.lines[name]
        new, cmds, _ = step(lines.get(inp["account_id"]), inp, now, self.cfg)
        lines[inp["account_id"]] = new
        active = max(int(inp.get("active_accounts") or 0), 1)
        send, _ = self.breakers[name].offer(cmds, now, active)  # every input moves the clock: waits end
        self.commands[name].extend(send)

    def finish(self) -> None:
        """End of input: one quiet window passes, so the CLOSE still waiting leave (as `OfflineDriver.flush`)."""
        for name, b in self.breakers.items():
            if b.waiting:
                self.commands[name].extend(b.advance(b.clock + b.hold_ms)[0])


def simulate_commands(decisions: Iterable[dict], ledger: Ledger, *, policy_names: Iterable[str],
                      actuator: ActuatorConfig | None = None, breaker_max_share: float = 0.2,
                      breaker_max_count: int = 200) -> dict[str, list[dict]]:
    """`OfflineActuator` over a list of decisions and the ledger's cures, put back in the driver's order (a payment's
    cure after that event's decisions). The backtest feeds the actuator while the run goes instead."""
    act = OfflineActuator(policy_names, actuator=actuator, breaker_max_share=breaker_max_share,
                          breaker_max_count=breaker_max_count)
    order = ledger.order
    items = []
    for i, d in enumerate(decisions):
        if d.get("policy_name") in act.names and d.get("decision_id"):
            items.append((order.get(d.get("event_id"), -1), 0, i, d))
    for pos, account, eid, t in ledger.cures:
        items.append((pos, 1, 0, (account, eid, t)))
    items.sort(key=lambda x: x[:3])
    for _, is_cure, _, inp in items:
        if is_cure:
            act.cure(*inp)
        else:
            act.decision(inp)
    act.finish()
    return act.commands


# ---- metrics (pure) ----------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values.

    >>> percentile([1, 2, 3, 4], 0.5), percentile([5], 0.9), percentile([], 0.5)
    (2.5, 5.0, None)
    """
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def exposure_at(entity: Entity, until: int, commands: list[dict] = ()) -> float:
    """Balance at `until` if every drawdown/purchase is allowed only within the line's current limit, while it is
    not frozen or closed (commands applied in time order, each after the event that caused it); payments as
    published, the balance never below 0. Without commands: the balance the published events give."""
    limit = entity.limit if entity.limit > 0 else float("inf")
    original = limit
    cmds = sorted((c for c in commands if int(c.get("issued_at", 0)) <= until), key=lambda c: c["issued_at"])
    bal, frozen_until, closed, ci = 0.0, -1, False, 0
    for t, amount, is_draw in entity.flows:
        if t > until:
            break
        while ci < len(cmds) and cmds[ci]["issued_at"] < t:
            limit, frozen_until, closed = _apply(cmds[ci], limit, original, frozen_until, closed)
            ci += 1
        if is_draw:
            if closed or t < frozen_until or bal + amount > limit + 1e-9:
                continue
            bal += amount
        else:
            bal = max(bal + amount, 0.0)
    return bal


def _apply(cmd: dict, limit: float, original: float, frozen_until: int, closed: bool):
    action, p = cmd.get("action"), cmd.get("params") or {}
    if action == "REDUCE_LIMIT":
        limit = limit * float(p.get("limit_factor", 1.0))
    elif action == "FREEZE":
        until = p.get("until")
        frozen_until = int(until) if isinstance(until, int) else int(cmd["issued_at"]) + 48 * HOUR
    elif action == "CLOSE":
        closed = True
    elif action == "REINSTATE":
        if p.get("restore_limit"):
            limit = original
        if p.get("unfreeze"):
            frozen_until = -1
    return limit, frozen_until, closed


def compute_metrics(truth: dict[str, dict], ledger: Ledger, decisions: list[dict], commands: list[dict], *,
                    period_days: int = PERIOD_DAYS) -> dict:
    """Truth + the policy's decisions and commands -> the backtest figures of one policy (docs/backtest.md)."""
    by_entity: dict[str, list[dict]] = {}
    for c in commands:
        by_entity.setdefault(c.get("account_id"), []).append(c)
    for cs in by_entity.values():
        cs.sort(key=lambda c: c.get("issued_at", 0))

    def product(entity: str) -> str:
        e = ledger.entities.get(entity)
        return e.product if e is not None and e.product else "credit_line"

    lines = {k: v for k, v in truth.items() if product(k) != "project_facility"}
    facilities = {k: v for k, v in truth.items() if product(k) == "project_facility"}
    defaulters = [k for k, v in lines.items() if v["outcome"] == "default"]
    goods = [k for k, v in lines.items() if v["outcome"] == "good"]
    frauds = [k for k, v in lines.items() if v["outcome"] == "fraud"]

    # catch rate and lead times
    leads, caught = [], {30: 0, 60: 0, 90: 0}
    to_act, with_signal = [], 0
    ead_without = ead_with = 0.0
    cohort_caught: dict[str, list[int]] = {}
    for k in defaulters:
        t_def = truth[k]["time"]
        cs = by_entity.get(k, [])
        first = next((c["issued_at"] for c in cs if c["action"] in RESTRICTIVE_COMMANDS and c["issued_at"] <= t_def),
                     None)
        lead = (t_def - first) / DAY if first is not None else None
        if lead is not None:
            leads.append(lead)
            for d in caught:
                if lead >= d:
                    caught[d] += 1
        e = ledger.entities.get(k)
        if e is not None:
            if e.first_signal is not None and e.first_signal <= t_def:
                with_signal += 1
                if first is not None:
                    to_act.append((first - e.first_signal) / DAY)
            ead_without += exposure_at(e, t_def)
            ead_with += exposure_at(e, t_def, cs)
        co = truth[k].get("cohort")
        if co:
            cohort_caught.setdefault(co, [0, 0])
            cohort_caught[co][0] += 1
            cohort_caught[co][1] += int(lead is not None and lead >= 60)
    n_def = len(defaulters)

    # harm to good accounts
    closed = limited = restricted = warned_only = 0
    cohort_harm: dict[str, list[int]] = {}
    for k in goods:
        acts = {c["action"] for c in by_entity.get(k, [])}
        is_closed, is_limited = "CLOSE" in acts, bool(acts & {"FREEZE", "REDUCE_LIMIT"})
        closed += is_closed
        limited += is_limited
        restricted += is_closed or is_limited
        warned_only += ("WARN" in acts) and not (is_closed or is_limited)
        co = truth[k].get("cohort")
        if co:
            cohort_harm.setdefault(co, [0, 0])
            cohort_harm[co][0] += 1
            cohort_harm[co][1] += int(is_closed or is_limited)
    n_good = len(goods)

    # account takeover
    fraud_frozen = 0
    for k in frauds:
        t = truth[k]["time"]
        fraud_frozen += any(c["action"] in ("FREEZE", "CLOSE") and t - FRAUD_WINDOW_MS <= c["issued_at"] <= t
                            for c in by_entity.get(k, []))

    # project finance
    pf_def = [k for k, v in facilities.items() if v["outcome"] == "default"]
    pf_good = [k for k, v in facilities.items() if v["outcome"] == "good"]
    period = period_days * DAY
    pf_warned = sum(any(c["action"] in ("REPAYMENT_PLAN", "WARN") and c["issued_at"] <= truth[k]["time"] - period
                        for c in by_entity.get(k, [])) for k in pf_def)
    pf_good_alerted = sum(any(c["action"] in ("REPAYMENT_PLAN", "WARN", *RESTRICTIVE_COMMANDS)
                              for c in by_entity.get(k, [])) for k in pf_good)

    # counts
    rule_of = {d.get("decision_id"): d for d in decisions}
    by_action: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for c in commands:
        by_action[c["action"]] = by_action.get(c["action"], 0) + 1
        d = rule_of.get(c.get("decision_id"))
        rule = d.get("rule_id") if d else ("cure" if str(c.get("decision_id", "")).startswith("cure:") else "?")
        key = f"{rule} -> {c['action']}"
        by_rule[key] = by_rule.get(key, 0) + 1
        code = reason_code(d)
        if code:
            by_reason[code] = by_reason.get(code, 0) + 1

    def share(a, b):
        return round(a / b, 4) if b else None

    def rnd(x):
        return None if x is None else round(x, 1)

    return {
        "credit_lines": len(lines), "defaulters": n_def, "good_accounts": n_good, "takeovers": len(frauds),
        "catch_rate_30d": share(caught[30], n_def), "catch_rate_60d": share(caught[60], n_def),
        "catch_rate_90d": share(caught[90], n_def), "caught_before_default": share(len(leads), n_def),
        "lead_days_median": rnd(percentile(leads, 0.5)), "lead_days_p10": rnd(percentile(leads, 0.1)),
        "lead_days_p90": rnd(percentile(leads, 0.9)),
        "good_closed_share": share(closed, n_good), "good_limited_share": share(limited, n_good),
        "good_restricted_share": share(restricted, n_good), "good_warned_only_share": share(warned_only, n_good),
        "exposure_at_default_without": round(ead_without, 2), "exposure_at_default_with": round(ead_with, 2),
        "exposure_saved": round(ead_without - ead_with, 2),
        "exposure_saved_share": share(ead_without - ead_with, ead_without),
        "defaulters_with_lead_signal": share(with_signal, n_def),
        "time_to_act_days_median": rnd(percentile(to_act, 0.5)), "time_to_act_days_p90": rnd(percentile(to_act, 0.9)),
        "fraud_frozen_share": share(fraud_frozen, len(frauds)),
        "facilities": len(facilities), "facility_defaults": len(pf_def),
        "facility_defaults_warned_share": share(pf_warned, len(pf_def)),
        "facility_good_alerted_share": share(pf_good_alerted, len(pf_good)),
        "commands_by_action": dict(sorted(by_action.items())),
        "commands_by_rule": dict(sorted(by_rule.items(), key=lambda kv: -kv[1])),
        "commands_by_reason_code": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "catch_rate_60d_by_cohort": {k: share(v[1], v[0]) for k, v in sorted(cohort_caught.items())},
        "good_restricted_share_by_cohort": {k: share(v[1], v[0]) for k, v in sorted(cohort_harm.items())},
    }


def reason_code(decision: dict | None) -> str | None:
    """The model's top reason as a feature name (the reason texts carry values, so they are not codes)."""
    if not decision:
        return None
    reasons = decision.get("reasons") or []
    for text in reasons[1:2]:                    # reasons[0] is the rule's own reason
        return _feature_of_text().get(str(text).split(":", 1)[0], "other")
    return "rule-only"


@functools.lru_cache(maxsize=1)
def _feature_of_text() -> dict[str, str]:
    from riskstream.core.models.scorer import FEATURE_TEXT
    return {v: k for k, v in FEATURE_TEXT.items()}


# ---- output -------------------------------------------------------------------------------------------------------

TABLE_ROWS = (
    ("catch_rate_30d", "caught >=30 d before default", "pct"),
    ("catch_rate_60d", "caught >=60 d before default", "pct"),
    ("catch_rate_90d", "caught >=90 d before default", "pct"),
    ("lead_days_median", "lead time median (p10-p90), days", "lead"),
    ("good_closed_share", "good accounts closed", "pct"),
    ("good_limited_share", "good accounts frozen or limited", "pct"),
    ("good_warned_only_share", "good accounts only warned", "pct"),
    ("exposure_at_default_without", "exposure at default without policy", "money"),
    ("exposure_at_default_with", "exposure at default with policy", "money"),
    ("exposure_saved", "exposure saved", "money"),
    ("time_to_act_days_median", "first lead signal -> restriction, median d", "num"),
    ("fraud_frozen_share", "takeovers frozen before 1st drawdown", "pct"),
    ("facility_defaults_warned_share", "facility defaults warned >=1 period before", "pct"),
    ("facility_good_alerted_share", "good facilities warned or planned", "pct"),
    ("throughput_ev_s", "throughput, events/s (wall)", "int"),
    ("throughput_ev_per_cpu_s", "throughput, events per CPU second", "int"),
)


def _fmt(v, kind, m=None) -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{100 * v:.1f} %"
    if kind == "money":
        return f"{v:,.0f}"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "lead":
        return f"{v:.0f} ({_fmt(m.get('lead_days_p10'), 'num')}-{_fmt(m.get('lead_days_p90'), 'num')})"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def format_table(report: dict) -> str:
    pols = report["policies"]
    head = ["", *[p["policy"] for p in pols]]
    rows = [[label, *[_fmt(p.get(key), kind, p) for p in pols]] for key, label, kind in TABLE_ROWS]
    rows.insert(0, ["defaulters / good / takeovers / facility defaults",
                    *[f"{p['defaulters']} / {p['good_accounts']} / {p['takeovers']} / {p['facility_defaults']}"
                      for p in pols]])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))
    out = [line(head), "  ".join("-" * w for w in widths), *map(line, rows)]
    for p in pols:
        out.append(f"{p['policy']}: commands by action {p['commands_by_action']}")
        top = list(p["commands_by_rule"].items())[:8]
        out.append(f"  by rule: {', '.join(f'{k} {v}' for k, v in top)}")
        top = list(p["commands_by_reason_code"].items())[:6]
        out.append(f"  by top model reason: {', '.join(f'{k} {v}' for k, v in top)}")
    return "\n".join(out)


def plot(report: dict, path: Path) -> None:
    """Catch rate (>= 60 d, solid; >= 30 d, dashed) against good accounts restricted, across the PD sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, p in enumerate(report["policies"]):
        col = colours[i % len(colours)]
        pts = sorted(p.get("sweep") or [], key=lambda s: s["factor"], reverse=True)
        if pts:
            x = [100 * (s["good_restricted_share"] or 0) for s in pts]
            ax.plot(x, [100 * (s["catch_rate_60d"] or 0) for s in pts], "-o", color=col, ms=4,
                    label=f"{p['policy']}: caught >= 60 d")
            ax.plot(x, [100 * (s["catch_rate_30d"] or 0) for s in pts], "--", color=col, alpha=0.6,
                    label=f"{p['policy']}: caught >= 30 d")
            for s, xx in zip(pts, x):
                ax.annotate(f"x{s['factor']:g}", (xx, 100 * (s["catch_rate_60d"] or 0)), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=col)
        ox, oy = 100 * (p["good_restricted_share"] or 0), 100 * (p["catch_rate_60d"] or 0)
        ax.plot([ox], [oy], marker="*", ms=16, color=col, mec="black", ls="none",
                label=f"{p['policy']} operating point ({oy:.0f} % at {ox:.1f} % harm)")
    ax.axvline(3.0, color="grey", lw=0.8, ls=":")
    ax.axhline(70.0, color="grey", lw=0.8, ls=":")
    ax.text(3.02, 35, "harm bound 3 %", color="grey", fontsize=7, rotation=90, va="bottom")
    ax.text(0.02, 70.8, "target: 70 % caught >= 60 d", color="grey", fontsize=7, transform=ax.get_yaxis_transform())
    ax.set_xlabel("good credit lines closed, frozen or limited (%)")
    ax.set_ylabel("defaulters restricted ahead of default (%)")
    ax.set_title("Backtest: catch rate vs good-account harm, PD cutoffs scaled by the sweep factor")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    import textwrap

    fig.text(0.01, 0.01, "\n".join(textwrap.wrap(report.get("note", ""), 150)), fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


class Progress:
    """A progress bar on stderr (when stderr is not a terminal, a line per 10 % and at least one a minute); `unit`
    "ev" (events) or "B" (bytes, shown in MB)."""

    def __init__(self, total: int, label: str, stream=None, unit: str = "ev"):
        self.total, self.label, self.unit = max(total, 1), label, unit
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()
        self.last_print = 0.0
        self.last_decile = -1
        self.finished = False

    def _n(self, v: float) -> str:
        return f"{v / 1e6:,.0f} MB" if self.unit == "B" else f"{v:,.0f}"

    def __call__(self, done: int) -> None:
        if self.finished:
            return
        now = time.perf_counter()
        frac = min(done / self.total, 1.0)
        rate = done / max(now - self.t0, 1e-9)
        per_s = f"{self._n(rate)}/s" if self.unit == "B" else f"{rate:,.0f} ev/s"
        self.finished = done >= self.total
        if self.tty:
            if now - self.last_print < 0.25 and not self.finished:
                return
            self.last_print = now
            bar = "#" * int(30 * frac)
            eta = (self.total - done) / rate if rate > 0 else 0
            self.stream.write(f"\r{self.label:<28} [{bar:<30}] {100 * frac:5.1f} % {self._n(done):>10}/"
                              f"{self._n(self.total)} {per_s:>12}  eta {eta:5.0f} s")
            if self.finished:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(10 * frac)
            if decile > self.last_decile or now - self.last_print >= 60:
                self.last_decile, self.last_print = decile, now
                self.stream.write(f"{self.label}: {100 * frac:3.0f} % {self._n(done)}/{self._n(self.total)} "
                                  f"({per_s})\n")
                self.stream.flush()


@dataclasses.dataclass
class _Job:
    """One policy's run, as a worker process gets it."""
    index: int
    events: Path
    run_path: Path                    # the policy as the live champion
    shadow_paths: tuple               # its sweep copies, in shadow
    sweep: dict                       # sweep copy name -> factor
    meta: dict                        # policy, version, file, mode_in_file
    period_days: int


def _backtest_policy(job: _Job, truth: dict, now_ms, progress: Callable[[int], None] | None = None) -> dict:
    """One policy's run and its figures (the report entry)."""
    run = _run_policy(job.events, job.run_path, now_ms=now_ms, shadow_paths=job.shadow_paths,
                      sweep_names=job.sweep, progress=progress)
    entry = dict(job.meta)
    entry.update(compute_metrics(truth, run.ledger, run.decisions, run.commands, period_days=job.period_days))
    entry.update(throughput_ev_s=round(run.consumed / run.seconds, 1) if run.seconds else None,
                 throughput_ev_per_cpu_s=round(run.consumed / run.cpu_seconds, 1) if run.cpu_seconds else None,
                 seconds=round(run.seconds, 1), cpu_seconds=round(run.cpu_seconds, 1),
                 dead_letters=run.dead, decisions=len(run.decisions),
                 commands=len(run.commands), shadow_policies_in_run=len(job.shadow_paths))
    entry["sweep"] = []
    for name, f in sorted(job.sweep.items(), key=lambda kv: kv[1]):
        # The sweep entries keep no counts by rule, so the copies' decisions are not needed here.
        m = compute_metrics(truth, run.ledger, [], run.sweep_commands[name], period_days=job.period_days)
        entry["sweep"].append({"factor": f, **{k: m[k] for k in (
            "catch_rate_30d", "catch_rate_60d", "catch_rate_90d", "good_closed_share", "good_limited_share",
            "good_restricted_share", "exposure_saved")}})
        if f == 1.0:
            entry["sweep_self_check"] = self_check(run.commands, run.sweep_commands[name])
    entry["peak_rss_mb"] = _peak_rss_mb()
    return entry


def _peak_rss_mb(who: str = "self") -> float | None:
    try:
        import resource
    except ImportError:        # not on this platform
        return None
    kb = resource.getrusage(resource.RUSAGE_CHILDREN if who == "children" else resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class _Aborted(Exception):
    """The parent stopped the runs before they started (a malformed events file)."""


def _worker(job: _Job, truth: dict, gate, ready, now_box, done, results) -> None:
    """A worker process: build the driver while the parent scans the file, then run when the clock is known."""
    def now() -> int:
        ready.wait()
        if now_box.value < 0:
            raise _Aborted()
        return now_box.value

    def tick(n: int) -> None:
        done[job.index] = n

    try:
        with gate:
            entry = _backtest_policy(job, truth, now, tick)
        results.put((job.index, entry, None))
    except _Aborted:
        results.put((job.index, None, None))
    except BaseException as exc:  # the parent reports it; a traceback for anything not an operator error
        import traceback
        results.put((job.index, None, (type(exc).__name__, str(exc), traceback.format_exc())))


def _run_parallel(jobs: list[_Job], truth: dict, events: Path, n_jobs: int, show_progress: bool):
    """Every policy in its own process (at most `n_jobs` at a time); returns (scan, entries in job order)."""
    import multiprocessing as mp
    import queue

    from riskstream.core.policy import PolicyError
    from riskstream.offline.files import FileFormatError

    mpc = mp.get_context()
    gate, ready, now_box = mpc.Semaphore(n_jobs), mpc.Event(), mpc.Value("q", 0)
    done, results = mpc.Array("q", len(jobs)), mpc.Queue()
    procs = [mpc.Process(target=_worker, args=(j, truth, gate, ready, now_box, done, results), daemon=True,
                         name=f"backtest-{j.index}") for j in jobs]
    entries: dict[int, dict] = {}
    try:
        for p in procs:
            p.start()
        try:
            scan = _scan_with_progress(events, show_progress)
        except BaseException:
            now_box.value = -1
            ready.set()
            raise
        now_box.value = scan.now_ms
        ready.set()
        prog = _runs_progress(scan, len(jobs)) if show_progress else None
        pending = set(range(len(jobs)))
        while pending:
            try:
                index, entry, err = results.get(timeout=0.5)
            except queue.Empty:
                if prog:
                    prog(sum(done[:]))
                for i in pending:
                    if not procs[i].is_alive() and procs[i].exitcode not in (0, None) and results.empty():
                        raise RuntimeError(f"backtest: the run of {jobs[i].meta['policy']} stopped "
                                           f"(exit code {procs[i].exitcode}); nothing was reported")
                continue
            if err is not None:
                kind, text, tb = err
                cls = {"FileFormatError": FileFormatError, "PolicyError": PolicyError}.get(kind)
                if cls is not None:
                    raise cls(text)
                if kind in ("OSError", "FileNotFoundError", "PermissionError"):
                    raise OSError(text)
                raise RuntimeError(f"backtest: the run of {jobs[index].meta['policy']} failed:\n{tb}")
            entries[index] = entry
            pending.discard(index)
        if prog:
            prog(prog.total)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return scan, [entries[j.index] for j in jobs]


def _scan_with_progress(events: Path, show_progress: bool) -> Scan:
    prog = Progress(max(os.path.getsize(events), 1), "reading events", unit="B") if show_progress else None
    scan = scan_events(events, prog)
    if prog:
        prog(prog.total)
    return scan


def _runs_progress(scan: Scan, n: int) -> "Progress":
    return Progress(scan.events * n, f"{n} run{'s' if n > 1 else ''} x {scan.events:,} events")


def run_backtest(events: Path, truth_path: Path, policies: list[Path], *, out: Path | None = None,
                 sweep: tuple[float, ...] = DEFAULT_SWEEP, period_days: int = PERIOD_DAYS,
                 show_progress: bool = True, jobs: int | None = None) -> dict:
    """Every policy's run and figures, and the report (written to `out`). `jobs`: how many runs at a time, each in
    its own process (default: one per policy, at most one per CPU; 1 runs them one after the other here)."""
    from riskstream.core.policy import load_policy

    started = time.perf_counter()
    with open(truth_path, "rb") as fh:
        truth = read_truth(fh, str(truth_path))
    n_jobs = max(1, min(len(policies), jobs or os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="riskstream-backtest-") as tmp:
        todo = []
        for pi, path in enumerate(policies):
            policy = load_policy(Path(path))
            run_path = Path(path)
            if policy.mode != "live":          # a challenger file (mode: shadow) runs here as the live champion
                run_path = Path(tmp) / f"{pi}-live.yaml"
                run_path.write_text(as_live(policy.text))
            shadow, names = [], {}
            for f in sweep:
                name = sweep_name(policy.name, f)
                p = Path(tmp) / f"{pi}-{len(names)}.yaml"
                p.write_text(scaled_policy_text(policy.text, f, name))
                shadow.append(p)
                names[name] = f
            todo.append(_Job(pi, Path(events), run_path, tuple(shadow), names,
                             {"policy": policy.name, "version": policy.version, "file": str(path),
                              "mode_in_file": policy.mode}, period_days))
        if n_jobs > 1:
            scan, entries = _run_parallel(todo, truth, Path(events), n_jobs, show_progress)
        else:
            scan = _scan_with_progress(Path(events), show_progress)
            prog = _runs_progress(scan, len(todo)) if show_progress else None
            entries = []
            for job in todo:
                base = job.index * scan.events
                entries.append(_backtest_policy(job, truth, scan.now_ms,
                                                (lambda n, b=base: prog(b + n)) if prog else None))
    seconds = time.perf_counter() - started
    report = {"events_file": str(events), "truth_file": str(truth_path), "events": scan.events,
              "entities_in_truth": len(truth), "synthetic": any(t.get("synthetic") for t in truth.values()),
              "default_definition": DEFAULT_DEFINITION, "period_days": period_days, "sweep_factors": list(sweep),
              "policies": entries}
    eps = [p["throughput_ev_s"] for p in entries if p.get("throughput_ev_s")]
    cpu = [p["throughput_ev_per_cpu_s"] for p in entries if p.get("throughput_ev_per_cpu_s")]
    rss = [p["peak_rss_mb"] for p in entries if p.get("peak_rss_mb")]
    if eps and seconds > 0:
        whole = scan.events / seconds
        report["throughput"] = {
            "events_per_s": round(whole, 1), "seconds": round(seconds, 1), "parallel_runs": n_jobs,
            "events_per_s_min": min(eps), "events_per_s_max": max(eps),
            "events_per_cpu_s_min": min(cpu) if cpu else None,
            "peak_rss_mb_per_run_max": max(rss) if rss else None,
            "note": (f"{scan.events:,} events through {len(entries)} polic{'ies' if len(entries) > 1 else 'y'} "
                     f"in {seconds:,.0f} s ({whole:,.0f} events/s for the whole backtest, {n_jobs} run"
                     f"{'s' if n_jobs > 1 else ''} at a time); per run {min(eps):,.0f}-{max(eps):,.0f} ev/s wall, "
                     f"{min(cpu) if cpu else 0:,.0f} per CPU second, each with {len(sweep)} shadow copies for the "
                     f"sweep" + (f"; peak RSS {max(rss):,.0f} MB per run" if rss else ""))}
        report["note"] = (f"{scan.events:,} events, {len(truth):,} entities"
                          f"{' (synthetic)' if report['synthetic'] else ''}; {report['throughput']['note']}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "backtest.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        plot(report, out / "backtest.png")
    return report


def self_check(real: list[dict], simulated: list[dict]) -> dict:
    """Does the offline actuator reproduce the driver's own commands? (account, action, time) multisets."""
    a = sorted((c["account_id"], c["action"], c["issued_at"]) for c in real)
    b = sorted((c["account_id"], c["action"], c["issued_at"]) for c in simulated)
    return {"commands": len(a), "simulated": len(b), "equal": a == b}


# ---- command line ---------------------------------------------------------------------------------------------

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "backtest", help="run policies over events with known outcomes: catch rate, harm, exposure saved",
        description=__doc__.split("\n\n>>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True, type=Path, metavar="FILE", help="events JSON lines (docs/files.md)")
    p.add_argument("--truth", required=True, type=Path, metavar="FILE", help="truth JSON lines (docs/files.md)")
    p.add_argument("--policy", action="append", type=Path, metavar="FILE",
                   help="policy file, repeatable, champion first (default: the bundled champion and challenger)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write DIR/backtest.json and DIR/backtest.png")
    p.add_argument("--sweep", default=",".join(f"{f:g}" for f in DEFAULT_SWEEP),
                   help="PD cutoff factors for the curve, comma separated ('' = none; default %(default)s)")
    p.add_argument("--period-days", type=int, default=PERIOD_DAYS,
                   help="a facility's reporting period for the project-finance figure (default %(default)s)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="policies run at a time, each in its own process (default: one per policy, at most one per "
                        "CPU; 1 = one after the other in this process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)
    return p


def _cli(args) -> int:
    from riskstream.data import CHALLENGER_POLICY, DEFAULT_POLICY
    from riskstream.core.policy import PolicyError
    from riskstream.offline.files import FileFormatError

    policies = args.policy or [DEFAULT_POLICY, CHALLENGER_POLICY]
    try:
        sweep = tuple(float(x) for x in args.sweep.split(",") if x.strip())
    except ValueError:
        print("riskstream backtest: --sweep takes numbers separated by commas, e.g. 0.5,1,2", file=sys.stderr)
        return 2
    try:
        report = run_backtest(args.events, args.truth, policies, out=args.out, sweep=sweep,
                              period_days=args.period_days, show_progress=not args.quiet, jobs=args.jobs)
    except (OSError, FileFormatError, PolicyError) as exc:
        print(f"riskstream backtest: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if "throughput" in report:
        print(f"throughput: {report['throughput']['note']}")
    for p in report["policies"]:
        sc = p.get("sweep_self_check")
        if sc:
            print(f"{p['policy']}: sweep self-check x1 reproduces {sc['commands']} commands: "
                  f"{'yes' if sc['equal'] else 'NO (' + str(sc['simulated']) + ')'}")
    if args.out:
        print(f"wrote {args.out / 'backtest.json'} and {args.out / 'backtest.png'}")
    return 0
