"""`riskstream.stream.watch.BatchWatch`: a batch that stops moving is reported with its stage, an idle agent never."""

from riskstream.stream.watch import IDLE, BatchWatch


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_batch_stuck_in_a_stage_is_reported_with_the_stage_and_seconds():
    clock = Clock()
    w = BatchWatch(clock=clock)
    w.enter("score", "compute")
    clock.t = 1.0
    w.enter("score", "publish")
    clock.t = 25.0
    assert w.stuck(after_s=20) == [("score", "publish", 24.0)]


def test_idle_agents_and_short_stages_are_never_reported():
    clock = Clock()
    w = BatchWatch(clock=clock)
    w.enter("ingest", "publish")
    w.idle("ingest")
    w.enter("score", "table")
    clock.t = 5.0
    assert w.stuck(after_s=20) == []
    clock.t = 500.0
    assert w.stuck(after_s=20) == [("score", "table", 500.0)]
    assert w.batches == {"ingest": 1}
    assert IDLE not in {stage for _, stage, _ in w.stuck(after_s=0)}
