"""Restore policy and power-on backends: the shared baseline of the decision tables."""

from __future__ import annotations

import pytest

from piclusterd.restore import RestorePolicy


@pytest.fixture
def policy() -> RestorePolicy:
    """The defaults an operator gets: 120 s stable mains, 50 % charge, 30 s between power-ons."""
    return RestorePolicy()
