"""riskstream.stream.lag against a real Apache Kafka broker: committed offsets of a real consumer group, real end
offsets, the gauge series riskstream exports (bounded labels, stale series removed). No mock.

Apache Kafka only: Tansu answers ListOffsets(LATEST) wrongly, so an end offset (and a lag) read from it means nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from riskstream.stream import metrics
from riskstream.stream.lag import LagMonitor, install_lag_timer

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

DECISIONS, CONTROL = "riskstream.decisions", "riskstream.control"


def produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for partition, n in counts.items():
        for i in range(n):
            producer.produce(topic, key=b"k", value=b"v%d" % i, partition=partition)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for `group` as its members would (a consumer in that group, no subscription)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def exported_lag() -> dict[tuple[str, str], float]:
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for fam in metrics.registry.collect() if fam.name == "riskstream_consumer_lag" for s in fam.samples}


def test_lag_per_partition_of_the_actuator_group(kafka_pipeline):
    p = kafka_pipeline
    topo = p.topology
    dec, ctl = p.topic(DECISIONS), p.topic(CONTROL)
    produce(p.bootstrap, dec, {0: 10, 1: 7, 2: 3, 3: 0})
    produce(p.bootstrap, ctl, {0: 5})
    group = topo.topic_prefix + topo.agents["actuator"].group
    commit(p.bootstrap, group, {(dec, 0): 4, (dec, 1): 7, (ctl, 0): 2})   # partitions 2 and 3: nothing committed

    async def scenario():
        monitor = LagMonitor(p.bootstrap, topo, ("control", "actuator"))
        try:
            everything = await monitor.update()
            gauges_all = exported_lag()
            # This process owns only two partitions now (a rebalance moved the others away), plus junk the monitor
            # must ignore: a topic of another group and a partition number beyond the topic's count.
            mine = await monitor.update([(dec, 0), (ctl, 0), (p.topic("riskstream.events.valid"), 1), (dec, 99)])
            gauges_mine = exported_lag()
            return monitor.group, everything, gauges_all, mine, gauges_mine
        finally:
            await monitor.stop()

    group_seen, everything, gauges_all, mine, gauges_mine = asyncio.run(scenario())
    assert group_seen == group
    assert everything == {(DECISIONS, 0): 6, (DECISIONS, 1): 0, (DECISIONS, 2): 3, (DECISIONS, 3): 0,
                          (CONTROL, 0): 3}
    # Labels: logical topic names from topology.yaml (no test prefix), partition numbers; nothing else.
    assert {k: v for k, v in gauges_all.items() if k[0] in (DECISIONS, CONTROL)} == \
        {(DECISIONS, "0"): 6, (DECISIONS, "1"): 0, (DECISIONS, "2"): 3, (DECISIONS, "3"): 0, (CONTROL, "0"): 3}
    assert mine == {(DECISIONS, 0): 6, (CONTROL, 0): 3}
    assert gauges_mine == {(DECISIONS, "0"): 6, (CONTROL, "0"): 3}, "series of partitions moved away must go"
    print(f"consumer lag per partition = {sorted(everything.items())}")


def test_lag_follows_new_records_and_commits(kafka_pipeline):
    """Lag grows with produced records and shrinks with the group's commits, measured by the same monitor."""
    p = kafka_pipeline
    topo = p.topology
    labels = p.topic("riskstream.labels")
    group = topo.topic_prefix + topo.agents["trainer"].group

    async def measure(monitor):
        return (await monitor.update([(labels, 0)]))[("riskstream.labels", 0)]

    async def scenario():
        monitor = LagMonitor(p.bootstrap, topo, ("ingest", "market", "score", "trainer"))
        seen = []
        try:
            seen.append(await measure(monitor))                      # empty topic, no commit
            await asyncio.to_thread(produce, p.bootstrap, labels, {0: 25})
            seen.append(await measure(monitor))                      # 25 unread
            await asyncio.to_thread(commit, p.bootstrap, group, {(labels, 0): 20})
            seen.append(await measure(monitor))                      # 5 left
            await asyncio.to_thread(commit, p.bootstrap, group, {(labels, 0): 25})
            seen.append(await measure(monitor))                      # caught up
        finally:
            await monitor.stop()
        return seen

    seen = asyncio.run(scenario())
    print(f"labels lag over time = {seen}")
    assert seen == [0, 25, 5, 0]


def test_install_lag_timer_checks_the_group(pipeline):
    """The timer helper registers on the app whose group it measures, and refuses another app's agents."""
    import faust

    topo = pipeline.topology
    app = faust.App(topo.topic_prefix + "riskstream-actuator", broker=f"kafka://{pipeline.bootstrap}",
                    store="memory://", web_enabled=False)
    monitor = install_lag_timer(app, pipeline.bootstrap, topo, ("control", "actuator"))
    assert monitor.group == app.conf.id
    assert sorted(monitor.topics.values()) == [CONTROL, DECISIONS]
    with pytest.raises(ValueError, match="not the app's group"):
        install_lag_timer(app, pipeline.bootstrap, topo, ("ingest", "score"))
    with pytest.raises(ValueError, match="different consumer groups"):
        LagMonitor(pipeline.bootstrap, topo, ("score", "actuator"))
