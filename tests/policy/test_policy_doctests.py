"""Run the doctest examples of the policy, actuator and audit modules."""

import doctest
import importlib

import pytest

MODULES = [
    "riskstream.policy", "riskstream.policy.vocabulary", "riskstream.policy.loader", "riskstream.policy.engine",
    "riskstream.policy.holder", "riskstream.actuator.commands", "riskstream.actuator.line",
    "riskstream.actuator.breaker", "riskstream.audit",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
