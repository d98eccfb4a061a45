"""Adapter: power this machine off by running the configured command (default ``systemctl poweroff``)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

__all__ = ["CommandShutdown"]


class CommandShutdown:
    """Runs the shutdown argv without a shell; returns its exit status (127 if it cannot be started)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self._timeout_s = timeout_s

    def run(self, argv: Sequence[str]) -> int:
        try:
            done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, timeout=self._timeout_s, check=False)
        except FileNotFoundError:
            return 127
        except subprocess.TimeoutExpired:
            return 124
        return done.returncode
