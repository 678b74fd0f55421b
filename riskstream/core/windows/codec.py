"""Bucket codec: a window's sparse buckets as compact bytes (varints relative to the watermark's bucket).

Only the slots the spec keeps are written (its ``stats_mask``); a reader that no longer has the spec, or has a
changed one, skips the stored buckets with :func:`skip_buckets`.

>>> from riskstream.core.windows.buckets import add_event
>>> from riskstream.core.windows.spec import WindowSpec
>>> spec = WindowSpec("dd", ("drawdown",), "amount", None, 300_000, (3_600_000,), ("count", "sum"))
>>> buckets = {}
>>> add_event(buckets, spec, 600_000, {"amount": 2.5})
>>> out = bytearray()
>>> encode_buckets(out, buckets, spec, base_index=2)
>>> decode_buckets(bytes(out), 0, spec, base_index=2) == (buckets, len(out))
True
>>> skip_buckets(bytes(out), 0, spec.stats_mask, spec.granularity, base_index=2) == len(out)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riskstream.core.varint import read_svarint, read_uvarint, write_uvarints
from riskstream.core.windows.buckets import COUNT, KEYS, LAST_T, LAST_V, MAX, MIN, SUM

if TYPE_CHECKING:
    from riskstream.core.windows.spec import WindowSpec

__all__ = ["decode_buckets", "encode_buckets", "skip_buckets"]


def encode_buckets(out: bytearray, buckets: dict[int, list], spec: WindowSpec, base_index: int) -> None:
    """Append a window's buckets; indices are stored relative to ``base_index`` (the watermark's bucket)."""
    g = spec.granularity
    keeps_sum, keeps_min, keeps_max, keeps_last, keeps_keys = (spec.keeps_sum, spec.keeps_min, spec.keeps_max,
                                                               spec.keeps_last, spec.keeps_keys)
    u = [len(buckets)]  # unsigned ints to write (signed ones zig-zagged), flushed before raw bytes
    add = u.append
    for idx in sorted(buckets, reverse=True):
        b = buckets[idx]
        d = base_index - idx
        add((d << 1) if d >= 0 else ((-d) << 1) - 1)
        add(b[COUNT])
        if keeps_sum:
            v = b[SUM]
            add((v << 1) if v >= 0 else ((-v) << 1) - 1)
        if keeps_min:
            v = b[MIN]
            add((v << 1) if v >= 0 else ((-v) << 1) - 1)
        if keeps_max:
            v = b[MAX]
            add((v << 1) if v >= 0 else ((-v) << 1) - 1)
        if keeps_last:
            add(b[LAST_T] - idx * g)
            v = b[LAST_V]
            add((v << 1) if v >= 0 else ((-v) << 1) - 1)
        if keeps_keys:
            keys = b[KEYS]
            add(len(keys))
            write_uvarints(out, u)
            u.clear()
            for k in sorted(keys):
                out += k.to_bytes(8, "big")
    write_uvarints(out, u)


def decode_buckets(buf: bytes, pos: int, spec: WindowSpec | _Layout, base_index: int) -> tuple[dict[int, list], int]:
    """Inverse of :func:`encode_buckets`; returns the buckets and the next read position.

    Slots the spec does not keep get the same fixed values ``add_event`` gives them.
    """
    n, pos = read_uvarint(buf, pos)
    g = spec.granularity
    buckets: dict[int, list] = {}
    for _ in range(n):
        delta, pos = read_svarint(buf, pos)
        idx = base_index - delta
        count, pos = read_uvarint(buf, pos)
        total = mn = mx = last_v = 0
        last_t = idx * g
        keys = None
        if spec.keeps_sum:
            total, pos = read_svarint(buf, pos)
        if spec.keeps_min:
            mn, pos = read_svarint(buf, pos)
        if spec.keeps_max:
            mx, pos = read_svarint(buf, pos)
        if spec.keeps_last:
            off, pos = read_uvarint(buf, pos)
            last_t = idx * g + off
            last_v, pos = read_svarint(buf, pos)
        if spec.keeps_keys:
            k, pos = read_uvarint(buf, pos)
            keys = set()
            for _ in range(k):
                keys.add(int.from_bytes(buf[pos:pos + 8], "big"))
                pos += 8
        buckets[idx] = [count, total, mn, mx, last_t, last_v, keys]
    return buckets, pos


def skip_buckets(buf: bytes, pos: int, mask: int, granularity: int, base_index: int) -> int:
    """The read position after buckets stored with slot mask ``mask`` (a window whose spec is gone or changed)."""
    return decode_buckets(buf, pos, _Layout(mask, granularity), base_index)[1]


class _Layout:
    """The stored slots of a window, from its encoded mask: what decoding needs of a spec."""

    def __init__(self, mask: int, granularity: int):
        self.granularity = granularity
        self.keeps_sum, self.keeps_min, self.keeps_max, self.keeps_last, self.keeps_keys = (
            bool(mask >> i & 1) for i in range(5))
