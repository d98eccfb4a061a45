"""The real clock, for the daemon's entry point. The core never calls it: it receives ``now``."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["SystemClock", "boot_wall_time"]


def boot_wall_time(stat: Path = Path("/proc/stat")) -> float | None:
    """When this machine booted (``btime`` in /proc/stat, epoch seconds).

    The unit's ``ProcSubset=pid`` hides /proc/stat: then the wall clock minus ``CLOCK_BOOTTIME`` (the seconds
    since boot, suspend included), which is how the kernel computes ``btime`` itself (``getboottime64``).
    None only if neither can be read.
    """
    try:
        for line in stat.read_text(encoding="ascii").splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, AttributeError):  # AttributeError: not Linux
        return None


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
