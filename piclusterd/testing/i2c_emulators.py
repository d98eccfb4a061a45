"""Register-level I2C chip emulators at the smbus2 API boundary, shipped for piclusterd's and users' tests.

:class:`EmulatedSMBus` has smbus2's ``SMBus`` methods and dispatches each transfer to the chip attached at
the address, **byte for byte as on the wire**: an SMBus word carries its low byte first, so a MAX1704x or
INA219 register (MSB first) comes back from ``read_word_data`` byte-swapped, exactly as on a Pi. An address
with no chip raises ``OSError(121, 'Remote I/O error')`` like the kernel's NACK; an address claimed by a
kernel driver raises ``EBUSY``.

The chips keep reserved bits as the datasheets say, lose their configuration on :meth:`brown_out`, and each
has a battery model to drive (``drive_discharge``, ``set_soc``, ``set_voltage``). Every transfer is recorded
in :attr:`EmulatedSMBus.transfers`.

Choices where the datasheets leave it open: a MAX17040-44 answers reads of registers it does not have with
0xFF bytes; an INA219 read longer than two bytes repeats the register; conversions are instantaneous.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from piclusterd.drivers.charge_curve import Chemistry, charge_from_voltage, voltage_from_charge
from piclusterd.drivers.max1704x import Max1704xVariant

__all__ = [
    "EmulatedBusOpener",
    "EmulatedChip",
    "EmulatedSMBus",
    "Ina219Emulator",
    "Max1704xEmulator",
    "Transfer",
    "nack",
]


def nack() -> OSError:
    """What the Linux I2C core raises when no chip acknowledges the address."""
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


class EmulatedChip(Protocol):
    """A chip at one address, seen as bytes on the wire. ``register=None`` reads from the current pointer."""

    def read_bytes(self, register: int | None, count: int) -> bytes: ...

    def write_bytes(self, register: int, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Transfer:
    """One recorded transfer: ``op`` is the smbus2 method name; ``data`` the bytes on the wire."""

    op: str
    address: int
    register: int | None
    data: bytes


class EmulatedSMBus:
    """Stands in for ``smbus2.SMBus(bus_number)``. Attach chips with :meth:`attach`."""

    def __init__(self, bus_number: int = 1) -> None:
        self.bus_number = bus_number
        self._chips: dict[int, EmulatedChip] = {}
        self._claimed: set[int] = set()
        self._failures: list[int] = []
        self.transfers: list[Transfer] = []
        self.closed = False
        self.opens = 1

    # --- test controls ---

    def attach(self, address: int, chip: EmulatedChip) -> None:
        self._chips[address] = chip

    def detach(self, address: int) -> None:
        """The chip stops answering (HAT unplugged, chip browned out for good)."""
        self._chips.pop(address, None)

    def claim(self, address: int) -> None:
        """A kernel driver owns the address (``i2cdetect`` shows UU): transfers fail with EBUSY."""
        self._claimed.add(address)

    def fail_next(self, error_number: int, count: int = 1) -> None:
        """The next ``count`` transfers fail with ``OSError(error_number)`` (e.g. ``errno.ETIMEDOUT``)."""
        self._failures.extend([error_number] * count)

    def writes_to(self, address: int, register: int) -> list[bytes]:
        """The bytes of every write to one register, in order."""
        return [t.data for t in self.transfers if t.address == address and t.register == register and "write" in t.op]

    # --- smbus2 API ---

    def _chip(self, address: int) -> EmulatedChip:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self._failures:
            number = self._failures.pop(0)
            raise OSError(number, os.strerror(number))
        if address in self._claimed:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        chip = self._chips.get(address)
        if chip is None:
            raise nack()
        return chip

    def _read(self, op: str, address: int, register: int | None, count: int) -> bytes:
        data = self._chip(address).read_bytes(register, count)
        self.transfers.append(Transfer(op, address, register, data))
        return data

    def _write(self, op: str, address: int, register: int | None, data: bytes) -> None:
        chip = self._chip(address)
        if register is not None:
            chip.write_bytes(register, data)
        self.transfers.append(Transfer(op, address, register, data))

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._write("write_quick", i2c_addr, None, b"")

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._read("read_byte", i2c_addr, None, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        """Sets the chip's register pointer (a write of the command byte alone)."""
        self._chip(i2c_addr).read_bytes(value, 0)
        self.transfers.append(Transfer("write_byte", i2c_addr, value, b""))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._read("read_byte_data", i2c_addr, register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._write("write_byte_data", i2c_addr, register, bytes([value & 0xFF]))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """SMBus word: the first byte on the wire is the low byte of the result."""
        first, second = self._read("read_word_data", i2c_addr, register, 2)
        return first | (second << 8)

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """SMBus word: the low byte of ``value`` goes first on the wire."""
        self._write("write_word_data", i2c_addr, register, bytes([value & 0xFF, (value >> 8) & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        return list(self._read("read_i2c_block_data", i2c_addr, register, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self._write("write_i2c_block_data", i2c_addr, register, bytes(data))

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedSMBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EmulatedBusOpener:
    """Stands in for ``smbus2.SMBus`` as a factory: ``opener(1)`` opens (or re-opens) bus 1.

    A bus number that was not added raises ``FileNotFoundError`` for ``/dev/i2c-N`` (I2C not enabled);
    :meth:`deny` makes opening raise ``PermissionError`` (user not in the ``i2c`` group).
    """

    def __init__(self, *buses: EmulatedSMBus) -> None:
        self.buses = {bus.bus_number: bus for bus in buses}
        self._denied: set[int] = set()

    def deny(self, bus_number: int) -> None:
        self._denied.add(bus_number)

    def __call__(self, bus_number: int) -> EmulatedSMBus:
        path = f"/dev/i2c-{bus_number}"
        bus = self.buses.get(bus_number)
        if bus is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if bus_number in self._denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        bus.closed = False
        bus.opens += 1
        return bus


# --- MAX1704x -----------------------------------------------------------------------------------------------

_VCELL, _SOC, _MODE, _VERSION, _HIBRT, _CONFIG = 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C
_VALRT, _CRATE, _VRESET, _STATUS, _CMD = 0x14, 0x16, 0x18, 0x1A, 0xFE
_STATUS_RI, _STATUS_HD = 0x0100, 0x1000
_CONFIG_ALRT = 0x0020


class Max1704xEmulator:
    """A MAX1704x with a battery: SOC, the voltage VCELL measures, and (MAX17048/49) the charge rate.

    ``drive_discharge`` moves SOC and, along the Li-ion curve, the voltage; ``set_soc`` accepts values over
    100 % (boards that report double SOC); ``brown_out`` resets the registers as a power-on reset does
    (CONFIG back to 0x971C, STATUS.RI set) and re-estimates SOC from the voltage.
    """

    def __init__(
        self,
        variant: Max1704xVariant = Max1704xVariant.MAX17048,
        *,
        soc_pct: float = 100.0,
        volts: float | None = None,
        crate_pct_per_h: float = 0.0,
        version: int | None = None,
    ) -> None:
        self.variant = variant
        self.soc_pct = soc_pct
        self.volts = volts if volts is not None else self._curve_volts(min(soc_pct, 100.0))
        self.crate_pct_per_h = crate_pct_per_h
        self.version = version if version is not None else (0x0012 if variant.has_crate else 0x0003)
        self.quick_starts = 0
        self.resets = 0
        self._pointer = 0
        self._registers: dict[int, int] = {}
        self._power_on()

    def _power_on(self) -> None:
        self._registers = {_CONFIG: 0x971C}
        if self.variant.has_crate:
            self._registers |= {_HIBRT: 0x8030, _VALRT: 0x00FF, _VRESET: 0x9600, _STATUS: _STATUS_RI}

    def _curve_volts(self, soc: float) -> float:
        return voltage_from_charge(Chemistry.LI_ION, self.variant.cells, soc)

    # --- battery model ---

    def set_soc(self, pct: float) -> None:
        """Set SOC as the chip will report it (0 to 255.99; over 100 emulates a double-SOC board)."""
        if not 0 <= pct < 256:
            raise ValueError("SOC register holds 0 to 255.99 %")
        self.soc_pct = pct
        self._update_alerts()

    def set_voltage(self, volts: float) -> None:
        """Set what VCELL measures (one cell, or the pack for 2-cell variants)."""
        self.volts = volts

    def set_crate(self, pct_per_h: float) -> None:
        self.crate_pct_per_h = pct_per_h

    def drive_discharge(self, rate_pct_per_h: float, seconds: float) -> None:
        """Discharge at ``rate_pct_per_h`` for ``seconds``: SOC falls, VCELL follows, CRATE reads -rate."""
        self.soc_pct = max(0.0, min(self.soc_pct, 100.0) - rate_pct_per_h * seconds / 3600.0)
        self.volts = self._curve_volts(self.soc_pct)
        self.crate_pct_per_h = -rate_pct_per_h
        self._update_alerts()

    def drive_charge(self, rate_pct_per_h: float, seconds: float) -> None:
        self.soc_pct = min(100.0, self.soc_pct + rate_pct_per_h * seconds / 3600.0)
        self.volts = self._curve_volts(self.soc_pct)
        self.crate_pct_per_h = rate_pct_per_h
        self._update_alerts()

    def brown_out(self) -> None:
        """Supply dipped below the chip's reset level: registers to defaults, SOC re-estimated from voltage."""
        self.resets += 1
        self._power_on()
        self.soc_pct = charge_from_voltage(Chemistry.LI_ION, self.variant.cells, self.volts)
        self.crate_pct_per_h = 0.0

    @property
    def status(self) -> int:
        return self._registers.get(_STATUS, 0)

    @property
    def config(self) -> int:
        return self._registers[_CONFIG]

    def _update_alerts(self) -> None:
        if not self.variant.has_crate:
            return
        threshold = 32 - (self._registers[_CONFIG] & 0x1F)
        if self.soc_pct < threshold and not self._registers[_STATUS] & _STATUS_HD:
            self._registers[_STATUS] |= _STATUS_HD
            self._registers[_CONFIG] |= _CONFIG_ALRT

    # --- registers ---

    def _register(self, address: int) -> int | None:
        """The 16-bit value of the (even) register at ``address``, or None if the chip has no such register."""
        if address == _VCELL:
            if self.variant.has_crate:
                lsb = 156.25e-6 if self.variant is Max1704xVariant.MAX17049 else 78.125e-6
                return max(0, min(0xFFFF, round(self.volts / lsb)))
            lsb = 2.5e-3 if self.variant.cells == 2 else 1.25e-3
            return max(0, min(0xFFF, round(self.volts / lsb))) << 4  # bits 3-0 reserved, read 0
        if address == _SOC:
            return max(0, min(0xFFFF, round(self.soc_pct * 256)))
        if address == _MODE:
            return 0x0000  # write-only
        if address == _VERSION:
            return self.version
        if address == _CRATE and self.variant.has_crate:
            raw = max(-0x8000, min(0x7FFF, round(self.crate_pct_per_h / 0.208)))
            return raw & 0xFFFF
        if address == _CMD:
            return 0xFFFF
        return self._registers.get(address)

    def read_bytes(self, register: int | None, count: int) -> bytes:
        start = self._pointer if register is None else register
        out = bytearray()
        for offset in range(count):
            address = (start + offset) & 0xFF
            value = self._register(address & 0xFE)
            if value is None:
                out.append(0xFF)
            else:
                out.append((value >> 8) & 0xFF if address % 2 == 0 else value & 0xFF)
        self._pointer = (start + count) & 0xFF
        return bytes(out)

    def write_bytes(self, register: int, data: bytes) -> None:
        if len(data) != 2 or register % 2:
            self._pointer = register
            return  # the chip latches registers only on a full, aligned 16-bit write
        value = (data[0] << 8) | data[1]
        self._pointer = register
        if register == _MODE:
            if value & 0x4000:
                self.quick_starts += 1
                self.soc_pct = charge_from_voltage(Chemistry.LI_ION, self.variant.cells, self.volts)
            return
        if register == _CMD:
            if value == 0x5400:
                self.brown_out()
            return
        if register == _STATUS and self.variant.has_crate:
            self._registers[_STATUS] = value & 0x7F00
            return
        if register in self._registers or register == _CONFIG:
            self._registers[register] = value


# --- INA219 -------------------------------------------------------------------------------------------------

_I_CONFIG, _I_SHUNT, _I_BUS, _I_POWER, _I_CURRENT, _I_CAL = 0, 1, 2, 3, 4, 5
_INA_POWER_ON_CONFIG = 0x399F
_PGA_LIMIT_V = {0: 0.040, 1: 0.080, 2: 0.160, 3: 0.320}


class Ina219Emulator:
    """An INA219 across a shunt in a battery's lead, with the battery as a simple pack model.

    ``discharge_sign`` is how the HAT is wired: ``-1`` (Waveshare) makes a discharge read as negative current.
    ``drive_discharge(amps, seconds)`` takes charge out of the pack (``capacity_ah``) and moves the voltage
    along the chemistry's curve. :meth:`brown_out` forgets CONFIG and CAL (current and power then read 0).
    OVF is set when the shunt voltage exceeds the gain's range or current/power overflow 16 bits.
    """

    def __init__(
        self,
        *,
        shunt_ohm: float = 0.1,
        cells: int = 2,
        chemistry: Chemistry = Chemistry.LI_ION,
        capacity_ah: float = 2.5,
        charge_pct: float = 100.0,
        discharge_sign: int = -1,
    ) -> None:
        if discharge_sign not in (-1, 1):
            raise ValueError("discharge_sign is -1 or 1")
        self.shunt_ohm = shunt_ohm
        self.cells = cells
        self.chemistry = chemistry
        self.capacity_ah = capacity_ah
        self.charge_pct = charge_pct
        self.discharge_sign = discharge_sign
        self.volts = voltage_from_charge(chemistry, cells, charge_pct)
        self.current_a = 0.0  # as the chip measures it: positive from IN+ to IN-
        self.forced_overflow = False
        self.resets = 0
        self._pointer = 0
        self._config = _INA_POWER_ON_CONFIG
        self._calibration = 0

    # --- battery model ---

    def set_soc(self, pct: float) -> None:
        """Set the pack's charge; the voltage follows the curve."""
        self.charge_pct = pct
        self.volts = voltage_from_charge(self.chemistry, self.cells, pct)

    def set_voltage(self, volts: float) -> None:
        """Set the bus voltage the chip measures (the pack's charge is not changed)."""
        self.volts = volts

    def set_current(self, amps: float) -> None:
        """Set the current as the chip measures it (chip's sign, not the battery's)."""
        self.current_a = amps

    def drive_discharge(self, amps: float, seconds: float) -> None:
        """``amps`` out of the pack for ``seconds``: charge falls, voltage follows, the shunt sees it."""
        self.charge_pct = max(0.0, self.charge_pct - amps * seconds / 3600.0 / self.capacity_ah * 100.0)
        self.volts = voltage_from_charge(self.chemistry, self.cells, self.charge_pct)
        self.current_a = self.discharge_sign * amps

    def drive_charge(self, amps: float, seconds: float) -> None:
        self.charge_pct = min(100.0, self.charge_pct + amps * seconds / 3600.0 / self.capacity_ah * 100.0)
        self.volts = voltage_from_charge(self.chemistry, self.cells, self.charge_pct)
        self.current_a = -self.discharge_sign * amps

    def idle(self) -> None:
        """Mains present, battery full: no current through the shunt."""
        self.current_a = 0.0

    def brown_out(self) -> None:
        """Power-on reset: CONFIG back to 0x399F, CAL to 0."""
        self.resets += 1
        self._config = _INA_POWER_ON_CONFIG
        self._calibration = 0

    @property
    def config(self) -> int:
        return self._config

    @property
    def calibration(self) -> int:
        return self._calibration

    # --- measurement ---

    def _shunt_raw(self) -> tuple[int, bool]:
        limit = _PGA_LIMIT_V[(self._config >> 11) & 0b11]
        shunt_v = self.current_a * self.shunt_ohm
        clipped = max(-limit, min(limit, shunt_v))
        return round(clipped / 10e-6), abs(shunt_v) > limit

    def _current_raw(self) -> tuple[int, bool]:
        shunt, _ = self._shunt_raw()
        value = int(shunt * self._calibration / 4096)  # truncates toward zero, as the chip's arithmetic
        return max(-0x8000, min(0x7FFF, value)), not -0x8000 <= value <= 0x7FFF

    def _bus_raw(self) -> int:
        return max(0, min(0x1FFF, round(self.volts / 0.004)))

    def _power_raw(self) -> tuple[int, bool]:
        current, _ = self._current_raw()
        value = abs(current) * self._bus_raw() // 5000
        return min(0xFFFF, value), value > 0xFFFF

    def _overflow(self) -> bool:
        return self.forced_overflow or self._shunt_raw()[1] or self._current_raw()[1] or self._power_raw()[1]

    def _register(self, register: int) -> int:
        if register == _I_CONFIG:
            return self._config
        if register == _I_SHUNT:
            return self._shunt_raw()[0] & 0xFFFF
        if register == _I_BUS:
            converting = self._config & 0b111 not in (0b000, 0b100)  # not powered down / ADC off
            return (self._bus_raw() << 3) | (0b10 if converting else 0) | (1 if self._overflow() else 0)
        if register == _I_POWER:
            return self._power_raw()[0]
        if register == _I_CURRENT:
            return self._current_raw()[0] & 0xFFFF
        if register == _I_CAL:
            return self._calibration
        return 0x0000

    def read_bytes(self, register: int | None, count: int) -> bytes:
        if register is not None:
            self._pointer = register
        value = self._register(self._pointer)
        wire = bytes([(value >> 8) & 0xFF, value & 0xFF])
        return bytes(wire[i % 2] for i in range(count))

    def write_bytes(self, register: int, data: bytes) -> None:
        self._pointer = register
        if len(data) != 2:
            return
        value = (data[0] << 8) | data[1]
        if register == _I_CONFIG:
            if value & 0x8000:  # RST: all registers to power-on values; the bit clears itself
                self.brown_out()
                self.resets -= 1
                return
            self._config = value & 0x3FFF  # bit 14 reserved
        elif register == _I_CAL:
            self._calibration = value & 0xFFFE  # bit 0 is void
