"""A clock for tests that moves only when told, satisfying :class:`piclusterd.ports.Clock`."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """Monotonic and wall time that move together, and only through :meth:`advance`."""

    def __init__(self, wall: float = 1_800_000_000.0, monotonic: float = 1_000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._wall += seconds
        self._monotonic += seconds
