"""Issue 17, finding 3: an API server that hangs must not hold this node's power loop.

The installed ``piclusterd run`` with the cluster side on, a real upsd, and the fake API server made to hang
mid-round (it accepts connections and never answers, :meth:`FakeKubeServer.pause`). The node must still reach
its own shutdown in time, and systemd must go on hearing the watchdog (the sd_notify socket is captured): the
power loop has its own cadence, the cluster side waits on a thread of its own.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

from .test_daemon_cluster_process import CLINIC, cluster_config

pytestmark = pytest.mark.realnut

#: The daemon's gate answer limit (GATE_ANSWER_S) plus a few polls: the shutdown comes no later than this.
SHUTDOWN_WITHIN_S = 15.0
#: The self-drain's cap ([shutdown] self_drain_timeout) and one API call's timeout.
SELF_DRAIN_CAP_S = 60.0
API_CALL_TIMEOUT_S = 10.0
#: How long the API server hangs before the battery turns critical: past one API call's timeout (10 s).
HUNG_BEFORE_CRITICAL_S = 12.0
#: Short of critical, nothing in the power loop waits for the cluster: a ping every poll (0.5 s here).
POLL_GAP_S = 3.0
#: systemd's WatchdogSec for piclusterd is 30 s; sd_watchdog_enabled(3) advises pinging at half of it. The
#: power loop pings every poll (0.5 s here); its longest wait is the gate's answer (GATE_ANSWER_S, 5 s).
WATCHDOG_GAP_S = 15.0


class NotifySocket:
    """systemd's side of sd_notify: every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.received: list[tuple[float, str]] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.2)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def pings_between(self, start: float, end: float) -> list[float]:
        return [at for at, message in self.received if "WATCHDOG=1" in message.split("\n") and start <= at <= end]

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self._socket.close()


@pytest.fixture
def cluster() -> Iterator[FakeKubeServer]:
    with FakeKubeServer(controller=True) as server:
        server.load_objects(CLINIC)
        server.run_controller_once()
        yield server
        server.resume()  # let hung requests end before the server stops


def test_a_hung_api_server_does_not_hold_the_nodes_own_shutdown_nor_the_watchdog(
    cluster: FakeKubeServer, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    calls = tmp_path / "shutdown-calls"
    recorder = tmp_path / "record-shutdown"
    recorder.write_text(f'#!/bin/sh\necho "poweroff $*" >> {calls}\n')
    recorder.chmod(0o755)
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
            config = tmp_path / "piclusterd.toml"
            config.write_text(
                cluster_config(
                    tmp_path, ups, kubeconfig, mode="enforce", extra=f'[shutdown]\ncommand = ["{recorder}", "now"]\n'
                )
            )
            with DaemonProcess(config, env={"NOTIFY_SOCKET": notify.path}) as daemon:
                daemon.wait_for("leader.acquired", timeout_s=30)
                ups.set("ups.status", "OB DISCHRG")
                daemon.wait_for("power.state_changed", lambda e: e["new"] == "on_battery")
                daemon.wait_for("plan.decided", timeout_s=30)  # the leader works on battery
                cluster.pause()  # from now on the API server accepts and never answers, mid-round
                hung_at = time.monotonic()
                # Longer than one API call's timeout (10 s): the cluster round is stuck, the power loop is not.
                time.sleep(HUNG_BEFORE_CRITICAL_S)
                now = time.monotonic()
                on_battery = [b - a for a, b in itertools.pairwise([hung_at, *notify.pings_between(hung_at, now), now])]
                assert max(on_battery) < POLL_GAP_S, on_battery
                ups.set_many({"ups.status": "OB DISCHRG LB", "battery.charge": "5", "battery.runtime": "20"})
                critical_at = time.monotonic()
                daemon.wait_for("power.state_changed", lambda e: e["new"] == "critical", timeout_s=SHUTDOWN_WITHIN_S)
                started = daemon.wait_for("shutdown.local_started", timeout_s=SHUTDOWN_WITHIN_S)
                shut_at = time.monotonic()
                assert started["by"] == "local_protection"
                # The self-drain (issue 19) tries the hung API server first, within its budget: one call's
                # timeout, then it gives up and the shutdown command runs.
                daemon.wait_for("shutdown.self_drain_failed", timeout_s=SELF_DRAIN_CAP_S + API_CALL_TIMEOUT_S)
                time.sleep(2.0)  # the power loop goes on after the shutdown command, until systemd stops it
                end = time.monotonic()
                pings = notify.pings_between(hung_at, end)
                assert shut_at - critical_at < SHUTDOWN_WITHIN_S
                # systemd heard the watchdog all along: no silence as long as WATCHDOG_GAP_S while the API hung.
                silences = [b - a for a, b in itertools.pairwise([hung_at, *pings, end])]
                assert max(silences) < WATCHDOG_GAP_S, silences
                assert calls.read_text().splitlines() == ["poweroff now"]
    finally:
        notify.close()
