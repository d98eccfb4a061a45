"""The daemon's UPS shutdown-return, from the config to upsd's protocol on the NUT emulator: the full
shutdown's UPS step arms a flag (cli.py -> cluster/ups_kill.py), and the system-shutdown hook sends it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cli import ups_shutdown_return
from piclusterd.cluster.power_on_backends import PowerOutcome
from piclusterd.cluster.ups_kill import UpsKillFlag, main
from piclusterd.config.parse import load_config
from piclusterd.config.settings import ups_return_settings
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import NutEmulator

BOOT = "3f1d2c9e8a474b1e9c3a5d6e7f809a1b"


@pytest.fixture
def ups() -> Iterator[NutEmulator]:
    with NutEmulator(clock=FakeClock(), outlets={1: True}) as emulator:
        yield emulator


def test_the_configured_ups_gets_shutdown_return_from_the_hook_not_at_the_ups_step(
    tmp_path: Path, ups: NutEmulator
) -> None:
    secret = tmp_path / "nut.password"
    secret.write_text("secret\n")
    os.chmod(secret, 0o600)
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\nusername = "admin"\n'
        f'password_file = "{secret}"\n[shutdown]\nups_shutdown_return = true\nups_off_delay = "15s"\n'
    )
    config = load_config(path)
    settings = ups_return_settings(config)
    assert settings is not None
    assert isinstance(ups_shutdown_return(settings, "pi1"), UpsKillFlag)
    boot_id = tmp_path / "boot_id"
    boot_id.write_text(BOOT + "\n")
    flag = UpsKillFlag(settings, "pi1", path=tmp_path / "ups-kill", boot_id_path=boot_id)
    ups.drive_mains(online=False)
    armed = flag(config.shutdown.ups_off_delay_s, {"pi2": "notready", "pi3": "acked"})
    assert armed.outcome is PowerOutcome.SENT, armed
    assert ups.received == []  # the leader still has its own shutdown to do: nothing is sent yet
    assert stat.S_IMODE((tmp_path / "ups-kill").stat().st_mode) == 0o600  # it holds upsd's password
    # The very end of the halt: the hook.
    assert main([str(tmp_path / "ups-kill")], boot_id_path=boot_id, sync=lambda: None) == 0
    assert [(r.kind, r.command, r.value) for r in ups.received] == [
        ("SET VAR", "ups.delay.shutdown", "15"),
        ("INSTCMD", "shutdown.return", None),
    ]
