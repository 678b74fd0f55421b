"""The memo of decoded records changes no result: the same stream with and without it gives the same bytes; nor
does a table of records kept decoded (the backtest's)."""

import pytest

from riskstream.core.steps import Context, PipelineConfig
from riskstream.core.steps.memo import DecodedRecord, DecodedRecords
from riskstream.offline.driver import OfflineDriver
from riskstream.ops.simulator import SimConfig, Simulator


def _run(memo_size: int, n: int = 4_000, keep_decoded: bool = False):
    sim = Simulator(SimConfig(accounts=40, facilities=4, step_ms=360_000, seed=11))
    outs = []
    driver = OfflineDriver(Context(PipelineConfig(decoded_records=memo_size, keep_decoded=keep_decoded)), learn=True,
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


def test_records_kept_decoded_give_the_same_outputs_and_encode_to_the_same_bytes():
    kept, accounts_kept, _ = _run(0, keep_decoded=True)
    plain, accounts_plain, _ = _run(0)
    assert kept == plain  # decisions, commands, labels, model snapshots
    entities = {k: v for k, v in accounts_kept.items() if not k.startswith(b"\x00")}
    assert entities and all(type(v) is DecodedRecord for v in entities.values())
    assert {k: v.encode() for k, v in entities.items()} == {k: v for k, v in accounts_plain.items()
                                                              if not k.startswith(b"\x00")}


def test_a_decoded_record_taken_by_the_step_is_stale():
    r = DecodedRecord("state", "tracker", b"{}", None, b"")
    assert r.take() == ("state", "tracker")
    with pytest.raises(RuntimeError):
        r.encode()
    r.give_back()
    assert r.take() == ("state", "tracker")
