"""The drivers fed raw register bytes computed from the datasheets and the boards' real parts, not from our emulators.

INA219 registers follow TI SBOS448 (section 8.5.1 and the register descriptions): shunt register = V_shunt / 10 uV,
current register = trunc(shunt x CAL / 4096), bus register = (V_bus / 4 mV) << 3 | CNVR | OVF, power register =
trunc(current x bus / 5000). The shunts and calibrations are the vendors' (Waveshare ``INA219.py``: the (C) has
0.01 ohm, ``set_calibration_16V_5A`` = CAL 26868, CONFIG 0x0EEF; the (B) 0.1 ohm, CAL 4096, CONFIG 0x3EEF). Waveshare
wires the shunt so that a discharge reads negative.

The MAX17040 register map is built from its datasheet: VCELL bits 15-4 x 1.25 mV, SOC high byte %, VERSION with no
fixed value (0x0003 here), RCOMP 0x9700, and "Addresses labeled Reserved in the memory map return undefined data"
(0xFFFF here, what an idle bus returns). It was not captured from a board.

The emulators are then checked against the same vectors, so a shared misunderstanding cannot hide in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from piclusterd.core.reading import MainsState, UpsFlag, UpsReading
from piclusterd.drivers.charge_curve import Chemistry, charge_from_voltage
from piclusterd.drivers.hat import HatPowerSource, get_profile
from piclusterd.drivers.ina219 import Ina219
from piclusterd.drivers.max1704x import Max1704x, Max1704xVariant, variant_from_version
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio
from piclusterd.testing.i2c_emulators import EmulatedSMBus, Ina219Emulator, Max1704xEmulator

# --- a chip that is nothing but its registers ---


@dataclass
class RegisterDump:
    """A chip as a table of 16-bit registers (MSB first on the wire). Writes are kept, so CAL reads back."""

    registers: dict[int, int]
    undefined: int = 0xFFFF
    writes: list[tuple[int, int]] = field(default_factory=list)

    def read_bytes(self, register: int | None, count: int) -> bytes:
        assert register is not None
        value = self.registers.get(register, self.undefined)
        return bytes([(value >> 8) & 0xFF, value & 0xFF])[:count]

    def write_bytes(self, register: int, data: bytes) -> None:
        if len(data) == 2:
            value = (data[0] << 8) | data[1]
            self.writes.append((register, value))
            self.registers[register] = value


# --- INA219 vectors, from the datasheet formulas ---

_PGA_LIMIT_V = {0: 0.040, 1: 0.080, 2: 0.160, 3: 0.320}


def ina219_registers(*, amps: float, volts: float, shunt_ohm: float, cal: int, config: int) -> dict[int, int]:
    """Registers of an INA219 whose shunt carries ``amps`` (chip's sign) with ``volts`` on the bus (SBOS448)."""
    limit = _PGA_LIMIT_V[(config >> 11) & 0b11]
    shunt_v = amps * shunt_ohm
    shunt = round(max(-limit, min(limit, shunt_v)) / 10e-6)
    current = math.trunc(shunt * cal / 4096)
    bus = int(volts / 0.004)
    power = math.trunc(abs(current) * bus / 5000)
    overflow = abs(shunt_v) > limit or not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
    if overflow:
        current, power = (-0x8000 if current < 0 else 0x7FFF), 0xFFFF  # meaningless, as the datasheet says
    return {
        0x00: config,
        0x01: shunt & 0xFFFF,
        0x02: (bus << 3) | 0b10 | int(overflow),
        0x03: power,
        0x04: current & 0xFFFF,
        0x05: cal,
    }


HAT_C = {"shunt_ohm": 0.01, "cal": 26868, "config": 0x0EEF}  # Waveshare UPS HAT (C) INA219.py
HAT_B = {"shunt_ohm": 0.1, "cal": 4096, "config": 0x3EEF}  # Waveshare UPS HAT (B) INA219.py


def source_on(key: str, chip: RegisterDump, *, mains: bool = True) -> tuple[HatPowerSource, EmulatedSMBus]:
    profile = get_profile(key)
    bus = EmulatedSMBus(1)
    bus.attach(profile.address, chip)
    gpio = EmulatedGpio(FakeClock())
    if profile.power_loss is not None:
        pin = profile.power_loss
        high = bool(pin.lost_level.value) != mains
        (gpio.drive_high if high else gpio.drive_low)(pin.pin)
    return HatPowerSource(profile, bus, FakeClock(), gpio=gpio), bus


def poll(source: HatPowerSource) -> tuple[UpsReading, list[str]]:
    parsed = source.poll()
    assert parsed.reading is not None, parsed.rejections
    return parsed.reading, [r.variable for r in parsed.rejections]


@pytest.mark.parametrize("discharge_a", [0.30, 0.45, 0.60, 1.00])
def test_hat_c_discharge_reads_ob_with_the_power_within_2_percent(discharge_a: float) -> None:
    regs = ina219_registers(amps=-discharge_a, volts=3.85, **HAT_C)
    source, _ = source_on("waveshare-ups-hat-c", RegisterDump(regs))
    reading, rejected = poll(source)
    assert rejected == []
    assert reading.mains is MainsState.LOST and {UpsFlag.OB, UpsFlag.DISCHRG} <= reading.flags
    measured_volts = (regs[0x02] >> 3) * 0.004
    assert reading.battery_voltage == pytest.approx(measured_volts)
    assert reading.realpower_w == pytest.approx(measured_volts * discharge_a, rel=0.02)
    # The runtime follows the power: 3.7 Wh x charge / W.
    assert reading.charge_pct is not None and reading.runtime_s is not None
    expected_runtime = 3.7 * reading.charge_pct / 100 / (measured_volts * discharge_a) * 3600
    assert reading.runtime_s == pytest.approx(expected_runtime, rel=0.02)


def test_hat_c_is_calibrated_as_the_vendor_does_so_its_script_and_ours_agree() -> None:
    chip = RegisterDump(ina219_registers(amps=0.0, volts=3.85, shunt_ohm=0.01, cal=0, config=0x399F))
    source, _ = source_on("waveshare-ups-hat-c", chip)
    poll(source)
    assert (0x00, 0x0EEF) in chip.writes and (0x05, 26868) in chip.writes


def test_hat_c_charging_reads_ol_chrg() -> None:
    source, _ = source_on("waveshare-ups-hat-c", RegisterDump(ina219_registers(amps=0.5, volts=4.1, **HAT_C)))
    reading, _ = poll(source)
    assert reading.flags == {UpsFlag.OL, UpsFlag.CHRG} and reading.realpower_w is None


def test_hat_c_brown_out_reads_the_current_from_the_real_shunt() -> None:
    # Power-on values after a brown-out: CONFIG 0x399F, CAL 0, so current and power read 0; the shunt still measures.
    regs = ina219_registers(amps=-0.60, volts=3.85, shunt_ohm=0.01, cal=0, config=0x399F)
    source, _ = source_on("waveshare-ups-hat-c", RegisterDump(regs))
    reading, _ = poll(source)
    assert reading.mains is MainsState.LOST
    assert reading.realpower_w == pytest.approx(3.848 * 0.60, rel=0.02)


@pytest.mark.parametrize(
    ("key", "amps", "volts", "part"),
    [("waveshare-ups-hat-c", -6.0, 3.85, HAT_C), ("waveshare-ups-hat-b", -3.4, 7.4, HAT_B)],
)
def test_overflow_keeps_the_voltage_and_refuses_only_current_and_power(
    key: str, amps: float, volts: float, part: dict[str, int]
) -> None:
    regs = ina219_registers(amps=amps, volts=volts, **part)  # type: ignore[arg-type]
    assert regs[0x02] & 1  # OVF
    source, _ = source_on(key, RegisterDump(regs))
    reading, rejected = poll(source)
    assert rejected == ["ina219.current"]
    measured_volts = (regs[0x02] >> 3) * 0.004
    cells = get_profile(key).cells
    assert reading.battery_voltage == pytest.approx(measured_volts)
    assert reading.charge_pct == pytest.approx(charge_from_voltage(Chemistry.LI_ION, cells, measured_volts))
    assert reading.mains is MainsState.LOST  # the shunt voltage's sign still says discharging
    assert reading.realpower_w is None and reading.runtime_s is None


def test_another_program_writing_cal_is_said_once_and_ours_restored() -> None:
    # Someone else's calibration (CAL 4096 / CONFIG 0x3EEF, the (B) values) on a (C): found on every poll.
    chip = RegisterDump(ina219_registers(amps=-0.6, volts=3.85, shunt_ohm=0.01, cal=4096, config=0x3EEF))
    source, _ = source_on("waveshare-ups-hat-c", chip)
    said = []
    for _ in range(3):
        parsed = source.poll()
        said += [r for r in parsed.rejections if r.variable == "ina219.calibration"]
        chip.registers[0x00], chip.registers[0x05] = 0x3EEF, 4096  # the other program writes again
    assert len(said) == 1 and said[0].value == "CONFIG 0x3eef, CAL 4096"
    assert "another program" in said[0].reason and "26868" in said[0].reason
    assert chip.writes.count((0x05, 26868)) == 3 and chip.writes.count((0x00, 0x0EEF)) == 3


def test_a_brown_out_is_not_reported_as_another_program() -> None:
    chip = RegisterDump(ina219_registers(amps=-0.6, volts=3.85, shunt_ohm=0.01, cal=0, config=0x399F))
    source, _ = source_on("waveshare-ups-hat-c", chip)
    assert source.poll().rejections == ()


@pytest.mark.parametrize("discharge_a", [0.30, 0.45, 0.60, 1.00])
def test_the_ina219_emulator_produces_the_datasheet_registers(discharge_a: float) -> None:
    emulator = Ina219Emulator(shunt_ohm=0.01, cells=1)
    bus = EmulatedSMBus(1)
    bus.attach(0x43, emulator)
    Ina219(bus, address=0x43, calibration=get_profile("waveshare-ups-hat-c").ina219_calibration).calibrate()
    emulator.set_voltage(3.85)
    emulator.set_current(-discharge_a)
    expected = ina219_registers(amps=-discharge_a, volts=3.85, **HAT_C)
    assert {r: int.from_bytes(emulator.read_bytes(r, 2), "big") for r in expected} == expected


def test_the_emulated_hat_c_has_the_real_shunt() -> None:
    assert get_profile("waveshare-ups-hat-c").ina219_calibration.shunt_ohm == 0.01


# --- MAX1704x: the variant is the chip's word ---


def max17040_registers(volts: float, soc_pct: float) -> dict[int, int]:
    return {0x02: round(volts / 1.25e-3) << 4, 0x04: round(soc_pct * 256), 0x06: 0x0000, 0x08: 0x0003, 0x0C: 0x9700}


@pytest.mark.parametrize("key", ["geekworm-x1200", "geekworm-x1201", "geekworm-x1202", "geekworm-x728"])
def test_a_max17040_is_never_asked_for_crate_or_status(key: str) -> None:
    chip = RegisterDump(max17040_registers(3.85, 75.5))
    source, bus = source_on(key, chip)
    reading, rejected = poll(source)
    assert reading.charge_pct == pytest.approx(75.5) and reading.battery_voltage == pytest.approx(3.85, abs=0.002)
    assert rejected == ([] if key == "geekworm-x728" else ["battery.gauge"]) and reading.flags == {UpsFlag.OL}
    assert not [t for t in bus.transfers if t.register in (0x16, 0x1A)]  # CRATE and STATUS are undefined there
    assert chip.writes == []  # never reset, never quick-started


def test_a_max17040_dump_does_not_read_crate_minus_0_208_and_every_status_flag() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, RegisterDump(max17040_registers(3.85, 75.5)))
    gauge = Max1704x(bus, Max1704xVariant.MAX17048)  # what the X120x profile used to assume
    gauge.identify()
    sample = gauge.read()
    assert gauge.variant is Max1704xVariant.MAX17040
    assert sample.crate_pct_per_h is None and sample.status is None


def test_a_max17048_says_so_and_its_crate_gives_the_runtime() -> None:
    regs = max17040_registers(3.85, 75.0) | {
        0x02: round(3.85 / 78.125e-6),
        0x08: 0x0012,
        0x16: round(-15.0 / 0.208) & 0xFFFF,
        0x1A: 0x0000,
    }
    chip = RegisterDump(regs)
    source, _ = source_on("geekworm-x728", chip, mains=False)  # the profile says MAX17040; the chip says MAX17048
    reading, rejected = poll(source)
    assert reading.runtime_s == pytest.approx(75.0 / (72 * 0.208) * 3600, rel=0.001)
    assert rejected == ["battery.gauge"]  # the override is said, once
    assert poll(source)[1] == []


@pytest.mark.parametrize(
    ("version", "configured", "expected"),
    [
        (0x0010, Max1704xVariant.MAX17040, Max1704xVariant.MAX17048),
        (0x0012, Max1704xVariant.MAX17048, Max1704xVariant.MAX17048),
        (0x0011, Max1704xVariant.MAX17041, Max1704xVariant.MAX17049),
        (0x0003, Max1704xVariant.MAX17048, Max1704xVariant.MAX17040),
        (0x0003, Max1704xVariant.MAX17049, Max1704xVariant.MAX17041),
        (0x0003, Max1704xVariant.MAX17043, Max1704xVariant.MAX17043),
        (0xFFFF, Max1704xVariant.MAX17048, Max1704xVariant.MAX17040),
        (0x0020, Max1704xVariant.MAX17048, Max1704xVariant.MAX17040),
    ],
)
def test_variant_from_version_follows_adafruit(
    version: int, configured: Max1704xVariant, expected: Max1704xVariant
) -> None:
    assert variant_from_version(version, configured) is expected


@pytest.mark.parametrize("variant", [Max1704xVariant.MAX17040, Max1704xVariant.MAX17048])
def test_the_max1704x_emulator_agrees_with_the_register_map(variant: Max1704xVariant) -> None:
    emulator = Max1704xEmulator(variant, soc_pct=75.5, volts=3.85)
    version = int.from_bytes(emulator.read_bytes(0x08, 2), "big")
    assert variant_from_version(version, Max1704xVariant.MAX17048) is variant
    if variant is Max1704xVariant.MAX17040:
        dump = max17040_registers(3.85, 75.5)
        for register in (0x02, 0x04, 0x08):
            assert int.from_bytes(emulator.read_bytes(register, 2), "big") == dump[register]
        assert emulator.read_bytes(0x16, 2) == b"\xff\xff" and emulator.read_bytes(0x1A, 2) == b"\xff\xff"
