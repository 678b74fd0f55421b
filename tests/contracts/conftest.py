"""Fixtures for the contract tests."""

from __future__ import annotations

import pytest

from riskstream.privacy import Pseudonymizer


@pytest.fixture(scope="session")
def ps() -> Pseudonymizer:
    return Pseudonymizer(b"test-secret-for-contracts")
