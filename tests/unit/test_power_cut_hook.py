"""Cutting the HAT's power at halt: the flag piclusterd writes, the system-shutdown script, the pulse.

The real check (a VM's poweroff running /usr/lib/systemd/system-shutdown/piclusterd-power-cut) belongs to
tests/system; here the script runs with a fake pulse command, and the pulse with emulated GPIO.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from piclusterd.drivers.gpio_power import Level, PowerCutPin
from piclusterd.drivers.hat import get_profile
from piclusterd.drivers.power_cut import FlagInvalid, main, parse_flag, render_flag
from piclusterd.node.power_cut_flag import PowerCutFlag
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio

SCRIPT = Path(__file__).resolve().parents[2] / "systemd" / "piclusterd-power-cut"
BOOT = "3f1d2c9e-8a47-4b1e-9c3a-5d6e7f809a1b"
X728_CUT = PowerCutPin(26, Level.HIGH, 3.5)


def run_script(tmp_path: Path, verb: str, flag: Path) -> list[str]:
    """Run the hook as systemd-shutdown does (``$1`` = verb); the pulse command records its arguments."""
    record = tmp_path / "pulsed"
    fake = tmp_path / "fake-pulse"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PICLUSTERD_POWER_CUT_FLAG": str(flag), "PICLUSTERD_POWER_CUT_PULSE": str(fake)}
    subprocess.run([str(SCRIPT), verb], env=env, check=True, timeout=10)
    return record.read_text().splitlines() if record.exists() else []


def boot_id(tmp_path: Path, value: str = BOOT) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(value + "\n")
    return path


def test_the_hook_pulses_only_at_poweroff_or_halt_with_the_flag(tmp_path: Path) -> None:
    flag = tmp_path / "power-cut"
    assert run_script(tmp_path, "poweroff", flag) == []  # a manual poweroff: no flag
    flag.write_text(render_flag(X728_CUT, BOOT, "battery critical"))
    assert run_script(tmp_path, "reboot", flag) == []
    assert run_script(tmp_path, "kexec", flag) == []
    assert run_script(tmp_path, "poweroff", flag) == [str(flag)]
    assert run_script(tmp_path, "halt", flag) == [str(flag), str(flag)]


def test_the_hook_ignores_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text(render_flag(X728_CUT, BOOT, "x"))
    flag = tmp_path / "power-cut"
    flag.symlink_to(target)
    assert run_script(tmp_path, "poweroff", flag) == []


def test_the_script_is_executable_and_installed_where_systemd_shutdown_looks() -> None:
    assert os.access(SCRIPT, os.X_OK)
    install = (SCRIPT.parents[1] / "debian" / "piclusterd.install").read_text()
    assert "systemd/piclusterd-power-cut usr/lib/systemd/system-shutdown/" in install


def test_the_pulse_holds_the_x728_pin_high_then_drives_it_low(tmp_path: Path) -> None:
    flag = tmp_path / "power-cut"
    flag.write_text(render_flag(get_profile("geekworm-x728").power_cut or X728_CUT, BOOT, "battery critical"))
    gpio = EmulatedGpio(FakeClock())
    slept: list[float] = []
    assert main([str(flag)], gpio_factory=lambda: gpio, sleep=slept.append, boot_id_path=boot_id(tmp_path)) == 0
    assert gpio.output_history(26) == [0, 1, 0] and slept == [3.5]
    assert not gpio.is_set_up(26)


def test_a_flag_from_an_earlier_boot_does_nothing(tmp_path: Path) -> None:
    flag = tmp_path / "power-cut"
    flag.write_text(render_flag(X728_CUT, "00000000-0000-0000-0000-000000000000", "old"))
    gpio = EmulatedGpio(FakeClock())
    assert main([str(flag)], gpio_factory=lambda: gpio, sleep=lambda _s: None, boot_id_path=boot_id(tmp_path)) == 0
    assert gpio.output_history(26) == []


def test_no_flag_does_nothing(tmp_path: Path) -> None:
    def no_gpio() -> EmulatedGpio:
        raise AssertionError("GPIO opened without a flag")

    assert main([str(tmp_path / "absent")], gpio_factory=no_gpio, boot_id_path=boot_id(tmp_path)) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"boot_id=x\npin=26\nlevel=high\n",  # hold_s missing
        b"boot_id=x\npin=26\nlevel=high\nhold_s=nan\n",
        b"boot_id=x\npin=26\nlevel=high\nhold_s=600\n",
        b"boot_id=x\npin=40\nlevel=high\nhold_s=3\n",
        b"boot_id=x\npin=-1\nlevel=high\nhold_s=3\n",
        b"boot_id=x\npin=26\nlevel=up\nhold_s=3\n",
        b"boot_id=x\npin=26\npin=13\nlevel=high\nhold_s=3\n",
        b"boot_id=x\npin=26\nlevel=high\nhold_s=3\nextra=1\n",
        b"\xff\xfe",
        b"boot_id=x\npin=26\nlevel=high\nhold_s=3\nreason=" + b"a" * 2000,
    ],
)
def test_a_flag_piclusterd_would_not_write_is_refused_and_nothing_pulsed(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(FlagInvalid):
        parse_flag(raw)
    flag = tmp_path / "power-cut"
    flag.write_bytes(raw.replace(b"boot_id=x", f"boot_id={BOOT}".encode()))
    gpio = EmulatedGpio(FakeClock())
    assert main([str(flag)], gpio_factory=lambda: gpio, sleep=lambda _s: None, boot_id_path=boot_id(tmp_path)) == 1
    assert gpio.output_history(26) == [] and gpio.output_history(13) == []


def test_the_daemon_side_writes_the_flag_before_power_off_and_clears_a_stale_one(tmp_path: Path) -> None:
    flag = tmp_path / "power-cut"
    flag.write_text("stale")
    audit = CapturedAudit()
    hook = PowerCutFlag(X728_CUT, audit.logger, path=flag, boot_id_path=boot_id(tmp_path))
    assert not flag.exists()  # cleared at start
    hook.before_local_shutdown("battery critical: 4 % left")
    assert parse_flag(flag.read_bytes()) == (BOOT.replace("-", ""), X728_CUT)
    assert audit.named("shutdown.power_cut_armed")[0]["pin"] == 26


def test_a_flag_that_cannot_be_written_is_said_and_the_power_off_goes_on(tmp_path: Path) -> None:
    audit = CapturedAudit()
    missing = tmp_path / "missing-dir" / "power-cut"
    hook = PowerCutFlag(X728_CUT, audit.logger, path=missing, boot_id_path=boot_id(tmp_path))
    hook.before_local_shutdown("battery critical")  # does not raise
    assert audit.named("shutdown.power_cut_flag_failed")


def test_the_units_boot_id_and_the_kernels_are_the_same_id(tmp_path: Path) -> None:
    # The daemon's sandbox (ProcSubset=pid) hides /proc/sys: the unit passes systemd's %b (no dashes) instead.
    from piclusterd.drivers.power_cut import read_boot_id

    kernel = read_boot_id(boot_id(tmp_path), environ={})
    assert read_boot_id(tmp_path / "absent", environ={"PICLUSTERD_BOOT_ID": BOOT.replace("-", "")}) == kernel
    unit = (SCRIPT.parent / "piclusterd.service").read_text()
    assert "Environment=PICLUSTERD_BOOT_ID=%b" in unit and "ProcSubset=pid" in unit


@pytest.mark.parametrize(("profile", "armed"), [("geekworm-x728", True), ("geekworm-x1200", False)])
def test_the_daemon_arms_the_flag_only_for_a_hat_with_a_power_cut_pin(
    tmp_path: Path, profile: str, armed: bool
) -> None:
    from piclusterd.cli import _power_cut_hooks
    from piclusterd.config.parse import load_config

    path = tmp_path / "piclusterd.toml"
    path.write_text(f'[ups]\ndriver = "hat"\n[hat]\nprofile = "{profile}"\n')
    hooks = _power_cut_hooks(load_config(path), CapturedAudit().logger)
    assert [type(hook).__name__ for hook in hooks] == (["PowerCutFlag"] if armed else [])
