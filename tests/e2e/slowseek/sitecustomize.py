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
"""

import os

_DELAY_S = float(os.environ.get("RISKSTREAM_TEST_SLOW_SEEK_S") or 0)
_GATE = os.environ.get("RISKSTREAM_TEST_SEEK_GATE") or ""

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
