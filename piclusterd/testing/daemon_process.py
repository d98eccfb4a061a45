"""Run the installed ``piclusterd`` as a real process and read its JSON audit lines as they come."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["DaemonProcess", "installed_script"]

Event = dict[str, Any]


def installed_script(name: str = "piclusterd") -> str:
    """The console script installed beside the running interpreter (the venv's bin/)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install piclusterd into this environment (pip install .)")
    return str(path)


class DaemonProcess:
    """``piclusterd run --config FILE --log-format json`` with its standard error parsed line by line.

    :meth:`wait_for` blocks until an event matching a predicate arrives (bounded by a timeout), so tests wait
    for what the daemon says, not for a guessed duration. Non-JSON lines are kept in :attr:`other_lines`.
    """

    def __init__(
        self,
        config: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.argv = list(command) if command is not None else [
            installed_script(), "run", "--config", str(config), "--log-format", "json", *args
        ]  # fmt: skip
        # Whatever systemd set for the test runner itself must not leak into the daemon under test.
        self._env = {
            k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC")
        }
        self._env.update(env or {})
        self.events: list[Event] = []
        self.other_lines: list[str] = []
        self._cursor = 0
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                self.other_lines.append(line.rstrip("\n"))
                continue
            if isinstance(event, dict):
                self._queue.put(event)
        self._queue.put(None)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        """Started and not exited."""
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def wait_for(
        self, event: str, predicate: Callable[[Event], bool] = lambda _e: True, timeout_s: float = 20.0
    ) -> Event:
        """The first event after the previous match with this name matching ``predicate``, waiting for it to
        arrive within the timeout. Successive calls read like a script of expected events, in order."""
        for index in range(self._cursor, len(self.events)):
            seen = self.events[index]
            if seen["event"] == event and predicate(seen):
                self._cursor = index + 1
                return seen
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            self.events.append(item)
            if item["event"] == event and predicate(item):
                self._cursor = len(self.events)
                return item
        names = [e["event"] for e in self.events]
        raise AssertionError(f"no {event!r} within {timeout_s} s; got {names}; other output: {self.other_lines[-5:]}")

    def drain(self) -> list[Event]:
        """Collect what has arrived so far without waiting."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return self.events
            if item is None:
                self._queue.put(None)
                return self.events
            self.events.append(item)

    def named(self, event: str) -> list[Event]:
        return [e for e in self.drain() if e["event"] == event]

    def stop(self, timeout_s: float = 15.0) -> int:
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.drain()
        return self._process.returncode

    def wait_exit(self, timeout_s: float = 20.0) -> int:
        assert self._process is not None
        code = self._process.wait(timeout=timeout_s)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.drain()
        return code
