"""A HAT's shutdown-button line (Geekworm X728: GPIO5), read as the vendor's own service reads it.

Geekworm's ``xPWR.sh`` (geekworm-com/x728-script@a4bd68b, run by ``x728-pwr.service`` as ``xPWR.sh 0 5 12``)
first drives the BOOT line (GPIO12) high to tell the board the Pi is up, then samples the SHUTDOWN line
(GPIO5) every 20 ms. The board raises it when its button is pressed:

- held high for more than 600 ms (``REBOOTPULSEMAXIMUM``): ``poweroff``, as soon as 600 ms have passed;
- high for 200 to 600 ms (``REBOOTPULSEMINIMUM`` .. maximum), then low again: ``reboot``;
- shorter than 200 ms: ignored (noise).

:func:`next_press` is that rule as a pure step function (level and time in, a press out); :class:`ShutdownButton`
samples the pin on a thread of its own and hands each press to a callback. piclusterd does not run the
command itself: the daemon turns a press into its orderly local shutdown (drained first) or a reboot.
Run either this or the vendor's ``x728-pwr.service``, not both: both would hold the same lines.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from piclusterd.core.errors import PinUnavailable
from piclusterd.core.ports import Clock
from piclusterd.drivers.gpio_power import GpioModule, is_header_pin

__all__ = [
    "REBOOT_PULSE_MAX_S",
    "REBOOT_PULSE_MIN_S",
    "SAMPLE_S",
    "ButtonPress",
    "ButtonState",
    "ShutdownButton",
    "ShutdownButtonPin",
    "next_press",
]

#: xPWR.sh: REBOOTPULSEMINIMUM=200, REBOOTPULSEMAXIMUM=600 (ms); it samples every 20 ms.
REBOOT_PULSE_MIN_S = 0.2
REBOOT_PULSE_MAX_S = 0.6
SAMPLE_S = 0.02


@dataclass(frozen=True, slots=True)
class ShutdownButtonPin:
    """The board's SHUTDOWN line (input, high while pressed) and BOOT line (output, held high while up)."""

    pin: int
    boot_pin: int | None = None

    def __post_init__(self) -> None:
        for pin in (self.pin, self.boot_pin):
            if pin is not None and not is_header_pin(pin):
                raise ValueError(f"GPIO{pin} is not on the 40-pin header (BCM 0-27)")


class ButtonPress(enum.Enum):
    REBOOT = "reboot"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class ButtonState:
    """Since when the line has been high (None: low), and whether this pulse already counted as a press."""

    high_since: float | None = None
    fired: bool = False


def next_press(state: ButtonState, high: bool, now: float) -> tuple[ButtonState, ButtonPress | None]:
    """One sample of the line: the new state and the press it completes, if any. Pure.

    In xPWR.sh's order: after each 20 ms sleep it first checks the time since the rising edge (over 600 ms:
    poweroff), and only then reads the line; a line found low ends the pulse (over 200 ms: reboot)."""
    # 1. Low and no pulse, or a rising edge: nothing yet.
    if state.high_since is None:
        return (ButtonState(now), None) if high else (state, None)
    elapsed = now - state.high_since
    # 2. Past 600 ms, once per pulse: a shutdown (the vendor's poweroff comes while the button is still held).
    if not state.fired and elapsed > REBOOT_PULSE_MAX_S:
        return (ButtonState(state.high_since, fired=True) if high else ButtonState()), ButtonPress.SHUTDOWN
    if high:
        return state, None
    # 3. Low again after 200-600 ms that did not already count: a reboot; shorter is noise.
    if not state.fired and elapsed > REBOOT_PULSE_MIN_S:
        return ButtonState(), ButtonPress.REBOOT
    return ButtonState(), None


class ShutdownButton:
    """Samples the SHUTDOWN line every :data:`SAMPLE_S` and calls ``on_press`` with each press (at most one
    shutdown per pulse). ``start()`` holds BOOT high and starts the thread; ``close()`` stops it."""

    def __init__(
        self,
        gpio: GpioModule,
        spec: ShutdownButtonPin,
        clock: Clock,
        on_press: Callable[[ButtonPress], None],
        *,
        sample_s: float = SAMPLE_S,
    ) -> None:
        self.spec = spec
        self._gpio = gpio
        self._clock = clock
        self._on_press = on_press
        self._sample_s = sample_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = ButtonState()
        try:
            if gpio.getmode() is None:
                gpio.setmode(gpio.BCM)
            gpio.setup(spec.pin, gpio.IN, pull_up_down=gpio.PUD_DOWN)
            if spec.boot_pin is not None:
                gpio.setup(spec.boot_pin, gpio.OUT, initial=gpio.HIGH)
        except Exception as error:  # RuntimeError (RPi.GPIO), OSError (libgpiod: line busy), ValueError
            raise PinUnavailable(
                f"cannot set up the shutdown button on GPIO{spec.pin}"
                + ("" if spec.boot_pin is None else f" (BOOT on GPIO{spec.boot_pin})")
                + f": {error}. Is Geekworm's x728-pwr.service running? Disable it (systemctl disable --now "
                "x728-pwr): piclusterd reads the button itself"
            ) from error

    def sample(self) -> ButtonPress | None:
        """Read the line once and act on it (what the thread does every sample; tests call it directly)."""
        high = bool(self._gpio.input(self.spec.pin))
        self._state, press = next_press(self._state, high, self._clock.monotonic())
        if press is not None:
            self._on_press(press)
        return press

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="piclusterd-shutdown-button", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._sample_s):
            try:
                self.sample()
            except Exception:  # a read error must never end the thread: the next sample tries again
                continue

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
