"""Market features as of event time, live: the same account and market series delivered in two arrival orders to two
isolated pipelines end with the same state and the same features, and the market features are the values in effect
at the account's watermark in event time (a later point, already in the history, is not used).

Order 1: the market series is on the broker before the worker starts (its global reader has it before scoring), the
account's events follow in event-time order. Order 2: the account is opened and scored first, the market series
(including a point older than the account's watermark) arrives only after that, and then an older account event
(within the allowed lateness) arrives last.
"""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from riskstream.core.contracts import Rejected, encode_event, make_event, parse_event
from riskstream.core.account.features import compute_features
from riskstream.core.market import apply_market, new_history
from riskstream.ops.orchestrate import read_topic
from riskstream.core.account.record import AccountRecord
from riskstream.core.names import VALID as T_VALID
from riskstream.core.privacy import Pseudonymizer
from riskstream.core.account.codec import decode_state

from tests.e2e.test_recovery import CHANGELOG, Progress, produce

pytestmark = pytest.mark.slow

HOUR, DAY = 3_600_000, 86_400_000
MARKET, BEHAVIOUR = "riskstream.events.market", "riskstream.events.behaviour"
ACCOUNT = "MKT0001"


def scenario():
    """(market records, opening + the account's latest event, the older event) and the event times used."""
    w = (int(time.time() * 1000) // 60_000) * 60_000 - HOUR   # the account's watermark, an hour ago
    series = [(w - 8 * DAY, 100.0),      # in effect at w - 7d: the 7-day base
              (w - HOUR, 75.0),          # in effect at w: -25 % in 7 days, a shock (drop >= 20 %)
              (w + 30 * 60_000, 110.0)]  # after w: must not count (it would read +10 %, no shock)
    market = [(MARKET, b"sector_index|energy",
               encode_event(make_event("sector_index", "sector_index|energy", {"value": v}, event_time=t)))
              for t, v in series]
    opened = make_event("account_opened", ACCOUNT, {"product": "credit_line", "segment": "energy", "limit": 5000.0,
                                                    "currency": "EUR"}, event_time=w - 2 * HOUR)
    latest = make_event("drawdown", ACCOUNT, {"amount": 400.0, "channel": "app"}, event_time=w)
    older = make_event("drawdown", ACCOUNT, {"amount": 150.0, "channel": "app"}, event_time=w - 10 * 60_000)
    rec = lambda ev: (BEHAVIOUR, ACCOUNT.encode(), encode_event(ev))  # noqa: E731
    return market, [rec(opened), rec(latest)], [rec(older)], w


def final_features(pipeline):
    """The account's state from the changelog and its features as of its watermark, with the market history
    rebuilt from the market topic exactly as a worker's global reader does."""
    rows = {r.key: r.value for r in read_topic(pipeline.bootstrap, pipeline.topic(CHANGELOG))}
    state = decode_state(AccountRecord.decode(rows[ACCOUNT.encode()]).state)
    ps = Pseudonymizer.from_env()
    history = new_history()
    for r in read_topic(pipeline.bootstrap, pipeline.topic(MARKET)):
        ev = parse_event(r.value, now_ms=r.timestamp, pseudonymizer=ps, family="market")
        assert not isinstance(ev, Rejected), ev
        history = apply_market(history, ev)
    return state, compute_features(state, as_of=state.watermark, market=history)


def test_market_as_of_event_time_in_two_arrival_orders(pipeline, broker, tmp_path):
    from tests.conftest import Pipeline

    market, first, last, w = scenario()
    p1 = pipeline
    (tmp_path / "order2").mkdir()
    p2 = Pipeline(broker, tmp_path / "order2")
    prog1, prog2 = Progress(p1), Progress(p2)
    try:
        # Order 1: market, then the account in event-time order (the older drawdown before the latest).
        produce(p1.bootstrap, p1.topic, market)
        produce(p1.bootstrap, p1.topic, [first[0], last[0], first[1]])
        w1 = p1.start("worker", name="worker-order1")
        # Order 2: the account first; the market (a point older than the account's watermark among it) after it
        # was scored; the older drawdown last.
        produce(p2.bootstrap, p2.topic, first)
        w2 = p2.start("worker", name="worker-order2")
        w1.wait_ready(90)
        w2.wait_ready(90)
        prog2.wait_done(w2, 2)
        scored_before_market = final_features(p2)[0].watermark
        produce(p2.bootstrap, p2.topic, market)
        prog2.wait_done(w2, 2)
        produce(p2.bootstrap, p2.topic, last)
        prog1.wait_done(w1, 3)
        prog2.wait_done(w2, 3)
        assert w1.alive() and w2.alive()
    finally:
        prog1.close()
        prog2.close()
        p2.close()
        p1.close()

    assert scored_before_market == w, "order 2 did not score the account before its market arrived"
    def order(p):  # the account's events in the order the worker applied them: (type, minutes from the watermark)
        evs = [orjson.loads(r.value) for r in read_topic(p.bootstrap, p.topic(T_VALID)) if not r.key.startswith(b"\x00")]
        return [(e["type"], (e["event_time"] - w) // 60_000) for e in evs]

    print(f"valid order: order 1 {order(p1)}, order 2 {order(p2)}")
    s1, f1 = final_features(p1)
    s2, f2 = final_features(p2)
    print(f"market as of event time: watermark {s1.watermark == s2.watermark == w}, "
          f"market_index_change_7d {f1['market_index_change_7d']:.4f} / {f2['market_index_change_7d']:.4f}, "
          f"market_shock {f1['market_shock']:.0f} / {f2['market_shock']:.0f}, "
          f"drawdown_sum_1h {f1['drawdown_sum_1h']:.0f} / {f2['drawdown_sum_1h']:.0f}, "
          f"features equal {f1 == f2}, states equal but for the apply position "
          f"{dataclasses.replace(s1, last_offset=0) == dataclasses.replace(s2, last_offset=0)}")
    assert s1.watermark == s2.watermark == w
    # Equal but for the apply position: where in its valid partition each run released the last event (it counts
    # the watermark records before it, docs/time.md), bookkeeping for re-reads, not account data.
    assert dataclasses.replace(s1, last_offset=0) == dataclasses.replace(s2, last_offset=0)
    assert f1 == f2, {k: (f1[k], f2[k]) for k in f1 if f1[k] != f2[k]}
    assert f1["market_index_change_7d"] == pytest.approx(75.0 / 100.0 - 1.0)
    assert f1["market_shock"] == 1.0
    assert f1["drawdown_sum_1h"] == 550.0 and f1["drawdown_count_1h"] == 2.0
