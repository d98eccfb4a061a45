"""TI INA219 current/power monitor over I2C (0x40-0x4F), as used by Waveshare's UPS HATs.

Registers are 16 bits, big-endian: CONFIG 0x00, shunt voltage 0x01 (signed, 10 uV/LSB), bus voltage 0x02
(bits 15-3 x 4 mV; bit 1 CNVR = conversion ready; bit 0 OVF = math overflow, see below), power 0x03
(20 x current LSB), current 0x04 (signed, current LSB), calibration 0x05.

**OVF.** TI SBOS448 (Bus Voltage Register, bit 0): "The Math Overflow Flag (OVF) is set when the Power or
Current calculations are out of range. It indicates that current and power data may be meaningless." So an
overflowed sample keeps the bus and shunt voltages (direct ADC results) and has no current and no power
(``None``); the shunt voltage's sign still says which way the current flows.

The chip forgets its calibration on a brown-out (CAL reads 0, so current and power read 0), which is exactly
when a UPS HAT matters. So every :meth:`Ina219.read` reads CAL and CONFIG back, rewrites CONFIG if it was
lost, and **rewrites CAL before reading**. In the read where the loss was found, the current and power
registers still hold figures computed without calibration: current then comes from the shunt voltage
(``V_shunt / R_shunt``) and power from ``V_bus x I``.

**Another program.** CAL and CONFIG read back as something other than ours *and* other than the power-on
values (0x399F, CAL 0) mean another program writes them (typically the HAT vendor's ``INA219.py`` run as a
service). Ours are restored on every read; the first sample that found them (once per driver) carries what was
found in ``foreign_settings``, for the source to report. docs/hardware-profiles.md says to disable the
vendor's script.

The sign of the current is the chip's (positive = from IN+ to IN-); which sign means discharging depends on
the HAT's wiring and is recorded in its profile (:mod:`piclusterd.drivers.hat`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from piclusterd.drivers.i2c import I2cBus, I2cDevice

__all__ = [
    "DEFAULT_CONFIG",
    "POWER_ON_CONFIG",
    "WAVESHARE_CALIBRATION",
    "WAVESHARE_C_CALIBRATION",
    "Ina219",
    "Ina219Calibration",
    "Ina219Sample",
    "Register",
    "is_ina219_address",
]

POWER_ON_CONFIG = 0x399F
"""CONFIG after power-on or brown-out: 32 V range, /8 gain, 12-bit single samples, continuous."""

DEFAULT_CONFIG = 0x3EEF
"""Waveshare's setting: 32 V range (BRNG=1), /8 gain = +-320 mV (PG=11), 12-bit 32-sample averaging for bus
and shunt (BADC=SADC=1101), shunt and bus continuous (MODE=111)."""

_BUS_LSB_V = 0.004
_SHUNT_LSB_V = 10e-6
_CNVR = 0x0002
_OVF = 0x0001


class Register(enum.IntEnum):
    CONFIG = 0x00
    SHUNT_VOLTAGE = 0x01
    BUS_VOLTAGE = 0x02
    POWER = 0x03
    CURRENT = 0x04
    CALIBRATION = 0x05


def is_ina219_address(address: int) -> bool:
    """The INA219's address pins select 0x40-0x4F."""
    return 0x40 <= address <= 0x4F


@dataclass(frozen=True, slots=True)
class Ina219Calibration:
    """Shunt resistor, chosen current LSB and CONFIG; CAL = trunc(0.04096 / (current_lsb x R_shunt)) (SBOS448
    section 8.5.1)."""

    shunt_ohm: float
    current_lsb_a: float
    config: int = DEFAULT_CONFIG

    def __post_init__(self) -> None:
        if self.shunt_ohm <= 0 or self.current_lsb_a <= 0:
            raise ValueError("shunt resistance and current LSB must be positive")
        if not 2 <= self.register_value <= 0xFFFE:
            raise ValueError(f"CAL {self.register_value} does not fit the 16-bit register (bit 0 is unused)")
        if not 0 <= self.config <= 0x7FFF:
            raise ValueError(f"CONFIG 0x{self.config:04x} does not fit the register (bit 15 is RST)")

    @property
    def register_value(self) -> int:
        # The small epsilon keeps 0.04096 / (1e-4 x 0.1) = 4096 from truncating to 4095 in binary floating point.
        return int(0.04096 / (self.current_lsb_a * self.shunt_ohm) + 1e-6) & 0xFFFE

    @property
    def power_lsb_w(self) -> float:
        return 20.0 * self.current_lsb_a


WAVESHARE_CALIBRATION = Ina219Calibration(shunt_ohm=0.1, current_lsb_a=0.0001)
"""Waveshare UPS HAT (B) ``INA219.py`` ``set_calibration_32V_2A``: 0.1 ohm shunt, 0.1 mA current LSB, CAL 4096,
power LSB 2 mW, CONFIG 0x3EEF (32 V, /8 = +-320 mV, 12-bit x32 averaging, continuous)."""

WAVESHARE_C_CAL = 26868
WAVESHARE_C_CALIBRATION = Ina219Calibration(
    shunt_ohm=0.01, current_lsb_a=0.04096 / (WAVESHARE_C_CAL * 0.01), config=0x0EEF
)
"""Waveshare UPS HAT (C) ``INA219.py`` ``set_calibration_16V_5A``: 0.01 ohm shunt, CAL 26868, CONFIG 0x0EEF
(16 V, /2 = +-80 mV, 12-bit x32 averaging, continuous).

The vendor's values, not CAL 40960 at 0.1 mA: if Waveshare's script also runs, it writes the same CAL and
CONFIG, so the two programs cannot make each other's current wrong between a write and a read; and its range
(32767 x 0.1524 mA = 5 A, +-80 mV = 8 A across the shunt) is wider than CAL 40960's 3.27 A. The current LSB
is the one CAL 26868 really gives with 0.01 ohm, 0.04096 / (26868 x 0.01) = 0.152449 mA; the vendor's
rounded 0.1524 mA reads 0.03 % low."""


@dataclass(frozen=True, slots=True)
class Ina219Sample:
    """One read. ``overflow`` (OVF): current and power "may be meaningless" (datasheet), so they are ``None``;
    the bus and shunt voltages stand.

    ``recalibrated`` says CAL (or CONFIG) had been lost, typically to a brown-out, and was rewritten in this read.
    ``foreign_settings`` is (CONFIG, CAL) as another program had written them, in the first read that found
    such values only (a brown-out's power-on values are not foreign).
    """

    bus_volts: float
    shunt_volts: float
    current_a: float | None
    power_w: float | None
    conversion_ready: bool
    overflow: bool
    recalibrated: bool
    foreign_settings: tuple[int, int] | None = None


class Ina219:
    """An INA219 on an injected bus. Transfer failures raise :class:`piclusterd.core.errors.I2cTransferFailed`."""

    def __init__(
        self,
        bus: I2cBus,
        *,
        address: int,
        bus_number: int = 1,
        calibration: Ina219Calibration = WAVESHARE_CALIBRATION,
    ) -> None:
        if not is_ina219_address(address):
            raise ValueError(f"an INA219 answers at 0x40-0x4F, not 0x{address:02x}")
        self.device = I2cDevice(bus, bus_number, address, "INA219 power monitor")
        self.calibration = calibration
        self.config = calibration.config
        self.brown_outs_seen = 0
        self.foreign_settings_seen = 0
        self._foreign_unreported: tuple[int, int] | None = None

    def calibrate(self) -> bool:
        """Rewrite CONFIG if it differs and CAL always; return whether either had been lost."""
        cal = self.calibration.register_value
        found_config = self.device.read_u16(Register.CONFIG)
        found_cal = self.device.read_u16(Register.CALIBRATION)
        lost_config = found_config != self.config
        lost_cal = found_cal != cal
        if lost_config:
            self.device.write_u16(Register.CONFIG, self.config)
        self.device.write_u16(Register.CALIBRATION, cal)
        if not (lost_config or lost_cal):
            return False
        if (found_config, found_cal) == (POWER_ON_CONFIG, 0):
            self.brown_outs_seen += 1
        else:
            self.foreign_settings_seen += 1
            if self.foreign_settings_seen == 1:
                self._foreign_unreported = (found_config, found_cal)
        return True

    def read(self) -> Ina219Sample:
        """Calibrate, then read bus voltage (before power: reading power clears CNVR), shunt, current, power."""
        recalibrated = self.calibrate()
        bus_raw = self.device.read_u16(Register.BUS_VOLTAGE)
        shunt_volts = self.device.read_s16(Register.SHUNT_VOLTAGE) * _SHUNT_LSB_V
        current_raw = self.device.read_s16(Register.CURRENT)
        power_raw = self.device.read_u16(Register.POWER)
        bus_volts = (bus_raw >> 3) * _BUS_LSB_V
        overflow = bool(bus_raw & _OVF)
        current_a: float | None
        power_w: float | None
        if overflow:
            current_a = power_w = None  # "current and power data may be meaningless" (SBOS448, OVF)
        elif recalibrated:
            current_a = shunt_volts / self.calibration.shunt_ohm
            power_w = abs(bus_volts * current_a)
        else:
            current_a = current_raw * self.calibration.current_lsb_a
            power_w = power_raw * self.calibration.power_lsb_w
        return Ina219Sample(
            bus_volts=bus_volts,
            shunt_volts=shunt_volts,
            current_a=current_a,
            power_w=power_w,
            conversion_ready=bool(bus_raw & _CNVR),
            overflow=overflow,
            recalibrated=recalibrated,
            foreign_settings=self._take_foreign_settings(),
        )

    def _take_foreign_settings(self) -> tuple[int, int] | None:
        found, self._foreign_unreported = self._foreign_unreported, None
        return found
