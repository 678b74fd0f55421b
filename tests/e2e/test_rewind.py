"""`riskstream.stream.rewind` on the real broker: a group consumer that fetched records and must read them again
goes back to the beginning of partitions it never committed, and to the commit of the others.

Plain aiokafka `seek_to_committed` leaves a never-committed partition where the fetch left it (the gap that lost
records across a Faust rebalance); the test shows that too, so a fixed aiokafka would be noticed.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from riskstream.stream.rewind import seek_to_committed_or_beginning

pytestmark = pytest.mark.slow


async def _scenario(bootstrap: str, fixed: bool, skip: bool = False) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import OffsetAndMetadata

    topic = f"rewind-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(10):
            for p in (0, 1):
                await producer.send_and_wait(topic, b"x%d" % i, partition=p)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        got = 0
        for _ in range(60):
            got += sum(len(v) for v in (await consumer.getmany(timeout_ms=500)).values())
            if got >= 20:
                break
        assert got == 20
        await consumer.commit({tps[1]: OffsetAndMetadata(4, "")})  # partition 0: never committed
        if fixed:
            await seek_to_committed_or_beginning(consumer, [topic] if skip else [])
        else:
            await consumer.seek_to_committed()
        return {tp.partition: await consumer.position(tp) for tp in tps}
    finally:
        await consumer.stop()


def test_never_committed_partition_is_read_again_from_its_beginning(broker):
    plain = asyncio.run(_scenario(broker.bootstrap, fixed=False))
    fixed = asyncio.run(_scenario(broker.bootstrap, fixed=True))
    skipped = asyncio.run(_scenario(broker.bootstrap, fixed=True, skip=True))
    print(f"positions after fetching 10+10 records, commit p1=4, seek: aiokafka {plain}, rewind {fixed}, "
          f"rewind with the topic skipped {skipped}")
    assert fixed == {0: 0, 1: 4}
    assert plain == {0: 10, 1: 4}, "aiokafka now rewinds uncommitted partitions itself: rewind.py may be dropped"
    assert skipped == {0: 10, 1: 4}
