"""Readers that run beside the agents: global topics every process reads in full, and the commands-topic tail."""

from __future__ import annotations

import asyncio
import logging

import orjson

from riskstream.core.actuator import SentCommands
from riskstream.stream.security import KafkaSecurity

log = logging.getLogger("riskstream.stream")


class GlobalReader:
    """Reads one topic from the beginning in every process (no group): the 'global table' of this design.

    `caught_up` is set once the reader has passed the end offsets seen at start, so agents can wait for it and
    decide with the same market, model and policy a replay would use.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int, handler, name: str, security=None):
        self.bootstrap, self.topic, self.partitions, self.handler, self.name = bootstrap, topic, partitions, handler, name
        self.security = security or KafkaSecurity()
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id=f"riskstream-{self.name}-reader",
                                    max_partition_fetch_bytes=4 * 1024 * 1024, **self.security.aiokafka())
        await consumer.start()
        try:
            # Partition count from topology.yaml: aiokafka has no metadata for topics it is not subscribed to.
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            if all(v == 0 for v in end.values()):
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    for r in records:
                        try:
                            self.handler(r.value or b"", r.offset)
                        except Exception:  # a bad record must never stop the reader
                            log.exception("%s reader: record skipped", self.name)
                if not self.caught_up.is_set():
                    positions = {tp: await consumer.position(tp) for tp in tps}
                    if all(positions[tp] >= end[tp] for tp in tps):
                        self.caught_up.set()
        finally:
            await consumer.stop()


async def load_sent_tail(sent: SentCommands, bootstrap: str, topic: str, partitions: int,
                         per_partition: int = 20_000, security=None) -> int:
    """Seed the actuate step's sent-command ids from the tail of the commands topic (its durable copy)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                client_id="riskstream-actuator-sent", **(security or KafkaSecurity()).aiokafka())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, end[tp] - per_partition))
        n, ids = 0, []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    try:
                        ids.append(orjson.loads(r.value)["command_id"])
                        n += 1
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        pass
        sent.update(ids)
        return n
    finally:
        await consumer.stop()
