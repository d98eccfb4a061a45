"""``probe``: scan the bus, read the model, suggest a profile with the reason (emulated buses and pins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.drivers.gpio_power import Level, Pull
from piclusterd.drivers.hat import probe
from piclusterd.drivers.max1704x import Max1704xVariant
from piclusterd.testing.gpio_emulator import EmulatedGpio
from piclusterd.testing.i2c_emulators import EmulatedBusOpener, EmulatedSMBus, Ina219Emulator, Max1704xEmulator

PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI4 = "Raspberry Pi 4 Model B Rev 1.4"
ZERO = "Raspberry Pi Zero 2 W Rev 1.0"


class Rtc:
    """Something at 0x68 that answers a read (the X728's DS1307)."""

    def read_bytes(self, register: int | None, count: int) -> bytes:
        return bytes(count)

    def write_bytes(self, register: int, data: bytes) -> None:
        pass


def model_file(tmp_path: Path, model: str) -> str:
    path = tmp_path / "model"
    path.write_bytes(model.encode() + b"\0")  # the device tree string ends in NUL
    return str(path)


def bus_with(*addresses: int) -> EmulatedSMBus:
    bus = EmulatedSMBus(1)
    for address in addresses:
        if address == 0x36:
            bus.attach(address, Max1704xEmulator(Max1704xVariant.MAX17048))
        elif address == 0x68:
            bus.attach(address, Rtc())
        else:
            bus.attach(address, Ina219Emulator())
    return bus


@pytest.mark.parametrize(
    ("model", "addresses", "profile"),
    [
        (PI5, (0x36,), "geekworm-x1200"),
        (PI5, (0x36, 0x68), "geekworm-x728"),
        (PI4, (0x36, 0x68), "geekworm-x728"),
        (PI4, (0x36,), "geekworm-x728"),
        (ZERO, (0x36,), "ups-lite-v1.2"),
        (PI4, (0x42,), "waveshare-ups-hat-b"),
        (ZERO, (0x43,), "waveshare-ups-hat-c"),
    ],
)
def test_suggestion_from_addresses_and_model(
    tmp_path: Path, model: str, addresses: tuple[int, ...], profile: str
) -> None:
    report = probe(EmulatedBusOpener(bus_with(*addresses)), EmulatedGpio(), model_file(tmp_path, model))
    assert report.model == model
    assert report.addresses == addresses
    assert report.profile == profile and report.reason


def test_x1200_reason_mentions_the_pi5_and_alternatives(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(bus_with(0x36)), EmulatedGpio(), model_file(tmp_path, PI5))
    assert "Pi 5" in report.reason
    assert report.alternatives == ("geekworm-x1201", "geekworm-x1202", "geekworm-x728")


def test_the_power_loss_pin_is_read_and_interpreted(tmp_path: Path) -> None:
    gpio = EmulatedGpio()
    gpio.drive_high(6)  # an X1200 on mains holds GPIO6 high
    report = probe(EmulatedBusOpener(bus_with(0x36)), gpio, model_file(tmp_path, PI5))
    by_pull = {(p.pin, p.pull): p for p in report.pins}
    x1200 = by_pull[(6, Pull.UP)]
    assert x1200.level is Level.HIGH and "geekworm-x1200" in x1200.meaning and "present" in x1200.meaning
    x728 = by_pull[(6, Pull.DOWN)]
    assert "geekworm-x728" in x728.meaning and "LOST" in x728.meaning
    assert not gpio.is_set_up(6)  # released afterwards


def test_power_cut_pins_are_never_touched(tmp_path: Path) -> None:
    gpio = EmulatedGpio()
    probe(EmulatedBusOpener(bus_with(0x36, 0x68)), gpio, model_file(tmp_path, PI4))
    assert gpio.outputs == []
    assert not gpio.is_set_up(26) and not gpio.is_set_up(13)


def test_nothing_found_names_i2cdetect(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(EmulatedSMBus(1)), EmulatedGpio(), model_file(tmp_path, PI4))
    assert report.profile is None and "i2cdetect -y 1" in report.reason
    assert "no device answered" in "\n".join(report.lines())


def test_unsupported_chip_is_named(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(bus_with(0x57)), EmulatedGpio(), model_file(tmp_path, PI4))
    assert report.profile is None and "PiSugar 3" in report.reason


def test_missing_bus_names_dtparam(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(), EmulatedGpio(), model_file(tmp_path, PI4))
    assert report.profile is None and "dtparam=i2c_arm=on" in report.reason
    assert report.model == PI4


def test_address_claimed_by_a_kernel_driver_is_listed_as_busy(tmp_path: Path) -> None:
    bus = bus_with(0x36)
    bus.claim(0x36)
    report = probe(EmulatedBusOpener(bus), EmulatedGpio(), model_file(tmp_path, PI5))
    assert report.busy_addresses == (0x36,) and report.addresses == ()
    assert report.profile == "geekworm-x1200"
    assert any("UU" in line for line in report.lines())


def test_missing_model_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(bus_with(0x42)), None, str(tmp_path / "absent"))
    assert report.model is None and report.profile == "waveshare-ups-hat-b"
    assert any("not a Raspberry Pi" in p for p in report.problems)


def test_without_gpio_the_pins_are_skipped_with_the_package_named(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(bus_with(0x36)), None, model_file(tmp_path, PI5))
    assert report.pins == () and any("python3-libgpiod" in p for p in report.problems)


def test_a_busy_pin_is_reported(tmp_path: Path) -> None:
    gpio = EmulatedGpio()
    gpio.claim(6, "piclusterd")
    report = probe(EmulatedBusOpener(bus_with(0x36)), gpio, model_file(tmp_path, PI5))
    assert any("GPIO6" in p and "busy" in p for p in report.problems)
    assert all(p.level is None for p in report.pins if p.pin == 6)


def test_the_scan_closes_the_bus(tmp_path: Path) -> None:
    bus = bus_with(0x42)
    probe(EmulatedBusOpener(bus), None, model_file(tmp_path, PI4))
    assert bus.closed
    assert [t.address for t in bus.transfers if t.op == "read_byte"] == [0x42]  # one quick read, no writes
    assert not any("write" in t.op for t in bus.transfers)


def test_report_lines_read_well(tmp_path: Path) -> None:
    lines = probe(EmulatedBusOpener(bus_with(0x36)), EmulatedGpio(), model_file(tmp_path, PI5)).lines()
    assert lines[0] == f"model: {PI5}"
    assert any(line.startswith("  0x36  MAX1704x") for line in lines)
    assert any(line.startswith("suggested profile: geekworm-x1200") for line in lines)


def test_a_board_the_profile_is_not_made_for_is_a_problem(tmp_path: Path) -> None:
    report = probe(EmulatedBusOpener(bus_with(0x43)), None, model_file(tmp_path, PI4))
    assert report.profile == "waveshare-ups-hat-c"
    assert any("made for Raspberry Pi Zero" in p for p in report.problems)
