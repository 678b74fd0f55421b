"""Run the doctest examples of the policy, actuator and audit modules."""

import doctest
import importlib

import pytest

MODULES = [
    "riskstream.core.policy", "riskstream.core.policy.vocabulary", "riskstream.core.policy.loader", "riskstream.core.policy.engine",
    "riskstream.core.policy.holder", "riskstream.core.actuator.commands", "riskstream.core.actuator.line",
    "riskstream.core.actuator.breaker", "riskstream.core.audit",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
