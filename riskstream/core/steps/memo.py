"""A bounded memo of decoded account records, so a record this process just wrote is not decoded again; and the
decoded record a backtest keeps in its table instead of bytes.

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

__all__ = ["DecodedRecord", "DecodedRecords"]


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


class DecodedRecord:
    """An account record kept decoded, in the table of a driver that never writes it anywhere (the backtest:
    `PipelineConfig.keep_decoded`). It holds the objects the record's bytes would decode to, so neither the
    windowed state nor the label snapshots are encoded after every event (~15 % of a backtest's CPU); `encode`
    gives the bytes the account step would have written, for whoever reads the table as bytes.

    The account step takes the objects (`take`) and changes them in place, then writes a new DecodedRecord; from
    the take on, this one no longer describes its record and refuses to be taken or encoded again (it raises: a
    failed step cannot leave changed objects behind an old record silently). A step that leaves the record as it
    was gives the objects back (`give_back`).

    >>> r = DecodedRecord("state", None, b"{}", b"", b"")
    >>> r.take(), r.taken
    (('state', None), True)
    >>> r.take()
    Traceback (most recent call last):
    ...
    RuntimeError: this decoded account record was taken by the account step already (its objects changed since)
    """

    __slots__ = ("state", "tracker", "memory", "labels", "cashflow", "taken")

    def __init__(self, state, tracker, memory: bytes, labels: bytes | None, cashflow: bytes):
        self.state, self.tracker = state, tracker
        self.memory, self.cashflow = memory, cashflow
        self.labels = labels  # None: the tracker's encoding (it changed since the bytes the step read)
        self.taken = False

    def take(self):
        """(state, label tracker or None) to change in place; this record is stale from now on."""
        if self.taken:
            raise RuntimeError("this decoded account record was taken by the account step already (its objects "
                               "changed since)")
        self.taken = True
        return self.state, self.tracker

    def give_back(self) -> None:
        """The step changed nothing: the record is still what it describes."""
        self.taken = False

    def encode(self, *, config=None) -> bytes:
        """The record's bytes, as the account step writes them (`config`: the pipeline's feature config)."""
        from riskstream.core.account.codec import encode_state
        from riskstream.core.account.record import AccountRecord

        if self.taken:
            raise RuntimeError("this decoded account record was taken by the account step already (its objects "
                               "changed since)")
        labels = self.tracker.encode() if self.labels is None else self.labels
        return AccountRecord(encode_state(self.state, config=config), self.memory, labels, self.cashflow).encode()
