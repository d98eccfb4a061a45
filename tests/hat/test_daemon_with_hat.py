"""The real daemon loop fed by an emulated HAT: the power cut reaches the state machine and the shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from piclusterd.config.model import Config
from piclusterd.config.parse import load_config
from piclusterd.core.ports import PowerSource
from piclusterd.core.power_state import PowerState
from piclusterd.drivers.hat import get_profile
from piclusterd.node.daemon import PowerDaemon
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.testing.emulated_hat import EmulatedHat


class RecordingShutdown:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return 0


def daemon_on(hat: EmulatedHat, tmp_path: Path) -> tuple[PowerDaemon, CapturedAudit, RecordingShutdown]:
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        f'mode = "enforce"\n[node]\nname = "pi1"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        '[shutdown]\ncommand = ["/bin/echo", "bye"]\n'
    )
    audit = CapturedAudit("pi1")
    shutdown = RecordingShutdown()

    def factory(_config: Config) -> PowerSource:
        return hat.source

    daemon = PowerDaemon(
        load_config(path),
        source_factory=factory,
        clock=hat.clock,
        log=audit.logger,
        notifier=SystemdNotifier({}),
        shutdown=shutdown,
    )
    return daemon, audit, shutdown


def test_x1200_outage_goes_on_battery_then_low_then_critical_and_shuts_down_once(tmp_path: Path) -> None:
    hat = EmulatedHat(get_profile("geekworm-x1200"), charge_pct=40.0)
    daemon, audit, shutdown = daemon_on(hat, tmp_path)
    assert daemon.step().state is PowerState.ONLINE
    hat.lose_mains()
    hat.settle()
    assert daemon.step().state is PowerState.ON_BATTERY
    for _ in range(60):
        hat.discharge(60.0, rate_pct_per_h=60.0)
        daemon.step()
    states = [(c["old"], c["new"]) for c in audit.named("power.state_changed")]
    assert states == [
        ("unknown", "online"),
        ("online", "on_battery"),
        ("on_battery", "low_battery"),
        ("low_battery", "critical"),
    ]
    assert shutdown.calls == [["/bin/echo", "bye"]]
    (started,) = audit.named("shutdown.local_started")
    assert started["source"] == "hat:geekworm-x1200@i2c-1:0x36"


def test_a_gauge_that_stops_answering_on_battery_fails_safe(tmp_path: Path) -> None:
    hat = EmulatedHat(get_profile("geekworm-x1200"), charge_pct=80.0)
    daemon, audit, shutdown = daemon_on(hat, tmp_path)
    hat.lose_mains()
    hat.settle()
    assert daemon.step().state is PowerState.ON_BATTERY
    hat.bus.detach(0x36)
    for _ in range(16):
        hat.clock.advance(1.0)
        daemon.step()
    assert daemon.memory.state is PowerState.CRITICAL
    assert len(shutdown.calls) == 1
    (lost,) = audit.named("power.source_lost")
    assert "i2cdetect -y 1" in lost["error"]
