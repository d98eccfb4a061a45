"""Adapter: power this machine off by running the configured command (default ``systemctl poweroff``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

__all__ = ["CommandShutdown", "TickingCommand"]


def _not_started(error: OSError) -> int:
    """The shell's exit status for a command that could not start: 127 not found, 126 found but not runnable
    (no exec bit, a directory, a bad interpreter line). Either is a status, said by the caller, never an
    exception that would end the daemon in the middle of a full shutdown."""
    return 127 if isinstance(error, FileNotFoundError) else 126


class CommandShutdown:
    """Runs the shutdown argv without a shell; returns its exit status (127/126 if it cannot be started)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self._timeout_s = timeout_s

    def run(self, argv: Sequence[str]) -> int:
        try:
            done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, timeout=self._timeout_s, check=False)
        except OSError as error:
            return _not_started(error)
        except subprocess.TimeoutExpired:
            return 124
        return done.returncode


class TickingCommand:
    """Runs an argv without a shell, calling ``tick`` every ``poll_s`` while it runs, so that a slow command
    (the full shutdown's hook, e.g. an etcd snapshot) neither trips systemd's watchdog nor lets the lease lapse.
    Returns its exit status; 124 if killed after ``timeout_s``, 127/126 if it cannot be started.
    """

    def __init__(self, tick: Callable[[], None], timeout_s: float = 120.0, poll_s: float = 1.0) -> None:
        self._tick = tick
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def run(self, argv: Sequence[str]) -> int:
        try:
            process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)
        except OSError as error:
            return _not_started(error)
        deadline = time.monotonic() + self._timeout_s
        try:
            while True:
                try:
                    return process.wait(timeout=self._poll_s)
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() >= deadline:
                    return 124
                self._tick()
        finally:
            if process.poll() is None:  # timed out, or the tick raised (the daemon stopping): no orphan hook
                process.kill()
                process.wait()
