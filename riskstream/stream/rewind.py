"""Never skip the first records of a partition that has no committed offset yet (a Faust + aiokafka gap).

Around a rebalance Faust drops records it has already fetched (flow suspended, partition not active yet, generation
changed) and relies on "seek to committed offsets" to read them again. aiokafka's `seek_to_committed` only seeks
partitions whose committed offset is > 0, so on a partition nobody has committed yet (a fresh consumer group, a new
partition) the fetch position stays *after* the dropped records: they are never processed and, once a later offset
is committed, silently lost. That was seen live: two workers joining a new group lost the first 15
`account_opened` events, and every later event of those accounts was dead-lettered as `unknown_account`.

`seek_to_committed_or_beginning` does what `auto_offset_reset=earliest` promises: a partition with no commit (or
a commit of 0) goes back to its beginning, others to their commit, changelog partitions (Faust positions those
itself) are left alone. `install()` makes Faust's aiokafka consumer use it.
"""

from __future__ import annotations

import logging
from typing import Iterable

log = logging.getLogger("riskstream.stream")

__all__ = ["seek_to_committed_or_beginning", "install"]


async def seek_to_committed_or_beginning(consumer, skip_topics: Iterable[str] = ()) -> dict:
    """Seek every assigned partition of an `aiokafka.AIOKafkaConsumer` (in a group) to its committed offset, or to
    its beginning when it has none; partitions of `skip_topics` keep their position. Returns the committed offsets
    as `AIOKafkaConsumer.seek_to_committed` does."""
    committed = await consumer.seek_to_committed()
    skip = set(skip_topics)
    fresh = [tp for tp, offset in committed.items() if not (offset and offset > 0) and tp.topic not in skip]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
        log.info("%d partition(s) without a committed offset read again from their beginning", len(fresh))
    return committed


def install() -> None:
    """Patch Faust's aiokafka consumer thread once per process (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread.seek_to_committed, "riskstream_rewind", False):
        return

    async def seek_to_committed(self):
        consumer = self._ensure_consumer()
        changelogs = self.app.tables.changelog_topics
        return await self.call_thread(seek_to_committed_or_beginning, consumer, changelogs)

    seek_to_committed.riskstream_rewind = True
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed
