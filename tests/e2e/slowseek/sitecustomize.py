"""Fault injection for `tests/e2e/test_takeover.py`: a slow "seek to committed offsets", as on a loaded machine.

The test puts this directory on PYTHONPATH of the worker and actuator processes it starts, so Python imports this
module at start-up. With RISKSTREAM_TEST_SLOW_SEEK_S set, every group consumer's `seek_to_committed` (which Faust
calls when table recovery ends and when it must read dropped records again) waits that long before and after it
seeks. Beside a CPU hog one OffsetFetch round trip per partition took 0.7-1.5 s; the wait makes that window long
and certain instead of rare. Without the variable this module does nothing.
"""

import os

_DELAY_S = float(os.environ.get("RISKSTREAM_TEST_SLOW_SEEK_S") or 0)

if _DELAY_S > 0:
    import asyncio
    import sys

    from aiokafka import AIOKafkaConsumer

    _seek_to_committed = AIOKafkaConsumer.seek_to_committed

    async def _slow_seek_to_committed(self, *partitions):
        await asyncio.sleep(_DELAY_S)
        committed = await _seek_to_committed(self, *partitions)
        await asyncio.sleep(_DELAY_S)
        return committed

    AIOKafkaConsumer.seek_to_committed = _slow_seek_to_committed
    sys.stderr.write(f"riskstream test hook: seek_to_committed waits {_DELAY_S} s before and after it seeks\n")
