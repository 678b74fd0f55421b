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
from riskstream.core.varint import read_svarint, read_uvarint, write_uvarint, write_uvarints
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


def _z(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n) << 1) - 1  # zig-zag, as write_svarint


def encode_state(state: AccountState, *, config: FeatureConfig | None = None) -> bytes:
    """Compact binary form (varints relative to the watermark, fixed-point values); see :func:`decode_state`."""
    cfg = config or default_config()
    wm = state.watermark
    out = bytearray((_FORMAT,))
    optional = (state.dpd, state.statement, state.last_payment_time, state.last_drawdown_time, state.financials,
                state.cashflow, state.milestone)
    # Unsigned ints (signed ones zig-zagged) are collected and written in one go before each piece of raw bytes.
    product, segment = state.product.encode(), state.segment.encode()
    write_uvarints(out, (sum(1 << i for i, v in enumerate(optional) if v is not None), _z(wm),
                         _z(wm - state.opened_time), _z(state.last_offset), len(product)))
    out += product
    out.append(len(segment)) if len(segment) < 0x80 else write_uvarints(out, (len(segment),))
    out += segment
    out += _DOUBLE.pack(state.limit)
    write_uvarints(out, (_z(state.balance), len(state.recent_ids)))
    for t, h in sorted((t, h) for h, t in state.recent_ids.items()):
        write_uvarints(out, (_z(wm - t),))
        out += h.to_bytes(8, "big")
    u: list[int] = []
    if state.dpd is not None:
        t, clears, days = state.dpd
        u += (_z(wm - t), clears, days)
    if state.statement is not None:
        t, due, due_date = state.statement
        u.append(_z(wm - t))
        write_uvarints(out, u)
        u.clear()
        out += _DOUBLE.pack(due)
        u.append(_z(due_date - t))
    if state.last_payment_time is not None:
        u.append(_z(wm - state.last_payment_time))
    if state.last_drawdown_time is not None:
        u.append(_z(wm - state.last_drawdown_time))
    for reg in (state.financials, state.cashflow):
        if reg is not None:
            u.append(_z(wm - reg[0]))
            write_uvarints(out, u)
            u.clear()
            out += _DOUBLE.pack(reg[1])
            out += _DOUBLE.pack(reg[2])
    if state.milestone is not None:
        t, planned, actual, pct = state.milestone
        u += (_z(wm - t), _z(planned - t), _z(actual - t if actual != -1 else 0), actual != -1)
        write_uvarints(out, u)
        u.clear()
        out += _DOUBLE.pack(pct)
    u.append(len(state.change_times))
    u += [_z(wm - c) for c in state.change_times]
    u.append(len(state.covenants))
    write_uvarints(out, u)
    for name in sorted(state.covenants):
        t, value, threshold, is_max = state.covenants[name]
        _write_str(out, name)
        write_uvarints(out, (_z(wm - t),))
        out += _DOUBLE.pack(value)
        out += _DOUBLE.pack(threshold)
        out.append(is_max)
    by_name = cfg.by_name
    windows = [(name, b) for name, b in sorted(state.windows.items()) if b and name in by_name]
    write_uvarints(out, (len(windows),))
    for name, buckets in windows:
        spec = by_name[name]
        out += _window_header(spec)
        encode_buckets(out, buckets, spec, wm // spec.granularity)
    return bytes(out)


_HEADERS: dict = {}


def _window_header(spec) -> bytes:
    """A window's name, slot mask and granularity as written before its buckets (the same for every state)."""
    key = (spec.name, spec.stats_mask, spec.granularity)
    header = _HEADERS.get(key)
    if header is None:
        buf = bytearray()
        _write_str(buf, spec.name)
        write_uvarints(buf, (spec.stats_mask, spec.granularity))
        header = _HEADERS[key] = bytes(buf)
    return header


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
