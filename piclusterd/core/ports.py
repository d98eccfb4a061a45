"""The small interfaces (ports) between the pure core and the adapters at the edge.

Adapters implement these; the daemon's entry point wires them together, nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from piclusterd.core.reading import ParsedReading

__all__ = ["Clock", "LocalShutdown", "PowerSource"]


class Clock(Protocol):
    """Time, injected. ``monotonic`` orders events and measures staleness; ``wall`` is for the audit trail."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class PowerSource(Protocol):
    """Something that tells whether mains is present and how the battery stands (NUT, I2C HAT, GPIO).

    ``poll`` returns what the source said, parsed and validated; it raises
    :class:`piclusterd.core.errors.SourceUnavailable` when the source cannot be reached, and must not block for
    longer than its own timeout. Reconnecting is the source's own business.
    """

    @property
    def name(self) -> str: ...

    def poll(self) -> ParsedReading: ...

    def close(self) -> None: ...


class LocalShutdown(Protocol):
    """Powers this machine off. Called at most once per daemon life; returns the command's exit status."""

    def run(self, argv: Sequence[str]) -> int: ...
