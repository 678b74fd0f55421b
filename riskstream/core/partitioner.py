"""Kafka's default partitioner (murmur2 of the key), so the offline driver puts every key where Kafka does.

Per-partition state (the breaker, the portfolio count, the recorded model versions) then lines up live and offline.

>>> partition_for(b"A1", 4) == partition_for(b"A1", 4)
True
>>> [murmur2(k) for k in (b"", b"a", b"21")]
[275646681, -1563381124, -973932308]
"""

from __future__ import annotations

import functools


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash Kafka's Java client uses (signed result, as in Java)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length & 3
    if tail >= 3:
        h ^= data[4 * n4 + 2] << 16
    if tail >= 2:
        h ^= data[4 * n4 + 1] << 8
    if tail >= 1:
        h ^= data[4 * n4]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record."""
    return _partition(key if key.__class__ is bytes else bytes(key), partitions)


@functools.lru_cache(maxsize=65_536)  # keys repeat (one per account): hash each once
def _partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
