"""Dead-letter records: a refused input, why it was refused, where it came from, and its original bytes.

The original bytes may hold PII (that is often why they could not be cleaned), so the dead-letter topic must be
access-restricted like the upstream topics.

>>> from riskstream.core.contracts.reasons import Rejected
>>> rec = dead_letter(b"\\xff{", topic="riskstream.events.behaviour", partition=2, offset=41,
...                   rejected=Rejected("undecodable", "record is not valid UTF-8 JSON"), at_ms=1000)
>>> back = read_dead_letter(rec)
>>> back["original"], back["reason"], back["source_offset"]
(b'\\xff{', 'undecodable', 41)

"""

from __future__ import annotations

import base64

import orjson

from riskstream.core.contracts.reasons import Rejected

__all__ = ["dead_letter", "read_dead_letter", "MAX_ORIGINAL_BYTES"]

# Kafka's default max message size is 1 MiB; base64 grows by 4/3, so keep the copied original well below it.
MAX_ORIGINAL_BYTES = 512 * 1024


def dead_letter(
    raw: bytes,
    *,
    topic: str,
    partition: int,
    offset: int,
    rejected: Rejected,
    at_ms: int,
    max_original_bytes: int = MAX_ORIGINAL_BYTES,
) -> bytes:
    """Encode a dead-letter record. Originals above `max_original_bytes` are truncated (flagged, full size kept)."""
    raw = bytes(raw) if not isinstance(raw, str) else raw.encode("utf-8", "surrogatepass")
    kept = raw[:max_original_bytes]
    return orjson.dumps(
        {
            "reason": rejected.reason,
            "message": rejected.message,
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "at": at_ms,
            "original_size": len(raw),
            "original_truncated": len(kept) < len(raw),
            "original_b64": base64.b64encode(kept).decode("ascii"),
        }
    )


def read_dead_letter(record: bytes) -> dict:
    """Decode a dead-letter record; the result also has `original` (the original bytes, or their kept prefix)."""
    out = orjson.loads(record)
    out["original"] = base64.b64decode(out["original_b64"], validate=True)
    return out
