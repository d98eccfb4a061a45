"""The I2C boundary: the part of smbus2's ``SMBus`` the chip drivers use, opened only through a factory.

Chip drivers take an :class:`I2cBus` (smbus2's ``SMBus``, or :class:`piclusterd.testing.i2c_emulators.EmulatedSMBus`)
and talk through :class:`I2cDevice`, which reads 16-bit registers **MSB first** as they travel on the wire
and turns the kernel's errors into :mod:`piclusterd.core.errors` leaves that name the fix.

SMBus "word" transfers send the low byte first; the MAX1704x and INA219 send the high byte first, so every
word is byte-swapped here (Linux does the same with ``i2c_smbus_read_word_swapped``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Protocol

from piclusterd.core.errors import BusPermissionDenied, BusUnavailable, ChipNotFound, I2cTransferFailed

__all__ = [
    "FIRST_ADDRESS",
    "LAST_ADDRESS",
    "BusOpener",
    "I2cBus",
    "I2cDevice",
    "is_valid_address",
    "open_i2c_bus",
    "swap16",
]

FIRST_ADDRESS, LAST_ADDRESS = 0x03, 0x77  # 7-bit addresses outside the reserved ranges (what i2cdetect scans)

# errno values the Linux I2C core and the Pi's i2c-bcm2835 / i2c-designware drivers return.
_NACK = frozenset({errno.EREMOTEIO, errno.ENXIO})  # 121 on the Pi; 6 on some adapters


class I2cBus(Protocol):
    """What the drivers use of ``smbus2.SMBus`` (same names, same argument order)."""

    def read_byte(self, i2c_addr: int) -> int: ...

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def close(self) -> None: ...


BusOpener = Callable[[int], I2cBus]
"""Opens ``/dev/i2c-N`` for a bus number N; ``smbus2.SMBus`` is one."""


def is_valid_address(address: int) -> bool:
    """7-bit addresses a chip can have (0x03-0x77; the rest are reserved by the I2C specification)."""
    return FIRST_ADDRESS <= address <= LAST_ADDRESS


def swap16(value: int) -> int:
    """Swap the two bytes of a 16-bit word (SMBus little-endian <-> register big-endian)."""
    return ((value & 0xFF) << 8) | ((value >> 8) & 0xFF)


def open_i2c_bus(number: int, opener: BusOpener | None = None) -> I2cBus:
    """Open ``/dev/i2c-<number>`` (with ``smbus2.SMBus`` unless ``opener`` is given).

    Raises :class:`BusUnavailable` when the device file does not exist and :class:`BusPermissionDenied`
    when it cannot be opened, each naming the fix.
    """
    path = f"/dev/i2c-{number}"
    if opener is None:
        from smbus2 import SMBus

        opener = SMBus
    try:
        return opener(number)
    except FileNotFoundError:
        raise BusUnavailable(
            f"{path} does not exist: I2C is not enabled. Add dtparam=i2c_arm=on to /boot/firmware/config.txt "
            f"(or run: raspi-config nonint do_i2c 0) and reboot; check the bus number with: ls /dev/i2c-*"
        ) from None
    except PermissionError:
        raise BusPermissionDenied(
            f"cannot open {path}: permission denied. Run piclusterd as root, or add its user to the i2c group "
            f"(usermod -aG i2c USER) and log in again"
        ) from None
    except OSError as error:
        raise BusUnavailable(
            f"cannot open {path}: {error.strerror or error}; check it with: i2cdetect -y {number}"
        ) from None


class I2cDevice:
    """One chip on one bus: 16-bit register access MSB-first, errors mapped to :mod:`piclusterd.core.errors`.

    ``chip`` names what is expected at the address ("MAX17048 fuel gauge"), for the error messages.
    """

    def __init__(self, bus: I2cBus, bus_number: int, address: int, chip: str) -> None:
        if not is_valid_address(address):
            raise ValueError(f"I2C address 0x{address:02x} is outside 0x{FIRST_ADDRESS:02x}-0x{LAST_ADDRESS:02x}")
        self.bus = bus
        self.bus_number = bus_number
        self.address = address
        self.chip = chip

    @property
    def where(self) -> str:
        """``i2c-1:0x36``: the bus and address, as used in source names."""
        return f"i2c-{self.bus_number}:0x{self.address:02x}"

    def read_u16(self, register: int) -> int:
        """The register's 16 bits as the chip sent them (MSB first)."""
        try:
            return swap16(self.bus.read_word_data(self.address, register))
        except OSError as error:
            raise self.transfer_error(error, f"reading register 0x{register:02x}") from error

    def read_s16(self, register: int) -> int:
        """The register as a two's-complement signed 16-bit value."""
        value = self.read_u16(register)
        return value - 0x10000 if value & 0x8000 else value

    def write_u16(self, register: int, value: int) -> None:
        """Write 16 bits, MSB first on the wire."""
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"0x{value:x} does not fit in 16 bits")
        try:
            self.bus.write_word_data(self.address, register, swap16(value))
        except OSError as error:
            raise self.transfer_error(error, f"writing register 0x{register:02x}") from error

    def transfer_error(self, error: OSError, action: str) -> I2cTransferFailed:
        """The :mod:`piclusterd.core.errors` leaf for a failed transfer, with the fix in its message."""
        bus = f"/dev/i2c-{self.bus_number}"
        check = f"i2cdetect -y {self.bus_number}"
        if error.errno in _NACK:
            return ChipNotFound(
                f"no chip answers at 0x{self.address:02x} on {bus} (expected: {self.chip}) while {action}. "
                f"Run `{check}`: if {self.address:02x} is not listed, the HAT is not seated or powered, or the "
                f"profile's address is wrong"
            )
        if error.errno == errno.EBUSY:
            return I2cTransferFailed(
                f"0x{self.address:02x} on {bus} is claimed by a kernel driver (`{check}` shows UU there): remove "
                f"the dtoverlay that binds the {self.chip} from /boot/firmware/config.txt, or read it via that driver"
            )
        reason = error.strerror or str(error)
        return I2cTransferFailed(
            f"I2C transfer failed at 0x{self.address:02x} on {bus} ({self.chip}) while {action}: {reason} "
            f"(errno {error.errno}). A loose HAT or a bus held low; check with `{check}`"
        )
