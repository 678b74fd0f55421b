"""Benchmark of the per-account core: state size and apply_event + compute_features throughput on one core.

The event stream is synthetic but realistic: accounts open at the start, then ~30 days of logins, drawdowns,
purchases, failed logins, statements and payments (some partial or missed), credit-record events and an occasional
device or contact change, arriving roughly in event-time order with small out-of-order jitter within lateness.

>>> r = bench_state(accounts=50, events=500)
>>> sorted(r)
['accounts', 'events', 'feature_update_ev_s', 'outcomes', 'state_bytes_per_account_mean', 'state_bytes_per_account_p99']
"""

from __future__ import annotations

import random
import time

from riskstream.core.account.codec import encode_state
from riskstream.core.account.features import compute_features
from riskstream.core.account.state import apply_event
from riskstream.core.durations import DAY, MINUTE
from riskstream.core.market import apply_market, new_history

__all__ = ["bench_state"]

_MIX = [  # (type, family, weight)
    ("login", "behaviour", 34), ("drawdown", "behaviour", 18), ("purchase", "behaviour", 10),
    ("login_failed", "behaviour", 8), ("app_session", "behaviour", 4), ("device_change", "behaviour", 2),
    ("contact_change", "behaviour", 1), ("statement_issued", "repayment", 6), ("payment_received", "repayment", 8),
    ("payment_partial", "repayment", 2), ("payment_missed", "repayment", 2), ("bureau_inquiry", "credit", 2),
    ("external_delinquency", "credit", 1), ("new_debt", "credit", 2),
]
_SEGMENTS = ["retail", "energy", "construction", "transport", "agriculture"]


def _payload(etype: str, rnd: random.Random, t: int, devices: list[str]) -> dict:
    amount = round(rnd.lognormvariate(4.5, 1.0), 2) + 0.01
    if etype in ("login", "login_failed"):
        return {"device_fingerprint_hash": rnd.choice(devices), "ip_hash": f"ip{rnd.randint(0, 9)}"}
    if etype == "device_change":
        devices.append(f"dev{rnd.getrandbits(32):08x}")
        return {"device_fingerprint_hash": devices[-1]}
    return {
        "drawdown": {"amount": amount, "channel": "app"},
        "purchase": {"amount": amount, "merchant_id": "m"},
        "app_session": {"duration_s": 30.0},
        "contact_change": {"field": "email"},
        "statement_issued": {"statement_id": "s", "amount_due": amount, "due_date": t + 21 * DAY, "balance": amount},
        "payment_received": {"amount": amount},
        "payment_partial": {"amount": amount / 2, "amount_due": amount},
        "payment_missed": {"statement_id": "s", "days_past_due": rnd.choice([1, 5, 30]), "amount_due": amount},
        "bureau_inquiry": {"bureau": "b", "inquiry_kind": "hard"},
        "external_delinquency": {"days_past_due": 30, "amount": amount},
        "new_debt": {"amount": amount * 10, "lender_kind": "bank"},
    }[etype]


def _stream(accounts: int, events: int, seed: int) -> tuple[list[dict], list[dict]]:
    rnd = random.Random(seed)
    days = 30 * DAY
    opens = [{"event_id": f"open-{a}", "type": "account_opened", "schema_version": 1, "family": "behaviour",
              "entity": f"acct-{a}", "event_time": 0, "producer_time": 0, "source": "bench",
              "payload": {"product": "credit_line", "segment": rnd.choice(_SEGMENTS),
                          "limit": float(rnd.choice([1000, 5000, 20000])), "currency": "EUR"}}
             for a in range(accounts)]
    devices = [[f"dev{a}"] for a in range(accounts)]
    types, weights = [(t, f) for t, f, _ in _MIX], [w for _, _, w in _MIX]
    timed = []
    for i in range(events):
        a = min(int(rnd.paretovariate(1.2)) - 1, accounts - 1) if rnd.random() < 0.3 else rnd.randrange(accounts)
        t = rnd.randint(1, days)
        etype, family = rnd.choices(types, weights)[0]
        e = {"event_id": f"ev-{i}", "type": etype, "schema_version": 1, "family": family, "entity": f"acct-{a}",
             "event_time": t, "producer_time": t, "source": "bench", "payload": _payload(etype, rnd, t, devices[a])}
        timed.append((t + rnd.randint(0, 10 * MINUTE), e))  # arrival jitter, well within the 1h lateness
    timed.sort(key=lambda x: x[0])
    market_events = [{"event_id": f"m-{s}-{d}", "type": "sector_index", "family": "market",
                      "entity": f"sector_index|{s}", "event_time": d * DAY, "producer_time": d * DAY,
                      "source": "bench", "payload": {"value": 100.0 + rnd.uniform(-5, 5)}}
                     for s in _SEGMENTS for d in range(31)]
    return opens + [e for _, e in timed], market_events


def bench_state(accounts: int = 10_000, events: int = 200_000, *, seed: int = 0) -> dict:
    """State bytes per account (mean, p99) and apply_event + compute_features events per second (one core)."""
    stream, market_events = _stream(accounts, events, seed)
    market = new_history()
    for m in market_events:
        market = apply_market(market, m)
    states: dict[str, object] = {}
    outcomes: dict[str, int] = {}
    start = time.thread_time()  # CPU time of this thread: robust on a shared machine
    for e in stream:
        entity = e["entity"]
        state, outcome = apply_event(states.get(entity), e)
        if state is not None:
            states[entity] = state
            compute_features(state, as_of=state.watermark, market=market)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    elapsed = time.thread_time() - start
    sizes = sorted(len(encode_state(s)) for s in states.values())
    return {
        "accounts": accounts,
        "events": len(stream),
        "outcomes": outcomes,
        "state_bytes_per_account_mean": round(sum(sizes) / len(sizes), 1),
        "state_bytes_per_account_p99": sizes[min(len(sizes) - 1, int(0.99 * len(sizes)))],
        "feature_update_ev_s": round(len(stream) / elapsed),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_state()))
