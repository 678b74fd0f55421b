"""Per-account state: outcomes, order independence, bounded size, exact encode/decode."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskstream.core.account.features import compute_features
from riskstream.core.market import new_history
from riskstream.core.account.codec import decode_state, encode_state
from riskstream.core.account.state import RECENT_IDS, apply_event, open_account
from riskstream.core.durations import DAY, HOUR, MINUTE
from riskstream.core.windows import default_config

FAMILY = {"drawdown": "behaviour", "purchase": "behaviour", "login": "behaviour", "login_failed": "behaviour",
          "device_change": "behaviour", "contact_change": "behaviour", "app_session": "behaviour",
          "statement_issued": "repayment", "payment_received": "repayment", "payment_partial": "repayment",
          "payment_missed": "repayment", "bureau_inquiry": "credit", "external_delinquency": "credit",
          "new_debt": "credit", "financial_statement": "project", "cashflow_actual": "project",
          "milestone_report": "project", "covenant_test": "project", "account_opened": "behaviour"}


def event(eid, t: int, etype: str, **payload) -> dict:
    return {"event_id": str(eid), "type": etype, "schema_version": 1, "family": FAMILY[etype], "entity": "acct",
            "event_time": t, "producer_time": t, "source": "test", "payload": payload}


def opened(t: int = 0, product: str = "credit_line", segment: str = "energy", limit: float = 5000.0) -> dict:
    return event("open", t, "account_opened", product=product, segment=segment, limit=limit, currency="EUR")


def payload_for(etype: str, rnd: random.Random, t: int) -> dict:
    amount = rnd.randint(1, 200_000) / 100
    device = f"dev{rnd.randint(1, 6)}"
    return {
        "drawdown": {"amount": amount, "channel": "app"},
        "purchase": {"amount": amount, "merchant_id": "m1"},
        "login": {"device_fingerprint_hash": device, "ip_hash": "ip"},
        "login_failed": {"device_fingerprint_hash": device, "ip_hash": "ip"},
        "device_change": {"device_fingerprint_hash": device},
        "contact_change": {"field": rnd.choice(["phone", "email"])},
        "app_session": {"duration_s": 12.0},
        "statement_issued": {"statement_id": "s", "amount_due": amount, "due_date": t + 20 * DAY, "balance": amount},
        "payment_received": {"amount": amount},
        "payment_partial": {"amount": amount, "amount_due": rnd.choice([amount, amount * 2])},
        "payment_missed": {"statement_id": "s", "days_past_due": rnd.randint(0, 90), "amount_due": amount},
        "bureau_inquiry": {"bureau": "b", "inquiry_kind": "hard"},
        "external_delinquency": {"days_past_due": 30, "amount": amount},
        "new_debt": {"amount": amount, "lender_kind": "bank"},
        "financial_statement": {"period": "Q", "revenue": amount * 3, "ebitda": amount, "debt_service": 100.0,
                                "cash": 1.0},
        "cashflow_actual": {"period": "Q", "actual": amount, "plan": rnd.choice([1000.0, -500.0])},
        "milestone_report": {"milestone": "m", "planned_date": t - rnd.randint(-5, 5) * DAY,
                             "actual_date": rnd.choice([None, t]), "pct_complete": 50.0},
        "covenant_test": {"covenant": rnd.choice(["dscr_min", "leverage_max", "cash_min"]),
                          "value": amount, "threshold": 1.2, "direction": rnd.choice(["min", "max"])},
    }[etype]


TYPES = sorted(t for t in FAMILY if t != "account_opened")


def random_stream(seed: int, n: int, span: int) -> list[dict]:
    """``n`` events of every type over ``span`` ms, sorted by event time, with some equal times."""
    rnd = random.Random(seed)
    times = sorted(rnd.randint(0, span) for _ in range(n))
    times = [times[i - 1] if i and rnd.random() < 0.1 else t for i, t in enumerate(times)]
    out = []
    for i, t in enumerate(times):
        etype = rnd.choice(TYPES)
        out.append(event(f"e{i}", t + 1, etype, **payload_for(etype, rnd, t)))
    return out


def shuffle_within_lateness(events: list[dict], lateness: int, rnd: random.Random) -> list[dict]:
    # arrival key = event time + delay in [0, lateness]: no event can then arrive behind watermark - lateness
    return [e for _, _, e in sorted((e["event_time"] + rnd.randint(0, lateness), i, e) for i, e in enumerate(events))]


def run(events: list[dict], open_event: dict | None = None, offsets: bool = False):
    state, _ = apply_event(None, open_event or opened())
    outcomes = []
    for i, e in enumerate(events):
        state, outcome = apply_event(state, e, offset=i if offsets else None)
        outcomes.append(outcome)
    return state, outcomes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), span=st.sampled_from([2 * HOUR, 3 * DAY, 40 * DAY]),
       product=st.sampled_from(["credit_line", "project_facility"]))
def test_order_independence_within_lateness(seed, n, span, product):
    lateness = default_config().allowed_lateness
    events = random_stream(seed, n, span)
    open_event = opened(product=product)
    base, outcomes = run(events, open_event, offsets=True)
    assert set(outcomes) == {"applied"}
    rnd = random.Random(seed + 1)
    for _ in range(3):
        shuffled = shuffle_within_lateness(events, lateness, rnd)
        other, outcomes = run(shuffled, open_event, offsets=True)
        assert set(outcomes) == {"applied"}
        assert encode_state(other) == encode_state(base)
        assert other == base
        as_of = base.watermark
        market = new_history()
        assert compute_features(other, as_of=as_of, market=market) == compute_features(base, as_of=as_of,
                                                                                         market=market)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 120), span=st.sampled_from([HOUR, 5 * DAY, 200 * DAY]),
       late_share=st.floats(0, 0.5))
def test_encode_decode_round_trip(seed, n, span, late_share):
    rnd = random.Random(seed)
    events = random_stream(seed, n, span)
    arrival = sorted(events, key=lambda e: e["event_time"] + (rnd.randint(0, 3 * HOUR) if rnd.random() < late_share
                                                              else 0))
    state, _ = run(arrival, offsets=True)
    data = encode_state(state)
    back = decode_state(data)
    assert back == state
    assert encode_state(back) == data
    assert compute_features(back, as_of=state.watermark, market=None) == compute_features(
        state, as_of=state.watermark, market=None)


def test_outcomes_duplicate_already_applied_late_unknown_ignored():
    dd = event("d1", 10 * MINUTE, "drawdown", amount=100.0)
    assert apply_event(None, dd) == (None, "unknown_account")
    state, outcome = apply_event(None, opened(), offset=5)
    assert outcome == "applied" and state is not None and state.last_offset == 5
    assert apply_event(state, dd, offset=6)[1] == "applied"
    before = encode_state(state)
    assert apply_event(state, dd, offset=7)[1] == "duplicate"            # re-sent by the producer
    assert apply_event(state, dd, offset=6)[1] == "already_applied"      # replay after a crash
    assert apply_event(state, event("x", 10 * MINUTE, "drawdown", amount=1.0), offset=3)[1] == "already_applied"
    assert apply_event(state, dd)[1] == "duplicate"                      # no offset: id check still applies
    assert state.balance_amount == 100.0 and state.last_offset == 7
    state, _ = apply_event(state, event("d2", 3 * HOUR, "drawdown", amount=1.0), offset=8)
    assert apply_event(state, event("d3", 2 * HOUR - 1, "drawdown", amount=1.0))[1] == "late"
    assert apply_event(state, event("d4", 2 * HOUR, "drawdown", amount=1.0))[1] == "applied"
    market = {"event_id": "m", "type": "sector_index", "family": "market", "entity": "sector_index|energy",
              "event_time": 0, "payload": {"value": 1.0}}
    assert apply_event(state, market)[1] == "ignored"
    assert before != encode_state(state)


def test_replay_from_a_checkpoint_is_exact():
    events = random_stream(7, 200, 10 * DAY)
    full, _ = run(events, offsets=True)
    # crash after offset 120: the table had the state as of offset 120; the consumer re-reads from offset 100
    partial, _ = run(events[:121], offsets=True)
    restored = decode_state(encode_state(partial))
    outcomes = []
    for i in range(100, len(events)):
        restored, outcome = apply_event(restored, events[i], offset=i)
        outcomes.append(outcome)
    assert outcomes[:21] == ["already_applied"] * 21
    assert encode_state(restored) == encode_state(full)


def test_duplicates_within_lateness_are_caught_and_ring_is_bounded():
    state = open_account(opened())
    for i in range(100):
        state, _ = apply_event(state, event(f"e{i}", i * 1000, "login", device_fingerprint_hash="d", ip_hash="i"))
    assert len(state.recent_ids) == RECENT_IDS
    assert apply_event(state, event("e99", 99_000, "login", device_fingerprint_hash="d"))[1] == "duplicate"
    state, _ = apply_event(state, event("later", 99_000 + 2 * HOUR, "login"))
    assert len(state.recent_ids) == 1                              # older ids are now beyond lateness
    assert apply_event(state, event("e99", 99_000, "login"))[1] == "late"


def test_state_values():
    state = open_account(opened(limit=1000.0))
    steps = [
        event(1, 1 * HOUR, "drawdown", amount=300.0),
        event(2, 2 * HOUR, "purchase", amount=50.0, merchant_id="m"),
        event(3, 3 * HOUR, "payment_received", amount=100.0),
        event(4, 4 * HOUR, "statement_issued", statement_id="s", amount_due=250.0, due_date=20 * DAY, balance=250.0),
        event(5, 5 * HOUR, "payment_missed", statement_id="s", days_past_due=3, amount_due=250.0),
        event(6, 6 * HOUR, "payment_partial", amount=10.0, amount_due=250.0),
    ]
    for e in steps:
        state, outcome = apply_event(state, e)
        assert outcome == "applied"
    assert state.balance_amount == 240.0
    assert state.statement == (4 * HOUR, 250.0, 20 * DAY)
    assert state.dpd == (5 * HOUR, 0, 3)                       # the partial payment did not clear it
    assert state.last_payment_time == 6 * HOUR and state.last_drawdown_time == HOUR
    state, _ = apply_event(state, event(7, 7 * HOUR, "payment_partial", amount=250.0, amount_due=250.0))
    assert state.dpd == (7 * HOUR, 1, 0)


def test_expiry_keeps_a_long_stream_bounded():
    """Half a year of a very active account: the encoded state stops growing."""
    rnd = random.Random(3)
    state = open_account(opened())
    t, sizes = 0, []
    for i in range(20_000):
        t += rnd.randint(1, 20) * MINUTE
        etype = rnd.choices(["drawdown", "login", "login_failed", "payment_received", "statement_issued",
                             "device_change", "bureau_inquiry", "new_debt", "payment_missed", "payment_partial"],
                            [30, 40, 5, 4, 2, 2, 2, 2, 2, 2])[0]
        state, _ = apply_event(state, event(i, t, etype, **payload_for(etype, rnd, t)))
        if i % 1000 == 999:
            sizes.append(len(encode_state(state)))
    assert t > 120 * DAY   # beyond the longest horizon (90d)
    half = sizes[len(sizes) // 2:]
    print("encoded state bytes every 1000 events:", sizes)
    assert max(half) < 4096, sizes
    assert max(half) <= 1.25 * max(sizes[:len(sizes) // 2]), sizes
    assert len(state.windows["drawdown_long"]) <= 91
    assert len(state.windows["drawdown_short"]) <= 24 * 12 + 12 + 1


def test_typical_active_account_fits_in_two_kib():
    rnd = random.Random(5)
    state = open_account(opened())
    t = 0
    for i in range(300):  # ~10 events a day for 30 days
        t += rnd.randint(30, 250) * MINUTE
        etype = rnd.choice(["drawdown", "login", "login", "payment_received", "device_change", "login_failed",
                            "statement_issued", "purchase"])
        state, _ = apply_event(state, event(i, t, etype, **payload_for(etype, rnd, t)))
    assert len(encode_state(state)) <= 2048
