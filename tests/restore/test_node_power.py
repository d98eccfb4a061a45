"""NodePower backends: what each does, and that each refuses loudly what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.cluster.power_on_backends import (
    CheckIn,
    GpioRelayPower,
    ManualPower,
    NodePower,
    PowerOutcome,
    RelayLine,
    RtcWakeAlarm,
    RtcWakePower,
    WakeOnLan,
    check_in,
)
from piclusterd.core.errors import (
    CapabilityMissing,
    ConfigError,
    PinUnavailable,
    PowerControlFailed,
    PowerControlUnsupported,
)
from piclusterd.core.power_state import PowerState
from piclusterd.core.wake_on_lan import magic_packet, parse_mac
from piclusterd.drivers.gpio_power import Level
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio, OutputChange

# --- Wake-on-LAN (the packet itself; delivery is in test_wol_netns.py) ---


@pytest.mark.parametrize("text", ["dc:a6:32:01:02:03", "DC-A6-32-01-02-03", "dca632010203", " dc:a6:32:01:02:03 "])
def test_mac_spellings(text: str) -> None:
    assert parse_mac(text) == bytes.fromhex("dca632010203")


@pytest.mark.parametrize(
    "text", ["", "dc:a6:32:01:02", "dc:a6-32:01:02:03", "zz:a6:32:01:02:03", "dc:a6:32:01:02:03:04"]
)
def test_mac_garbage_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac(text)


def test_magic_packet_is_six_ff_then_sixteen_macs() -> None:
    mac = bytes.fromhex("001122334455")
    packet = magic_packet(mac)
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert [packet[6 + 6 * i : 12 + 6 * i] for i in range(16)] == [mac] * 16


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"macs": {"nas": "not-a-mac"}}, "wol.macs.nas"),
        ({"macs": {}, "port": 0}, "wol.port"),
        ({"macs": {}, "broadcast": "everyone"}, "wol.broadcast"),
    ],
)
def test_wol_configuration_is_validated_once(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        WakeOnLan(**kwargs)  # type: ignore[arg-type]


def test_wol_for_a_node_without_a_mac_is_unsupported_not_silent() -> None:
    with pytest.raises(PowerControlUnsupported, match="no MAC address configured"):
        WakeOnLan({}).power_on("pi1")


# --- every backend: what it cannot do raises, never does nothing ---


def _relay() -> GpioRelayPower:
    return GpioRelayPower(EmulatedGpio(), {"pi4": RelayLine(17)}, sleep=lambda _: None)


BACKENDS: list[tuple[str, NodePower]] = [
    ("wol", WakeOnLan({"pi4": "dc:a6:32:01:02:03"})),
    ("rtc-wake", RtcWakePower(600)),
    ("gpio-relay", _relay()),
    ("manual", ManualPower()),
]


@pytest.mark.parametrize(("name", "backend"), BACKENDS, ids=[name for name, _ in BACKENDS])
def test_no_backend_here_can_power_off(name: str, backend: NodePower) -> None:
    with pytest.raises(PowerControlUnsupported) as caught:
        backend.power_off("pi4")
    assert isinstance(caught.value, CapabilityMissing) and isinstance(caught.value, NotImplementedError)
    assert str(caught.value).startswith(f"{name} cannot power off pi4: ")
    assert backend.name == name


@pytest.mark.parametrize(("name", "backend"), BACKENDS, ids=[name for name, _ in BACKENDS])
def test_no_backend_here_can_tell_whether_a_node_is_on(name: str, backend: NodePower) -> None:
    assert backend.is_powered("pi4") is None


# --- manual ---


def test_manual_power_on_asks_for_someone_at_the_button() -> None:
    result = ManualPower({"pi4": "rack 2, shelf 3"}).power_on("pi4")
    assert result.outcome is PowerOutcome.WAITING_FOR_OPERATOR
    assert result.detail.startswith("waiting for someone to press the power button on pi4 (rack 2, shelf 3)")


# --- rtc-wake ---


def test_rtc_power_on_says_when_the_node_wakes_by_itself() -> None:
    result = RtcWakePower(600).power_on("n5")
    assert result.outcome is PowerOutcome.WAKES_ITSELF and "within 600 s" in result.detail


class SysfsWakealarm(RtcWakeAlarm):
    """The real class on a plain file, refusing a new alarm while one is armed, as the kernel does (EBUSY)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[str] = []

    def _write(self, text: str) -> None:
        armed = self.path.read_text().strip() not in ("", "0")
        if armed and text != "0":
            raise PowerControlFailed("EBUSY: an alarm is already armed")
        self.writes.append(text)
        super()._write(text)


@pytest.mark.parametrize(("arm", "expected"), [("in", ["0", "+600"]), ("at", ["0", "1795000600"])])
def test_rtc_alarm_is_cleared_before_it_is_armed(tmp_path: Path, arm: str, expected: list[str]) -> None:
    """The kernel refuses a new alarm while one is set (EBUSY): 0 first, then the time."""
    wakealarm = tmp_path / "wakealarm"
    wakealarm.write_text("1795000000\n")  # an alarm from the last halt is still armed
    alarm = SysfsWakealarm(wakealarm)
    if arm == "in":
        alarm.arm_in(600)
    else:
        alarm.arm_at(1_795_000_600)
    assert alarm.writes == expected
    assert wakealarm.read_text() == expected[-1]


def test_rtc_alarm_reads_back_the_armed_time(tmp_path: Path) -> None:
    sysfs = tmp_path / "rtc0"
    sysfs.mkdir()
    wakealarm = sysfs / "wakealarm"
    wakealarm.write_text("")
    alarm = RtcWakeAlarm(wakealarm)
    assert alarm.armed_at() is None
    wakealarm.write_text("1795000600\n")  # what the kernel shows once "+600" was written
    assert alarm.armed_at() == 1_795_000_600
    alarm.clear()
    assert wakealarm.read_text() == "0" and alarm.armed_at() is None


def test_rtc_alarm_without_an_rtc_is_a_missing_capability(tmp_path: Path) -> None:
    with pytest.raises(PowerControlUnsupported, match="a Pi 4 has no RTC"):
        RtcWakeAlarm(tmp_path / "rtc0" / "wakealarm").arm_in(600)


def test_rtc_alarm_that_cannot_be_written_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(PowerControlFailed, match="writing"):
        RtcWakeAlarm(tmp_path).arm_in(600)  # a directory: EISDIR


@pytest.mark.parametrize("seconds", [0, -5])
def test_rtc_alarm_in_the_past_is_refused(tmp_path: Path, seconds: int) -> None:
    with pytest.raises(ValueError, match="future"):
        RtcWakeAlarm(tmp_path / "wakealarm").arm_in(seconds)


@pytest.mark.parametrize(
    ("power", "still_shed", "action"),
    [
        (PowerState.ONLINE, True, CheckIn.REJOIN),
        (PowerState.ONLINE, None, CheckIn.REJOIN),
        (PowerState.ON_BATTERY, False, CheckIn.REJOIN),
        (PowerState.ON_BATTERY, True, CheckIn.HALT_AND_REARM),
        (PowerState.LOW_BATTERY, True, CheckIn.HALT_AND_REARM),
        (PowerState.ON_BATTERY, None, CheckIn.HALT_AND_REARM),
        (PowerState.UNKNOWN, True, CheckIn.HALT_AND_REARM),
        (PowerState.UNKNOWN, False, CheckIn.REJOIN),
    ],
)
def test_check_in_after_waking(power: PowerState, still_shed: bool | None, action: CheckIn) -> None:
    decision = check_in(power, still_shed, recheck_s=900)
    assert decision.action is action
    assert decision.rearm_s == (900 if action is CheckIn.HALT_AND_REARM else None)


def test_check_in_says_why_it_halts_again() -> None:
    assert (
        check_in(PowerState.ON_BATTERY, True, 900).reason == "mains is still out, still shed: halt and check in again"
    )


# --- gpio-relay ---


def test_relay_pulse_is_one_high_then_low_for_pulse_ms() -> None:
    clock = FakeClock(start=0.0)
    gpio = EmulatedGpio(clock)
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17, pulse_ms=300)}, sleep=clock.advance)
    assert gpio.outputs == [OutputChange(17, 0, 0.0)]  # set up inactive: starting switches nothing
    result = relay.power_on("pi4")
    assert gpio.outputs[1:] == [OutputChange(17, 1, 0.0), OutputChange(17, 0, 0.3)]
    assert result.outcome is PowerOutcome.DONE and result.detail == "GPIO17 held high for 300 ms"


def test_relay_active_low_pulls_the_line_low_global_en_style() -> None:
    """Pi 4 GLOBAL_EN / GPIO3 wake: the line is held high and pulled low for the pulse."""
    gpio = EmulatedGpio()
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(22, active_level=Level.LOW, pulse_ms=200)}, sleep=lambda _: None)
    relay.power_on("pi4")
    assert gpio.output_history(22) == [1, 0, 1]


def test_relay_drives_only_the_node_asked_for() -> None:
    gpio = EmulatedGpio()
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17), "pi5": RelayLine(27)}, sleep=lambda _: None)
    relay.power_on("pi5")
    assert gpio.output_history(17) == [0]
    assert gpio.output_history(27) == [0, 1, 0]


def test_relay_line_is_released_even_if_the_wait_is_interrupted() -> None:
    gpio = EmulatedGpio()

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=interrupted)
    with pytest.raises(KeyboardInterrupt):
        relay.power_on("pi4")
    assert gpio.level(17) == 0


def test_relay_pin_held_by_another_program_is_named() -> None:
    gpio = EmulatedGpio()
    gpio.claim(17, "gpiomon")
    with pytest.raises(PinUnavailable, match="GPIO17 as pi4's power relay: GPIO busy"):
        GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _: None)


def test_relay_for_a_node_without_a_line_is_unsupported() -> None:
    with pytest.raises(PowerControlUnsupported, match="no relay line configured"):
        _relay().power_on("pi9")


@pytest.mark.parametrize(("pin", "pulse_ms", "key"), [(28, 500, "gpio_relay.pin"), (17, 0, "gpio_relay.pulse")])
def test_relay_line_is_validated(pin: int, pulse_ms: int, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        RelayLine(pin, pulse_ms=pulse_ms)
