"""A whole UPS HAT in software: a profile wired to emulated chips and pins, a fake clock, and the real source.

``EmulatedHat(get_profile("geekworm-x1200"))`` builds an :class:`~piclusterd.testing.i2c_emulators.EmulatedSMBus`
with the profile's chip at its address, an :class:`~piclusterd.testing.gpio_emulator.EmulatedGpio` with the
power-loss pin at the "mains present" level, and a :class:`~piclusterd.drivers.hat.HatPowerSource` on top.
Tests then play the outage: ``lose_mains()``, ``settle()`` (the pin's debounce), ``discharge(...)``.
"""

from __future__ import annotations

from piclusterd.core.reading import UpsReading
from piclusterd.drivers.gpio_power import Level
from piclusterd.drivers.hat import CurrentSign, HatPowerSource, HatProfile
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio
from piclusterd.testing.i2c_emulators import EmulatedSMBus, Ina219Emulator, Max1704xEmulator

__all__ = ["EmulatedHat"]


class EmulatedHat:
    """The parts of one HAT and its source. ``load_a`` is the battery current while on battery (INA219 HATs)."""

    def __init__(
        self,
        profile: HatProfile,
        *,
        clock: FakeClock | None = None,
        charge_pct: float = 100.0,
        mains: bool = True,
        debounce_s: float = 0.5,
        bus_number: int = 1,
        load_a: float = 0.6,
    ) -> None:
        self.profile = profile
        self.clock = clock if clock is not None else FakeClock()
        self.debounce_s = debounce_s
        self.load_a = load_a
        self.bus = EmulatedSMBus(bus_number)
        self.gpio = EmulatedGpio(self.clock)
        self._gauge: Max1704xEmulator | None = None
        self._monitor: Ina219Emulator | None = None
        variant = profile.chip.max1704x_variant
        if variant is not None:
            self._gauge = Max1704xEmulator(variant, soc_pct=charge_pct)
            self.bus.attach(profile.address, self._gauge)
        else:
            sign = -1 if profile.discharge_sign in (None, CurrentSign.NEGATIVE) else 1
            self._monitor = Ina219Emulator(
                shunt_ohm=profile.ina219_calibration.shunt_ohm,
                cells=profile.cells,
                chemistry=profile.chemistry,
                capacity_ah=(profile.capacity_wh or 10.0) / (3.6 * profile.cells),
                charge_pct=charge_pct,
                discharge_sign=sign,
            )
            self.bus.attach(profile.address, self._monitor)
        self._set_mains(present=mains)
        self.source = HatPowerSource(profile, self.bus, self.clock, gpio=self.gpio, debounce_s=debounce_s)

    @property
    def gauge(self) -> Max1704xEmulator:
        """The MAX1704x emulator (``TypeError`` on an INA219 HAT)."""
        if self._gauge is None:
            raise TypeError(f"{self.profile.key} has an INA219, not a MAX1704x gauge")
        return self._gauge

    @property
    def monitor(self) -> Ina219Emulator:
        """The INA219 emulator (``TypeError`` on a MAX1704x HAT)."""
        if self._monitor is None:
            raise TypeError(f"{self.profile.key} has a MAX1704x gauge, not an INA219")
        return self._monitor

    def _set_mains(self, *, present: bool) -> None:
        spec = self.profile.power_loss
        if spec is not None:
            high = (spec.lost_level is Level.HIGH) != present
            (self.gpio.drive_high if high else self.gpio.drive_low)(spec.pin)
        if self._monitor is not None:
            if present:
                self._monitor.idle()
            else:
                self._monitor.drive_discharge(self.load_a, 0.0)

    def lose_mains(self) -> None:
        """Mains fails: the pin goes to its "lost" level (or the battery starts discharging)."""
        self._set_mains(present=False)

    def restore_mains(self) -> None:
        self._set_mains(present=True)

    def settle(self) -> None:
        """Let the pin's debounce time pass on the fake clock."""
        self.clock.advance(self.debounce_s)

    def discharge(self, seconds: float, *, rate_pct_per_h: float = 30.0) -> None:
        """Run on battery for ``seconds``: the gauge at ``rate_pct_per_h``, or the INA219 at ``load_a``."""
        if self._gauge is not None:
            self._gauge.drive_discharge(rate_pct_per_h, seconds)
        if self._monitor is not None:
            self._monitor.drive_discharge(self.load_a, seconds)
        self.clock.advance(seconds)

    def reading(self) -> UpsReading:
        """Poll once and return the reading; ``AssertionError`` listing the rejections if there is none."""
        parsed = self.source.poll()
        if parsed.reading is None:
            raise AssertionError(f"{self.source.name}: no reading; rejections: {parsed.rejections}")
        return parsed.reading
