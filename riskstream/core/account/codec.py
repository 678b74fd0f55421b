"""Account state codec: an :class:`~riskstream.core.account.state.AccountState` as compact, versioned bytes.

Times are varints relative to the watermark, bucket indices relative to the watermark's bucket, values fixed-point
or 8-byte doubles, event-id hashes raw 8 bytes. Each window carries its name, slot mask and granularity, so a
window whose spec changed since encoding is dropped on decode (it refills) instead of being misread.

>>> from riskstream.core.account.state import apply_event
>>> opened = {"event_id": "e1", "type": "account_opened", "family": "behaviour", "entity": "a1", "event_time": 0,
...           "payload": {"product": "credit_line", "segment": "retail", "limit": 1000.0}}
>>> state, _ = apply_event(None, opened)
>>> state, _ = apply_event(state, {**opened, "event_id": "e2", "type": "drawdown", "event_time": 60_000,
...                                "payload": {"amount": 250.0}})
>>> data = encode_state(state)
>>> len(data), decode_state(data) == state
(121, True)
"""

from __future__ import annotations

import struct

from riskstream.core.account.state import AccountState
from riskstream.core.varint import read_svarint, read_uvarint, write_svarint, write_uvarint
from riskstream.core.windows.codec import decode_buckets, encode_buckets, skip_buckets
from riskstream.core.windows.spec import FeatureConfig, default_config

__all__ = ["decode_state", "encode_state"]

_FORMAT = 1
_DOUBLE = struct.Struct(">d")


def _write_str(out: bytearray, s: str) -> None:
    raw = s.encode()
    write_uvarint(out, len(raw))
    out += raw


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = read_uvarint(buf, pos)
    return buf[pos:pos + n].decode(), pos + n


def _write_double(out: bytearray, x: float) -> None:
    out += _DOUBLE.pack(x)


def _read_double(buf: bytes, pos: int) -> tuple[float, int]:
    return _DOUBLE.unpack_from(buf, pos)[0], pos + 8


def encode_state(state: AccountState, *, config: FeatureConfig | None = None) -> bytes:
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
        encode_buckets(out, buckets, spec, wm // spec.granularity)
    return bytes(out)




def decode_state(data: bytes, *, config: FeatureConfig | None = None) -> AccountState:
    """Inverse of :func:`encode_state`. Windows whose spec changed since encoding are dropped (they refill)."""
    cfg = config or default_config()
    buf = memoryview(data).tobytes() if not isinstance(data, bytes) else data
    if not buf or buf[0] != _FORMAT:
        raise ValueError(f"unsupported account state format {buf[:1]!r}")
    pos = 1
    present, pos = read_uvarint(buf, pos)
    wm, pos = read_svarint(buf, pos)
    d, pos = read_svarint(buf, pos)
    opened = wm - d
    last_offset, pos = read_svarint(buf, pos)
    product, pos = _read_str(buf, pos)
    segment, pos = _read_str(buf, pos)
    limit, pos = _read_double(buf, pos)
    balance, pos = read_svarint(buf, pos)
    state = AccountState(product=product, segment=segment, limit=limit, opened_time=opened, watermark=wm,
                         last_offset=last_offset, balance=balance)
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        d, pos = read_svarint(buf, pos)
        state.recent_ids[int.from_bytes(buf[pos:pos + 8], "big")] = wm - d
        pos += 8
    if present & 1:
        d, pos = read_svarint(buf, pos)
        clears, pos = read_uvarint(buf, pos)
        days, pos = read_uvarint(buf, pos)
        state.dpd = (wm - d, clears, days)
    if present & 2:
        d, pos = read_svarint(buf, pos)
        due, pos = _read_double(buf, pos)
        dd, pos = read_svarint(buf, pos)
        state.statement = (wm - d, due, wm - d + dd)
    if present & 4:
        d, pos = read_svarint(buf, pos)
        state.last_payment_time = wm - d
    if present & 8:
        d, pos = read_svarint(buf, pos)
        state.last_drawdown_time = wm - d
    for bit, attr in ((16, "financials"), (32, "cashflow")):
        if present & bit:
            d, pos = read_svarint(buf, pos)
            a, pos = _read_double(buf, pos)
            b, pos = _read_double(buf, pos)
            setattr(state, attr, (wm - d, a, b))
    if present & 64:
        d, pos = read_svarint(buf, pos)
        t = wm - d
        planned, pos = read_svarint(buf, pos)
        actual, pos = read_svarint(buf, pos)
        has_actual = buf[pos]
        pos += 1
        pct, pos = _read_double(buf, pos)
        state.milestone = (t, t + planned, t + actual if has_actual else -1, pct)
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        d, pos = read_svarint(buf, pos)
        state.change_times.append(wm - d)
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        name, pos = _read_str(buf, pos)
        d, pos = read_svarint(buf, pos)
        value, pos = _read_double(buf, pos)
        threshold, pos = _read_double(buf, pos)
        is_max = buf[pos]
        pos += 1
        state.covenants[name] = (wm - d, value, threshold, is_max)
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        name, pos = _read_str(buf, pos)
        mask, pos = read_uvarint(buf, pos)
        granularity, pos = read_uvarint(buf, pos)
        spec = cfg.by_name.get(name)
        if spec is not None and spec.stats_mask == mask and spec.granularity == granularity:
            buckets, pos = decode_buckets(buf, pos, spec, wm // granularity)
            state.windows[name] = buckets
        else:
            pos = skip_buckets(buf, pos, mask, granularity, wm // granularity)
    return state
