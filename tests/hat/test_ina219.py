"""INA219 driver: calibration, brown-out, OVF, sign and scale, against the emulator."""

from __future__ import annotations

import pytest

from piclusterd.drivers.i2c import swap16
from piclusterd.drivers.ina219 import (
    DEFAULT_CONFIG,
    POWER_ON_CONFIG,
    WAVESHARE_CALIBRATION,
    Ina219,
    Ina219Calibration,
    Register,
)
from piclusterd.testing.i2c_emulators import EmulatedSMBus, Ina219Emulator


def monitor() -> tuple[Ina219, Ina219Emulator, EmulatedSMBus]:
    chip = Ina219Emulator(cells=2)
    bus = EmulatedSMBus(1)
    bus.attach(0x42, chip)
    return Ina219(bus, address=0x42), chip, bus


def test_waveshare_calibration_is_4096_with_2_mw_power_lsb() -> None:
    assert WAVESHARE_CALIBRATION.register_value == 4096
    assert WAVESHARE_CALIBRATION.power_lsb_w == pytest.approx(0.002)


def test_calibration_that_cannot_fit_the_register_is_refused() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        Ina219Calibration(shunt_ohm=0.001, current_lsb_a=0.000001)


def test_config_and_calibration_are_written_msb_first_on_first_read() -> None:
    driver, chip, bus = monitor()
    assert chip.config == POWER_ON_CONFIG and chip.calibration == 0
    driver.read()
    assert bus.writes_to(0x42, Register.CONFIG) == [bytes([0x3E, 0xEF])]
    assert bus.writes_to(0x42, Register.CALIBRATION) == [bytes([0x10, 0x00])]
    assert chip.config == DEFAULT_CONFIG and chip.calibration == 4096


def test_calibration_is_rewritten_before_every_read() -> None:
    driver, _, bus = monitor()
    for _ in range(3):
        driver.read()
    assert len(bus.writes_to(0x42, Register.CALIBRATION)) == 3
    assert len(bus.writes_to(0x42, Register.CONFIG)) == 1  # CONFIG only when it was lost


def test_discharge_reads_negative_current_with_waveshare_wiring() -> None:
    driver, chip, _ = monitor()
    chip.drive_discharge(amps=0.5, seconds=1)
    sample = driver.read()  # first read: found uncalibrated, current from the shunt voltage
    assert sample.recalibrated and sample.current_a == pytest.approx(-0.5, abs=1e-4)
    sample = driver.read()  # from the current and power registers
    assert not sample.recalibrated
    assert sample.current_a == pytest.approx(-0.5, abs=1e-4)
    assert sample.shunt_volts == pytest.approx(-0.05, abs=1e-5)
    assert sample.power_w == pytest.approx(chip.volts * 0.5, abs=0.004)
    assert sample.bus_volts == pytest.approx(chip.volts, abs=0.004)


def test_calibration_lost_to_a_brown_out_is_rewritten_and_the_reading_stays_right() -> None:
    driver, chip, _ = monitor()
    chip.drive_discharge(amps=1.2, seconds=1)
    driver.read()
    chip.brown_out()
    assert chip.calibration == 0
    sample = driver.read()
    assert sample.recalibrated and driver.brown_outs_seen == 2  # the first read found it unset too
    assert chip.calibration == 4096 and chip.config == DEFAULT_CONFIG
    assert sample.current_a == pytest.approx(-1.2, abs=1e-3)
    assert sample.power_w == pytest.approx(chip.volts * 1.2, abs=0.01)


def test_uncalibrated_chip_reads_zero_current_in_its_registers() -> None:
    _, chip, bus = monitor()
    chip.drive_discharge(amps=1.0, seconds=1)
    assert bus.read_word_data(0x42, Register.CURRENT) == 0
    assert bus.read_word_data(0x42, Register.POWER) == 0


def test_bus_voltage_register_layout() -> None:
    _, chip, bus = monitor()
    chip.set_voltage(8.0)
    raw = swap16(bus.read_word_data(0x42, Register.BUS_VOLTAGE))
    assert raw >> 3 == 2000  # 8.0 V / 4 mV
    assert raw & 0b010  # CNVR in continuous mode
    assert not raw & 0b100  # reserved bit 2 reads 0
    assert not raw & 0b001  # no overflow


def test_shunt_overflow_sets_ovf_and_the_sample_says_invalid() -> None:
    driver, chip, _ = monitor()
    chip.set_current(-4.0)  # 400 mV across 0.1 ohm: beyond the +-320 mV range
    assert driver.read().overflow


def test_forced_overflow() -> None:
    driver, chip, _ = monitor()
    chip.forced_overflow = True
    assert driver.read().overflow


def test_address_outside_ina219_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0x40-0x4F"):
        Ina219(EmulatedSMBus(1), address=0x36)
