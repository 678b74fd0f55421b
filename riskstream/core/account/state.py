"""Per-account state: event-time windows plus the latest known values, updated one event at a time.

``apply_event(state, event, offset=...)`` returns the updated state and an outcome:

* ``"applied"``: the event changed the state;
* ``"duplicate"``: its event_id was seen recently (ids of accepted events within the allowed lateness are kept,
  at most ``RECENT_IDS`` of them, as 8-byte hashes);
* ``"late"``: ``event_time < watermark - allowed_lateness`` (watermark = largest event time the account has seen);
* ``"already_applied"``: the given input offset is <= the last offset applied, so a replay after a crash is exact;
* ``"unknown_account"``: no state exists and the event is not ``account_opened`` (the state stays None);
* ``"ignored"``: the event family does not belong to accounts (market).

Every update is order-independent for events within the allowed lateness: sums are fixed-point integers, "latest"
values are registers that keep the largest ``(event_time, values...)``, and pruning only depends on the watermark.
The same set of events in any arrival order therefore gives the same state, byte for byte.

The state is updated in place and returned (copying it per event would dominate the cost).

>>> opened = {"event_id": "e1", "type": "account_opened", "family": "behaviour", "entity": "a1", "event_time": 0,
...           "payload": {"product": "credit_line", "segment": "retail", "limit": 1000.0}}
>>> state, outcome = apply_event(None, opened, offset=0)
>>> outcome
'applied'
>>> dd = {"event_id": "e2", "type": "drawdown", "family": "behaviour", "entity": "a1", "event_time": 60_000,
...       "payload": {"amount": 250.0}}
>>> apply_event(state, dd, offset=1)[1], apply_event(state, dd, offset=2)[1], apply_event(state, dd, offset=1)[1]
('applied', 'duplicate', 'already_applied')
>>> state.balance_amount
250.0

The bytes of a state are :mod:`riskstream.core.account.codec` (``encode_state`` / ``decode_state``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from riskstream.core.windows.buckets import VALUE_SCALE, add_event, expire, to_fixed
from riskstream.core.windows.spec import FeatureConfig, default_config

__all__ = ["AccountState", "RECENT_IDS", "apply_event", "decode_state", "encode_state", "open_account"]

RECENT_IDS = 32
"""At most this many recent event-id hashes are kept per account for duplicate detection."""

MAX_CHANGES = 8
MAX_COVENANTS = 8

ACCOUNT_FAMILIES = frozenset({"behaviour", "repayment", "credit", "project"})
_PAYMENTS = frozenset({"payment_received", "payment_partial"})
_CHANGES = frozenset({"device_change", "contact_change"})


@dataclass
class AccountState:
    """Everything riskstream remembers about one account or facility.

    Times are epoch ms; ``None`` means "never seen". Registers are tuples whose first item is the event time.
    """

    product: str
    segment: str
    limit: float
    opened_time: int
    watermark: int
    last_offset: int = -1
    recent_ids: dict[int, int] = field(default_factory=dict)  # event-id hash -> event time
    windows: dict[str, dict[int, list]] = field(default_factory=dict)  # window name -> bucket index -> bucket
    balance: int = 0  # fixed-point: drawdowns + purchases - payments
    dpd: tuple[int, int, int] | None = None  # (time, clears, days past due); clears=1 for a clearing payment
    statement: tuple[int, float, int] | None = None  # (time, amount_due, due_date)
    last_payment_time: int | None = None
    last_drawdown_time: int | None = None
    change_times: list[int] = field(default_factory=list)  # recent device/contact changes, ascending
    financials: tuple[int, float, float] | None = None  # (time, ebitda, debt_service)
    cashflow: tuple[int, float, float] | None = None  # (time, actual, plan)
    milestone: tuple[int, int, int, float] | None = None  # (time, planned_date, actual_date or -1, pct_complete)
    covenants: dict[str, tuple[int, float, float, int]] = field(default_factory=dict)  # name -> (t, v, thr, is_max)

    @property
    def balance_amount(self) -> float:
        """Outstanding balance estimate in currency units."""
        return self.balance / VALUE_SCALE


def _id_hash(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _num(value, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return float(value)


def _int(value, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return int(value)


def open_account(event: dict, *, config: FeatureConfig | None = None) -> AccountState:
    """New state from an ``account_opened`` event (product, segment, limit)."""
    cfg = config or default_config()
    p = event.get("payload") or {}
    t = event["event_time"]
    state = AccountState(product=str(p.get("product", "credit_line")), segment=str(p.get("segment", "")),
                         limit=_num(p.get("limit")), opened_time=t, watermark=t)
    state.recent_ids[_id_hash(event["event_id"])] = t
    _apply_windows(state, event, cfg)
    return state


def apply_event(state: AccountState | None, event: dict, *, offset: int | None = None,
                config: FeatureConfig | None = None) -> tuple[AccountState | None, str]:
    """Apply one parsed event; returns ``(state, outcome)`` (see the module docstring for outcomes)."""
    cfg = config or default_config()
    if event.get("family") not in ACCOUNT_FAMILIES:
        return state, "ignored"
    etype = event["type"]
    if state is None:
        if etype != "account_opened":
            return None, "unknown_account"
        state = open_account(event, config=cfg)
        if offset is not None:
            state.last_offset = offset
        return state, "applied"
    if offset is not None:
        if offset <= state.last_offset:
            return state, "already_applied"
        state.last_offset = offset
    h = _id_hash(event["event_id"])
    if h in state.recent_ids:
        return state, "duplicate"
    t = event["event_time"]
    lateness = cfg.allowed_lateness
    if t < state.watermark - lateness:
        return state, "late"
    recent = state.recent_ids
    recent[h] = t
    if t > state.watermark:
        state.watermark = t
        _expire(state, cfg)
    elif len(recent) > RECENT_IDS:
        _trim_ids(recent)
    _apply_windows(state, event, cfg)
    _apply_values(state, etype, t, event.get("payload") or {}, cfg)
    return state, "applied"


def _trim_ids(recent: dict[int, int]) -> None:
    # keep the newest by (time, hash): the result depends only on the set of ids, not their order
    for t, h in sorted((t, h) for h, t in recent.items())[:len(recent) - RECENT_IDS]:
        del recent[h]


def _expire(state: AccountState, cfg: FeatureConfig) -> None:
    lateness = cfg.allowed_lateness
    horizon = state.watermark - lateness
    recent = state.recent_ids
    stale = [h for h, t in recent.items() if t < horizon]
    for h in stale:
        del recent[h]
    if len(recent) > RECENT_IDS:
        _trim_ids(recent)
    for name in list(state.windows):
        buckets = state.windows[name]
        spec = cfg.by_name.get(name)
        if spec is None:
            del state.windows[name]
            continue
        expire(buckets, spec, state.watermark, lateness)
        if not buckets:
            del state.windows[name]
    if state.change_times:
        _prune_changes(state, cfg)


def _prune_changes(state: AccountState, cfg: FeatureConfig) -> None:
    # a change matters while it can fall within the lookback before the latest drawdown, now or in the future
    anchor = state.watermark - cfg.allowed_lateness
    if state.last_drawdown_time is not None and state.last_drawdown_time < anchor:
        anchor = state.last_drawdown_time
    keep_from = anchor - cfg.new_device_lookback
    changes = [c for c in state.change_times if c >= keep_from]
    state.change_times = changes[-MAX_CHANGES:]


def _apply_windows(state: AccountState, event: dict, cfg: FeatureConfig) -> None:
    specs = cfg.by_type.get(event["type"])
    if not specs:
        return
    payload = event.get("payload") or {}
    t = event["event_time"]
    windows = state.windows
    for spec in specs:
        buckets = windows.get(spec.name)
        if buckets is None:
            buckets = windows[spec.name] = {}
        add_event(buckets, spec, t, payload)
        if not buckets:  # the event had no usable value
            del windows[spec.name]


def _apply_values(state: AccountState, etype: str, t: int, p: dict, cfg: FeatureConfig) -> None:
    if etype in ("drawdown", "purchase"):
        amount = to_fixed(p.get("amount"))
        if amount is not None:
            state.balance += amount
        if etype == "drawdown":
            if state.last_drawdown_time is None or t > state.last_drawdown_time:
                state.last_drawdown_time = t
                if state.change_times:
                    _prune_changes(state, cfg)
    elif etype in _PAYMENTS:
        amount = to_fixed(p.get("amount"))
        if amount is not None:
            state.balance -= amount
        if state.last_payment_time is None or t > state.last_payment_time:
            state.last_payment_time = t
        clears = etype == "payment_received" or _num(p.get("amount")) >= _num(p.get("amount_due"), float("inf"))
        if clears:
            state.dpd = _latest(state.dpd, (t, 1, 0))
    elif etype == "payment_missed":
        state.dpd = _latest(state.dpd, (t, 0, max(0, _int(p.get("days_past_due")))))
    elif etype == "statement_issued":
        state.statement = _latest(state.statement, (t, _num(p.get("amount_due")), _int(p.get("due_date"))))
    elif etype in _CHANGES:
        if t not in state.change_times:
            state.change_times.append(t)
            state.change_times.sort()
        _prune_changes(state, cfg)
    elif etype == "financial_statement":
        state.financials = _latest(state.financials, (t, _num(p.get("ebitda")), _num(p.get("debt_service"))))
    elif etype == "cashflow_actual":
        state.cashflow = _latest(state.cashflow, (t, _num(p.get("actual")), _num(p.get("plan"))))
    elif etype == "milestone_report":
        actual = p.get("actual_date")
        state.milestone = _latest(state.milestone, (t, _int(p.get("planned_date")),
                                                    -1 if actual is None else _int(actual),
                                                    _num(p.get("pct_complete"))))
    elif etype == "covenant_test":
        name = str(p.get("covenant", ""))
        reg = (t, _num(p.get("value")), _num(p.get("threshold")), int(p.get("direction") == "max"))
        state.covenants[name] = _latest(state.covenants.get(name), reg)
        if len(state.covenants) > MAX_COVENANTS:
            # drop the covenant tested longest ago (ties: by name), independent of arrival order
            oldest = min(state.covenants, key=lambda n: (state.covenants[n][0], n))
            del state.covenants[oldest]
    elif etype == "account_opened":
        reg = _latest((state.opened_time, state.product, state.segment, state.limit),
                      (t, str(p.get("product", "credit_line")), str(p.get("segment", "")), _num(p.get("limit"))))
        state.opened_time, state.product, state.segment, state.limit = reg


def _latest(current: tuple | None, new: tuple) -> tuple:
    """Register update: keep the larger (event_time, values...) so arrival order does not matter."""
    if current is None or new > current:
        return new
    return current
