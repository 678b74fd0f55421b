"""Why an input was refused: the `Rejected` value and the closed list of reason codes.

Every refusal anywhere in riskstream (the stateless validator here and the stateful stage after it) uses one of
`REASONS`, so dashboards and dead-letter consumers can rely on a fixed vocabulary.

>>> r = Rejected("missing_field", "envelope field 'event_id' is missing (expected a string of 1..128 chars)")
>>> r.reason in REASONS
True

"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Rejected", "REASONS", "REASON_DOCS"]


class Rejected(NamedTuple):
    """A refused input. `message` is human-readable; it names fields, never their values (no ids, no PII)."""

    reason: str
    message: str


REASON_DOCS: dict[str, str] = {
    # stateless: riskstream.core.contracts.parse_event
    "oversized": "the raw record is larger than Limits.max_bytes (checked before decoding)",
    "undecodable": "not valid UTF-8 JSON",
    "not_an_object": "valid JSON, but the top level is not an object",
    "missing_field": "a required envelope or payload field is absent",
    "wrong_type": "a field has the wrong JSON type (bool is not a number; times must be integers)",
    "invalid_value": "a field has the right type but an out-of-range or unknown value",
    "unknown_type": "the `type` is not in the catalogue, or belongs to another topic's family",
    "unsupported_version": "`schema_version` is below the oldest version still supported for the type (or a "
    "retired version between known ones)",
    "schema_incompatible": "`schema_version` is newer than this code knows and the payload does not validate "
    "against the newest known version (a breaking change)",
    "future_timestamp": "event_time or producer_time is later than now + Limits.max_future_skew_ms",
    "stale_timestamp": "event_time is older than now - Limits.max_event_age_ms",
    # stateful: produced by the stream layer after parsing
    "late": "event time is behind the watermark by more than the allowed lateness",
    "unknown_account": "the entity has no account_opened / known state",
    "duplicate": "an event with this event_id was already processed",
}

REASONS: tuple[str, ...] = tuple(REASON_DOCS)
