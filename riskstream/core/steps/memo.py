"""A bounded memo of decoded account records, so a record this process just wrote is not decoded again.

The account step decodes a record (state, label snapshots), updates the objects in place and encodes them again.
The memo keeps the objects next to the bytes they were encoded to: when the step next reads exactly those bytes
for the account, it takes the objects instead of decoding. The memo changes no result, because decoding the
bytes gives objects that behave the same (the codecs round-trip exactly, see tests/core/steps/test_memo.py), and
it is consulted only on byte-equal records: a record written elsewhere (another worker, a restore from the
changelog, an uncommitted batch) simply misses. An entry is removed while the step works on its objects, so a
failure half-way cannot leave changed objects behind an old record.

>>> memo = DecodedRecords(2)
>>> memo.put("a1", b"rec-1", ("state", "labels"))
>>> memo.take("a1", b"rec-1"), memo.take("a1", b"rec-1") is None   # taken: the step now changes the objects
(('state', 'labels'), True)
>>> memo.put("a1", b"rec-1", ("state", "labels"))
>>> memo.take("a1", b"rec-0") is None, memo.take("a1", b"rec-1") is None   # other bytes: forgotten
(True, True)
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DecodedRecords"]


class DecodedRecords:
    """Account -> (record bytes, decoded parts), the `size` most recently written accounts."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def take(self, account: str, record: bytes | None):
        """The decoded parts stored for exactly `record` (and forget them), else None."""
        entry = self._entries.pop(account, None)
        if entry is not None and record is not None and (entry[0] is record or entry[0] == record):
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, account: str, record: bytes, parts) -> None:
        if self.size <= 0:
            return
        entries = self._entries
        entries[account] = (record, parts)
        entries.move_to_end(account)
        while len(entries) > self.size:
            entries.popitem(last=False)
