"""`riskstream.stream.publish`: records leave as one closed batch per topic partition in their order, a full batch
is sent and another started, acks are awaited, and the table's changelog gets each dirty key where
`Table.__setitem__` would have put it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from riskstream.core.partitioner import partition_for
from riskstream.stream.publish import Publisher, changelog_partitions, write_ahead, write_table


class AIO:
    """The part of `AIOKafkaProducer` the publisher uses; batches are kept, acks are immediate (or an error)."""

    def __init__(self, batch_size=16384, fail=None):
        self.batch_size, self.fail, self.sent = batch_size, fail, []
        self.client = SimpleNamespace(_wait_on_metadata=self._metadata)

    async def _metadata(self, topic):
        return None

    def _partition(self, topic, partition, key, value, skey, svalue):
        return partition_for(skey, 4)

    def create_batch(self):
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch, topic, *, partition):
        self.sent.append((topic, partition, batch))
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(self.fail) if self.fail else fut.set_result(None)
        return fut

    def records(self):
        from aiokafka.record.default_records import DefaultRecordBatch

        out = []
        for topic, partition, batch in self.sent:
            assert batch.closed(), "a batch is sent closed: aiokafka does not let it linger"
            rows = [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
            out.append((topic, partition, rows))
        return out


def publisher(aio) -> Publisher:
    pub = Publisher.__new__(Publisher)
    pub._app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: aio))
    pub._names = {"valid": "p.valid"}
    pub._prefix_len = 2
    pub._with_metadata = set()
    return pub


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_one_closed_batch_per_topic_partition_in_order():
    aio = AIO()
    recs = [("t", 1, b"a", b"1"), ("t", 0, b"b", b"2"), ("t", 1, b"c", b"3"), ("u", None, b"A1", b"4")]
    run(publisher(aio).send_and_wait(recs))
    got = {(t, p): rows for t, p, rows in aio.records()}
    assert got == {("t", 1): [(b"a", b"1"), (b"c", b"3")], ("t", 0): [(b"b", b"2")],
                   ("u", partition_for(b"A1", 4)): [(b"A1", b"4")]}


def test_a_full_batch_is_sent_and_the_next_one_started():
    aio = AIO(batch_size=200)
    recs = [("t", 0, b"k%d" % i, b"x" * 60) for i in range(10)]
    run(publisher(aio).send_and_wait(recs))
    batches = aio.records()
    assert len(batches) > 1
    assert [kv for _, _, rows in batches for kv in rows] == [(r[2], r[3]) for r in recs]


def test_a_refused_batch_raises():
    aio = AIO(fail=RuntimeError("broker said no"))
    with pytest.raises(RuntimeError, match="broker said no"):
        run(publisher(aio).send_and_wait([("t", 0, b"k", b"v")]))


def ev(key, partition):
    return SimpleNamespace(message=SimpleNamespace(key=key, partition=partition))


def test_changelog_partition_is_the_keys_event_else_the_keys_own():
    batch = [ev(b"A1", 3), ev(b"A2", 0)]
    dirty = {b"A1": b"s1", b"A2": b"s2", b"A9": b"s9", b"\x00portfolio/2": b"7"}
    assert changelog_partitions(dirty, batch, 4) == {b"A1": 3, b"A2": 0, b"A9": partition_for(b"A9", 4),
                                                       b"\x00portfolio/2": 2}


def test_write_table_fills_the_store_and_the_changelog():
    aio = AIO()
    table = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-accounts-changelog"))
    run(write_table(publisher(aio), table, {b"A1": b"s1", b"\x00portfolio/1": b"3"}, [ev(b"A1", 2)], 4))
    assert table.data == {b"A1": b"s1", b"\x00portfolio/1": b"3"}
    assert sorted(aio.records()) == [("app-accounts-changelog", 1, [(b"\x00portfolio/1", b"3")]),
                                     ("app-accounts-changelog", 2, [(b"A1", b"s1")])]


def test_write_ahead_then_write_table_writes_each_key_once_and_deletes_with_a_tombstone():
    aio = AIO()
    pub = publisher(aio)
    table = SimpleNamespace(data={b"\x00pending/7/1": b"held"},
                            changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-accounts-changelog"))
    dirty = {b"\x00versions/1": b"v", b"A1": b"s1", b"\x00pending/7/1": None, b"\x00pending/9/1": None}
    batch = [ev(b"A1", 1)]
    run(write_ahead(pub, table, dirty, [b"\x00versions/1"], batch, 4))
    assert aio.records() == [("app-accounts-changelog", 1, [(b"\x00versions/1", b"v")])]
    run(write_table(pub, table, dirty, batch, 4, skip=(b"\x00versions/1",)))
    rows = [r for _, _, rs in aio.records()[1:] for r in rs]
    # A pending record released in the batch it arrived in was never stored: no tombstone for it.
    assert sorted(rows, key=lambda r: r[0]) == [(b"\x00pending/7/1", None), (b"A1", b"s1")]
    assert table.data == {b"\x00versions/1": b"v", b"A1": b"s1"}
