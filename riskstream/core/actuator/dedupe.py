"""Command ids already sent: a bounded, insertion-ordered set, so no command id leaves twice.

At least once means a crash between publishing commands and saving the lines replays those decisions, and the
line state machine makes the same commands (same ids) again. The shell seeds this set from the tail of the
commands topic at start (the topic is its durable copy); the actuate step reads it and returns the ids it sent.

>>> sent = SentCommands(capacity=2)
>>> sent.update(["c1", "c2", "c3"])
>>> "c1" in sent, "c3" in sent, len(sent)
(False, True, 2)
"""

from __future__ import annotations


class SentCommands:
    def __init__(self, capacity: int = 500_000):
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, cid: str) -> bool:
        return cid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, ids) -> None:
        for cid in ids:
            self._ids[cid] = None
        while len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
