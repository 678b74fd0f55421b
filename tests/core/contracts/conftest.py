"""Fixtures for the contract tests."""

from __future__ import annotations

import pytest

from riskstream.core.privacy import Pseudonymizer


@pytest.fixture(scope="session")
def ps() -> Pseudonymizer:
    return Pseudonymizer(b"test-secret-for-contracts")
