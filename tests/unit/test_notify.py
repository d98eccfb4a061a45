"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from piclusterd.node.systemd_notify import SystemdNotifier, watchdog_interval_s


def test_messages_reach_the_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        notifier.ready("online, 100 %")
        notifier.status("online, 100 %")  # unchanged: not sent again
        notifier.status("on battery, 63 %, 41 min left")
        notifier.watchdog()
        got = [server.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=online, 100 %", "STATUS=on battery, 63 %, 41 min left", "WATCHDOG=1"]


def test_without_systemd_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval_s({}) is None
