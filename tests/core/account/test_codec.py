"""The state codec writes exactly the bytes of the one-varint-at-a-time encoder it replaced, and round-trips."""
from __future__ import annotations

import orjson

from riskstream.core.account.codec import _DOUBLE, _FORMAT, _write_str, decode_state, encode_state
from riskstream.core.account.state import AccountState, apply_event
from riskstream.core.varint import write_svarint, write_uvarint
from riskstream.core.windows.buckets import COUNT, KEYS, LAST_T, LAST_V, MAX, MIN, SUM
from riskstream.core.windows.spec import FeatureConfig, WindowSpec, default_config
from riskstream.ops.simulator import SimConfig, Simulator


def _write_double(out, x):
    out += _DOUBLE.pack(x)


# --- the reference: the encoder as it was before write_uvarints (riskstream 7aad833) ---
def reference_encode_state(state: AccountState, *, config: FeatureConfig | None = None) -> bytes:
    """Compact binary form (varints relative to the watermark, fixed-point values); see :func:`decode_state`."""
    cfg = config or default_config()
    wm = state.watermark
    out = bytearray((_FORMAT,))
    optional = (state.dpd, state.statement, state.last_payment_time, state.last_drawdown_time, state.financials,
                state.cashflow, state.milestone)
    write_uvarint(out, sum(1 << i for i, v in enumerate(optional) if v is not None))
    write_svarint(out, wm)
    write_svarint(out, wm - state.opened_time)
    write_svarint(out, state.last_offset)
    _write_str(out, state.product)
    _write_str(out, state.segment)
    _write_double(out, state.limit)
    write_svarint(out, state.balance)
    write_uvarint(out, len(state.recent_ids))
    for t, h in sorted((t, h) for h, t in state.recent_ids.items()):
        write_svarint(out, wm - t)
        out += h.to_bytes(8, "big")
    if state.dpd is not None:
        t, clears, days = state.dpd
        write_svarint(out, wm - t)
        write_uvarint(out, clears)
        write_uvarint(out, days)
    if state.statement is not None:
        t, due, due_date = state.statement
        write_svarint(out, wm - t)
        _write_double(out, due)
        write_svarint(out, due_date - t)
    if state.last_payment_time is not None:
        write_svarint(out, wm - state.last_payment_time)
    if state.last_drawdown_time is not None:
        write_svarint(out, wm - state.last_drawdown_time)
    for reg in (state.financials, state.cashflow):
        if reg is not None:
            write_svarint(out, wm - reg[0])
            _write_double(out, reg[1])
            _write_double(out, reg[2])
    if state.milestone is not None:
        t, planned, actual, pct = state.milestone
        write_svarint(out, wm - t)
        write_svarint(out, planned - t)
        write_svarint(out, actual - t if actual != -1 else 0)
        out.append(actual != -1)
        _write_double(out, pct)
    write_uvarint(out, len(state.change_times))
    for c in state.change_times:
        write_svarint(out, wm - c)
    write_uvarint(out, len(state.covenants))
    for name in sorted(state.covenants):
        t, value, threshold, is_max = state.covenants[name]
        _write_str(out, name)
        write_svarint(out, wm - t)
        _write_double(out, value)
        _write_double(out, threshold)
        out.append(is_max)
    windows = [(name, b) for name, b in sorted(state.windows.items()) if b and name in cfg.by_name]
    write_uvarint(out, len(windows))
    for name, buckets in windows:
        spec = cfg.by_name[name]
        _write_str(out, name)
        write_uvarint(out, spec.stats_mask)
        write_uvarint(out, spec.granularity)
        reference_encode_buckets(out, buckets, spec, wm // spec.granularity)
    return bytes(out)


def reference_encode_buckets(out: bytearray, buckets: dict[int, list], spec: WindowSpec, base_index: int) -> None:
    """Append a window's buckets; indices are stored relative to ``base_index`` (the watermark's bucket)."""
    write_uvarint(out, len(buckets))
    g = spec.granularity
    for idx in sorted(buckets, reverse=True):
        b = buckets[idx]
        write_svarint(out, base_index - idx)
        write_uvarint(out, b[COUNT])
        if spec.keeps_sum:
            write_svarint(out, b[SUM])
        if spec.keeps_min:
            write_svarint(out, b[MIN])
        if spec.keeps_max:
            write_svarint(out, b[MAX])
        if spec.keeps_last:
            write_uvarint(out, b[LAST_T] - idx * g)
            write_svarint(out, b[LAST_V])
        if spec.keeps_keys:
            keys = b[KEYS]
            write_uvarint(out, len(keys))
            for k in sorted(keys):
                out += k.to_bytes(8, "big")



_FAMILY = {"riskstream.events.behaviour": "behaviour", "riskstream.events.repayment": "repayment",
           "riskstream.events.credit": "credit", "riskstream.events.project": "project"}


def simulated_states(n: int, *, facilities: int, seed: int):
    """(event, account state after it) along a simulator stream of `n` records, as the account step applies them."""
    sim = Simulator(SimConfig(accounts=30, facilities=facilities, step_ms=360_000, seed=seed))
    states: dict = {}
    for offset, (topic, _key, value) in enumerate(sim.wire(n)):
        if topic not in _FAMILY:
            continue
        ev = orjson.loads(value)
        ev["family"], ev["entity"] = _FAMILY[topic], ev.get("account_id") or ev.get("facility_id")
        state, _ = apply_event(states.get(ev["entity"]), ev, offset=offset)
        if state is None:
            continue
        states[ev["entity"]] = state
        yield ev, state


def test_same_bytes_as_the_reference_and_round_trip():
    kinds = set()
    for ev, state in simulated_states(4000, facilities=8, seed=3):
        kinds.add(ev["type"])
        data = encode_state(state)
        assert data == reference_encode_state(state)
        assert decode_state(data) == state
    assert {"milestone_report", "covenant_test", "financial_statement", "statement_issued"} <= kinds


def test_window_features_equal_the_generic_aggregate():
    """compute_features reads count/sum/distinct straight from the buckets: the same as windows.aggregate."""
    from riskstream.core.account.features import compute_features
    from riskstream.core.durations import DAY, HOUR
    from riskstream.core.windows.buckets import aggregate

    cfg = default_config()
    reads = {"drawdown_sum_1h": ("drawdown_short", HOUR, "sum"), "drawdown_count_1h": ("drawdown_short", HOUR, "count"),
             "drawdown_sum_30d": ("drawdown_long", 30 * DAY, "sum"), "failed_logins_24h": ("login_failed", DAY, "count"),
             "distinct_devices_7d": ("devices", 7 * DAY, "distinct"),
             "missed_payments_90d": ("missed_payments", 90 * DAY, "count"),
             "new_debt_sum_90d": ("new_debt", 90 * DAY, "sum")}
    for _ev, state in simulated_states(3000, facilities=2, seed=5):
        f = compute_features(state, as_of=state.watermark, market=None)
        for feature, (window, horizon, agg) in reads.items():
            ref = aggregate(state.windows.get(window, {}), cfg.by_name[window], horizon, state.watermark)[agg]
            assert f[feature] == float(ref), feature
