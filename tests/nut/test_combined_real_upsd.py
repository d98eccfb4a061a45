"""A shared UPS on a real upsd and a HAT it feeds (emulated), read as one by the real daemon loop.

The HAT is powered by the UPS, so it never sees the power cut: the UPS's OB must carry the day, and the UPS
going silent while on battery must still end in the fail-safe shutdown, not in a HAT-driven "online".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from piclusterd.config.model import Config
from piclusterd.config.parse import load_config
from piclusterd.core.ports import PowerSource
from piclusterd.core.power_state import PowerState
from piclusterd.drivers.hat import get_profile
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.node.combined_source import CombinedPowerSource
from piclusterd.node.daemon import PowerDaemon
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.testing.emulated_hat import EmulatedHat
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut

STALE_AFTER_S = 15.0


class RecordingShutdown:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return 0


@pytest.fixture
def ups() -> Iterator[NutServer]:
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL"}) as server:
        yield server


def test_ups_on_battery_behind_a_hat_on_mains_goes_on_battery_and_fails_safe_when_upsd_dies(
    ups: NutServer, tmp_path: Path
) -> None:
    hat = EmulatedHat(get_profile("geekworm-x1200"), charge_pct=90.0)
    nut = NutPowerSource(ups.host, ups.port, ups.ups_name, clock=hat.clock, timeout_s=2.0)
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        f'mode = "enforce"\n[node]\nname = "pi1"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        '[shutdown]\ncommand = ["/bin/echo", "bye"]\n'
        f'[ups]\ndriver = ["nut", "hat"]\nstale_after = "{STALE_AFTER_S:g}s"\n'
        '[hat]\nprofile = "geekworm-x1200"\n'
    )
    audit = CapturedAudit("pi1")
    shutdown = RecordingShutdown()

    def factory(config: Config) -> PowerSource:
        return CombinedPowerSource([nut, hat.source], clock=hat.clock, stale_after_s=config.ups.stale_after_s)

    daemon = PowerDaemon(
        load_config(path),
        source_factory=factory,
        clock=hat.clock,
        log=audit.logger,
        notifier=SystemdNotifier({}),
        shutdown=shutdown,
    )
    try:
        assert daemon.step().state is PowerState.ONLINE

        ups.set("ups.status", "OB DISCHRG")
        hat.clock.advance(1.0)
        assert daemon.step().state is PowerState.ON_BATTERY  # the HAT still says OL: the UPS's OB wins

        ups.kill_upsd()
        states = []
        for _ in range(int(STALE_AFTER_S) + 2):
            hat.clock.advance(1.0)
            states.append(daemon.step().state)
        # The UPS was last heard at t=1; held on battery (never masked by the HAT's OL) until t=1+stale_after.
        first_critical = states.index(PowerState.CRITICAL)
        assert set(states[:first_critical]) == {PowerState.ON_BATTERY}
        assert first_critical == int(STALE_AFTER_S) - 1  # the poll at t = 2 + index = 1 + stale_after
        assert set(states[first_critical:]) == {PowerState.CRITICAL}
        assert shutdown.calls == [["/bin/echo", "bye"]]
        held = [e for e in audit.named("power.reading_rejected") if e["variable"] == nut.name]
        assert any("held as on battery" in e["reason"] for e in held)
        assert any("fail-safe" in e["reason"] for e in held)
    finally:
        nut.close()
        hat.source.close()
