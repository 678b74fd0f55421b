"""One valid example of every event type, in upstream (wire) form with its raw PII.

For tests, docs and producer teams: `example_event(type, event_time=...)` is a record `parse_event` accepts.

>>> ev = example_event("drawdown", event_time=1_000)
>>> ev["account_id"], ev["payload"]
('ACC-000123', {'amount': 250.5, 'channel': 'app'})

"""

from __future__ import annotations

import copy

from riskstream.core.contracts.spec import SPEC
from riskstream.core.contracts.wire import make_event

__all__ = ["EXAMPLE_PAYLOADS", "EXAMPLE_ENTITY", "example_event", "example_pii_values"]

_DAY = 86_400_000
_T = 1_760_000_000_000

EXAMPLE_PAYLOADS: dict[str, dict] = {
    "account_opened": {"product": "credit_line", "segment": "retail", "limit": 5000, "currency": "EUR",
                       "name": "Jane Q. Public", "national_id": "NID-99887766", "phone": "+15550001111",
                       "address": "1 Secret Lane"},
    "login": {"device_fingerprint": "fp-device-secret-1", "ip": "203.0.113.77"},
    "login_failed": {"device_fingerprint": "fp-device-secret-2", "ip": "203.0.113.78"},
    "device_change": {"device_fingerprint": "fp-device-secret-3"},
    "contact_change": {"field": "phone", "new_value": "+15559998888"},
    "drawdown": {"amount": 250.5, "channel": "app"},
    "purchase": {"amount": 19.99, "merchant_id": "m-17"},
    "limit_check": {},
    "app_session": {"duration_s": 42},
    "statement_issued": {"statement_id": "st-1", "amount_due": 120.0, "due_date": _T + 20 * _DAY, "balance": -3.5},
    "payment_received": {"amount": 120.0, "statement_id": "st-1"},
    "payment_partial": {"amount": 20.0, "amount_due": 120.0},
    "payment_missed": {"statement_id": "st-1", "days_past_due": 3, "amount_due": 120.0},
    "bureau_inquiry": {"bureau": "bx", "inquiry_kind": "hard"},
    "external_delinquency": {"days_past_due": 30, "amount": 0},
    "new_debt": {"amount": 1000, "lender_kind": "bank"},
    "rate_change": {"value": 4.25},
    "sector_index": {"value": 101.3},
    "macro_indicator": {"value": -0.5},
    "financial_statement": {"period": "2026Q3", "revenue": 1e6, "ebitda": 2e5, "debt_service": 1e5, "cash": 5e4},
    "cashflow_actual": {"period": "2026Q3", "actual": 9e4, "plan": 1e5},
    "milestone_report": {"milestone": "grid", "planned_date": _T, "actual_date": None, "pct_complete": 55.5},
    "covenant_test": {"covenant": "dscr_min", "value": 1.1, "threshold": 1.2, "direction": "min"},
}

EXAMPLE_ENTITY = {"behaviour": "ACC-000123", "repayment": "ACC-000123", "credit": "ACC-000123",
                  "market": "base_rate|all", "project": "FAC-77"}


def example_event(type_name: str, *, event_time: int, source: str = "core", **overrides) -> dict:
    """A fresh (deep-copied) valid wire event of `type_name`; `overrides` replace envelope fields."""
    fam = SPEC[type_name].family
    ev = make_event(type_name, EXAMPLE_ENTITY[fam], copy.deepcopy(EXAMPLE_PAYLOADS[type_name]),
                    event_time=event_time, source=source)
    ev.update(overrides)
    return ev


def example_pii_values() -> list[str]:
    """Every raw PII value in the examples (none may survive parsing)."""
    return [p[name] for t, p in EXAMPLE_PAYLOADS.items() for name, f in SPEC[t].versions[SPEC[t].newest].items()
            if f.pii and name in p]
