"""GPIO power-loss input and power-cut output, behind one swappable boundary (:class:`GpioModule`).

The GPIO module is injected (:class:`GpioModule`, the part of the RPi.GPIO API piclusterd uses). Like
gpiozero's pin factories, the backend is chosen at one place, :func:`open_gpio`:

* ``libgpiod`` (default): :class:`piclusterd.drivers.gpio_libgpiod.LibgpiodGpio`, on every Pi including the
  Pi 5, over Debian's ``python3-libgpiod`` (1.6 API on bookworm, 2.x on trixie) or PyPI's ``gpiod``;
* ``rpi-gpio`` (fallback when no gpiod module is installed): the RPi.GPIO module (RPi.GPIO itself, Pi 0-4
  only, or rpi-lgpio);
* in tests, :class:`piclusterd.testing.gpio_emulator.EmulatedGpio`, passed in directly.

Pins are BCM numbers.

Every pin's meaning is explicit, because boards disagree: on a Geekworm X728 GPIO6 goes HIGH when AC is lost,
on an X1200 it goes LOW. A :class:`PowerLossPin` therefore names the level that means "mains lost" and the pull
to enable; the pulls in the shipped profiles are chosen so that a floating (unconnected) pin reads "mains
present", as Geekworm documents for the X1200.

**Debounce.** A glitch on the pin must not shed half the cluster. A level change is accepted only once the pin
has held the new level for ``debounce_s``, timed on the injected clock from the last edge the GPIO library
reported (or, without edge detection, from the first poll that saw the new level). The first read after
start-up is accepted as it is.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from piclusterd.core.errors import GpioUnavailable, PinUnavailable
from piclusterd.core.ports import Clock

__all__ = [
    "EDGE_BOUNCETIME_MS",
    "GpioModule",
    "Level",
    "PowerCutOutput",
    "PowerCutPin",
    "PowerLossInput",
    "PowerLossPin",
    "Pull",
    "import_gpio",
    "is_header_pin",
    "open_gpio",
]

EDGE_BOUNCETIME_MS = 10
"""Passed to ``add_event_detect``: RPi.GPIO drops edges this soon after a reported one. Kept short, because
the real debounce is done on the clock (a long bouncetime would hide the last edge of a burst)."""


class GpioModule(Protocol):
    """The part of the RPi.GPIO module API that piclusterd uses (rpi-lgpio and the emulator provide it)."""

    @property
    def BCM(self) -> int: ...
    @property
    def IN(self) -> int: ...
    @property
    def OUT(self) -> int: ...
    @property
    def HIGH(self) -> int: ...
    @property
    def LOW(self) -> int: ...
    @property
    def PUD_UP(self) -> int: ...
    @property
    def PUD_DOWN(self) -> int: ...
    @property
    def PUD_OFF(self) -> int: ...
    @property
    def BOTH(self) -> int: ...

    def setmode(self, mode: int) -> None: ...

    def getmode(self) -> int | None: ...

    def setup(self, channel: int, direction: int, pull_up_down: int = ..., initial: int = ...) -> None: ...

    def input(self, channel: int) -> int: ...

    def output(self, channel: int, value: int) -> None: ...

    def add_event_detect(
        self, channel: int, edge: int, callback: Callable[[int], None] | None = ..., bouncetime: int = ...
    ) -> None: ...

    def remove_event_detect(self, channel: int) -> None: ...

    def cleanup(self, channel: int | None = ...) -> None: ...


_INSTALL_HINT = (
    "apt install python3-libgpiod (works on every Pi, the Pi 5 included), or pip install gpiod in piclusterd's "
    "virtual environment"
)


def import_gpio() -> GpioModule:
    """The system's RPi.GPIO module (the fallback backend); :class:`GpioUnavailable` naming the package if missing."""
    try:
        import RPi.GPIO as gpio
    except ImportError:
        raise GpioUnavailable(
            f"neither the gpiod nor the RPi.GPIO module is installed: {_INSTALL_HINT}. (Debian's python3-rpi.gpio "
            f"provides RPi.GPIO for a Pi 0-4 only: it cannot run on a Pi 5)"
        ) from None
    module: GpioModule = gpio
    return module


def open_gpio(
    *,
    import_gpiod: Callable[[], object] | None = None,
    chip_paths: Callable[[], list[str]] | None = None,
) -> GpioModule:
    """The GPIO backend: libgpiod when a ``gpiod`` module is installed (either API), else the RPi.GPIO module.

    ``import_gpiod`` and ``chip_paths`` replace ``import gpiod`` and the ``/dev/gpiochip*`` listing (tests).
    A gpiod module that is installed but finds no header chip is an error, not a reason to try RPi.GPIO:
    RPi.GPIO would fail on that machine too, less clearly.
    """
    from piclusterd.drivers.gpio_libgpiod import LibgpiodGpio, gpiod_api_version

    try:
        gpiod = import_gpiod() if import_gpiod is not None else importlib.import_module("gpiod")
    except ImportError:
        return import_gpio()
    if gpiod_api_version(gpiod) == 0:  # some other module called gpiod
        return import_gpio()
    module: GpioModule = LibgpiodGpio(gpiod) if chip_paths is None else LibgpiodGpio(gpiod, chip_paths=chip_paths)
    return module


class Level(enum.Enum):
    LOW = 0
    HIGH = 1


class Pull(enum.Enum):
    UP = "up"
    DOWN = "down"
    OFF = "off"

    @property
    def config_txt(self) -> str:
        """The ``gpio=`` suffix for /boot/firmware/config.txt that sets this pull from boot."""
        return {Pull.UP: "ip,pu", Pull.DOWN: "ip,pd", Pull.OFF: "ip,pn"}[self]


def is_header_pin(pin: int) -> bool:
    """BCM numbers of the 40-pin header (GPIO0-27)."""
    return 0 <= pin <= 27


@dataclass(frozen=True, slots=True)
class PowerLossPin:
    """An input that tells mains loss: BCM ``pin``, the ``lost_level`` that means "mains lost", the ``pull``."""

    pin: int
    lost_level: Level
    pull: Pull

    def __post_init__(self) -> None:
        if not is_header_pin(self.pin):
            raise ValueError(f"GPIO{self.pin} is not on the 40-pin header (BCM 0-27)")

    @property
    def boot_config(self) -> str:
        """The config.txt line that sets the pull from boot, e.g. ``gpio=6=ip,pu`` for the X1200."""
        return f"gpio={self.pin}={self.pull.config_txt}"


@dataclass(frozen=True, slots=True)
class PowerCutPin:
    """An output that makes the HAT cut the Pi's power when held at ``active_level`` for ``hold_s``."""

    pin: int
    active_level: Level
    hold_s: float

    def __post_init__(self) -> None:
        if not is_header_pin(self.pin):
            raise ValueError(f"GPIO{self.pin} is not on the 40-pin header (BCM 0-27)")
        if self.hold_s <= 0:
            raise ValueError("hold_s must be positive")


def _use_bcm(gpio: GpioModule) -> None:
    mode = gpio.getmode()
    if mode is None:
        gpio.setmode(gpio.BCM)
    elif mode != gpio.BCM:
        raise GpioUnavailable(
            "GPIO numbering is already set to BOARD in this process; piclusterd's profiles use BCM numbers"
        )


def _pin_hints(pin: int) -> str:
    return (
        f"Is another program using GPIO{pin} (the HAT vendor's script, a gpio-shutdown or gpio-poweroff "
        f"overlay)? Stop it. Run as root or add the user to the gpio group (usermod -aG gpio USER). On a Pi 5, "
        f"RPi.GPIO cannot work: {_INSTALL_HINT}"
    )


class PowerLossInput:
    """A debounced power-loss pin. :meth:`is_mains_lost` reads it; :meth:`close` releases it (idempotent)."""

    def __init__(self, gpio: GpioModule, spec: PowerLossPin, clock: Clock, *, debounce_s: float = 0.5) -> None:
        if debounce_s < 0:
            raise ValueError("debounce_s must not be negative")
        self.spec = spec
        self._gpio = gpio
        self._clock = clock
        self._debounce_s = debounce_s
        self._accepted: bool | None = None
        self._candidate_seen_at: float | None = None
        self._last_edge_at: float | None = None  # written by the GPIO library's thread; a float store is atomic
        self._edge_at_accept: float | None = None
        self._closed = False
        self.edges = 0
        _use_bcm(gpio)
        pull = {Pull.UP: gpio.PUD_UP, Pull.DOWN: gpio.PUD_DOWN, Pull.OFF: gpio.PUD_OFF}[spec.pull]
        try:
            gpio.setup(spec.pin, gpio.IN, pull_up_down=pull)
        except Exception as error:  # RuntimeError (RPi.GPIO), lgpio.error (rpi-lgpio), ValueError (bad channel)
            raise PinUnavailable(
                f"cannot set up GPIO{spec.pin} as the power-loss input (pull {spec.pull.value}): {error}. "
                f"{_pin_hints(spec.pin)}. Set the pull from boot with {spec.boot_config} in /boot/firmware/config.txt"
            ) from error
        self.edge_detection_error: str | None = None
        try:
            gpio.add_event_detect(spec.pin, gpio.BOTH, callback=self._on_edge, bouncetime=EDGE_BOUNCETIME_MS)
        except Exception as error:  # e.g. "Failed to add edge detection" (RPi.GPIO on a kernel without sysfs GPIO)
            self.edge_detection_error = str(error) or type(error).__name__

    def _on_edge(self, _channel: int) -> None:
        self._last_edge_at = self._clock.monotonic()
        self.edges += 1

    def raw_mains_lost(self) -> bool:
        """The pin's level now, undebounced, interpreted with the profile's active level."""
        return bool(self._gpio.input(self.spec.pin)) == bool(self.spec.lost_level.value)

    def is_mains_lost(self) -> bool:
        """Whether mains is lost, debounced (see the module docstring)."""
        if self._closed:
            raise GpioUnavailable(f"the power-loss input on GPIO{self.spec.pin} is closed")
        now = self._clock.monotonic()
        lost = self.raw_mains_lost()
        edge = self._last_edge_at  # read after the level: an edge in between can only make us wait longer
        if self._accepted is None or lost == self._accepted:
            # Start-up, or no change: accept as is and forget any half-seen change.
            self._accept(lost, edge)
            return lost
        if self._candidate_seen_at is None:
            self._candidate_seen_at = now
        # Stable since the last edge if the library reported one since the last accepted change; otherwise
        # (no edge detection, or a missed edge) since the first poll that saw this level.
        seen_edge = edge is not None and edge != self._edge_at_accept and edge <= now
        stable_since = edge if seen_edge and edge is not None else self._candidate_seen_at
        if now - stable_since >= self._debounce_s:
            self._accept(lost, edge)
        return self._accepted

    def _accept(self, lost: bool, edge: float | None) -> None:
        self._accepted = lost
        self._candidate_seen_at = None
        self._edge_at_accept = edge

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Releasing a pin on close must not mask the reason for closing.
        with contextlib.suppress(Exception):
            if self.edge_detection_error is None:
                self._gpio.remove_event_detect(self.spec.pin)
            self._gpio.cleanup(self.spec.pin)


class PowerCutOutput:
    """A HAT's power-cut pin (X728: GPIO26 held high 3-4 s). Set up inactive, so starting never cuts power."""

    def __init__(self, gpio: GpioModule, spec: PowerCutPin) -> None:
        self.spec = spec
        self._gpio = gpio
        self._closed = False
        _use_bcm(gpio)
        self._active = gpio.HIGH if spec.active_level is Level.HIGH else gpio.LOW
        self._inactive = gpio.LOW if spec.active_level is Level.HIGH else gpio.HIGH
        try:
            gpio.setup(spec.pin, gpio.OUT, initial=self._inactive)
        except Exception as error:
            raise PinUnavailable(
                f"cannot set up GPIO{spec.pin} as the power-cut output: {error}. {_pin_hints(spec.pin)}"
            ) from error

    def cut(self, sleep: Callable[[float], None]) -> None:
        """Hold the pin active for ``hold_s`` (``sleep`` is injected), then release it.

        On real hardware the Pi loses power during the hold; call this only after the file systems are
        synced (the last step of a shutdown).
        """
        if self._closed:
            raise GpioUnavailable(f"the power-cut output on GPIO{self.spec.pin} is closed")
        self._gpio.output(self.spec.pin, self._active)
        try:
            sleep(self.spec.hold_s)
        finally:
            self._gpio.output(self.spec.pin, self._inactive)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._gpio.cleanup(self.spec.pin)
