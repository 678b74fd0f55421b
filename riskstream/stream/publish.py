"""Publishing step outputs and writing the table, in that order (outputs before state: see `stream.app`).

Both go to Kafka as one record batch per (topic, partition) and batch of events, straight through the app's
aiokafka producer: Faust's per-record `Topic.send` (a future, a pending message, sensors and a callback for each
record) and a changelog record per `Table.__setitem__` were most of the worker's time outside the steps.

>>> group([("t", 1, b"k", b"v"), ("t", 0, b"a", b"1"), ("t", 1, b"k", b"w")])
{('t', 1): [(b'k', b'v'), (b'k', b'w')], ('t', 0): [(b'a', b'1')]}
"""

from __future__ import annotations

import asyncio
import logging

import faust

from riskstream.core.partitioner import partition_for
from riskstream.core.steps import Out
from riskstream.core.topology import Topology

log = logging.getLogger("riskstream.stream")

ACK_WARN_S = 30.0

#: (physical topic, partition or None for "by key", key, value)
Record = tuple[str, "int | None", bytes, bytes]


def group(records: list[Record]) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    """Records by (topic, partition), each list in the order given (Kafka keeps the order within a partition)."""
    out: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, partition, key, value in records:
        out.setdefault((topic, partition), []).append((key, value))
    return out


class Publisher:
    """Sends records (`Out` with logical topic names, or table writes) as a few record batches, and waits for all
    their acks at once."""

    def __init__(self, app: faust.App, topo: Topology):
        self._app = app
        self._names = {name: topo.name(name) for name in topo.topics}
        self._prefix_len = len(topo.topic_prefix)
        self._with_metadata: set[str] = set()

    def logical(self, physical: str) -> str:
        return physical[self._prefix_len:]

    async def publish(self, outs: list[Out]) -> None:
        names = self._names
        await self.send_and_wait([(names[o.topic], o.partition, o.key, o.value) for o in outs if o.topic])

    async def send_and_wait(self, records: list[Record]) -> None:
        futures = await self.send(records)
        if not futures:
            return
        _, pending = await asyncio.wait(futures, timeout=ACK_WARN_S)
        if pending:
            # Never give up on outputs (the batch's state must not be written before them), but say so: a
            # worker that waits here looks idle from the outside.
            log.warning("%d of %d record batches not acknowledged after %.0f s; flushing the producer and waiting",
                        len(pending), len(futures), ACK_WARN_S)
            await self._app.producer.flush()
        for f in futures:
            f.result()  # a batch the broker refused raises here, before anything is acked

    async def send(self, records: list[Record]) -> list[asyncio.Future]:
        """Queue `records` in the producer (one closed batch per topic partition, sent at once, no linger); return
        the batches' delivery futures."""
        if not records:
            return []
        aio = self._app.producer._ensure_producer()
        by_key = [r for r in records if r[1] is None]
        if by_key:
            for topic in {r[0] for r in by_key} - self._with_metadata:
                await aio.client._wait_on_metadata(topic)
                self._with_metadata.add(topic)
            # aiokafka's own partitioner, as `Topic.send` without a partition used it.
            records = [r if r[1] is not None else (r[0], aio._partition(r[0], None, None, None, r[2], r[3]), r[2], r[3])
                       for r in records]
        futures = []
        for (topic, partition), rows in group(records).items():
            batch = aio.create_batch()
            for key, value in rows:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                    futures.append(await aio.send_batch(batch, topic, partition=partition))
                    batch = aio.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:  # an empty batch takes any one
                        raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch for {topic}")
            batch.close()  # ready now: a closed batch does not linger
            futures.append(await aio.send_batch(batch, topic, partition=partition))
        return futures


def partition_of_key(key: bytes, partitions: int) -> int:
    """Per-partition records (`\\x00name/<p>`) live in changelog partition p; an account where Kafka puts its key."""
    return int(key.rsplit(b"/", 1)[1]) if key.startswith(b"\x00") else partition_for(key, partitions)


def changelog_partitions(dirty: dict[bytes, bytes | None], batch: list, partitions: int) -> dict[bytes, int]:
    """The changelog partition of each dirty key, the one `Table.__setitem__` would take from the current event:
    that of the key's own event in the batch, else (per-partition records, accounts without an event in this
    batch) the partition of the key, which is a partition of the batch (every key a step writes belongs to one)."""
    by_key = {ev.message.key: ev.message.partition for ev in batch}
    out = {}
    for key in dirty:
        p = None if key.startswith(b"\x00") else by_key.get(key)
        out[key] = p if p is not None else partition_of_key(key, partitions)
    return out


async def write_ahead(pub: Publisher, table, dirty: dict[bytes, bytes | None], keys, batch: list,
                      partitions: int) -> None:
    """Write `keys` of `dirty` and wait for the broker's ack: state the step needs durable before the batch's
    outputs go out (`StepResult.ahead`). `write_table` then skips them."""
    await write_table(pub, table, {k: dirty[k] for k in keys}, batch, partitions)


async def write_table(pub: Publisher, table, dirty: dict[bytes, bytes | None], batch: list, partitions: int, *,
                      skip=()) -> None:
    """Write each dirty key once per batch: into the table's store and, as one record batch per partition, to its
    changelog (None: delete the key, a tombstone); return when the broker has acknowledged the changelog records.

    This is what `table[key] = value` does (a raw-bytes table: the changelog record is the key and value as they
    are), without a changelog send per key; waiting for the acks means the batch's events are acked (and their
    offsets committable) only once the state they produced is durable.
    """
    store = table.data
    # skip: written ahead; a None for a key never stored: a pending event released in the batch it arrived in
    todo = {k: v for k, v in dirty.items() if k not in skip and not (v is None and k not in store)}
    if not todo:
        return
    where = changelog_partitions(todo, batch, partitions)
    topic = table.changelog_topic.get_topic_name()
    for key, value in todo.items():
        if value is None:
            del store[key]
        else:
            store[key] = value
    await pub.send_and_wait([(topic, where[key], key, value) for key, value in todo.items()])
