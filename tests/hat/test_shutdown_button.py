"""Issue 15, item 5: the X728's shutdown button (GPIO5) is honoured as the vendor's xPWR.sh reads it, and a
press is this node's orderly local shutdown, its pods ended first (the daemon's hooks, the self-drain)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from piclusterd.config.parse import parse_config
from piclusterd.drivers.hat import PROFILES
from piclusterd.drivers.shutdown_button import ButtonPress, ButtonState, ShutdownButton, next_press
from piclusterd.node.daemon import PowerDaemon
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps
from piclusterd.testing.gpio_emulator import EmulatedGpio


def pulse(length_s: float, step_s: float = 0.02) -> list[ButtonPress]:
    """Presses seen while the line is high for ``length_s`` then low, sampled every ``step_s``."""
    state, seen, now = ButtonState(), [], 0.0
    while now <= length_s + 1e-9:
        state, press = next_press(state, True, now)
        seen += [press] if press else []
        now += step_s
    state, press = next_press(state, False, now)
    return seen + ([press] if press else [])


@pytest.mark.parametrize(
    ("length_s", "presses"),
    [
        (0.1, []),  # < 200 ms: noise
        (0.3, [ButtonPress.REBOOT]),
        (0.5, [ButtonPress.REBOOT]),
        (0.7, [ButtonPress.SHUTDOWN]),
        (5.0, [ButtonPress.SHUTDOWN]),  # held: one shutdown, not one per sample
    ],
)
def test_pulse_lengths_as_the_vendors_xpwr_sh(length_s: float, presses: list[ButtonPress]) -> None:
    assert pulse(length_s) == presses


def test_the_x728_profiles_have_the_button_on_gpio5_and_boot_on_gpio12() -> None:
    for key in ("geekworm-x728", "geekworm-x728-v1"):
        button = PROFILES[key].shutdown_button
        assert button is not None and (button.pin, button.boot_pin) == (5, 12)


def test_the_button_holds_boot_high_and_reports_a_long_press() -> None:
    clock = FakeClock(start=0.0)
    gpio = EmulatedGpio(clock)
    seen: list[ButtonPress] = []
    button = ShutdownButton(gpio, PROFILES["geekworm-x728"].shutdown_button, clock, seen.append)  # type: ignore[arg-type]
    assert gpio.level(12) == 1  # the board is told the Pi is up, as x728-pwr.service does
    gpio.drive_high(5)
    for _ in range(40):
        button.sample()
        clock.advance(0.02)
    gpio.drive_low(5)
    button.sample()
    assert seen == [ButtonPress.SHUTDOWN]


@dataclass
class Hook:
    runs_before_reboot: bool
    calls: list[str] = field(default_factory=list)

    def before_local_shutdown(self, reason: str) -> None:
        self.calls.append(reason)


@dataclass
class Commands:
    ran: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str]) -> int:
        self.ran.append(list(argv))
        return 0


class _Notifier:
    def ready(self, status: str) -> None: ...
    def status(self, status: str) -> None: ...
    def watchdog(self) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self) -> None: ...


def daemon(commands: Commands, drain: Hook, power_cut: Hook) -> PowerDaemon:
    clock = FakeClock(start=0.0)
    config = parse_config({"node": {"name": "pi1"}, "daemon": {"runtime_dir": "/nonexistent/run"}}, "t.toml")
    made = PowerDaemon(
        config,  # the packaged default, dry-run: a person's press is honoured in every mode
        source_factory=lambda _c: ScriptedUps(clock),
        clock=clock,
        log=CapturedAudit("pi1").logger,
        notifier=_Notifier(),
        shutdown=commands,
        pre_shutdown_hooks=(power_cut,),
    )
    made.add_pre_shutdown_hook(drain)
    return made


def test_a_long_press_is_the_orderly_shutdown_drained_first() -> None:
    commands, drain, power_cut = Commands(), Hook(True), Hook(False)
    node = daemon(commands, drain, power_cut)
    node.step()
    node.press_button("shutdown")
    node.step()
    assert commands.ran == [["systemctl", "poweroff"]]
    assert drain.calls and power_cut.calls  # drained, and the HAT's power cut armed, before the command
    node.step()
    assert commands.ran == [["systemctl", "poweroff"]]  # once


def test_a_short_press_reboots_drained_but_keeps_the_hats_power() -> None:
    commands, drain, power_cut = Commands(), Hook(True), Hook(False)
    node = daemon(commands, drain, power_cut)
    node.press_button("reboot")
    node.step()
    assert commands.ran == [["systemctl", "reboot"]]
    assert drain.calls and not power_cut.calls
