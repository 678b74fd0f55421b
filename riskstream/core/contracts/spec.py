"""The event catalogue as data: every type, family and schema version in one place.

This module is the single source of truth behind the hot-path validator (`riskstream.core.contracts.validator`), the
JSON Schema files handed to upstream teams (`riskstream.core.contracts.jsonschema`) and `docs/events.md`.

A payload contract is an ordered mapping ``field name -> Field``. Adding a version of a type means adding one entry
to that type's ``versions``; the newest entry is the one unknown (newer) versions are checked against.

>>> SPEC["drawdown"].family
'behaviour'
>>> sorted(SPEC["drawdown"].versions)
[1, 2]
>>> SPEC["login"].versions[1]["ip"].pii
'hash'

"""

from __future__ import annotations

from typing import Mapping, NamedTuple

__all__ = [
    "Field",
    "TypeSpec",
    "Family",
    "FAMILIES",
    "TOPIC_FAMILIES",
    "SPEC",
    "string",
    "number",
    "integer",
    "epoch_ms",
    "one_of",
    "pii",
    "I64_MIN",
    "I64_MAX",
]

# Integers on the wire ("int" and "epoch_ms" fields, schema_version, the envelope times) are signed 64-bit, the
# widest integers orjson and most producer languages hold exactly. The validator refuses integers outside this range
# (`invalid_value`) and the JSON Schemas bound them to it.
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class Field(NamedTuple):
    """One payload field.

    kind: "str", "number" (int or float, never bool), "int", "epoch_ms" (int ≥ 0) or "enum" (one of `choices`).
    "int" and "epoch_ms" are int64 (`I64_MIN..I64_MAX`); an integral float (`3.0`) is that integer, as in JSON
    Schema, and is parsed as an int.
    Bounds: `ge`/`le` inclusive, `gt` exclusive. `nullable` also admits JSON null. `pii` is None, "drop" (removed
    at ingestion) or "hash" (replaced by a keyed hash under ``<field>_hash``).
    """

    kind: str
    required: bool = True
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    pii: str | None = None
    doc: str = ""


def string(*, required: bool = True, doc: str = "") -> Field:
    return Field("str", required=required, doc=doc)


def number(*, ge=None, gt=None, le=None, required: bool = True, doc: str = "") -> Field:
    return Field("number", required=required, ge=ge, gt=gt, le=le, doc=doc)


def integer(*, ge=None, gt=None, le=None, required: bool = True, doc: str = "") -> Field:
    return Field("int", required=required, ge=ge, gt=gt, le=le, doc=doc)


def epoch_ms(*, nullable: bool = False, required: bool = True, doc: str = "") -> Field:
    return Field("epoch_ms", required=required, ge=0, nullable=nullable, doc=doc)


def one_of(*choices: str, required: bool = True, doc: str = "") -> Field:
    return Field("enum", required=required, choices=tuple(choices), doc=doc)


def pii(treatment: str, *, required: bool) -> Field:
    """A personal-data string field. Dropped PII is optional (nothing downstream needs it); hashed PII is
    required because a feature depends on comparing it."""
    if treatment not in ("drop", "hash"):
        raise ValueError(f"PII treatment must be 'drop' or 'hash', not {treatment!r}")
    return Field("str", required=required, pii=treatment)


class Family(NamedTuple):
    """An event family: the upstream topic it is published to and the envelope fields that name its entity."""

    topic: str
    entity_fields: tuple[str, ...]


FAMILIES: Mapping[str, Family] = {
    "behaviour": Family("riskstream.events.behaviour", ("account_id",)),
    "repayment": Family("riskstream.events.repayment", ("account_id",)),
    "credit": Family("riskstream.events.credit", ("account_id",)),
    "market": Family("riskstream.events.market", ("indicator", "segment")),
    "project": Family("riskstream.events.project", ("facility_id",)),
}

# Upstream topic (without the deployment's topic_prefix) -> family, for `parse_event(..., family=...)`.
TOPIC_FAMILIES: Mapping[str, str] = {f.topic: name for name, f in FAMILIES.items()}


class TypeSpec(NamedTuple):
    """All versions of one event type. Versions below `min_version` are refused as `unsupported_version`."""

    family: str
    versions: Mapping[int, Mapping[str, Field]]
    min_version: int = 1
    doc: str = ""

    @property
    def newest(self) -> int:
        return max(self.versions)


def _login() -> dict[str, Field]:
    return {"device_fingerprint": pii("hash", required=True), "ip": pii("hash", required=True)}


_DRAWDOWN_V1 = {"amount": number(gt=0), "channel": string(required=False)}

SPEC: Mapping[str, TypeSpec] = {
    # --- behaviour ---
    "account_opened": TypeSpec("behaviour", {1: {
        "product": one_of("credit_line", "project_facility"),
        "segment": string(),
        "limit": number(ge=0),
        "currency": string(),
        "name": pii("drop", required=False),
        "national_id": pii("drop", required=False),
        "phone": pii("drop", required=False),
        "address": pii("drop", required=False),
    }}, doc="a credit line or facility was opened"),
    "login": TypeSpec("behaviour", {1: _login()}, doc="successful login"),
    "login_failed": TypeSpec("behaviour", {1: _login()}, doc="failed login attempt"),
    "device_change": TypeSpec("behaviour", {1: {"device_fingerprint": pii("hash", required=True)}},
                              doc="a new device was registered"),
    "contact_change": TypeSpec("behaviour", {1: {
        "field": one_of("phone", "email", "address"),
        "new_value": pii("drop", required=False),
    }}, doc="contact details were changed"),
    "drawdown": TypeSpec("behaviour", {
        1: _DRAWDOWN_V1,
        # v2 (additive): the currency of `amount`; absent means the account currency.
        2: {**_DRAWDOWN_V1, "currency": string(required=False)},
    }, doc="money drawn from the credit line"),
    "purchase": TypeSpec("behaviour", {1: {"amount": number(gt=0), "merchant_id": string()}},
                         doc="card purchase on the line"),
    "limit_check": TypeSpec("behaviour", {1: {}}, doc="customer looked up the available limit"),
    "app_session": TypeSpec("behaviour", {1: {"duration_s": number(ge=0)}}, doc="app session ended"),
    # --- repayment ---
    "statement_issued": TypeSpec("repayment", {1: {
        "statement_id": string(),
        "amount_due": number(ge=0),
        "due_date": epoch_ms(),
        "balance": number(),
    }}, doc="a statement was issued"),
    "payment_received": TypeSpec("repayment", {1: {
        "amount": number(gt=0),
        "statement_id": string(required=False),
    }}, doc="a payment was received"),
    "payment_partial": TypeSpec("repayment", {1: {
        "amount": number(gt=0),
        "amount_due": number(gt=0),
        "statement_id": string(required=False),
    }}, doc="a payment below the amount due was received"),
    "payment_missed": TypeSpec("repayment", {1: {
        "statement_id": string(),
        "days_past_due": integer(ge=0),
        "amount_due": number(ge=0),
    }}, doc="a due date passed without full payment"),
    # --- credit record ---
    "bureau_inquiry": TypeSpec("credit", {1: {"bureau": string(), "inquiry_kind": one_of("hard", "soft")}},
                               doc="a credit bureau inquiry was made"),
    "external_delinquency": TypeSpec("credit", {1: {"days_past_due": integer(ge=0), "amount": number(ge=0)}},
                                     doc="delinquency reported on debt held elsewhere"),
    "new_debt": TypeSpec("credit", {1: {"amount": number(gt=0), "lender_kind": string()}},
                         doc="new debt taken elsewhere"),
    # --- market ---
    "rate_change": TypeSpec("market", {1: {"value": number(doc="percent, e.g. 4.25")}},
                            doc="a benchmark rate changed"),
    "sector_index": TypeSpec("market", {1: {"value": number(gt=0)}}, doc="a sector or regional index value"),
    "macro_indicator": TypeSpec("market", {1: {"value": number()}}, doc="a macro indicator, e.g. unemployment %"),
    # --- project finance ---
    "financial_statement": TypeSpec("project", {1: {
        "period": string(doc='e.g. "2026Q3"'),
        "revenue": number(),
        "ebitda": number(),
        "debt_service": number(gt=0),
        "cash": number(),
    }}, doc="periodic financial statement of the project"),
    "cashflow_actual": TypeSpec("project", {1: {"period": string(), "actual": number(), "plan": number()}},
                                doc="actual versus planned cash flow for a period"),
    "milestone_report": TypeSpec("project", {1: {
        "milestone": string(),
        "planned_date": epoch_ms(),
        "actual_date": epoch_ms(nullable=True, doc="null while not reached"),
        "pct_complete": number(ge=0, le=100),
    }}, doc="construction or delivery milestone progress"),
    "covenant_test": TypeSpec("project", {1: {
        "covenant": string(doc='e.g. "dscr_min"'),
        "value": number(),
        "threshold": number(),
        "direction": one_of("min", "max"),
    }}, doc="result of a covenant test"),
}
