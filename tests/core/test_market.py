"""Market history: key mapping, as-of lookups in event time, bounded retention, order independence."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.account.features import compute_features
from riskstream.core.market import (
    MARKET_LOOKBACK,
    apply_market,
    decode_market,
    encode_market,
    market_key,
    new_history,
    rate_key,
    value_as_of,
)
from riskstream.core.account.state import apply_event
from riskstream.core.durations import DAY, HOUR, MINUTE
from riskstream.core.windows import default_config


def mkt(etype: str, entity: str, t: int, value: float, eid: str | None = None) -> dict:
    return {"event_id": eid or f"{entity}@{t}", "type": etype, "schema_version": 1, "family": "market",
            "entity": entity, "event_time": t, "producer_time": t, "source": "feed", "payload": {"value": value}}


def acct(eid: str, t: int, etype: str, **payload) -> dict:
    return {"event_id": eid, "type": etype, "schema_version": 1, "family": "behaviour", "entity": "a1",
            "event_time": t, "producer_time": t, "source": "test", "payload": payload}


def test_market_key_mapping():
    assert market_key(mkt("sector_index", "sector_index|energy", 0, 1)) == "sector_index|energy"
    assert market_key(mkt("sector_index", "energy|energy", 0, 1)) == "sector_index|energy"
    assert market_key(mkt("rate_change", "ecb_rate|all", 0, 1)) == "rate_change|all"
    assert market_key(mkt("macro_indicator", "unemployment|all", 0, 1)) == "macro_indicator|unemployment"
    assert market_key(mkt("macro_indicator", "macro_indicator|unemployment", 0, 1)) == "macro_indicator|unemployment"
    assert market_key({"type": "drawdown", "entity": "x"}) is None


def test_value_as_of_uses_event_time():
    h = new_history()
    for t, v in [(3 * DAY, 3.0), (DAY, 1.0), (2 * DAY, 2.0)]:
        h = apply_market(h, mkt("rate_change", "rate|all", t, v))
    assert value_as_of(h, "rate_change|all", DAY - 1) is None
    assert value_as_of(h, "rate_change|all", DAY) == 1.0
    assert value_as_of(h, "rate_change|all", 2 * DAY + 5) == 2.0
    assert value_as_of(h, "rate_change|all", 10 * DAY) == 3.0
    assert value_as_of(h, "missing|key", 10 * DAY) is None
    assert rate_key(h, "energy") == "rate_change|all"


def test_history_is_bounded_and_keeps_the_anchor_point():
    h = new_history()
    for i in range(2000):
        h = apply_market(h, mkt("sector_index", "sector_index|energy", i * HOUR, 100.0 + i))
    points = h.series["sector_index|energy"]
    newest = points[-1][0]
    assert points[1][0] >= newest - h.retention > points[0][0]      # one anchor point before the cutoff
    assert len(points) <= (MARKET_LOOKBACK + default_config().allowed_lateness) // HOUR + 2
    # the anchor still answers as-of queries right at the cutoff
    assert value_as_of(h, "sector_index|energy", newest - h.retention - 1) == points[0][1]
    # a single old point is always kept
    h = apply_market(h, mkt("sector_index", "sector_index|oil", 0, 5.0))
    assert h.series["sector_index|oil"] == [(0, 5.0)]


@settings(max_examples=100, deadline=None)
@given(points=st.lists(st.tuples(st.integers(0, 60 * DAY), st.integers(1, 10_000)), max_size=40),
       seed=st.integers(0, 1000))
def test_history_is_order_independent_and_round_trips(points, seed):
    events = [mkt("sector_index", "sector_index|energy", t, v / 10) for t, v in points]
    events += events[: len(events) // 4]                     # re-sends
    a, b = new_history(), new_history()
    for e in events:
        a = apply_market(a, e)
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    for e in shuffled:
        b = apply_market(b, e)
    assert a == b
    assert decode_market(encode_market(a)) == a


def _features_after(order: list[dict]):
    state, market = None, new_history()
    for e in order:
        if e["family"] == "market":
            market = apply_market(market, e)
        else:
            state, outcome = apply_event(state, e)
            assert outcome == "applied"
    return state, market


def test_account_features_read_the_market_as_of_their_event_time():
    t0 = 10 * DAY
    history = [mkt("sector_index", "sector_index|energy", DAY, 100.0),
               mkt("sector_index", "sector_index|energy", t0 - 7 * DAY, 100.0),
               mkt("rate_change", "rate|all", t0 - 40 * DAY, 4.0),
               mkt("rate_change", "rate|all", t0 - 5 * DAY, 4.5),
               mkt("macro_indicator", "unemployment|all", t0 - DAY, 6.1)]
    crash = mkt("sector_index", "sector_index|energy", t0 - 30 * MINUTE, 75.0)    # before the drawdown
    after = mkt("sector_index", "sector_index|energy", t0 + 30 * MINUTE, 40.0)     # after it: must not be used
    account = [acct("open", 0, "account_opened", product="credit_line", segment="energy", limit=1000.0),
               acct("dd", t0, "drawdown", amount=100.0)]

    # market event before the account event, and after it (still within lateness)
    first = history + account[:1] + [crash, account[1], after]
    second = history + account + [after, crash]
    results = []
    for order in (first, second):
        state, market = _features_after(order)
        f = compute_features(state, as_of=state.watermark, market=market)
        results.append(f)
    assert results[0] == results[1]
    f = results[0]
    assert f["market_index_change_7d"] == 75.0 / 100.0 - 1.0
    assert f["market_shock"] == 1.0
    assert f["market_rate_change_30d_bp"] == 50.0
    assert f["market_unemployment"] == 6.1

    # as of a time before the crash the same history shows no shock
    state, market = _features_after(second)
    early = compute_features(state, as_of=t0 - HOUR, market=market)
    assert early["market_shock"] == 0.0 and early["market_index_change_7d"] == 0.0


def test_shock_threshold_comes_from_config():
    cfg = default_config()
    market = new_history()
    market = apply_market(market, mkt("sector_index", "sector_index|energy", 0, 100.0))
    market = apply_market(market, mkt("sector_index", "sector_index|energy", 3 * DAY, 100.0 * (1 - cfg.shock_drop)
                                      + 0.01))
    state, _ = apply_event(None, acct("open", 4 * DAY, "account_opened", product="credit_line", segment="energy",
                                      limit=1.0))
    assert compute_features(state, as_of=state.watermark, market=market)["market_shock"] == 0.0
    market = apply_market(market, mkt("sector_index", "sector_index|energy", 4 * DAY - 1, 100.0 * (1 - cfg.shock_drop)))
    assert compute_features(state, as_of=state.watermark, market=market)["market_shock"] == 1.0
