"""The shipped emulators behave like the real parts at the smbus2 / RPi.GPIO boundary."""

from __future__ import annotations

import errno

import pytest

from piclusterd.drivers.max1704x import Max1704xVariant
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio, OutputChange
from piclusterd.testing.i2c_emulators import EmulatedBusOpener, EmulatedSMBus, Ina219Emulator, Max1704xEmulator

# --- I2C ---


def test_a_missing_address_nacks_like_the_kernel() -> None:
    with pytest.raises(OSError) as caught:
        EmulatedSMBus(1).read_word_data(0x36, 0x02)
    assert caught.value.errno == errno.EREMOTEIO == 121
    assert caught.value.strerror == "Remote I/O error"


def test_a_word_write_sends_the_low_byte_first() -> None:
    bus = EmulatedSMBus(1)
    chip = Max1704xEmulator()
    bus.attach(0x36, chip)
    bus.write_word_data(0x36, 0x0C, 0x1A97)  # what a driver sends for CONFIG 0x971A
    assert chip.config == 0x971A
    assert bus.read_i2c_block_data(0x36, 0x0C, 2) == [0x97, 0x1A]


def test_max1704x_block_read_runs_on_through_the_registers() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator(Max1704xVariant.MAX17048, soc_pct=50.0, volts=3.8))
    data = bus.read_i2c_block_data(0x36, 0x02, 4)
    assert (data[0] << 8 | data[1]) == round(3.8 / 78.125e-6)
    assert data[2:] == [50, 0]
    assert bus.read_byte(0x36) == 0x00  # the pointer now sits at MODE (0x06), which reads 0


def test_max17040_vcell_reserved_bits_read_zero_and_absent_registers_read_ff() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator(Max1704xVariant.MAX17040, volts=3.7013))
    assert bus.read_i2c_block_data(0x36, 0x02, 2)[1] & 0x0F == 0
    assert bus.read_i2c_block_data(0x36, 0x16, 2) == [0xFF, 0xFF]  # no CRATE on a MAX17040


def test_max1704x_por_command_resets_the_chip() -> None:
    bus = EmulatedSMBus(1)
    chip = Max1704xEmulator()
    bus.attach(0x36, chip)
    bus.write_word_data(0x36, 0x1A, 0x0000)  # clear STATUS.RI
    assert chip.status == 0
    bus.write_word_data(0x36, 0xFE, 0x0054)  # 0x5400 MSB first
    assert chip.resets == 1 and chip.status & 0x0100


def test_ina219_calibration_bit_0_is_void_and_rst_resets() -> None:
    bus = EmulatedSMBus(1)
    chip = Ina219Emulator()
    bus.attach(0x40, chip)
    bus.write_word_data(0x40, 0x05, 0x0110)  # 0x1001
    assert chip.calibration == 0x1000
    bus.write_word_data(0x40, 0x00, 0xEF3E)  # 0x3EEF
    assert chip.config == 0x3EEF
    bus.write_word_data(0x40, 0x00, 0x0080)  # 0x8000: RST
    assert chip.config == 0x399F and chip.calibration == 0


def test_ina219_discharge_moves_charge_and_voltage() -> None:
    chip = Ina219Emulator(cells=2, capacity_ah=2.0)
    chip.drive_discharge(amps=1.0, seconds=3600)
    assert chip.charge_pct == pytest.approx(50.0)
    assert chip.volts == pytest.approx(2 * 3.79)
    assert chip.current_a == -1.0


def test_injected_failures_happen_once() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator())
    bus.fail_next(errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        bus.read_word_data(0x36, 0x04)
    bus.read_word_data(0x36, 0x04)


def test_closed_bus_refuses_transfers_and_the_opener_reopens_it() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator())
    bus.close()
    with pytest.raises(OSError) as caught:
        bus.read_word_data(0x36, 0x04)
    assert caught.value.errno == errno.EBADF
    assert EmulatedBusOpener(bus)(1) is bus and not bus.closed


def test_opener_without_the_bus_is_file_not_found() -> None:
    with pytest.raises(FileNotFoundError) as caught:
        EmulatedBusOpener()(1)
    assert caught.value.filename == "/dev/i2c-1"


# --- GPIO ---


def test_gpio_requires_a_mode_first() -> None:
    with pytest.raises(RuntimeError, match="setmode"):
        EmulatedGpio().setup(6, EmulatedGpio.IN)


def test_gpio_refuses_a_second_mode() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    with pytest.raises(ValueError, match="different mode"):
        gpio.setmode(gpio.BOARD)


def test_gpio_input_needs_setup_and_output_needs_an_output() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    with pytest.raises(RuntimeError, match="setup"):
        gpio.input(6)
    gpio.setup(6, gpio.IN)
    with pytest.raises(RuntimeError, match="OUTPUT"):
        gpio.output(6, 1)


def test_gpio_board_numbering_maps_to_bcm() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BOARD)
    gpio.setup(31, gpio.IN, pull_up_down=gpio.PUD_UP)  # physical pin 31 is GPIO6
    assert gpio.input(31) == 1 and gpio.pull(6) == gpio.PUD_UP
    with pytest.raises(ValueError, match="invalid"):
        gpio.setup(1, gpio.IN)  # 3V3 power pin


def test_gpio_edge_callbacks_follow_the_edge_kind() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    gpio.setup(6, gpio.IN, pull_up_down=gpio.PUD_DOWN)
    seen: list[int] = []
    gpio.add_event_detect(6, gpio.RISING, callback=seen.append)
    gpio.drive_high(6)
    gpio.drive_low(6)
    gpio.drive_high(6)
    assert seen == [6, 6]
    assert gpio.event_detected(6) and not gpio.event_detected(6)
    with pytest.raises(RuntimeError, match="Conflicting"):
        gpio.add_event_detect(6, gpio.BOTH)


def test_gpio_release_lets_the_pull_decide_and_fires_the_edge() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    gpio.setup(6, gpio.IN, pull_up_down=gpio.PUD_UP)
    gpio.drive_low(6)
    seen: list[int] = []
    gpio.add_event_detect(6, gpio.BOTH, callback=seen.append)
    gpio.release(6)
    assert gpio.input(6) == 1 and seen == [6]


def test_gpio_records_output_transitions_with_the_clock() -> None:
    clock = FakeClock(start=0.0)
    gpio = EmulatedGpio(clock)
    gpio.setmode(gpio.BCM)
    gpio.setup(26, gpio.OUT, initial=gpio.LOW)
    clock.advance(1.0)
    gpio.output(26, gpio.HIGH)
    assert gpio.outputs == [OutputChange(26, 0, 0.0), OutputChange(26, 1, 1.0)]
    assert gpio.level(26) == 1


def test_gpio_pull_is_not_allowed_on_outputs() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    with pytest.raises(ValueError, match="not valid for outputs"):
        gpio.setup(26, gpio.OUT, pull_up_down=gpio.PUD_UP)


def test_gpio_cleanup_all_resets_the_mode() -> None:
    gpio = EmulatedGpio()
    gpio.setmode(gpio.BCM)
    gpio.setup(6, gpio.IN)
    gpio.cleanup()
    assert gpio.getmode() is None and not gpio.is_set_up(6)
