"""The control messages the console's actions publish: a review verdict and a breaker reset (unsigned here; the
publisher signs them with this console's control key, as `riskstream control` does).

>>> m = review_control("ACC1", "d1", "clear", "false alarm", "ana")
>>> m["kind"], m["verdict"], m["decision_id"], m["by"], len(m["control_id"])
('review', 'clear', 'd1', 'ana', 32)
>>> breaker_control("drop", "flood of closes from a bad feed", "ana")["how"]
'drop'
>>> review_control("ACC1", "d1", "maybe", "x", "ana")
Traceback (most recent call last):
...
ValueError: verdict must be one of fraud, clear, hold
"""

from __future__ import annotations

from riskstream.ops import control

VERDICTS = ("fraud", "clear", "hold")
RESETS = ("release", "drop")


def review_control(account_id: str, decision_id: str, verdict: str, note: str, by: str, *,
                   decision: dict | None = None) -> dict:
    """An analyst's verdict on a REVIEW decision: `control.review_message` (fraud -> a CLOSE from the actuator;
    fraud and clear -> a label, from the `decision`'s point-in-time features), else, where the control module has
    no such builder, the same fields as a plain `review` message."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    build = getattr(control, "review_message", None)
    if build is not None:
        return build(account_id, decision_id, verdict, note, by, decision=decision, source="console")
    return control.message("review", account_id=account_id, decision_id=decision_id, verdict=verdict, note=note,
                           by=by)


def breaker_control(how: str, reason: str, by: str) -> dict:
    """Release or drop the commands the mass-close breaker holds: `riskstream control breaker-reset HOW`."""
    if how not in RESETS:
        raise ValueError("how must be release or drop")
    return control.message("breaker_reset", how=how, by=by, reason=reason)
