"""The daemon's UPS shutdown-return adapter (cli.py), from the config to upsd's protocol, on the NUT emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cli import ups_shutdown_return
from piclusterd.cluster.power_on_backends import PowerOutcome
from piclusterd.config.parse import load_config
from piclusterd.config.settings import ups_return_settings
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import NutEmulator


@pytest.fixture
def ups() -> Iterator[NutEmulator]:
    with NutEmulator(clock=FakeClock(), outlets={1: True}) as emulator:
        yield emulator


def test_the_configured_ups_is_asked_for_shutdown_return_with_the_configured_whole_delay(
    tmp_path: Path, ups: NutEmulator
) -> None:
    secret = tmp_path / "nut.password"
    secret.write_text("secret\n")
    os.chmod(secret, 0o600)
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\nusername = "admin"\n'
        f'password_file = "{secret}"\n[shutdown]\nups_shutdown_return = true\nups_off_delay = "45s"\n'
    )
    config = load_config(path)
    request = ups_shutdown_return(ups_return_settings(config))
    assert request is not None
    ups.drive_mains(online=False)
    result = request(config.shutdown.ups_off_delay_s)  # a float from the config: upsd takes whole seconds
    assert result.outcome is PowerOutcome.SENT, result
    assert [(r.kind, r.command, r.value) for r in ups.received] == [
        ("SET VAR", "ups.delay.shutdown", "45"),
        ("INSTCMD", "shutdown.return", None),
    ]
