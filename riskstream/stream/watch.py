"""Where each agent's current batch is, so a batch that stops moving names its stage in the log.

A Faust worker that waits (on acks, on a reader, on table recovery) looks exactly like an idle one from the
outside. Each agent marks the stage its batch is in; a timer calls `stuck()` and logs any batch that has been in a
working stage for too long. Marking costs two attribute writes per batch, never per event.

>>> w = BatchWatch(clock=iter([0.0, 40.0, 41.0]).__next__)
>>> w.enter("score", "publish")
>>> w.stuck(after_s=20)
[('score', 'publish', 40.0)]
>>> w.idle("score")
>>> w.stuck(after_s=20)
[]

"""

from __future__ import annotations

import time

__all__ = ["BatchWatch", "IDLE"]

IDLE = "waiting for events"


class BatchWatch:
    """`enter(agent, stage)` when a batch moves on, `idle(agent)` when it is done; `stuck(after_s)` lists
    (agent, stage, seconds) of batches in a working stage for at least `after_s` seconds. `batches` counts
    finished batches per agent (for a periodic progress line)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._stage: dict[str, tuple[str, float]] = {}
        self.batches: dict[str, int] = {}

    def enter(self, agent: str, stage: str) -> None:
        self._stage[agent] = (stage, self._clock())

    def idle(self, agent: str) -> None:
        self._stage[agent] = (IDLE, 0.0)
        self.batches[agent] = self.batches.get(agent, 0) + 1

    def stuck(self, after_s: float) -> list[tuple[str, str, float]]:
        now = self._clock()
        return [(agent, stage, round(now - since, 1)) for agent, (stage, since) in sorted(self._stage.items())
                if stage != IDLE and now - since >= after_s]
