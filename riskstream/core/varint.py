"""Varints: non-negative ints as LEB128, signed ints zig-zag encoded; the compact codec of windows and state.

>>> out = bytearray()
>>> write_uvarint(out, 300); write_svarint(out, -3)
>>> bytes(out)
b'\\xac\\x02\\x05'
>>> read_uvarint(out, 0), read_svarint(out, 2)
((300, 2), (-3, 3))
"""

from __future__ import annotations

__all__ = ["read_svarint", "read_uvarint", "write_svarint", "write_uvarint", "write_uvarints", "zigzag"]


def write_uvarint(out: bytearray, n: int) -> None:
    """Append a non-negative int as LEB128."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """The LEB128 int at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def write_svarint(out: bytearray, n: int) -> None:
    """Append a signed int, zig-zag encoded."""
    write_uvarint(out, (n << 1) if n >= 0 else ((-n) << 1) - 1)


def read_svarint(buf: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag int at ``pos`` and the position after it."""
    z, pos = read_uvarint(buf, pos)
    return ((z >> 1) if not z & 1 else -((z + 1) >> 1)), pos


def zigzag(n: int) -> int:
    """The unsigned int `write_svarint` writes for `n`."""
    return (n << 1) if n >= 0 else ((-n) << 1) - 1


def write_uvarints(out: bytearray, values) -> None:
    """Append each non-negative int of `values` as LEB128: the same bytes as `write_uvarint` one by one.

    >>> out = bytearray(); write_uvarints(out, [300, zigzag(-3), 0]); bytes(out)
    b'\\xac\\x02\\x05\\x00'
    """
    append = out.append
    for n in values:
        if n < 0x80:
            append(n)
            continue
        while n > 0x7F:
            append((n & 0x7F) | 0x80)
            n >>= 7
        append(n)
