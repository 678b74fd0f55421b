"""Outcome definitions shared by the population generator, the truth files and the backtest (one place only).

**Default** (truth outcome ``"default"``): an entity is in default from the first moment it is
:data:`DEFAULT_DPD` (90) or more days past due on a contractual payment, or it is charged off, whichever comes
first. The truth ``time`` of a default is that moment (epoch ms). For a credit line "days past due" counts from the
due date of the oldest unpaid statement; for a project-finance facility, from the oldest unpaid debt-service
instalment (or the acceleration / charge-off date).

**Fraud** (``"fraud"``): the line was taken over by someone else; ``time`` is the event time of the first
fraudulent drawdown.

**Good** (``"good"``): neither, within the history; ``time`` is null. A good account may have missed a payment
and cured.

A **restrictive command** is one of :data:`RESTRICTIVE_COMMANDS`: it limits what the customer can draw
(WARN and REVIEW do not).

>>> DEFAULT_DPD, OUTCOMES
(90, ('default', 'good', 'fraud'))
>>> is_default(days_past_due=90), is_default(days_past_due=89), is_default(days_past_due=10, charged_off=True)
(True, False, True)
"""

from __future__ import annotations

DEFAULT_DPD = 90
"""Days past due at which an entity is in default (Basel-style 90 dpd)."""

DEFAULT_DEFINITION = ("default = at least 90 days past due on a contractual payment, or charged off, "
                      "whichever comes first; the default time is that moment")

OUTCOMES = ("default", "good", "fraud")

RESTRICTIVE_COMMANDS = ("REDUCE_LIMIT", "FREEZE", "CLOSE")
"""Commands that restrict a line; the backtest's catch rate and good-account harm count these."""


def is_default(*, days_past_due: float, charged_off: bool = False) -> bool:
    """The default definition as a predicate."""
    return charged_off or days_past_due >= DEFAULT_DPD
