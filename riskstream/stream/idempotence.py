"""Every app's producer is idempotent: a batch the producer retries after a lost ack is written once.

When a broker goes away with a produce request in flight, the batch may already be in its log when the
connection drops; aiokafka then retries it, and without idempotence the retry is a second copy (fault scenario 4,
the broker stopped for 30 s, left one command id twice on the commands topic). Faust turns idempotence on only
in its exactly-once mode, which riskstream does not use (transactions are known to be unreliable there). This
turns on the broker's own de-duplication of retried batches (producer id and per-partition sequence numbers),
and nothing else: no transaction, no fencing, at-least-once as before. A broker that grants no producer id
(Tansu) gets a producer without idempotence and one warning.

>>> install()
>>> from faust.transport.drivers.aiokafka import Producer
>>> Producer._settings_extra(None)
{'acks': 'all', 'enable_idempotence': True}
"""

from __future__ import annotations

import logging

__all__ = ["install"]

log = logging.getLogger("riskstream.stream")

# A broker that grants no producer id (Tansu, the fallback broker without Java) answers InitProducerId with an
# error; then the producer starts without idempotence and says so once.
REFUSED = ("UnknownError", "UnsupportedVersionError", "ClusterAuthorizationError")


def _idempotent(self) -> dict:
    if getattr(self, "_riskstream_plain", False):
        return {}
    return {"acks": "all", "enable_idempotence": True}


async def _start(self) -> None:
    try:
        await _original_start(self)
    except Exception as exc:
        if type(exc).__name__ not in REFUSED:
            raise
        failed, self._producer = self._producer, None
        if failed is not None:
            try:
                await failed.stop()
            except Exception:  # already closed by its failed start
                pass
        log.warning("the broker grants no producer id (%s): producing without idempotence, so a batch retried "
                    "after a lost ack may be written twice (commands stay idempotent by command_id downstream)",
                    type(exc).__name__)
        self._riskstream_plain = True
        producer = self._producer = self._new_producer()
        self.beacon.add(producer)
        await producer.start()


_original_start = None


def install() -> None:
    global _original_start
    from faust.transport.drivers.aiokafka import Producer

    Producer._settings_extra = _idempotent
    if _original_start is None:
        _original_start = Producer.on_start
        Producer.on_start = _start
