"""Publishing step outputs and writing the table, in that order (outputs before state: see `stream.app`)."""

from __future__ import annotations

import asyncio
import logging
import weakref

import faust
from faust.streams import _current_event

from riskstream.core.partitioner import partition_for
from riskstream.core.steps import Out
from riskstream.core.topology import Topology
from riskstream.stream.app import raw_topic

log = logging.getLogger("riskstream.stream")


class Publisher:
    """Sends `Out` records (logical topic names) now, not attached to the event, and waits for all acks at once."""

    def __init__(self, app: faust.App, topo: Topology):
        self._app = app
        self._topics = {name: raw_topic(app, topo.name(name)) for name in topo.topics}
        self._prefix_len = len(topo.topic_prefix)

    def logical(self, physical: str) -> str:
        return physical[self._prefix_len:]

    async def publish(self, outs: list[Out]) -> None:
        futures = [await self._topics[o.topic].send(key=o.key, value=o.value, partition=o.partition, force=True)
                   for o in outs if o.topic]
        if not futures:
            return
        futures = [asyncio.ensure_future(f) for f in futures]
        _, pending = await asyncio.wait(futures, timeout=30)
        if pending:
            # Never give up on outputs (the batch's state must not be written before them), but say so: a
            # worker that waits here looks idle from the outside.
            log.warning("%d of %d records not acknowledged after 30 s; flushing the producer and waiting",
                        len(pending), len(futures))
            await self._app.producer.flush()
        await asyncio.gather(*futures)


def partition_of_key(key: bytes, partitions: int) -> int:
    """Per-partition records (`\\x00name/<p>`) live in changelog partition p; an account where Kafka puts its key."""
    return int(key.rsplit(b"/", 1)[1]) if key.startswith(b"\x00") else partition_for(key, partitions)


async def write_ahead(table, dirty: dict[bytes, bytes | None], keys, partitions: int) -> None:
    """Write `keys` of `dirty` to the table and wait until the changelog has them: state the step needs durable
    before the batch's outputs go out (`StepResult.ahead`). `write_table` then skips them.

    A plain `table[key] = value` only buffers the changelog record. This does what Faust's `Table.__setitem__` does
    (`on_key_set` sends the changelog record, then the store is set; `tests/stream/test_publish.py` checks that it
    still does) but keeps the send's future to wait for the broker's ack.
    """
    futures = []
    for key in keys:
        futures.append(table.send_changelog(partition_of_key(key, partitions), key, dirty[key]))
        table.data[key] = dirty[key]
    for f in futures:
        await f


def write_table(table, dirty: dict[bytes, bytes | None], batch: list, partitions: int, *, skip=()) -> None:
    """Write each dirty key once per batch (a changelog record per write is Faust's main per-event cost); None
    deletes the key.

    Faust picks the changelog partition from the current event, which a batch does not have: point it at an event
    of the key's partition (every key a step writes belongs to a partition of its batch).
    """
    by_key = {ev.message.key: ev for ev in batch}
    by_partition = {ev.message.partition: ev for ev in batch}
    for key, value in dirty.items():
        if key in skip:
            continue  # written ahead
        ev = None if key.startswith(b"\x00") else by_key.get(key)
        if ev is None:
            ev = by_partition[partition_of_key(key, partitions)]
        if value is None and key not in table:
            continue  # a pending event released in the batch it arrived in: never written
        token = _current_event.set(weakref.ref(ev))
        try:
            if value is None:
                del table[key]
            else:
                table[key] = value
        finally:
            _current_event.reset(token)  # take_events relies on the context it had
