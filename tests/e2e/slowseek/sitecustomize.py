"""Fault injection for the e2e tests of `riskstream.stream.resume`: a slow, or held, "seek to committed offsets".

The tests put this directory on PYTHONPATH of the worker and actuator processes they start, so Python imports this
module at start-up. Faust calls `seek_to_committed` when table recovery ends and when it must read dropped records
again. Without the variables below this module does nothing.

* RISKSTREAM_TEST_SLOW_SEEK_S (`test_takeover.py`): every group consumer's seek waits that long before and after it
  seeks. Beside a CPU hog one OffsetFetch round trip per partition took 0.7-1.5 s; the wait makes that window long
  and certain instead of rare.
* RISKSTREAM_TEST_SEEK_GATE=PATH (`test_scaleout.py`): a seek appends a line to PATH.seeks, then waits (up to
  120 s) until the file PATH exists. The test holds a worker in its end-of-recovery seek while another worker
  joins the group, so that recovery is certainly interrupted by a new rebalance.
* RISKSTREAM_TEST_SEEK_AFTER_REVOKE=PATH (`test_scaleout.py`, a new group): the first seek seeks, appends a line
  to PATH.seeks, and returns only once (up to 120 s) this consumer's assignment is revoked; in the main thread its
  answer is held until the new assignment has reached `faust.tables.recovery.Recovery.on_rebalance` (after
  `App._on_partitions_assigned` paused it), whose recovery starts 2 s after that answer. So the first generation's
  end-of-recovery seek certainly ends inside the new rebalance, before its recovery is signalled: Faust's own check
  (`Recovery._wait`) cannot see it.
"""

import os

_DELAY_S = float(os.environ.get("RISKSTREAM_TEST_SLOW_SEEK_S") or 0)
_GATE = os.environ.get("RISKSTREAM_TEST_SEEK_GATE") or ""
_AFTER_REVOKE = os.environ.get("RISKSTREAM_TEST_SEEK_AFTER_REVOKE") or ""

if _DELAY_S > 0 or _GATE:
    import asyncio
    import sys
    import time

    from aiokafka import AIOKafkaConsumer

    _seek_to_committed = AIOKafkaConsumer.seek_to_committed

    async def _slow_seek_to_committed(self, *partitions):
        if _GATE:
            with open(_GATE + ".seeks", "a") as f:
                f.write(f"{time.time():.3f}\n")
            deadline = time.monotonic() + 120
            while not os.path.exists(_GATE) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await asyncio.sleep(_DELAY_S)
        committed = await _seek_to_committed(self, *partitions)
        await asyncio.sleep(_DELAY_S)
        return committed

    AIOKafkaConsumer.seek_to_committed = _slow_seek_to_committed
    sys.stderr.write(f"riskstream test hook: seek_to_committed waits {_DELAY_S} s before and after it seeks"
                     + (f", and first for the gate {_GATE}\n" if _GATE else "\n"))


if _AFTER_REVOKE:
    import asyncio
    import sys
    import threading
    import time

    from aiokafka import AIOKafkaConsumer

    _revoked = threading.Event()   # a non-empty assignment was revoked (set in the consumer thread)
    _held: list = []               # the held seek has started (consumer thread)
    _returned: list = []           # Faust's first seek has returned to the main thread (or raised)
    _seek_to_committed_ = AIOKafkaConsumer.seek_to_committed

    async def _seek_after_revoke(self, *partitions):
        committed = await _seek_to_committed_(self, *partitions)
        if not _held:
            _held.append(time.monotonic())
            with open(_AFTER_REVOKE + ".seeks", "a") as f:
                f.write(f"{time.time():.3f}\n")
            deadline = time.monotonic() + 120
            while not _revoked.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return committed

    AIOKafkaConsumer.seek_to_committed = _seek_after_revoke

    import faust.tables.recovery as _recovery
    import faust.transport.consumer as _consumer
    from faust.transport.drivers import aiokafka as _driver

    _on_revoked = _driver.ConsumerRebalanceListener.on_partitions_revoked

    def _note_revoked(self, revoked):
        if revoked:
            _revoked.set()
        return _on_revoked(self, revoked)

    _driver.ConsumerRebalanceListener.on_partitions_revoked = _note_revoked

    _reached: list = []            # the next generation's assignment reached `Recovery.on_rebalance` (main thread)
    _delegate_seek = _consumer.ThreadDelegateConsumer.seek_to_committed

    async def _return_inside_the_rebalance(self):
        first = not _returned
        try:
            committed = await _delegate_seek(self)
            if first and _revoked.is_set():
                deadline = time.monotonic() + 30
                while not _reached and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            return committed
        finally:
            if first and not _returned:
                _returned.append(time.monotonic())

    _consumer.ThreadDelegateConsumer.seek_to_committed = _return_inside_the_rebalance

    _on_rebalance = _recovery.Recovery.on_rebalance

    async def _recovery_after_the_seek(self, *args, **kwargs):
        if _revoked.is_set() and _held and not _reached:
            _reached.append(time.monotonic())
            deadline = time.monotonic() + 120
            while not _returned and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(2.0)
        return await _on_rebalance(self, *args, **kwargs)

    _recovery.Recovery.on_rebalance = _recovery_after_the_seek
    sys.stderr.write("riskstream test hook: the first seek_to_committed waits for a revocation; the next "
                     "recovery starts 2 s after that seek returned\n")
