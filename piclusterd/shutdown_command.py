"""Adapter: power this machine off by running the configured command (default ``systemctl poweroff``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

__all__ = ["CommandShutdown", "TickingCommand"]


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


class TickingCommand:
    """Runs an argv without a shell, calling ``tick`` every ``poll_s`` while it runs, so that a slow command
    (the full shutdown's hook, e.g. an etcd snapshot) neither trips systemd's watchdog nor lets the lease lapse.
    Returns its exit status; 124 if killed after ``timeout_s``, 127 if it cannot be started.
    """

    def __init__(self, tick: Callable[[], None], timeout_s: float = 120.0, poll_s: float = 1.0) -> None:
        self._tick = tick
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def run(self, argv: Sequence[str]) -> int:
        try:
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return 127
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                return process.wait(timeout=self._poll_s)
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                process.kill()
                process.wait()
                return 124
            self._tick()
