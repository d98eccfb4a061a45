"""UPS HATs: profiles as data, the :class:`HatPowerSource` adapter, and ``probe`` for ``piclusterctl probe``.

A **profile** says what a board is made of: the gauge chip and its address, the power-loss pin with the
level that means "mains lost" and its pull, the power-cut pin, the cells (chemistry, count in series,
capacity) and the charge under which it reports LB. Boards disagree on polarity (X728: GPIO6 HIGH = AC lost;
X1200: GPIO6 LOW = supply failed), so the level is always explicit. An unlisted HAT gets a profile from
config keys through :func:`generic_profile`.

How a reading is made (:meth:`HatPowerSource.poll`):

* **OL / OB** from the power-loss pin (debounced, see :mod:`piclusterd.drivers.gpio_power`). Without a pin
  (Waveshare INA219 HATs), from the battery current: the profile's ``discharge_sign`` says which sign means
  discharging (Waveshare: **negative**), and a current of at least ``discharge_threshold_a`` that way is OB.
  An idle, full battery on mains carries almost no current and reads OL.
* **charge_pct**: the gauge's SOC (MAX1704x), else the voltage curve of the profile's chemistry (INA219). A
  MAX1704x SOC over 100 % is clamped and reported as a rejection, and the reading carries the lower of 100 %
  and the voltage-curve estimate, so a board that reports double SOC never overstates the charge.
* **LB** when charge is under the profile's ``low_battery_pct`` (whatever the mains state, as NUT does).
* **runtime_s** while discharging: from CRATE on a MAX17048/49 (charge / rate), from the INA219's power and the
  profile's capacity (remaining Wh / W); ``None`` where neither is available.
* **The MAX1704x variant** is the chip's word, not the profile's: the first poll reads VERSION and, as Adafruit's
  driver does, takes ``VERSION & 0xFFF0 == 0x0010`` for a MAX17048/49 (CRATE and STATUS read); anything else
  is the MAX17040 family, which has neither (those addresses "return undefined data"). The chip is never reset.
* **INA219 overflow** (OVF) refuses current and power only; the bus voltage, hence the charge, stands.
* **realpower_w**: the INA219's power while the battery discharges (the power drawn from the battery). On mains
  it would be the charging power, which says nothing about the load, so it is left out.
* **battery_voltage**: VCELL (MAX1704x, the pack for 2-cell variants) or the INA219's bus voltage.

A chip that does not answer makes :meth:`HatPowerSource.poll` raise (``SourceUnavailable``), never return a
reading built from the pin alone: a battery that cannot be measured must fail safe (the core's stale rule).
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import errno
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from piclusterd.core.errors import (
    BusPermissionDenied,
    BusUnavailable,
    CapabilityMissing,
    GpioUnavailable,
    ProfileInvalid,
    SourceUnavailable,
)
from piclusterd.core.ports import Clock
from piclusterd.core.reading import ParsedReading, Rejection, UpsFlag, UpsReading
from piclusterd.drivers.charge_curve import Chemistry, charge_from_voltage
from piclusterd.drivers.gpio_power import (
    GpioModule,
    Level,
    PowerCutOutput,
    PowerCutPin,
    PowerLossInput,
    PowerLossPin,
    Pull,
)
from piclusterd.drivers.i2c import FIRST_ADDRESS, LAST_ADDRESS, BusOpener, I2cBus, is_valid_address, open_i2c_bus
from piclusterd.drivers.ina219 import (
    WAVESHARE_C_CALIBRATION,
    WAVESHARE_CALIBRATION,
    Ina219,
    Ina219Calibration,
    is_ina219_address,
)
from piclusterd.drivers.max1704x import Max1704x, Max1704xVariant
from piclusterd.drivers.shutdown_button import ShutdownButtonPin

__all__ = [
    "MIN_DISCHARGE_RATE_PCT_PER_H",
    "PROFILES",
    "Chip",
    "CurrentSign",
    "HatPowerSource",
    "HatProfile",
    "PinObservation",
    "ProbeReport",
    "generic_profile",
    "get_profile",
    "open_hat_source",
    "open_power_cut",
    "probe",
]

MIN_DISCHARGE_RATE_PCT_PER_H = 1.0
"""A CRATE slower than this (100 h from full) is noise: no runtime or CHRG is derived from it."""

_MIN_CELL_VOLTS = 2.0  # below this per cell, a "battery voltage" is a missing battery or no conversion yet


class Chip(enum.Enum):
    """The chip a HAT measures its battery with."""

    MAX17040 = "max17040"
    MAX17041 = "max17041"
    MAX17043 = "max17043"
    MAX17044 = "max17044"
    MAX17048 = "max17048"
    MAX17049 = "max17049"
    INA219 = "ina219"

    @property
    def max1704x_variant(self) -> Max1704xVariant | None:
        return None if self is Chip.INA219 else Max1704xVariant(self.value)


class CurrentSign(enum.Enum):
    """Which sign of the INA219's current means the battery is discharging (decided by the HAT's wiring)."""

    NEGATIVE = "negative"  # Waveshare UPS HATs: negative while discharging, positive while charging
    POSITIVE = "positive"


@dataclass(frozen=True, slots=True)
class HatProfile:
    """One board, as data. Validated on construction (:class:`ProfileInvalid`)."""

    key: str
    title: str
    chip: Chip
    address: int
    chemistry: Chemistry
    cells: int
    capacity_wh: float | None
    power_loss: PowerLossPin | None = None
    power_cut: PowerCutPin | None = None
    discharge_sign: CurrentSign | None = None
    discharge_threshold_a: float = 0.05
    calibration: Ina219Calibration | None = None
    low_battery_pct: float = 10.0
    boards: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    source: str = ""
    """The vendor code or document the profile's address, pins, shunt and polarity were checked against."""
    shutdown_button: ShutdownButtonPin | None = None
    """The board's shutdown-button line, read as the vendor's own service reads it (drivers/shutdown_button.py)."""

    def __post_init__(self) -> None:
        where = f"HAT profile {self.key!r}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", self.key):
            raise ProfileInvalid(f"{where}: the key must be lower-case letters, digits, dots and dashes")
        if not is_valid_address(self.address):
            raise ProfileInvalid(f"{where}: I2C address 0x{self.address:02x} is outside 0x03-0x77")
        variant = self.chip.max1704x_variant
        if variant is None:
            if not is_ina219_address(self.address):
                raise ProfileInvalid(f"{where}: an INA219 answers at 0x40-0x4F, not 0x{self.address:02x}")
        elif self.cells != variant.cells:
            raise ProfileInvalid(
                f"{where}: the {variant.name} measures {variant.cells} cell(s) in series, not {self.cells}"
            )
        if self.cells < 1:
            raise ProfileInvalid(f"{where}: cells must be at least 1")
        if self.capacity_wh is not None and self.capacity_wh <= 0:
            raise ProfileInvalid(f"{where}: capacity_wh must be positive (or None when unknown)")
        if not 0 <= self.low_battery_pct < 100:
            raise ProfileInvalid(f"{where}: low_battery_pct must be from 0 to under 100")
        if self.discharge_threshold_a <= 0:
            # Zero would read an idle battery (no current at all) as discharging, so as on battery.
            raise ProfileInvalid(f"{where}: discharge_threshold_a must be positive")
        if self.power_loss is None and not (self.chip is Chip.INA219 and self.discharge_sign is not None):
            raise ProfileInvalid(
                f"{where}: no way to tell that mains is lost; give it a power-loss pin, or an INA219 with "
                f"discharge_sign"
            )

    @property
    def ina219_calibration(self) -> Ina219Calibration:
        return self.calibration or WAVESHARE_CALIBRATION

    def with_capacity_wh(self, capacity_wh: float | None) -> HatProfile:
        """The same board with other cells fitted."""
        return replace(self, capacity_wh=capacity_wh)

    def with_low_battery_pct(self, low_battery_pct: float) -> HatProfile:
        return replace(self, low_battery_pct=low_battery_pct)

    def with_address(self, address: int) -> HatProfile:
        """The same board with its address jumpers moved."""
        return replace(self, address=address)


# --- the boards ---------------------------------------------------------------------------------------------
# Each checked against the vendor's code or wiki named in ``source``. Capacities assume the cells named in each
# note; with_capacity_wh() for yours.

_X728_SOURCE = (
    "geekworm-com/x728-script@a4bd68b: sample/x728-v2.x-bat.py (I2C_ADDR = 0x36, GPIO_PORT = 26), "
    "sample/x728-v2.x-pld.py (PLD_PIN = 6, 1 = AC lost), xSoft.sh (power-cut pulse SLEEP=2, Python samples 3 s, "
    "legacy softsd 4 s)"
)
#: x728-pwr.service: ``xPWR.sh 0 5 12``: SHUTDOWN line GPIO5 (input), BOOT line GPIO12 (held high while up).
_X728_BUTTON = ShutdownButtonPin(5, boot_pin=12)
_X120X_SOURCE = (
    "suptronics/x120x@1f2950e: bat.py (0x36, VCELL x 1.25 mV / 16, SOC / 256), pld.py (PLD_PIN = 6, 1 = AC OK, "
    "requested with no pull); wiki.geekworm.com/X1200_Hardware (GPIO6 power loss, GPIO16 charge control)"
)
_X120X_PIN = PowerLossPin(6, Level.LOW, Pull.UP)
_X120X_NOTES = (
    "GPIO6 LOW = supply failed, HIGH = OK (pld.py). The board drives the line; Geekworm's pld.py sets no pull. "
    "piclusterd enables the Pi's pull-up as its own choice, so a disconnected line reads OK rather than "
    "shedding; gpio=6=ip,pu in /boot/firmware/config.txt sets the same pull from boot.",
    "GPIO16 high disables charging; piclusterd never drives it.",
    "Gauge: the vendor does not name the chip and reads it as a MAX17040. piclusterd asks the chip (VERSION): "
    "a MAX17048/49 answers 0x001x and its CRATE gives the runtime; otherwise CRATE and STATUS are not read.",
)

PROFILES: Mapping[str, HatProfile] = {
    p.key: p
    for p in (
        HatProfile(
            key="geekworm-x728",
            title="Geekworm X728 v2.1 and later",
            chip=Chip.MAX17040,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=21.6,
            power_loss=PowerLossPin(6, Level.HIGH, Pull.DOWN),
            power_cut=PowerCutPin(26, Level.HIGH, 3.5),
            shutdown_button=_X728_BUTTON,
            boards=("Raspberry Pi 4", "Raspberry Pi 5"),
            notes=(
                "GPIO6 goes HIGH on AC loss (needs the PLD jumper); pulled down, a floating pin reads OK.",
                "Power cut: GPIO26 held high, then driven low again (vendor: 2 s in xSoft.sh, 3 s in the Python "
                "samples, 4 s in the legacy script; 3.5 s used).",
                "Capacity: 2 x 18650 3000 mAh in parallel (2 x 3.0 Ah x 3.6 V).",
            ),
            source=_X728_SOURCE,
        ),
        HatProfile(
            key="geekworm-x728-v1",
            title="Geekworm X728 v1.2 to v2.0",
            chip=Chip.MAX17040,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=21.6,
            power_loss=PowerLossPin(6, Level.HIGH, Pull.DOWN),
            power_cut=PowerCutPin(13, Level.HIGH, 3.5),
            shutdown_button=_X728_BUTTON,
            boards=("Raspberry Pi 4",),
            notes=(
                "As the X728 v2.1, but the power-cut pin is GPIO13 (x728-v1.x-softsd.sh: BUTTON=13; x728-v2.x-bat.py: "
                '"GPIO13 is for X728 v1.2/v1.3/V2.0").',
                "Geekworm's wiki says V2.0 already moved to GPIO26: on a V2.0 board, check which pin cuts power.",
            ),
            source="geekworm-com/x728-script@a4bd68b: x728-v1.x-softsd.sh (BUTTON=13), sample/x728-v2.x-bat.py",
        ),
        HatProfile(
            key="geekworm-x1200",
            title="Geekworm X1200",
            chip=Chip.MAX17048,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=21.6,
            power_loss=_X120X_PIN,
            boards=("Raspberry Pi 5",),
            notes=(*_X120X_NOTES, "Capacity: 2 x 18650 3000 mAh in parallel."),
            source=_X120X_SOURCE,
        ),
        HatProfile(
            key="geekworm-x1201",
            title="Geekworm X1201",
            chip=Chip.MAX17048,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=21.6,
            power_loss=_X120X_PIN,
            boards=("Raspberry Pi 5",),
            notes=(*_X120X_NOTES, "Capacity: 2 x 18650 3000 mAh in parallel (cell count uncertain)."),
            source=_X120X_SOURCE,
        ),
        HatProfile(
            key="geekworm-x1202",
            title="Geekworm X1202",
            chip=Chip.MAX17048,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=43.2,
            power_loss=_X120X_PIN,
            boards=("Raspberry Pi 5",),
            notes=(*_X120X_NOTES, "Capacity: 4 x 18650 3000 mAh in parallel."),
            source=_X120X_SOURCE,
        ),
        HatProfile(
            key="waveshare-ups-hat-b",
            title="Waveshare UPS HAT / UPS HAT (B)",
            chip=Chip.INA219,
            address=0x42,
            chemistry=Chemistry.LI_ION,
            cells=2,
            capacity_wh=18.0,
            discharge_sign=CurrentSign.NEGATIVE,
            discharge_threshold_a=0.1,
            calibration=WAVESHARE_CALIBRATION,
            boards=("Raspberry Pi 3", "Raspberry Pi 4", "Raspberry Pi 5"),
            notes=(
                "No power-loss pin: OB when the battery current is at least 0.1 A the discharging way (negative).",
                "Capacity: 2 x 18650 2500 mAh in series (7.2 V x 2.5 Ah).",
                "Charge from the pack voltage (Li-ion curve), not a fuel gauge.",
                "CAL 4096, CONFIG 0x3EEF: the vendor's own values, so its INA219.py, if still running, writes the "
                "same; disable it all the same.",
            ),
            source=(
                "Waveshare UPS_HAT_B.7z INA219.py (files.waveshare.com/upload/4/4a/UPS_HAT_B.7z): INA219(addr=0x42), "
                "set_calibration_32V_2A, 0.1 ohm shunt, CAL 4096, 0.1 mA LSB"
            ),
        ),
        HatProfile(
            key="waveshare-ups-hat-c",
            title="Waveshare UPS HAT (C)",
            chip=Chip.INA219,
            address=0x43,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=3.7,
            discharge_sign=CurrentSign.NEGATIVE,
            discharge_threshold_a=0.05,
            calibration=WAVESHARE_C_CALIBRATION,
            boards=("Raspberry Pi Zero",),
            notes=(
                "Address 0x43 (the vendor's INA219(addr=0x43)).",
                "Shunt 0.01 ohm: calibrated as the vendor does (CAL 26868, 0.1524 mA, CONFIG 0x0EEF), so its "
                "INA219.py, if still running, writes the same values; disable it all the same.",
                "No power-loss pin: OB when the battery current is at least 0.05 A the discharging way (negative).",
                "Capacity: the bundled 1000 mAh 3.7 V Li-po.",
            ),
            source=(
                "Waveshare UPS_HAT_C.7z INA219.py (files.waveshare.com/upload/4/40/UPS_HAT_C.7z; copy in "
                "kavinaidoo/pmap@ffab205f): INA219(addr=0x43), set_calibration_16V_5A, 0.01 ohm shunt, CAL 26868, "
                "0.1524 mA LSB, CONFIG 0x0EEF"
            ),
        ),
        HatProfile(
            key="ups-lite-v1.2",
            title="UPS-Lite v1.2",
            chip=Chip.MAX17040,
            address=0x36,
            chemistry=Chemistry.LI_ION,
            cells=1,
            capacity_wh=3.7,
            power_loss=PowerLossPin(4, Level.LOW, Pull.UP),
            boards=("Raspberry Pi Zero",),
            notes=(
                "GPIO4 high = adapter present, only after bridging the pads; pulled up, unbridged pads read "
                "as mains present, so OB is never seen without the bridge.",
                "Capacity: the bundled 1000 mAh 3.7 V Li-po (uncertain).",
            ),
            source="hardware.md section 2 (UPS-Lite v1.2 repository); not re-checked against vendor code",
        ),
    )
}


def get_profile(key: str) -> HatProfile:
    """The shipped profile called ``key``; :class:`ProfileInvalid` with a did-you-mean otherwise."""
    try:
        return PROFILES[key]
    except KeyError:
        close = difflib.get_close_matches(key, list(PROFILES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProfileInvalid(
            f'unknown HAT profile {key!r}{hint}; expected one of: {", ".join(PROFILES)}, or "generic"'
        ) from None


_E = TypeVar("_E", bound=enum.Enum)
_LEVEL_WORDS = {"high": Level.HIGH, "low": Level.LOW}


def _choice(name: str, value: str, kind: type[_E]) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(f'"{m.value}"' for m in kind)
        raise ProfileInvalid(f"{name} = {value!r}: expected one of {allowed}") from None


def _level(name: str, value: str) -> Level:
    try:
        return _LEVEL_WORDS[value]
    except KeyError:
        raise ProfileInvalid(f'{name} = {value!r}: expected "high" or "low"') from None


def generic_profile(
    *,
    chip: str,
    address: int,
    cells: int = 1,
    chemistry: str = "li-ion",
    capacity_wh: float | None = None,
    power_loss_pin: int | None = None,
    power_lost_level: str = "high",
    power_loss_pull: str = "off",
    power_cut_pin: int | None = None,
    power_cut_level: str = "high",
    power_cut_hold_s: float = 3.5,
    discharge_sign: str | None = None,
    discharge_threshold_a: float = 0.05,
    shunt_ohm: float = 0.1,
    low_battery_pct: float = 10.0,
) -> HatProfile:
    """A profile for an unlisted HAT, from config keys (strings as written in the TOML file).

    Every choice is explicit: a power-loss pin needs its level ("high" or "low" = mains lost) and its pull
    ("up", "down", "off"); an INA219 without a pin needs ``discharge_sign`` ("negative" or "positive").
    Raises :class:`ProfileInvalid` naming the key and what is expected.
    """
    chip_value = _choice("chip", chip, Chip)
    chem = _choice("chemistry", chemistry, Chemistry)
    try:
        loss = None
        if power_loss_pin is not None:
            pull = _choice("power_loss_pull", power_loss_pull, Pull)
            loss = PowerLossPin(power_loss_pin, _level("power_lost_level", power_lost_level), pull)
        cut = None
        if power_cut_pin is not None:
            cut = PowerCutPin(power_cut_pin, _level("power_cut_level", power_cut_level), power_cut_hold_s)
        sign = None if discharge_sign is None else _choice("discharge_sign", discharge_sign, CurrentSign)
        calibration = None
        if chip_value is Chip.INA219:
            calibration = Ina219Calibration(shunt_ohm=shunt_ohm, current_lsb_a=WAVESHARE_CALIBRATION.current_lsb_a)
    except ProfileInvalid:
        raise
    except ValueError as error:  # a pin off the header, a bad shunt value
        raise ProfileInvalid(f"generic HAT profile: {error}") from None
    return HatProfile(
        key="generic",
        title="Generic HAT (from configuration)",
        chip=chip_value,
        address=address,
        chemistry=chem,
        cells=cells,
        capacity_wh=capacity_wh,
        power_loss=loss,
        power_cut=cut,
        discharge_sign=sign,
        discharge_threshold_a=discharge_threshold_a,
        calibration=calibration,
        low_battery_pct=low_battery_pct,
        source="the [hat] keys of the configuration file",
    )


# --- the power source ---------------------------------------------------------------------------------------


class HatPowerSource:
    """Implements :class:`piclusterd.core.ports.PowerSource` for a UPS HAT (see the module docstring).

    Owns ``bus`` and the power-loss pin: :meth:`close` releases both (idempotent). ``gpio`` is needed only
    when the profile has a power-loss pin.
    """

    def __init__(
        self,
        profile: HatProfile,
        bus: I2cBus,
        clock: Clock,
        *,
        gpio: GpioModule | None = None,
        bus_number: int = 1,
        debounce_s: float = 0.5,
    ) -> None:
        self.profile = profile
        self._bus = bus
        self._clock = clock
        self._closed = False
        self._name = f"hat:{profile.key}@i2c-{bus_number}:0x{profile.address:02x}"
        self._variant_known = False
        variant = profile.chip.max1704x_variant
        self._gauge: Max1704x | None = None
        self._monitor: Ina219 | None = None
        if variant is not None:
            self._gauge = Max1704x(bus, variant, address=profile.address, bus_number=bus_number)
        else:
            self._monitor = Ina219(
                bus, address=profile.address, bus_number=bus_number, calibration=profile.ina219_calibration
            )
        self._pin: PowerLossInput | None = None
        if profile.power_loss is not None:
            if gpio is None:
                raise GpioUnavailable(
                    f"profile {profile.key!r} reads mains loss on GPIO{profile.power_loss.pin}, but no GPIO module "
                    f"was given: apt install python3-libgpiod"
                )
            self._pin = PowerLossInput(gpio, profile.power_loss, clock, debounce_s=debounce_s)

    @property
    def name(self) -> str:
        """``hat:<profile>@i2c-<bus>:0x<address>``, e.g. ``hat:geekworm-x1200@i2c-1:0x36``."""
        return self._name

    @property
    def power_loss_input(self) -> PowerLossInput | None:
        return self._pin

    def poll(self) -> ParsedReading:
        """One reading; :class:`SourceUnavailable` (``ChipNotFound``...) when the chip does not answer."""
        if self._closed:
            raise SourceUnavailable(f"{self._name}: closed")
        now, wall = self._clock.monotonic(), self._clock.wall()
        if self._gauge is not None:
            return self._poll_gauge(self._gauge, now, wall)
        assert self._monitor is not None
        return self._poll_monitor(self._monitor, now, wall)

    def check(self) -> None:
        """Read the chip once, raising what :meth:`poll` would (for start-up: fail with the fix, at once)."""
        self.poll()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pin is not None:
            self._pin.close()
        with contextlib.suppress(OSError):
            self._bus.close()

    # --- one poll, per chip ---

    def _pin_mains_lost(self) -> bool | None:
        if self._pin is None:
            return None
        try:
            return self._pin.is_mains_lost()
        except Exception as error:  # whatever the GPIO library raises: no fresh reading, not a crash
            raise SourceUnavailable(
                f"{self._name}: cannot read the power-loss pin GPIO{self._pin.spec.pin}: {error}"
            ) from error

    def _voltage(self, volts: float, rejections: list[Rejection]) -> float | None:
        floor = _MIN_CELL_VOLTS * self.profile.cells
        if volts < floor:
            rejections.append(
                Rejection("battery.voltage", f"{volts:.3f}", f"below {floor:g} V: no battery, or no conversion yet")
            )
            return None
        return volts

    def _flags(self, mains_lost: bool, charge: float | None, charging: bool) -> frozenset[UpsFlag]:
        flags = {UpsFlag.OB, UpsFlag.DISCHRG} if mains_lost else {UpsFlag.OL}
        if charging and not mains_lost:
            flags.add(UpsFlag.CHRG)
        if charge is not None and charge < self.profile.low_battery_pct:
            flags.add(UpsFlag.LB)
        return frozenset(flags)

    def _identify_gauge(self, gauge: Max1704x) -> Rejection | None:
        """Once: the variant from the chip's VERSION register (never a reset: that restarts the SOC estimate).
        A profile naming the other variant is overridden, and that said once (as a refused value)."""
        profile_variant = gauge.variant
        version = gauge.identify()
        self._variant_known = True
        if gauge.variant is profile_variant:
            return None
        family = "MAX17048/49" if gauge.variant.has_crate else "MAX17040 family"
        registers = "CRATE and STATUS read" if gauge.variant.has_crate else "no CRATE or STATUS read"
        return Rejection(
            "battery.gauge",
            f"VERSION 0x{version:04x}",
            f"the profile names a {profile_variant.name}, the chip says {family}: read as a {gauge.variant.name} "
            f"({registers})",
        )

    def _poll_gauge(self, gauge: Max1704x, now: float, wall: float) -> ParsedReading:
        identified = None if self._variant_known else self._identify_gauge(gauge)
        sample = gauge.read()
        rejections = list(sample.rejections)
        if identified is not None:
            rejections.append(identified)
        mains_lost = self._pin_mains_lost()
        assert mains_lost is not None  # a MAX1704x profile always has a pin (validated)
        volts = self._voltage(sample.cell_volts, rejections)
        charge = sample.soc_pct
        if sample.soc_clamped and volts is not None:
            charge = min(charge, charge_from_voltage(self.profile.chemistry, self.profile.cells, volts))
        rate = sample.crate_pct_per_h
        runtime = None
        if mains_lost and rate is not None and rate <= -MIN_DISCHARGE_RATE_PCT_PER_H:
            runtime = charge / -rate * 3600.0
        reading = UpsReading(
            source=self._name,
            timestamp=now,
            wall_time=wall,
            flags=self._flags(mains_lost, charge, rate is not None and rate >= MIN_DISCHARGE_RATE_PCT_PER_H),
            charge_pct=charge,
            runtime_s=runtime,
            battery_voltage=volts,
        )
        return ParsedReading(reading, tuple(rejections))

    def _poll_monitor(self, monitor: Ina219, now: float, wall: float) -> ParsedReading:
        sample = monitor.read()
        rejections: list[Rejection] = []
        profile = self.profile
        if sample.foreign_settings is not None:
            config, cal = sample.foreign_settings
            rejections.append(
                Rejection(
                    "ina219.calibration",
                    f"CONFIG 0x{config:04x}, CAL {cal}",
                    f"another program writes this chip (the HAT vendor's INA219.py?); piclusterd's CONFIG "
                    f"0x{monitor.config:04x} and CAL {monitor.calibration.register_value} restored before every "
                    f"read. Disable that program (docs/hardware-profiles.md)",
                )
            )
        current_a = sample.current_a
        if current_a is None:
            rejections.append(
                Rejection(
                    "ina219.current",
                    f"shunt {sample.shunt_volts * 1000:.2f} mV",
                    "math overflow (OVF): current and power refused; bus voltage and charge kept",
                )
            )
            # The shunt voltage is a direct ADC result (at worst clipped at full scale): its sign still says
            # which way the (large) current flows, so a heavy discharge still reads OB.
            current_a = sample.shunt_volts / profile.ina219_calibration.shunt_ohm
        discharge_a: float | None = None
        if profile.discharge_sign is not None:
            discharge_a = -current_a if profile.discharge_sign is CurrentSign.NEGATIVE else current_a
        discharging = discharge_a is not None and discharge_a >= profile.discharge_threshold_a
        charging = discharge_a is not None and discharge_a <= -profile.discharge_threshold_a
        pin_lost = self._pin_mains_lost()
        mains_lost = discharging if pin_lost is None else pin_lost
        volts = self._voltage(sample.bus_volts, rejections)
        charge = None if volts is None else charge_from_voltage(profile.chemistry, profile.cells, volts)
        runtime = None
        realpower = None
        power_w = sample.power_w
        if discharging and power_w is not None:
            realpower = power_w
            if mains_lost and charge is not None and profile.capacity_wh is not None and power_w > 0:
                runtime = profile.capacity_wh * charge / 100.0 / power_w * 3600.0
        reading = UpsReading(
            source=self._name,
            timestamp=now,
            wall_time=wall,
            flags=self._flags(mains_lost, charge, charging),
            charge_pct=charge,
            runtime_s=runtime,
            battery_voltage=volts,
            realpower_w=realpower,
        )
        return ParsedReading(reading, tuple(rejections))


def open_hat_source(
    profile: HatProfile,
    clock: Clock,
    *,
    bus_number: int = 1,
    gpio: GpioModule | None = None,
    opener: BusOpener | None = None,
    debounce_s: float = 0.5,
    verify: bool = True,
) -> HatPowerSource:
    """Open ``/dev/i2c-<bus_number>``, build the source and (``verify``) read the chip once.

    Raises :class:`BusUnavailable` / :class:`BusPermissionDenied` for the bus, ``ChipNotFound`` when nothing
    answers at the profile's address, :class:`GpioUnavailable` / ``PinUnavailable`` for the pin; each names
    the fix.
    """
    bus = open_i2c_bus(bus_number, opener)
    try:
        source = HatPowerSource(profile, bus, clock, gpio=gpio, bus_number=bus_number, debounce_s=debounce_s)
    except BaseException:
        bus.close()
        raise
    if verify:
        try:
            source.check()
        except BaseException:
            source.close()
            raise
    return source


def open_power_cut(profile: HatProfile, gpio: GpioModule) -> PowerCutOutput:
    """The profile's power-cut output, set up inactive; :class:`CapabilityMissing` if the HAT has none."""
    if profile.power_cut is None:
        raise CapabilityMissing(f"the {profile.title} has no power-cut pin; cut power with the UPS or a relay")
    return PowerCutOutput(gpio, profile.power_cut)


# --- probe --------------------------------------------------------------------------------------------------

_KNOWN_ADDRESSES: dict[int, str] = {
    0x14: "PiJuice MCU (not supported: use its own service or NUT)",
    0x2D: "Waveshare UPS HAT (E) MCU (not supported yet)",
    0x36: "MAX1704x fuel gauge (Geekworm X728, X1200/X1201/X1202, UPS-Lite v1.2)",
    0x42: "INA219 power monitor (Waveshare UPS HAT / (B))",
    0x43: "INA219 power monitor (Waveshare UPS HAT (C))",
    0x57: "PiSugar 3 MCU (not supported yet)",
    0x62: "CW2015 fuel gauge (UPS-Lite v1.3, not supported yet)",
    0x68: "real-time clock (DS1307 on the X728; also PiSugar 3)",
    0x75: "PiSugar 2 power chip (not supported yet)",
}


@dataclass(frozen=True, slots=True)
class PinObservation:
    """A power-loss pin read during the probe, and what its level would mean for a profile."""

    pin: int
    pull: Pull
    level: Level | None
    meaning: str


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What ``piclusterctl probe`` found and suggests; ``lines()`` renders it for a terminal."""

    model: str | None
    bus: str
    addresses: tuple[int, ...]
    busy_addresses: tuple[int, ...]
    profile: str | None
    reason: str
    alternatives: tuple[str, ...] = ()
    pins: tuple[PinObservation, ...] = ()
    problems: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"model: {self.model or 'unknown'}", f"bus: {self.bus}"]
        for address in self.addresses:
            out.append(f"  0x{address:02x}  {_KNOWN_ADDRESSES.get(address, 'unknown device')}")
        for address in self.busy_addresses:
            out.append(f"  0x{address:02x}  claimed by a kernel driver (UU)")
        if not self.addresses and not self.busy_addresses:
            out.append("  no device answered")
        for pin in self.pins:
            level = "unreadable" if pin.level is None else pin.level.name
            out.append(f"GPIO{pin.pin} (pull {pin.pull.value}): {level}; {pin.meaning}")
        out.append(f"suggested profile: {self.profile or 'none'} ({self.reason})")
        if self.alternatives:
            out.append("alternatives: " + ", ".join(self.alternatives))
        out.extend(f"problem: {problem}" for problem in self.problems)
        return out


def _read_model(model_path: str, problems: list[str]) -> str | None:
    try:
        raw = Path(model_path).read_bytes()
    except OSError as error:
        problems.append(f"cannot read {model_path} ({error.strerror}): not a Raspberry Pi, or no device tree")
        return None
    return raw.rstrip(b"\0").decode("utf-8", errors="replace").strip() or None


def _scan(bus: I2cBus, problems: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    present: list[int] = []
    busy: list[int] = []
    for address in range(FIRST_ADDRESS, LAST_ADDRESS + 1):
        try:
            bus.read_byte(address)
        except OSError as error:
            if error.errno == errno.EBUSY:
                busy.append(address)
            elif error.errno not in (errno.EREMOTEIO, errno.ENXIO):
                problems.append(f"0x{address:02x}: {error.strerror or error} (errno {error.errno})")
            continue
        present.append(address)
    return tuple(present), tuple(busy)


def _suggest(model: str | None, found: set[int]) -> tuple[str | None, str, tuple[str, ...]]:
    """Which profile fits, as an ordered series of early returns. Pure."""
    pi5 = model is not None and "Raspberry Pi 5" in model
    zero = model is not None and "Zero" in model
    if 0x36 in found:
        if 0x68 in found:
            # A fuel gauge with a DS1307 RTC beside it: the X728 carries one; the X1200 family does not.
            return "geekworm-x728", "fuel gauge at 0x36 and an RTC at 0x68, as on the X728", ("geekworm-x728-v1",)
        if pi5:
            return (
                "geekworm-x1200",
                "fuel gauge at 0x36 on a Pi 5 without an RTC at 0x68: the X1200 family (set capacity for X1201/X1202)",
                ("geekworm-x1201", "geekworm-x1202", "geekworm-x728"),
            )
        if zero:
            return "ups-lite-v1.2", "fuel gauge at 0x36 on a Pi Zero: UPS-Lite v1.2", ()
        return (
            "geekworm-x728",
            "fuel gauge at 0x36 on a Pi other than the 5 (the X1200 family fits only the Pi 5)",
            ("geekworm-x728-v1", "ups-lite-v1.2"),
        )
    if 0x42 in found:
        return "waveshare-ups-hat-b", "INA219 at 0x42, as on the Waveshare UPS HAT (B)", ()
    if 0x43 in found:
        return "waveshare-ups-hat-c", "INA219 at 0x43, as on the Waveshare UPS HAT (C)", ()
    unsupported = sorted(a for a in found if a in _KNOWN_ADDRESSES and a != 0x68)
    if unsupported:
        what = "; ".join(_KNOWN_ADDRESSES[a] for a in unsupported)
        return None, f"found {what}: no piclusterd driver; use NUT or the generic profile", ()
    return None, "no known UPS chip answered: is the HAT seated and powered? Compare with `i2cdetect -y 1`", ()


def _observe_pins(gpio: GpioModule, candidates: list[HatProfile], problems: list[str]) -> tuple[PinObservation, ...]:
    seen: dict[tuple[int, Pull], PinObservation] = {}
    for profile in candidates:
        spec = profile.power_loss
        if spec is None:
            continue
        key = (spec.pin, spec.pull)
        if key in seen:
            continue
        level: Level | None = None
        try:
            if gpio.getmode() is None:
                gpio.setmode(gpio.BCM)
            pull = {Pull.UP: gpio.PUD_UP, Pull.DOWN: gpio.PUD_DOWN, Pull.OFF: gpio.PUD_OFF}[spec.pull]
            gpio.setup(spec.pin, gpio.IN, pull_up_down=pull)
            level = Level.HIGH if gpio.input(spec.pin) else Level.LOW
        except Exception as error:  # whatever the GPIO library raises, the probe reports and goes on
            problems.append(f"GPIO{spec.pin}: {error}")
        finally:
            with contextlib.suppress(Exception):
                gpio.cleanup(spec.pin)
        if level is None:
            meaning = "could not be read"
        else:
            lost = level is spec.lost_level
            meaning = f"for {profile.key} this means mains {'LOST' if lost else 'present'}"
        seen[key] = PinObservation(spec.pin, spec.pull, level, meaning)
    return tuple(seen.values())


def probe(
    bus_factory: Callable[[int], I2cBus],
    gpio: GpioModule | None,
    model_path: str = "/proc/device-tree/model",
    *,
    bus_number: int = 1,
) -> ProbeReport:
    """Scan the I2C bus (0x03-0x77, one read-byte each), read the Pi model, suggest a profile with the reason.

    Never raises for what it finds: a missing bus, a missing model file or an unreadable pin become
    ``problems`` in the report. Pins are only read (set up as inputs with the candidate profile's pull, then
    released); power-cut pins are never touched.
    """
    problems: list[str] = []
    bus_name = f"/dev/i2c-{bus_number}"
    model = _read_model(model_path, problems)
    try:
        bus = open_i2c_bus(bus_number, bus_factory)
    except (BusUnavailable, BusPermissionDenied) as error:
        return ProbeReport(model, bus_name, (), (), None, str(error), problems=tuple(problems))
    try:
        present, busy = _scan(bus, problems)
    finally:
        with contextlib.suppress(OSError):
            bus.close()
    key, reason, alternatives = _suggest(model, set(present) | set(busy))
    pins: tuple[PinObservation, ...] = ()
    if key is not None:
        boards = PROFILES[key].boards
        if model is not None and boards and not any(board in model for board in boards):
            problems.append(f"{key} is made for {', '.join(boards)}, and this is a {model}")
        candidates = [PROFILES[k] for k in (key, *alternatives)]
        if gpio is None:
            if any(p.power_loss is not None for p in candidates):
                problems.append("no GPIO module: power-loss pins not read (apt install python3-libgpiod)")
        else:
            pins = _observe_pins(gpio, candidates, problems)
    return ProbeReport(model, bus_name, present, busy, key, reason, alternatives, pins, tuple(problems))
