"""HATs on emulated parts (``piclusterd.testing.emulated_hat``), one fixture per board the tests lean on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from piclusterd.drivers.hat import get_profile
from piclusterd.testing.emulated_hat import EmulatedHat


def _hat(key: str) -> Iterator[EmulatedHat]:
    hat = EmulatedHat(get_profile(key))
    yield hat
    hat.source.close()


@pytest.fixture
def x1200() -> Iterator[EmulatedHat]:
    yield from _hat("geekworm-x1200")


@pytest.fixture
def x728() -> Iterator[EmulatedHat]:
    yield from _hat("geekworm-x728")


@pytest.fixture
def waveshare_b() -> Iterator[EmulatedHat]:
    yield from _hat("waveshare-ups-hat-b")
