"""`riskstream.stream.publish.write_ahead`: writes a table key as Faust's `Table.__setitem__` does (send the changelog
record, then set the store) and waits for the changelog send. If Faust changes what `__setitem__` does, the first
test says so, and `write_ahead` must follow.
"""

from __future__ import annotations

import asyncio
import types

import faust

from riskstream.stream.publish import write_ahead


def _table(calls: list, sent: asyncio.Future | None = None):
    app = faust.App("test-publish", broker="memory://", store="memory://")
    table = app.Table("accounts", default=None, key_type=bytes, value_type=bytes)

    def send_changelog(partition, key, value, *a, **kw):
        calls.append(("changelog", partition, key, value))
        fut = sent if sent is not None else asyncio.get_event_loop().create_future()
        fut.message = types.SimpleNamespace(partition=partition)
        return fut

    table.send_changelog = send_changelog
    table.partition_for_key = lambda key: 3
    return table


def test_faust_setitem_is_a_changelog_send_then_a_store_write():
    calls: list = []
    table = _table(calls)
    table[b"A1"] = b"v"
    assert calls == [("changelog", 3, b"A1", b"v")]
    assert table.data[b"A1"] == b"v"


def test_write_ahead_sends_to_the_key_partition_and_waits_for_the_ack():
    async def run():
        calls: list = []
        sent = asyncio.get_running_loop().create_future()
        table = _table(calls, sent)
        task = asyncio.ensure_future(write_ahead(table, {b"\x00versions/2": b"x", b"A1": b"y"}, (b"\x00versions/2",),
                                                 4))
        await asyncio.sleep(0.05)
        assert not task.done(), "returned before the changelog record was acknowledged"
        sent.set_result(None)
        await asyncio.wait_for(task, 1)
        assert calls == [("changelog", 2, b"\x00versions/2", b"x")]  # only the keys ahead, in their partition
        assert table.data[b"\x00versions/2"] == b"x" and b"A1" not in table.data

    asyncio.run(run())
