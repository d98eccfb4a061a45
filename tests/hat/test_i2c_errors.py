"""Missing bus, missing chip, busy address: each error names the fix."""

from __future__ import annotations

import errno

import pytest

from piclusterd.core.errors import (
    BusPermissionDenied,
    BusUnavailable,
    ChipNotFound,
    DriverError,
    I2cTransferFailed,
    SourceUnavailable,
)
from piclusterd.drivers.hat import get_profile, open_hat_source
from piclusterd.drivers.i2c import I2cDevice, open_i2c_bus
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio
from piclusterd.testing.i2c_emulators import EmulatedBusOpener, EmulatedSMBus, Ina219Emulator, Max1704xEmulator


def test_missing_bus_names_dtparam_and_is_a_file_not_found_error() -> None:
    with pytest.raises(BusUnavailable) as caught:
        open_i2c_bus(1, EmulatedBusOpener())
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, DriverError)
    assert "/dev/i2c-1" in str(caught.value)
    assert "dtparam=i2c_arm=on" in str(caught.value) and "/boot/firmware/config.txt" in str(caught.value)


def test_bus_without_permission_names_the_i2c_group() -> None:
    opener = EmulatedBusOpener(EmulatedSMBus(1))
    opener.deny(1)
    with pytest.raises(BusPermissionDenied, match="i2c group") as caught:
        open_i2c_bus(1, opener)
    assert isinstance(caught.value, PermissionError)


def test_missing_address_is_chip_not_found_naming_i2cdetect() -> None:
    device = I2cDevice(EmulatedSMBus(1), 1, 0x36, "MAX17048 fuel gauge")
    with pytest.raises(ChipNotFound) as caught:
        device.read_u16(0x02)
    message = str(caught.value)
    assert "i2cdetect -y 1" in message and "0x36" in message and "MAX17048" in message
    assert isinstance(caught.value, SourceUnavailable)  # the daemon counts it as "no fresh reading"
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.EREMOTEIO


def test_address_claimed_by_a_kernel_driver_says_uu_and_dtoverlay() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator())
    bus.claim(0x36)
    with pytest.raises(I2cTransferFailed, match="UU") as caught:
        I2cDevice(bus, 1, 0x36, "gauge").read_u16(0x02)
    assert "dtoverlay" in str(caught.value) and not isinstance(caught.value, ChipNotFound)


def test_other_bus_errors_carry_errno_and_the_check() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator())
    bus.fail_next(errno.ETIMEDOUT)
    with pytest.raises(I2cTransferFailed, match=r"errno 110.*i2cdetect -y 1"):
        I2cDevice(bus, 1, 0x36, "gauge").read_u16(0x02)


def test_open_hat_source_verifies_the_chip_and_releases_the_bus_on_failure() -> None:
    bus = EmulatedSMBus(1)  # nothing attached at 0x36
    gpio = EmulatedGpio()
    with pytest.raises(ChipNotFound, match="i2cdetect"):
        open_hat_source(get_profile("geekworm-x1200"), FakeClock(), gpio=gpio, opener=EmulatedBusOpener(bus))
    assert bus.closed
    assert not gpio.is_set_up(6)


def test_open_hat_source_on_a_missing_bus_names_dtparam() -> None:
    with pytest.raises(BusUnavailable, match="dtparam=i2c_arm=on"):
        open_hat_source(get_profile("waveshare-ups-hat-b"), FakeClock(), opener=EmulatedBusOpener())


def test_open_hat_source_with_the_chip_present() -> None:
    bus = EmulatedSMBus(3)
    bus.attach(0x42, Ina219Emulator())
    source = open_hat_source(
        get_profile("waveshare-ups-hat-b"), FakeClock(), bus_number=3, opener=EmulatedBusOpener(bus)
    )
    assert source.name == "hat:waveshare-ups-hat-b@i2c-3:0x42"
    source.close()
    assert bus.closed
