"""A clock that moves only when a test moves it."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """``monotonic`` starts at ``start``; ``wall`` is ``monotonic`` plus a fixed epoch offset."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_795_000_000.0) -> None:
        self._now = start
        self._epoch = epoch

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    def jump_wall(self, seconds: float) -> None:
        """The wall clock is set (either way) while ``monotonic`` runs on: a Pi without RTC that booted with
        the time it last saved, or that NTP corrected later."""
        self._epoch += seconds

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self._now += seconds
