"""Event contracts: the catalogue, the hot-path validator, wire helpers, dead letters and JSON Schemas.

>>> from riskstream.core.privacy import Pseudonymizer
>>> ev = make_event("login", "A7", {"device_fingerprint": "fp-9", "ip": "198.51.100.4"}, event_time=5_000)
>>> parsed = parse_event(encode_event(ev), now_ms=6_000, pseudonymizer=Pseudonymizer(b"doc-secret"))
>>> sorted(parsed["payload"])
['device_fingerprint_hash', 'ip_hash']

"""

from riskstream.core.contracts.deadletter import dead_letter, read_dead_letter
from riskstream.core.contracts.jsonschema import json_schema, write_schemas
from riskstream.core.contracts.reasons import REASON_DOCS, REASONS, Rejected
from riskstream.core.contracts.spec import FAMILIES, SPEC, TOPIC_FAMILIES, Family, Field, TypeSpec
from riskstream.core.contracts.validator import DEFAULT_LIMITS, Limits, Validator, parse_event
from riskstream.core.contracts.wire import encode_event, make_event

__all__ = [
    "DEFAULT_LIMITS",
    "FAMILIES",
    "Family",
    "Field",
    "Limits",
    "REASONS",
    "REASON_DOCS",
    "Rejected",
    "SPEC",
    "TOPIC_FAMILIES",
    "TypeSpec",
    "Validator",
    "dead_letter",
    "encode_event",
    "json_schema",
    "make_event",
    "parse_event",
    "read_dead_letter",
    "write_schemas",
]
