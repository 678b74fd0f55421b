"""The memo of decoded records changes no result: the same stream with and without it gives the same bytes."""

from riskstream.core.steps import Context, PipelineConfig
from riskstream.core.steps.memo import DecodedRecords
from riskstream.offline.driver import OfflineDriver
from riskstream.ops.simulator import SimConfig, Simulator


def _run(memo_size: int, n: int = 4_000):
    sim = Simulator(SimConfig(accounts=40, facilities=4, step_ms=360_000, seed=11))
    outs = []
    driver = OfflineDriver(Context(PipelineConfig(decoded_records=memo_size)), learn=True,
                           on_output=lambda o: outs.append((o.topic, o.key, o.value)))
    for topic, _key, value in sim.wire(n):
        driver.feed(topic, value, timestamp_ms=sim.t)
    return outs, driver.accounts, driver.ctx.decoded


def test_same_outputs_and_records_with_and_without_the_memo():
    with_memo, accounts_memo, memo = _run(8192)
    without, accounts_plain, _ = _run(0)
    assert memo.hits > 1000  # the memo was used ...
    assert with_memo == without  # ... and every output, labels and model snapshots included, is the same
    assert accounts_memo == accounts_plain


def test_a_small_memo_forgets_the_oldest_and_misses_on_other_bytes():
    memo = DecodedRecords(2)
    for a in ("a", "b", "c"):
        memo.put(a, a.encode(), a)
    assert memo.take("a", b"a") is None and memo.take("c", b"c") == "c"
    memo.put("b", b"b2", "b2")
    assert memo.take("b", b"b") is None  # written again since: the old bytes are not its record any more
