"""The account record: one value per account in the `accounts` table, as a named type with its own codec.

Four parts, each encoded by its owner: the windowed state (`account.codec`), the policies' memory (JSON), the
delayed-label snapshots (`models.labels`) and the facility cash-flow model (`models.cashflow`).

>>> r = AccountRecord(b"s", b"{}", b"", b"cf")
>>> AccountRecord.decode(r.encode()) == r
True
>>> AccountRecord.decode(None)
AccountRecord(state=b'', memory=b'', labels=b'', cashflow=b'')
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_LEN = struct.Struct(">I")


class AccountRecord(NamedTuple):
    state: bytes = b""
    memory: bytes = b""
    labels: bytes = b""
    cashflow: bytes = b""

    def encode(self) -> bytes:
        return b"".join(_LEN.pack(len(p)) + p for p in self)

    @classmethod
    def decode(cls, blob: bytes | None) -> "AccountRecord":
        if not blob:
            return cls()
        parts, pos = [], 0
        for _ in range(4):
            (size,) = _LEN.unpack_from(blob, pos)
            pos += 4
            parts.append(bytes(blob[pos:pos + size]))
            pos += size
        return cls(*parts)
