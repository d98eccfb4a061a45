"""systemd readiness, watchdog and status notifications (the sd_notify(3) datagram protocol).

Written against the socket directly (a dozen lines) rather than through a library, so the same code runs
wherever the daemon runs; without ``NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every call is a
no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier", "watchdog_interval_s"]


def watchdog_interval_s(environ: Mapping[str, str]) -> float | None:
    """How often to ping the watchdog: half of ``WATCHDOG_USEC``, or None when no watchdog is armed."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


class SystemdNotifier:
    """Sends ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` to systemd, if it listens."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        self._address = address or None
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def _send(self, text: str) -> None:
        if self._address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(self._address)
            sock.sendall(text.encode("utf-8"))

    def ready(self, status: str) -> None:
        self._last_status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """Send STATUS= only when it changed: systemctl status shows the latest anyway."""
        if status != self._last_status:
            self._last_status = status
            self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")
