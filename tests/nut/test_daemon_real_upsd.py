"""The installed ``piclusterd`` process against a real upsd + dummy-ups, as a user runs it."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from piclusterd.testing.daemon_process import DaemonProcess, installed_script
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut

VARIABLES = {
    **NutServer.DEFAULT_VARIABLES,
    "ups.status": "OL",
    "battery.charge": "100",
    "battery.runtime": "3600",
    "ups.load": "20",
    "ups.realpower.nominal": "390",
}


@dataclass
class Node:
    ups: NutServer
    config: Path
    calls: Path
    runtime_dir: Path

    def shutdowns(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def write_config(directory: Path, ups: NutServer, *, mode: str = "enforce", extra: str = "") -> Node:
    calls = directory / "shutdown-calls"
    recorder = directory / "record-shutdown"
    recorder.write_text(f'#!/bin/sh\necho "poweroff $*" >> {calls}\n')
    recorder.chmod(0o755)
    runtime_dir = directory / "run"
    config = directory / "piclusterd.toml"
    config.write_text(
        f'mode = "{mode}"\n[node]\nname = "pi1"\n'
        f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\n'
        'poll_interval = "0.2s"\nstale_after = "2s"\n'
        '[policy]\nrecovery_debounce = "1s"\n'
        f'[shutdown]\ncommand = ["{recorder}", "now"]\n[daemon]\nruntime_dir = "{runtime_dir}"\n{extra}'
    )
    return Node(ups, config, calls, runtime_dir)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with NutServer(VARIABLES) as ups:
        yield write_config(tmp_path, ups)


def changed_to(state: str):  # type: ignore[no-untyped-def]
    return lambda e: e.get("new") == state


def test_outage_and_return_are_logged_with_their_fields(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        started = daemon.wait_for("daemon.started")
        assert started["node"] == "pi1" and started["mode"] == "enforce"
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.set_many({"ups.status": "OB DISCHRG", "battery.charge": "63", "battery.runtime": "2460"})
        event = daemon.wait_for("power.state_changed", changed_to("on_battery"))
        assert event["old"] == "online" and event["on_battery"] is True
        assert event["charge_pct"] == 63 and event["runtime_s"] == 2460
        assert event["source"] == f"nut:{node.ups.ups_name}@{node.ups.host}:{node.ups.port}"
        assert event["timestamp"].endswith("Z")
        node.ups.set("ups.status", "OL CHRG")
        back = daemon.wait_for("power.state_changed", changed_to("online"), timeout_s=10)
        assert back["old"] == "on_battery"
    assert node.shutdowns() == []


def test_low_battery_runs_the_shutdown_command_exactly_once(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.set("ups.status", "OB")
        daemon.wait_for("power.state_changed", changed_to("on_battery"))
        node.ups.set_many({"ups.status": "OB LB", "battery.charge": "9", "battery.runtime": "120"})
        critical = daemon.wait_for("power.state_changed", changed_to("critical"))
        assert critical["reason"] == "UPS reports low battery (OB LB)" and critical["level"] == "critical"
        started = daemon.wait_for("shutdown.local_started")
        assert started["command"][-1] == "now"
        # Keep polling a while longer on the same low battery: the command must not run again.
        node.ups.set("battery.charge", "8")
        node.ups.set("battery.charge", "7")
    assert node.shutdowns() == ["poweroff now"]


def test_upsd_killed_on_mains_reads_unknown_then_recovers(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.kill_upsd()
        lost = daemon.wait_for("power.source_lost")
        assert lost["last_state"] == "online" and lost["error"]
        daemon.wait_for("power.state_changed", changed_to("unknown"))
        node.ups.restart_upsd()
        daemon.wait_for("power.source_restored", timeout_s=30)
        daemon.wait_for("power.state_changed", lambda e: e["new"] == "online" and e["old"] == "unknown")
    assert node.shutdowns() == []


def test_upsd_killed_on_battery_fails_safe(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.set("ups.status", "OB")
        daemon.wait_for("power.state_changed", changed_to("on_battery"))
        node.ups.kill_upsd()
        daemon.wait_for("power.source_lost")
        critical = daemon.wait_for("power.state_changed", changed_to("critical"))
        assert "fail-safe" in critical["reason"]
        daemon.wait_for("shutdown.local_started")
    assert node.shutdowns() == ["poweroff now"]


def test_garbage_from_the_ups_is_rejected_and_never_acted_on(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.set_many({"battery.runtime": "-5", "battery.charge": "abc"})
        node.ups.set("ups.status", "OB")
        daemon.wait_for("power.state_changed", changed_to("on_battery"))
        # Both garbage values were served before OB; the poll that saw OB logged its rejections first.
        rejected = {(e["variable"], e["value"], e["reason"]) for e in daemon.named("power.reading_rejected")}
        assert rejected == {("battery.runtime", "-5", "below 0"), ("battery.charge", "abc", "not a number")}
        node.ups.set("ups.status", "OB WEIRDWORD")
        assert daemon.wait_for("power.unknown_status_word")["word"] == "WEIRDWORD"
        assert daemon.named("power.state_changed")[-1]["new"] == "on_battery"  # -5 s runtime was not "critical"
    assert node.shutdowns() == []


PACKAGED_CONFIG = Path(__file__).parents[2] / "examples" / "piclusterd.toml"  # installed as is by debian/


def packaged_config(directory: Path, ups: NutServer, extra: dict[str, str] | None = None) -> Node:
    """The .deb's /etc/piclusterd/piclusterd.toml, with only what a test must change: where upsd is, a
    shutdown command that records its calls, and a runtime directory of its own."""
    node = write_config(directory, ups)  # for its recorder and paths
    text = PACKAGED_CONFIG.read_text()
    assert re.search(r'^mode = "dry-run"$', text, flags=re.MULTILINE)  # the packaged default
    changes = {
        ("ups", "host"): f'"{ups.host}"',
        ("ups", "port"): str(ups.port),
        ("ups", "name"): f'"{ups.ups_name}"',
        ("shutdown", "command"): f'["{directory / "record-shutdown"}", "now"]',
        ("daemon", "runtime_dir"): f'"{node.runtime_dir}"',
    }
    for key, value in (extra or {}).items():
        section, name = key.split(".")
        changes[(section, name)] = value
    lines, section = [], ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        key = line.split(" = ")[0]
        if (section, key) in changes:
            line = f"{key} = {changes.pop((section, key))}"
        lines.append(line)
    assert not changes, f"not in the packaged config: {changes}"
    node.config.write_text("\n".join(lines) + "\n")
    return node


def test_the_packaged_config_protects_the_node_in_dry_run(tmp_path: Path) -> None:
    """dry-run keeps the cluster's actions dry, never the node's own last-resort protection (issue 16)."""
    with NutServer(VARIABLES) as ups:
        node = packaged_config(tmp_path, ups)
        with DaemonProcess(node.config) as daemon:
            started = daemon.wait_for("daemon.started")
            assert started["mode"] == "dry-run"
            daemon.wait_for("power.state_changed", changed_to("online"))
            ups.set_many({"ups.status": "OB LB", "battery.charge": "9", "battery.runtime": "240"})
            shutdown = daemon.wait_for("shutdown.local_started", timeout_s=30)
            assert shutdown["mode"] == "dry-run" and shutdown["by"] == "local_protection"
            assert shutdown["reason"] == "UPS reports low battery (OB LB)"
            ups.set("battery.charge", "8")  # still critical a while longer: it must not run twice
            time.sleep(3)  # three more polls ([ups] poll_interval = "1s")
            assert daemon.named("shutdown.local_skipped") == []
    assert started["shutdown.local_protection"] is True  # said at start-up, for the one who reads the journal
    assert node.shutdowns() == ["poweroff now"]


def test_a_short_ob_lb_flicker_on_a_low_battery_is_ridden_through(tmp_path: Path) -> None:
    """storm-2am after 06:00: 20 % left (27 min to empty at the draw), a few seconds of OB + LB, mains again."""
    with NutServer(VARIABLES) as ups:
        node = packaged_config(tmp_path, ups)
        with DaemonProcess(node.config) as daemon:
            daemon.wait_for("power.state_changed", changed_to("online"))
            ups.set_many({"ups.status": "OB LB", "battery.charge": "20", "battery.runtime": "1620"})
            low = daemon.wait_for("power.state_changed", changed_to("low_battery"))
            assert "confirming" in low["reason"]
            ups.set("ups.status", "OL CHRG")
            daemon.wait_for("power.state_changed", changed_to("online"), timeout_s=30)
            assert daemon.named("shutdown.local_started") == []
    assert node.shutdowns() == []


def test_local_protection_off_leaves_the_node_to_upsmon(tmp_path: Path) -> None:
    with NutServer(VARIABLES) as ups:
        node = packaged_config(tmp_path, ups, {"shutdown.local_protection": "false"})
        with DaemonProcess(node.config) as daemon:
            daemon.wait_for("power.state_changed", changed_to("online"))
            ups.set_many({"ups.status": "OB LB", "battery.charge": "9", "battery.runtime": "240"})
            skipped = daemon.wait_for("shutdown.local_skipped", timeout_s=30)
            assert skipped["by"] == "local_protection" and "upsmon" in skipped["why"]
            assert skipped["would_run"][-1] == "now"
    assert node.shutdowns() == []


def test_reload_with_a_broken_file_keeps_running_on_the_old_one(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        good = node.config.read_text()
        node.config.write_text(good.replace("[policy]\n", "[policy]\nlow_charge = 200\n"))
        daemon.signal(signal.SIGHUP)
        failed = daemon.wait_for("config.reload_failed")
        assert "policy.low_charge" in failed["error"]
        node.ups.set("ups.status", "OB")
        daemon.wait_for("power.state_changed", changed_to("on_battery"))  # still watching the UPS
        node.config.write_text(good)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda text, ups: text.replace(f'host = "{ups.host}"', f'host = "{ups.host} "'), "ups.host"),
        (lambda text, ups: text.replace(f'name = "{ups.ups_name}"', 'name = "my ups"'), "ups.name"),
        (lambda text, _ups: text + "[restore]\nx = " + "[" * 500 + "]" * 500 + "\n", "nested"),
    ],
    ids=["host with a trailing space", "UPS name with a space", "500-deep TOML"],
)
def test_a_reload_with_a_file_run_cannot_use_is_refused_and_the_daemon_lives_on(
    node: Node, edit: Callable[[str, NutServer], str], key: str
) -> None:
    # Issue 13, finding 10: such a SIGHUP killed the daemon (a ValueError from the new NUT source, a
    # RecursionError from the TOML parser), with no config.reload_failed.
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        good = node.config.read_text()
        node.config.write_text(edit(good, node.ups))
        daemon.signal(signal.SIGHUP)
        failed = daemon.wait_for("config.reload_failed")
        assert key in failed["error"] and str(node.config) in failed["error"]
        node.ups.set("ups.status", "OB")
        daemon.wait_for("power.state_changed", changed_to("on_battery"))  # alive, on the old file
        node.config.write_text(good)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")


def test_systemd_hears_ready_status_and_watchdog(node: Node, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(20)
        with DaemonProcess(node.config, env={"NOTIFY_SOCKET": path}) as daemon:
            daemon.wait_for("power.state_changed", changed_to("online"))
            while not any(m.startswith("READY=1") for m in received):
                received.append(listener.recv(4096).decode())
            node.ups.set_many({"ups.status": "OB", "battery.charge": "63", "battery.runtime": "2460"})
            while "STATUS=on battery, 63 %, 41 min left" not in received:
                received.append(listener.recv(4096).decode())
    ready = next(m for m in received if m.startswith("READY=1"))
    assert ready == "READY=1\nSTATUS=online, 100 %, 60 min left"
    assert "WATCHDOG=1" in received


def test_piclusterctl_status_shows_the_live_state(node: Node) -> None:
    with DaemonProcess(node.config) as daemon:
        daemon.wait_for("power.state_changed", changed_to("online"))
        node.ups.set_many({"ups.status": "OB", "battery.charge": "63", "battery.runtime": "2460"})
        daemon.wait_for("power.state_changed", changed_to("on_battery"))
        done = subprocess.run(
            [installed_script("piclusterctl"), "status", "--runtime-dir", str(node.runtime_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "on_battery" and status["summary"] == "on battery, 63 %, 41 min left"


def test_an_invalid_config_stops_start_up_with_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text('[ups]\nhost = "localhost"\npoll_interval = "fast"\n[policy]\nlow_chrage = 20\n')
    for argv in (
        [installed_script(), "run", "--config", str(config)],
        [installed_script(), "check-config", "--config", str(config)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2
        assert f"{config}: ups.poll_interval: invalid value 'fast'; expected a duration" in done.stderr
        assert "policy.low_chrage: unknown key (did you mean 'low_charge'?)" in done.stderr


def test_sigterm_stops_cleanly(node: Node) -> None:
    daemon = DaemonProcess(node.config)
    daemon.start()
    daemon.wait_for("power.state_changed", changed_to("online"))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert daemon.named("daemon.stopped")[0]["state"] == "online"
