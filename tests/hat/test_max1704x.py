"""MAX1704x driver, register by register, against the emulator and against hand-built wire bytes."""

from __future__ import annotations

import pytest

from piclusterd.core.errors import CapabilityMissing
from piclusterd.drivers.i2c import swap16
from piclusterd.drivers.max1704x import (
    Max1704x,
    Max1704xConfig,
    Max1704xStatus,
    Max1704xVariant,
    Register,
)
from piclusterd.testing.i2c_emulators import EmulatedSMBus, Max1704xEmulator


class WireBus:
    """A bus that answers read_word_data with fixed SMBus words, to pin down byte order independently."""

    def __init__(self, words: dict[int, int]) -> None:
        self.words = words
        self.written: list[tuple[int, int]] = []

    def read_byte(self, i2c_addr: int) -> int:
        return 0

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return self.words[register]

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self.written.append((register, value))

    def close(self) -> None:
        pass


def gauge(
    variant: Max1704xVariant, *, soc_pct: float = 100.0, volts: float | None = None
) -> tuple[Max1704x, Max1704xEmulator, EmulatedSMBus]:
    chip = Max1704xEmulator(variant, soc_pct=soc_pct, volts=volts)
    bus = EmulatedSMBus(1)
    bus.attach(0x36, chip)
    return Max1704x(bus, variant), chip, bus


def test_a_word_is_byte_swapped_from_the_wire() -> None:
    # SOC register holds 0x5A80 (90.5 %): on the wire 0x5A then 0x80; smbus2 returns 0x805A.
    driver = Max1704x(WireBus({Register.SOC: 0x805A}), Max1704xVariant.MAX17048)
    assert driver.read_soc_raw_pct() == pytest.approx(90.5)


def test_the_emulator_puts_the_high_byte_first_on_the_wire() -> None:
    _, _, bus = gauge(Max1704xVariant.MAX17048, soc_pct=90.5)
    assert bus.read_i2c_block_data(0x36, Register.SOC, 2) == [0x5A, 0x80]
    assert bus.read_word_data(0x36, Register.SOC) == 0x805A
    assert swap16(0x805A) == 0x5A80


def test_quick_start_writes_0x4000_msb_first() -> None:
    driver, chip, bus = gauge(Max1704xVariant.MAX17048)
    driver.quick_start()
    assert bus.writes_to(0x36, Register.MODE) == [bytes([0x40, 0x00])]
    assert chip.quick_starts == 1


@pytest.mark.parametrize(
    ("variant", "raw", "volts"),
    [
        # 12-bit value in bits 15-4 at 1.25 mV; the low nibble is reserved and ignored.
        (Max1704xVariant.MAX17040, 0xD20F, 0xD20 * 1.25e-3),
        (Max1704xVariant.MAX17043, 0xC800, 0xC80 * 1.25e-3),
        # 2-cell: 2.5 mV per LSB of the 12-bit value.
        (Max1704xVariant.MAX17041, 0xD200, 0xD20 * 2.5e-3),
        (Max1704xVariant.MAX17044, 0xD200, 0xD20 * 2.5e-3),
        # raw16 x 78.125 uV per cell, raw16 x 156.25 uV for the 2-cell MAX17049.
        (Max1704xVariant.MAX17048, 0xCCCD, 0xCCCD * 78.125e-6),
        (Max1704xVariant.MAX17049, 0xCCCD, 0xCCCD * 156.25e-6),
    ],
)
def test_vcell_scale_per_variant(variant: Max1704xVariant, raw: int, volts: float) -> None:
    driver = Max1704x(WireBus({Register.VCELL: swap16(raw)}), variant)
    assert driver.read_cell_volts() == pytest.approx(volts)


@pytest.mark.parametrize("variant", list(Max1704xVariant))
def test_driver_reads_back_the_emulated_voltage(variant: Max1704xVariant) -> None:
    volts = 3.87 * variant.cells
    driver, _, _ = gauge(variant, volts=volts)
    assert driver.read_cell_volts() == pytest.approx(volts, abs=variant.cells * 1.25e-3)


def test_soc_over_100_is_clamped_and_reported() -> None:
    driver, chip, _ = gauge(Max1704xVariant.MAX17040)
    chip.set_soc(163.5)
    sample = driver.read()
    assert sample.soc_pct == 100.0 and sample.soc_raw_pct == pytest.approx(163.5)
    assert [r.variable for r in sample.rejections] == ["battery.charge"]
    assert "above 100" in sample.rejections[0].reason


def test_soc_at_100_is_not_a_rejection() -> None:
    driver, _, _ = gauge(Max1704xVariant.MAX17048, soc_pct=100.0)
    assert driver.read().rejections == ()


@pytest.mark.parametrize(("rate", "expected"), [(-31.2, -31.2), (10.4, 10.4), (0.0, 0.0)])
def test_crate_is_signed_at_0_208_pct_per_hour(rate: float, expected: float) -> None:
    driver, chip, _ = gauge(Max1704xVariant.MAX17048)
    chip.set_crate(rate)
    assert driver.read_crate_pct_per_h() == pytest.approx(expected, abs=0.104)


def test_crate_beyond_plausible_is_refused() -> None:
    driver, chip, _ = gauge(Max1704xVariant.MAX17048)
    chip.set_crate(-5000.0)
    sample = driver.read()
    assert sample.crate_pct_per_h is None
    assert [r.variable for r in sample.rejections] == ["battery.charge.rate"]


@pytest.mark.parametrize("variant", [Max1704xVariant.MAX17040, Max1704xVariant.MAX17044])
def test_older_chips_have_no_crate_and_say_so(variant: Max1704xVariant) -> None:
    driver, _, _ = gauge(variant)
    with pytest.raises(CapabilityMissing, match="no CRATE"):
        driver.read_crate_pct_per_h()
    assert driver.read().crate_pct_per_h is None


def test_status_flags_after_power_on_and_soc_low_alert() -> None:
    driver, chip, _ = gauge(Max1704xVariant.MAX17048)
    assert driver.read_status() == {Max1704xStatus.RI}
    chip.drive_discharge(rate_pct_per_h=100.0, seconds=3600 * 0.97)  # to 3 %, under the 4 % default alert
    assert Max1704xStatus.HD in driver.read_status()
    assert driver.read_config().alert


def test_config_default_decodes_rcomp_and_alert_threshold() -> None:
    assert Max1704xConfig.from_raw(0x971C) == Max1704xConfig(
        rcomp=0x97, sleep=False, alert=False, alert_threshold_pct=4
    )


def test_brown_out_resets_config_and_sets_ri() -> None:
    driver, chip, bus = gauge(Max1704xVariant.MAX17048)
    bus.write_word_data(0x36, Register.STATUS, 0)  # clear RI
    bus.write_word_data(0x36, Register.CONFIG, swap16(0x971A))
    assert driver.read_status() == frozenset() and driver.read_config().alert_threshold_pct == 6
    chip.brown_out()
    assert driver.read_status() == {Max1704xStatus.RI}
    assert driver.read_config().alert_threshold_pct == 4


def test_version_is_read() -> None:
    driver, _, _ = gauge(Max1704xVariant.MAX17048)
    assert driver.read_version() == 0x0012
