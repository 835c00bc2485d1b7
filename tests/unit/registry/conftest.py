"""Fixtures of the registry's unit tests."""

from __future__ import annotations

import pytest
from registry_world import World


@pytest.fixture
def world() -> World:
    return World()
