"""`riskstream.stream.worker.IdleSources`: a source partition is announced as read up to "now - skew" only when
nothing is left for this process to read in it (docs/time.md, "Idle sources")."""

import asyncio
from collections import namedtuple

from aiokafka import TopicPartition

from riskstream.stream.worker import IdleSources

TP = namedtuple("TP", "topic partition")   # Faust's TP: equal to aiokafka's TopicPartition
Msg = namedtuple("Msg", "tp offset")
Ev = namedtuple("Ev", "message")


class Lag:
    """The broker's view: committed offset and end offset per partition."""

    def __init__(self, positions):
        self.positions_ = positions

    async def positions(self, tps):
        return {tp: self.positions_[(tp.topic, tp.partition)] for tp in tps}


class Pub:
    def logical(self, physical: str) -> str:
        return physical.removeprefix("t.")


def idle(positions) -> IdleSources:
    return IdleSources(app=None, pub=Pub(), physical={"t.b"}, lag=Lag(positions))


def test_a_partition_fetched_to_its_end_but_not_ingested_is_not_announced():
    # The fetcher may be at the end while the records wait in the agent's buffer: only the commit counts.
    src = idle({("t.b", 0): (None, 500), ("t.b", 1): (120, 500)})
    assert asyncio.run(src.caught_up([TP("t.b", 0), TP("t.b", 1)])) == {}


def test_committed_at_the_end_empty_or_ingested_to_the_end_is_announced():
    src = idle({("t.b", 0): (500, 500), ("t.b", 1): (None, 0), ("t.b", 2): (10, 40), ("t.b", 3): (10, 40)})
    src.read([Ev(Msg(TP("t.b", 2), 39)), Ev(Msg(TP("t.b", 3), 38))])
    marks = asyncio.run(src.caught_up([TP("t.b", p) for p in range(4)] + [TP("t.other", 0)]))
    assert sorted(marks) == ["b/0", "b/1", "b/2"]     # b/3 still has offset 39 to read
    assert len(set(marks.values())) == 1


def test_nothing_is_announced_when_the_broker_cannot_be_asked():
    class Down:
        async def positions(self, tps):
            raise ConnectionError("broker away")

    src = IdleSources(app=None, pub=Pub(), physical={"t.b"}, lag=Down())
    assert asyncio.run(src.caught_up([TopicPartition("t.b", 0)])) == {}
