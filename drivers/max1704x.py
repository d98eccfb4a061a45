"""Maxim MAX17040/41/43/44/48/49 fuel gauges over I2C (address 0x36), register by register.

Registers are 16 bits, MSB first on the wire (see :mod:`piclusterd.drivers.i2c`). Per variant:

========  =====  =============================  ==========================
variant   cells  VCELL                          CRATE, STATUS (0x16, 0x1A)
========  =====  =============================  ==========================
17040/43  1      bits 15-4 x 1.25 mV             no
17041/44  2      bits 15-4 x 2.5 mV              no
17048     1      raw16 x 78.125 uV               yes
17049     2      raw16 x 156.25 uV               yes
========  =====  =============================  ==========================

SOC is ``raw16 / 256`` percent. Some boards report double (Linux's ``quirk_double_soc``), and a MAX17048 may
read a little over 100 % just after a full charge: a value over 100 % is clamped to 100 % **and** reported as
a :class:`~piclusterd.core.reading.Rejection`, so the operator sees it and the caller can choose a safer figure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from piclusterd.core.errors import CapabilityMissing
from piclusterd.core.reading import Rejection
from piclusterd.drivers.i2c import I2cBus, I2cDevice

__all__ = [
    "ADDRESS",
    "CRATE_LIMIT_PCT_PER_H",
    "Max1704x",
    "Max1704xConfig",
    "Max1704xSample",
    "Max1704xStatus",
    "Max1704xVariant",
    "Register",
    "is_model_gauge_3",
    "variant_from_version",
]

ADDRESS = 0x36

CRATE_LIMIT_PCT_PER_H = 400.0
"""|CRATE| above this (a full battery emptied in 15 min) is refused: the register is +-6800 %/h wide, and a
chip that is really a MAX17040 (no CRATE) answers the address with whatever is there."""

_CRATE_PCT_PER_H_PER_LSB = 0.208
_QUICK_START = 0x4000


class Register(enum.IntEnum):
    """Register addresses (the MAX17048/49 map; the 17040-44 have only 0x02-0x0C and 0xFE)."""

    VCELL = 0x02
    SOC = 0x04
    MODE = 0x06
    VERSION = 0x08
    HIBRT = 0x0A
    CONFIG = 0x0C
    VALRT = 0x14
    CRATE = 0x16
    VRESET_ID = 0x18
    STATUS = 0x1A
    CMD = 0xFE


class Max1704xVariant(enum.Enum):
    """Which chip of the family: decides the VCELL scale, the cells measured and the registers present."""

    MAX17040 = "max17040"
    MAX17041 = "max17041"
    MAX17043 = "max17043"
    MAX17044 = "max17044"
    MAX17048 = "max17048"
    MAX17049 = "max17049"

    @property
    def cells(self) -> int:
        """Cells in series that VCELL measures (the 17041/44/49 measure a 2-cell pack)."""
        return 2 if self in _TWO_CELL else 1

    @property
    def has_crate(self) -> bool:
        """Whether the chip has CRATE and STATUS (the MAX17048/49 do; the older ones do not)."""
        return self in _MODEL_GAUGE_3

    def vcell_volts(self, raw16: int) -> float:
        """VCELL register -> volts (per cell, or per pack for the 2-cell variants)."""
        if self in _MODEL_GAUGE_3:
            return raw16 * (156.25e-6 if self is Max1704xVariant.MAX17049 else 78.125e-6)
        # 12-bit value in bits 15-4; bits 3-0 are reserved and ignored.
        return (raw16 >> 4) * (2.5e-3 if self in _TWO_CELL else 1.25e-3)


_TWO_CELL = frozenset({Max1704xVariant.MAX17041, Max1704xVariant.MAX17044, Max1704xVariant.MAX17049})
_MODEL_GAUGE_3 = frozenset({Max1704xVariant.MAX17048, Max1704xVariant.MAX17049})


def is_model_gauge_3(version: int) -> bool:
    """Whether VERSION says MAX17048/49 (default 0x001x in their register summary).

    Adafruit's MAX17048/49 driver accepts a chip only when ``chip_version & 0xFFF0 == 0x0010``; the MAX17040-44
    datasheets give VERSION no fixed value ("a value indicating the production version").
    """
    return version & 0xFFF0 == 0x0010


def variant_from_version(version: int, configured: Max1704xVariant) -> Max1704xVariant:
    """The variant to read the chip as: the chip's VERSION decides the family, the profile the cell count.

    A MAX17040-family chip keeps the configured variant when that is one (17040/41/43/44 read alike); a
    configured MAX17048/49 whose VERSION is not 0x001x is read as a MAX17040/41, with no CRATE or STATUS.
    """
    two_cell = configured.cells == 2
    if is_model_gauge_3(version):
        return Max1704xVariant.MAX17049 if two_cell else Max1704xVariant.MAX17048
    if not configured.has_crate:
        return configured
    return Max1704xVariant.MAX17041 if two_cell else Max1704xVariant.MAX17040


class Max1704xStatus(enum.Enum):
    """STATUS register flags (MAX17048/49, high byte)."""

    RI = 0x0100  # reset indicator: the chip powered up or was reset and is not configured
    VH = 0x0200  # voltage high alert
    VL = 0x0400  # voltage low alert
    VR = 0x0800  # voltage reset alert
    HD = 0x1000  # SOC low (below CONFIG's alert threshold)
    SC = 0x2000  # SOC changed by 1 %


@dataclass(frozen=True, slots=True)
class Max1704xConfig:
    """CONFIG register: RCOMP (high byte), SLEEP (bit 7), ALRT (bit 5), alert threshold (bits 4-0 = 32 - %)."""

    rcomp: int
    sleep: bool
    alert: bool
    alert_threshold_pct: int

    @classmethod
    def from_raw(cls, raw: int) -> Max1704xConfig:
        return cls(
            rcomp=raw >> 8, sleep=bool(raw & 0x80), alert=bool(raw & 0x20), alert_threshold_pct=32 - (raw & 0x1F)
        )


@dataclass(frozen=True, slots=True)
class Max1704xSample:
    """One read of the gauge. ``soc_pct`` is clamped to 0-100; ``soc_raw_pct`` is what the chip said.

    ``cell_volts`` is VCELL as the variant measures it (one cell, or the pack for 2-cell variants);
    ``crate_pct_per_h`` is ``None`` on chips without CRATE or when the value was refused (positive = charging).
    """

    cell_volts: float
    soc_pct: float
    soc_raw_pct: float
    crate_pct_per_h: float | None
    status: frozenset[Max1704xStatus] | None
    rejections: tuple[Rejection, ...] = ()

    @property
    def soc_clamped(self) -> bool:
        return self.soc_raw_pct > 100.0


class Max1704x:
    """A MAX1704x on an injected bus. Every method is one or two register transfers; nothing is cached.

    Transfer failures raise :class:`piclusterd.core.errors.I2cTransferFailed` (``ChipNotFound`` when nothing
    answers at the address).
    """

    def __init__(self, bus: I2cBus, variant: Max1704xVariant, *, address: int = ADDRESS, bus_number: int = 1) -> None:
        self.variant = variant
        self.device = I2cDevice(bus, bus_number, address, f"{variant.name} fuel gauge")

    def read_cell_volts(self) -> float:
        """VCELL in volts (per cell, or per pack for the 2-cell variants)."""
        return self.variant.vcell_volts(self.device.read_u16(Register.VCELL))

    def read_soc_raw_pct(self) -> float:
        """SOC as the chip reports it (may exceed 100 on some boards): high byte %, low byte 1/256 %."""
        return self.device.read_u16(Register.SOC) / 256.0

    def quick_start(self) -> None:
        """Restart the SOC estimate from the present voltage (MODE = 0x4000). Only on a rested battery."""
        self.device.write_u16(Register.MODE, _QUICK_START)

    def read_version(self) -> int:
        return self.device.read_u16(Register.VERSION)

    def identify(self) -> int:
        """Read VERSION and read the chip as the variant it says it is (:func:`variant_from_version`); the
        VERSION read. Nothing is written: a reset would restart the SOC estimate."""
        version = self.read_version()
        self.variant = variant_from_version(version, self.variant)
        self.device.chip = f"{self.variant.name} fuel gauge"
        return version

    def read_config(self) -> Max1704xConfig:
        return Max1704xConfig.from_raw(self.device.read_u16(Register.CONFIG))

    def read_crate_pct_per_h(self) -> float:
        """Charge rate in %/hour, positive = charging (MAX17048/49 only: 0.208 %/h per LSB, signed)."""
        self._require_crate("CRATE")
        return self.device.read_s16(Register.CRATE) * _CRATE_PCT_PER_H_PER_LSB

    def read_status(self) -> frozenset[Max1704xStatus]:
        """The STATUS alert flags that are set (MAX17048/49 only)."""
        self._require_crate("STATUS")
        raw = self.device.read_u16(Register.STATUS)
        return frozenset(flag for flag in Max1704xStatus if raw & flag.value)

    def read(self) -> Max1704xSample:
        """VCELL, SOC and (MAX17048/49) CRATE and STATUS; out-of-range values refused as :class:`Rejection`."""
        rejections: list[Rejection] = []
        volts = self.read_cell_volts()
        raw_soc = self.read_soc_raw_pct()
        soc = raw_soc
        if raw_soc > 100.0:
            soc = 100.0
            rejections.append(
                Rejection(
                    "battery.charge",
                    f"{raw_soc:.2f}",
                    "above 100 %: clamped (just after a full charge this is normal; far above, the board may "
                    "report double SOC)",
                )
            )
        crate: float | None = None
        status: frozenset[Max1704xStatus] | None = None
        if self.variant.has_crate:
            crate = self.read_crate_pct_per_h()
            if abs(crate) > CRATE_LIMIT_PCT_PER_H:
                rejections.append(
                    Rejection("battery.charge.rate", f"{crate:.1f}", f"beyond +-{CRATE_LIMIT_PCT_PER_H:g} %/h")
                )
                crate = None
            status = self.read_status()
        return Max1704xSample(volts, soc, raw_soc, crate, status, tuple(rejections))

    def _require_crate(self, register: str) -> None:
        if not self.variant.has_crate:
            raise CapabilityMissing(f"the {self.variant.name} has no {register} register (only the MAX17048/49 do)")
