"""The real clock, for the daemon's entry point. The core never calls it: it receives ``now``."""

from __future__ import annotations

import time

__all__ = ["SystemClock"]


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
