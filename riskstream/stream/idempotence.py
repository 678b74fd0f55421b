"""Every app's producer is idempotent: a batch the producer retries after a lost ack is written once.

When a broker goes away with a produce request in flight, the batch may already be in its log when the
connection drops; aiokafka then retries it, and without idempotence the retry is a second copy (fault scenario 4,
the broker stopped for 30 s, left one command id twice on the commands topic). Faust turns idempotence on only
in its exactly-once mode, which riskstream does not use (transactions are known to be unreliable there). This
turns on the broker's own de-duplication of retried batches (producer id and per-partition sequence numbers),
and nothing else: no transaction, no fencing, at-least-once as before.

>>> install()
>>> from faust.transport.drivers.aiokafka import Producer
>>> Producer._settings_extra(None)
{'acks': 'all', 'enable_idempotence': True}
"""

from __future__ import annotations

__all__ = ["install"]


def _idempotent(self) -> dict:
    return {"acks": "all", "enable_idempotence": True}


def install() -> None:
    from faust.transport.drivers.aiokafka import Producer

    Producer._settings_extra = _idempotent
