"""Shared test helpers: the ../shared data through HOTDANCE_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_file(relative: str) -> Path:
    """Path of `relative` under $HOTDANCE_SHARED.

    Skips the test when HOTDANCE_SHARED is unset; fails it when the variable is set but the file
    is missing, so CI (which sets it) never silently skips real-data tests.
    """
    root = os.environ.get("HOTDANCE_SHARED")
    if not root:
        pytest.skip("HOTDANCE_SHARED is not set")
    path = Path(root) / relative
    if not path.exists():
        pytest.fail(f"HOTDANCE_SHARED={root} but {relative} is missing")
    return path


@pytest.fixture
def shared():
    """The shared_file function, as a fixture."""
    return shared_file
