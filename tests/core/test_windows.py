"""Windows: YAML validation and an exact brute-force check of every windowed aggregate."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskstream.core.account.state import apply_event
from riskstream.core.durations import DAY, HOUR, MINUTE
from riskstream.core.windows import FeaturesError, add_event, aggregate, default_config, load_config, load_config_text

TEST_YAML = """
version: 1
allowed_lateness: {lateness}
windows:
  - name: everything
    events: [drawdown, purchase]
    value: amount
    distinct: device_fingerprint_hash
    granularity: 5m
    horizons: [5m, 1h, 24h]
    aggregates: [count, sum, min, max, mean, distinct, last, since_last]
  - name: hourly
    events: [drawdown]
    value: amount
    granularity: 1h
    horizons: [1h, 6h, 24h]
    aggregates: [count, sum, min, max, mean, last, since_last]
  - name: counts
    events: [login_failed, purchase]
    granularity: 7m
    horizons: [14m, 70m]
    aggregates: [count, since_last]
"""


def test_default_config_loads_and_declares_feature_windows():
    cfg = default_config()
    assert cfg.allowed_lateness == HOUR
    assert cfg.by_name["drawdown_short"].granularity == 5 * MINUTE
    assert cfg.by_name["drawdown_long"].horizons == (7 * DAY, 30 * DAY, 90 * DAY)
    assert cfg.shock_drop == pytest.approx(0.20)


@pytest.mark.parametrize("text, field, fix", [
    ("version: 2\nwindows: []", "version", "version: 1"),
    ("version: 1\nwindows: []", "windows", "declare at least one window"),
    ("version: 1\nallowed_lateness: 1 hour\nwindows: [{name: a, events: [x], granularity: 1m, horizons: [1m], "
     "aggregates: [count]}]", "allowed_lateness", "1d12h"),
    ("version: 1\nallowed_lateness: 0s\nwindows: [{name: a, events: [x], granularity: 1m, horizons: [1m], "
     "aggregates: [count]}]", "allowed_lateness", "above zero"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [7m], aggregates: [count]}]",
     "windows[a].horizons", "multiples of the granularity"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], aggregates: [sum]}]",
     "windows[a].aggregates", "value:"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], aggregates: [median]}]",
     "windows[a].aggregates", "count"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], aggregates: [distinct]}]",
     "windows[a].aggregates", "distinct:"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], aggregates: [count], "
     "colour: red}]", "windows[0].colour", "remove it"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], aggregates: [count]}, "
     "{name: a, events: [y], granularity: 5m, horizons: [5m], aggregates: [count]}]", "windows[1].name",
     "own name"),
    ("version: 1\nmarket: {shock_drop: 1.5}\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m], "
     "aggregates: [count]}]", "market.shock_drop", "in [1e-09, 1.0]"),
    ("version: 1\nwindows: [{name: a, events: [x], granularity: 5m, horizons: [5m]", "<file>", "YAML syntax"),
])
def test_bad_config_is_refused_with_file_field_and_fix(text, field, fix):
    with pytest.raises(FeaturesError) as err:
        load_config_text(text, source="bad.yaml")
    assert err.value.file == "bad.yaml"
    assert err.value.field == field
    assert fix in err.value.fix
    assert str(err.value).startswith(f"bad.yaml: {field}: ")


def test_config_missing_a_feature_window_is_refused(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text(TEST_YAML.format(lateness="1h"))
    with pytest.raises(FeaturesError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "drawdown_short" in str(err.value)
    assert load_config(path, required=()).by_name["hourly"].horizons == (HOUR, 6 * HOUR, DAY)


def test_bucket_aligned_window_edges():
    cfg = load_config_text(TEST_YAML.format(lateness="1h"))
    spec = cfg.by_name["hourly"]
    buckets: dict = {}
    add_event(buckets, spec, HOUR - 1, {"amount": 1.0})        # bucket 0
    add_event(buckets, spec, HOUR, {"amount": 2.0})            # bucket 1
    # as of any time in bucket 1, the 1h window is bucket 1 only
    assert aggregate(buckets, spec, HOUR, as_of=2 * HOUR - 1)["sum"] == 2.0
    assert aggregate(buckets, spec, 6 * HOUR, as_of=2 * HOUR - 1)["sum"] == 3.0
    assert aggregate(buckets, spec, 6 * HOUR, as_of=6 * HOUR)["sum"] == 2.0   # bucket 0 left (6-6, 6]
    assert aggregate(buckets, spec, HOUR, as_of=3 * HOUR)["count"] == 0


def test_late_boundary_and_oldest_needed_bucket_is_kept():
    cfg = load_config_text(TEST_YAML.format(lateness="1h"))
    spec = cfg.by_name["hourly"]
    ev = lambda i, t: {"event_id": str(i), "type": "drawdown", "family": "behaviour", "entity": "a",
                       "event_time": t, "payload": {"amount": 1.0}}
    state, _ = apply_event(None, {**ev(0, 0), "type": "account_opened", "payload": {}}, config=cfg)
    state, _ = apply_event(state, ev(1, 5 * HOUR), config=cfg)         # bucket 5
    state, _ = apply_event(state, ev(2, 29 * HOUR + 30 * MINUTE), config=cfg)  # watermark 29h30m
    # as of wm - lateness = 28h30m the 24h window is buckets (28-24, 28] = 5..28: bucket 5 must survive
    assert aggregate(state.windows["hourly"], spec, DAY, as_of=28 * HOUR + 30 * MINUTE)["count"] == 1
    assert apply_event(state, ev(3, 28 * HOUR + 30 * MINUTE), config=cfg)[1] == "applied"   # == wm - lateness
    assert apply_event(state, ev(4, 28 * HOUR + 30 * MINUTE - 1), config=cfg)[1] == "late"
    state, _ = apply_event(state, ev(5, 30 * HOUR), config=cfg)       # now bucket 5 can never be read again
    assert 5 not in state.windows["hourly"]


# --- property test: incremental windows == brute force over the accepted events --------------------------------------

def st_edge(h: int) -> int:
    return (-1, 0, 1)[h % 3]


EVENT = st.tuples(
    st.one_of(st.integers(0, 2 * DAY),             # event time: spread, or clustered on bucket edges
              st.integers(0, 48).map(lambda h: h * HOUR + st_edge(h))),
    st.sampled_from(["drawdown", "purchase", "login_failed"]),
    st.integers(1, 1_000_000),                    # amount in cents
    st.sampled_from(["d1", "d2", "d3", "d4", "d5"]),
    st.integers(0, 150 * MINUTE),                 # arrival delay: > lateness makes some events late
)


def _event(i: int, t: int, etype: str, cents: int, device: str) -> dict:
    return {"event_id": f"e{i}", "type": etype, "schema_version": 1, "family": "behaviour", "entity": "acct",
            "event_time": t, "producer_time": t, "source": "test",
            "payload": {"amount": cents / 100, "device_fingerprint_hash": device}}


def _reference(accepted: list[dict], spec, horizon: int, as_of: int) -> dict:
    g = spec.granularity
    hi = as_of // g
    lo = hi - horizon // g
    inside = [e for e in accepted if e["type"] in spec.events and lo < e["event_time"] // g <= hi]
    values = [e["payload"]["amount"] for e in inside]
    out = {"count": len(inside)}
    if spec.value:
        out["sum"] = math.fsum(values)
        out["min"] = min(values) if values else None
        out["max"] = max(values) if values else None
        out["mean"] = math.fsum(values) / len(values) if values else None
    if spec.distinct:
        out["distinct"] = len({e["payload"][spec.distinct] for e in inside})
    last = max(((e["event_time"], e["payload"]["amount"]) for e in inside), default=None)
    out["last"] = None if last is None else last[1]
    out["since_last"] = None if last is None else as_of - last[0]
    return {k: v for k, v in out.items() if k in spec.aggregates}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENT, min_size=1, max_size=30),
       resend=st.lists(st.integers(0, 29), max_size=6),
       lateness=st.sampled_from(["30m", "1h"]),
       probe=st.integers(0, 2 * DAY))
def test_windows_match_brute_force(events, resend, lateness, probe):
    cfg = load_config_text(TEST_YAML.format(lateness=lateness))
    built = [(t + delay, i, _event(i, t, etype, cents, device))
             for i, (t, etype, cents, device, delay) in enumerate(events)]
    # re-sends of earlier events (same event_id) arriving after everything else
    built += [(4 * DAY + j, len(events) + j, built[r % len(built)][2]) for j, r in enumerate(resend)]
    arrival = [e for _, _, e in sorted(built, key=lambda x: (x[0], x[1]))]

    opened = {"event_id": "open", "type": "account_opened", "family": "behaviour", "entity": "acct",
              "event_time": 0, "payload": {"product": "credit_line", "segment": "retail", "limit": 1e6}}
    state, outcome = apply_event(None, opened, config=cfg)
    assert outcome == "applied"

    # reference: same late rule on the same arrival order, duplicates never applied twice
    wm, accepted, accepted_ids = 0, [], set()
    for e in arrival:
        state, outcome = apply_event(state, e, config=cfg)
        if e["event_id"] in accepted_ids:
            expected = "duplicate"
        elif e["event_time"] < wm - cfg.allowed_lateness:
            expected = "late"
        else:
            expected = "applied"
            accepted.append(e)
            accepted_ids.add(e["event_id"])
            wm = max(wm, e["event_time"])
        assert outcome in ((expected, "late") if expected == "duplicate" else (expected,))
    assert state.watermark == wm

    for as_of in (wm, wm - cfg.allowed_lateness, wm - cfg.allowed_lateness + probe % HOUR, wm + probe):
        for spec in cfg.windows:
            for horizon in spec.horizons:
                got = aggregate(state.windows.get(spec.name, {}), spec, horizon, as_of)
                want = _reference(accepted, spec, horizon, as_of)
                assert got.keys() == want.keys()
                for agg in want:
                    assert _close(got[agg], want[agg]), (spec.name, horizon, as_of, agg, got[agg], want[agg])
