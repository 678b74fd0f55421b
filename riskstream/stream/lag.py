"""Consumer lag per partition: the group's committed offset against the end of the partition.

The worker and the actuator each measure the lag of their own consumer group every few seconds and export it as
``riskstream_consumer_lag{topic, partition}`` (:data:`riskstream.stream.metrics.CONSUMER_LAG`). Label values stay bounded:
``topic`` is a *logical* topic name from topology.yaml (the prefix is stripped) and ``partition`` a partition number
below that topic's partition count; nothing else is ever used as a label.

Each process reports only the partitions assigned to it, so ``sum by (topic)`` over all workers of a group is the
group's lag with no double counting, and the series of a partition that moved to another worker are removed.

Lag of one partition (``auto_offset_reset=earliest``, as riskstream's apps are configured):

>>> partition_lag(committed=120, end=150)
30
>>> partition_lag(committed=None, end=150, start=100)   # nothing committed yet: everything retained is lag
50
>>> partition_lag(committed=200, end=150)               # end read before the commit: never negative
0
>>> partition_lag(committed=10, end=150, start=100)     # commit older than retention: the reader restarts at start
50

Wiring (in riskstream.stream.app, once per app)::

    from riskstream.stream.lag import install_lag_timer
    install_lag_timer(app, s.bootstrap, topo, ("ingest", "market", "score", "trainer"))   # worker
    install_lag_timer(app, s.bootstrap, topo, ("control", "actuator"))                    # actuator
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from riskstream.stream import metrics
from riskstream.core.topology import Topology

log = logging.getLogger("riskstream.stream.lag")

#: Seconds between two measurements in a running app.
INTERVAL_S = 5.0


def partition_lag(committed: int | None, end: int, start: int = 0) -> int:
    """Messages a group still has to read in one partition (``None``/negative ``committed`` = no commit yet)."""
    position = start if committed is None or committed < 0 else max(committed, start)
    return max(0, end - position)


def group_topics(topo: Topology, agents: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The consumer group of ``agents`` and ``{physical topic: logical topic}`` of everything they read.

    Every agent of one app shares one group (the Faust app id); mixing apps is a configuration error.

    >>> from riskstream.core.topology import load_topology
    >>> group, topics = group_topics(load_topology(), ["control", "actuator"])
    >>> group, sorted(topics.values())
    ('riskstream-actuator', ['riskstream.control', 'riskstream.decisions'])
    """
    specs = [topo.agents[a] for a in agents]
    groups = {a.group for a in specs}
    if len(groups) != 1:
        raise ValueError(f"agents {list(agents)} belong to different consumer groups {sorted(groups)}")
    topics = {topo.name(t): t for a in specs for t in a.reads}
    return topo.topic_prefix + groups.pop(), topics


class LagMonitor:
    """Measures one consumer group's lag with its own admin client and a group-less consumer (no assignment).

    ``update(assigned)`` measures the given ``(physical topic, partition)`` pairs (``None`` = every partition of the
    group's topics), sets the gauge for each, removes the series of partitions no longer measured, and returns
    ``{(logical topic, partition): lag}``.
    """

    def __init__(self, bootstrap: str, topo: Topology, agents: Iterable[str], *, client_id: str | None = None,
                 security=None):
        from riskstream.stream.security import KafkaSecurity

        self.bootstrap = bootstrap
        self.security = security or KafkaSecurity()
        self.topo = topo
        self.group, self.topics = group_topics(topo, agents)
        self.client_id = client_id or f"{self.group}-lag"
        self._admin = None
        self._consumer = None
        self._exported: set[tuple[str, str]] = set()
        self.last: dict[tuple[str, int], int] = {}  # the newest measurement (for stall reports)

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                        **self.security.aiokafka())
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        client_id=self.client_id, **self.security.aiokafka())
            await consumer.start()
            self._consumer = consumer

    async def stop(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    def _bounded(self, pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Only this group's topics and existing partition numbers (label values stay a small fixed set)."""
        out = []
        for topic, partition in pairs:
            logical = self.topics.get(topic)
            if logical is not None and 0 <= int(partition) < self.topo.topic(logical).partitions:
                out.append((topic, int(partition)))
        return sorted(set(out))

    async def measure(self, assigned: Iterable[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """``{(logical topic, partition): lag}`` for ``assigned`` (or all partitions of the group's topics)."""
        from aiokafka import TopicPartition

        await self.start()
        if assigned is None:
            assigned = [(t, p) for t, logical in self.topics.items()
                        for p in range(self.topo.topic(logical).partitions)]
        pairs = self._bounded(assigned)
        if not pairs:
            return {}
        tps = [TopicPartition(t, p) for t, p in pairs]
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        end = await self._consumer.end_offsets(tps)
        start = await self._consumer.beginning_offsets(tps)
        lags = {}
        for tp in tps:
            c = committed.get(tp)
            lags[(self.topics[tp.topic], tp.partition)] = partition_lag(c.offset if c is not None else None,
                                                                        end[tp], start.get(tp, 0))
        return lags

    async def positions(self, tps) -> dict:
        """``{tp: (group's committed offset or None, end offset)}`` of aiokafka ``tps``, both asked of the broker now
        (a fetcher's highwater can be older than the records already appended)."""
        await self.start()
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=list(tps))
        end = await self._consumer.end_offsets(list(tps))
        out = {}
        for tp in tps:
            c = committed.get(tp)
            out[tp] = (c.offset if c is not None and c.offset >= 0 else None, end[tp])
        return out

    def export(self, lags: dict[tuple[str, int], int]) -> None:
        """Set the gauge of each measured partition and drop the series of partitions not measured any more."""
        now = set()
        for (logical, partition), lag in lags.items():
            labels = (logical, str(partition))
            metrics.CONSUMER_LAG.labels(topic=labels[0], partition=labels[1]).set(lag)
            now.add(labels)
        for labels in self._exported - now:
            try:
                metrics.CONSUMER_LAG.remove(*labels)
            except KeyError:
                pass
        self._exported = now

    async def update(self, assigned: Iterable[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        lags = await self.measure(assigned)
        self.export(lags)
        self.last = lags
        return lags


def install_lag_timer(app, bootstrap: str, topo: Topology, agents: Iterable[str],
                      interval: float = INTERVAL_S, security=None) -> LagMonitor:
    """Register a Faust timer on ``app`` that exports the lag of the partitions assigned to this process.

    A failed measurement (broker briefly away, rebalance in progress) is logged and retried at the next tick; it never
    disturbs the agents.
    """
    monitor = LagMonitor(bootstrap, topo, agents, client_id=f"{app.conf.id}-lag", security=security)
    if monitor.group != app.conf.id:
        raise ValueError(f"lag monitor group {monitor.group!r} is not the app's group {app.conf.id!r}")

    @app.timer(interval=interval, name=f"{app.conf.id}.consumer_lag")
    async def consumer_lag() -> None:
        try:
            assigned = [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
            await monitor.update(assigned)
        except Exception as exc:  # noqa: BLE001 - metrics must never stop the worker
            log.warning("consumer lag not measured this time: %s", exc)

    @app.on_before_shutdown.connect
    async def _stop_lag_monitor(sender, **kwargs) -> None:  # noqa: ARG001
        await monitor.stop()

    return monitor
