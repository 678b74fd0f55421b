"""Mass-close breaker: holds CLOSE/FREEZE floods; only an explicit reset releases or drops them."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstream.core.actuator import MassCloseBreaker, make_command

WINDOW = 60_000


def cmd(i, action):
    return make_command(f"d{i}", f"a{i % 50}", action, {}, issued_at=0, policy_version=1)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(0, 30_000),
                  st.lists(st.sampled_from(["CLOSE", "FREEZE", "WARN", "REVIEW", "REDUCE_LIMIT"]), max_size=6),
                  st.integers(1, 500)),
        st.tuples(st.just("reset"), st.integers(0, 30_000), st.sampled_from(["release", "drop"]), st.just(0)),
        st.tuples(st.just("persist"), st.just(0), st.just(None), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 8), st.sampled_from([0.01, 0.05, 0.5]))
def test_breaker_properties(seq, max_count, max_share):
    b = MassCloseBreaker(max_share=max_share, max_count=max_count, window_ms=WINDOW, min_count_for_share=3)
    t, n = 0, 0
    offered, sent, released, dropped = [], [], [], []
    sent_times = []  # times of CLOSE/FREEZE sent since the last reset
    for op, dt, arg, active in seq:
        t += dt
        if op == "offer":
            batch = []
            for a in arg:
                batch.append(cmd(n, a))
                n += 1
            was_tripped = b.tripped
            out, audit = b.offer(batch, t, active)
            passed = [c for c in out if c["action"] in ("CLOSE", "FREEZE")]
            if was_tripped:
                assert passed == [], "CLOSE/FREEZE let through while tripped"
            # everything else always passes, in order
            assert [c for c in out if c["action"] not in ("CLOSE", "FREEZE")] == \
                   [c for c in batch if c["action"] not in ("CLOSE", "FREEZE")]
            offered += [c for c in batch if c["action"] in ("CLOSE", "FREEZE")]
            sent += passed
            sent_times += [t] * len(passed)
            recent = [x for x in sent_times if x > t - WINDOW]
            assert len(recent) <= max_count
            if b.tripped and not was_tripped:
                assert any(r["payload"]["event"] == "tripped" for r in audit)
        elif op == "reset":
            held_before = list(b.held)
            rel, drp, audit = b.reset(arg, t, by="ops")
            assert not b.tripped and b.held == []
            assert (rel if arg == "release" else drp) == held_before
            assert audit[0]["kind"] == "breaker" and audit[0]["payload"]["how"] == arg
            released += rel
            dropped += drp
            sent_times = []
        else:
            b = MassCloseBreaker.decode(orjson.loads(orjson.dumps(b.encode())))
    # nothing lost, nothing duplicated
    accounted = sent + released + dropped + b.held
    assert sorted(c["command_id"] for c in accounted) == sorted(c["command_id"] for c in offered)


def test_share_trip_and_drop():
    b = MassCloseBreaker(max_share=0.01, max_count=1000, min_count_for_share=5)
    batch = [cmd(i, "CLOSE") for i in range(10)]
    out, audit = b.offer(batch, 0, active_accounts=100)  # 5 % of 100 accounts = 5 > 1 %
    assert len(out) == 4 and b.tripped and len(b.held) == 6
    assert audit[0]["payload"]["cause"] == "share"
    # still tripped a minute later: only a reset releases
    out, _ = b.offer([cmd(99, "FREEZE"), cmd(98, "WARN")], 10 * 60_000, active_accounts=100)
    assert [c["action"] for c in out] == ["WARN"] and b.tripped
    rel, drp, audit = b.reset("drop", 10 * 60_000 + 1, by="ops", reason="model bug")
    assert rel == [] and len(drp) == 7 and not b.tripped
    assert audit[0]["payload"]["command_ids"] == [c["command_id"] for c in drp]


def test_window_slides():
    b = MassCloseBreaker(max_share=1.0, max_count=2)
    assert len(b.offer([cmd(1, "CLOSE"), cmd(2, "CLOSE")], 0, 10)[0]) == 2
    assert len(b.offer([cmd(3, "CLOSE")], 60_001, 10)[0]) == 1  # the first two left the window
    assert not b.tripped


def test_redelivered_held_command_is_held_once():
    b = MassCloseBreaker(max_share=1.0, max_count=1)
    b.offer([cmd(1, "CLOSE"), cmd(2, "CLOSE")], 0, 10)
    b.offer([cmd(2, "CLOSE")], 1, 10)
    assert [c["command_id"] for c in b.held] == [cmd(2, "CLOSE")["command_id"]]


def test_bad_arguments():
    with pytest.raises(ValueError):
        MassCloseBreaker(max_share=0, max_count=1)
    with pytest.raises(ValueError):
        MassCloseBreaker(max_share=0.1, max_count=1).reset("open", 0)
