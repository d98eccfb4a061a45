"""The libgpiod backend: the header's GPIO lines through the kernel's character device, on every Pi.

RPi.GPIO 0.7.1 (Debian's) cannot run on a Pi 5 ("Cannot determine SOC peripheral base address"); libgpiod
can, and Debian ships its Python binding as ``python3-libgpiod``: the **1.6 API on bookworm**, the **2.x API
on trixie** (PyPI's ``gpiod`` is 2.x too). :class:`LibgpiodGpio` speaks both and presents the part of the
RPi.GPIO API that piclusterd uses (:class:`~piclusterd.drivers.gpio_power.GpioModule`), so the inputs and
outputs above it, the probe and the emulator are the same whatever the backend.

**The header's chip is found by its label**, never by its number: ``pinctrl-rp1`` on a Pi 5 (raspberrypi/linux
``pinctrl-rp1.c``), ``pinctrl-bcm2711`` on a Pi 4, ``pinctrl-bcm2835`` on a Pi 0-3. The Pi 5's header moved
from gpiochip4 to gpiochip0 in kernel 6.6.45 (raspberrypi/linux PR #6144), so a number would break on update.

The two APIs, as used here (libgpiod ``bindings/python``, v1.6.x C extension and 2.x package):

* 1.6: ``gpiod.Chip(path, gpiod.Chip.OPEN_BY_PATH)``, ``chip.label()``, ``chip.get_line(offset)``,
  ``line.request(consumer=..., type=gpiod.LINE_REQ_DIR_IN|OUT, flags=gpiod.LINE_REQ_FLAG_BIAS_*,
  default_val=...)``, ``line.get_value()``, ``line.set_value(v)``, ``line.release()``.
* 2.x: ``gpiod.Chip(path)``, ``chip.get_info().label``, ``chip.request_lines(config={offset:
  gpiod.LineSettings(direction=..., bias=..., output_value=...)}, consumer=...)``, ``request.get_value(offset)``
  (a ``gpiod.line.Value``), ``request.set_value(offset, value)``, ``request.release()``.

Edges are not watched: the power-loss input is polled and debounced on the clock
(:class:`~piclusterd.drivers.gpio_power.PowerLossInput` does that when ``add_event_detect`` is refused).
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable
from typing import Any

from piclusterd.core.errors import GpioUnavailable

__all__ = ["HEADER_CHIP_LABELS", "LibgpiodGpio", "gpiod_api_version"]

HEADER_CHIP_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
"""The labels of the chip that drives the 40-pin header: Pi 5, Pi 4, Pi 0-3."""

_CONSUMER = "piclusterd"


def gpiod_api_version(gpiod: Any) -> int:
    """1 for the 1.x C extension (bookworm), 2 for the 2.x package (trixie, PyPI); 0 if neither shape."""
    if hasattr(gpiod, "LineSettings") and hasattr(gpiod, "line"):
        return 2
    if hasattr(gpiod, "LINE_REQ_DIR_IN") and hasattr(gpiod, "Chip"):
        return 1
    return 0


def _device_paths() -> list[str]:
    return sorted(glob.glob("/dev/gpiochip*"))


class _Line:
    """One requested line, either API. ``value`` 0/1 in and out."""

    def __init__(self, gpiod: Any, api: int, handle: Any, offset: int) -> None:
        self._gpiod = gpiod
        self._api = api
        self._handle = handle
        self._offset = offset

    def get(self) -> int:
        if self._api == 1:
            return 1 if self._handle.get_value() else 0
        return 1 if self._handle.get_value(self._offset) == self._gpiod.line.Value.ACTIVE else 0

    def set(self, value: int) -> None:
        if self._api == 1:
            self._handle.set_value(1 if value else 0)
            return
        values = self._gpiod.line.Value
        self._handle.set_value(self._offset, values.ACTIVE if value else values.INACTIVE)

    def release(self) -> None:
        self._handle.release()


class LibgpiodGpio:
    """The RPi.GPIO-shaped :class:`~piclusterd.drivers.gpio_power.GpioModule` over a ``gpiod`` module (either API).

    ``gpiod`` is the imported module (or a test's stand-in of the same shape); ``chip_paths`` lists the
    candidate character devices (``/dev/gpiochip*``). Raises :class:`GpioUnavailable` when the module has
    neither API's shape or no chip carries a header label. Pin numbers are BCM = line offsets on that chip.
    """

    # RPi.GPIO's values, so code written against that API reads the same.
    BOARD = 10
    BCM = 11
    OUT = 0
    IN = 1
    LOW = 0
    HIGH = 1
    PUD_OFF = 20
    PUD_DOWN = 21
    PUD_UP = 22
    BOTH = 33

    def __init__(self, gpiod: Any, *, chip_paths: Callable[[], Iterable[str]] = _device_paths) -> None:
        self._gpiod = gpiod
        self.api = gpiod_api_version(gpiod)
        if self.api == 0:
            raise GpioUnavailable(
                "the gpiod module has neither the libgpiod 1.x nor the 2.x Python API: "
                "apt install python3-libgpiod (or pip install gpiod)"
            )
        self._chip, self.chip_path, self.chip_label = self._open_header_chip(list(chip_paths()))
        self._lines: dict[int, _Line] = {}
        self._mode: int | None = None

    def _label(self, chip: Any) -> str:
        return str(chip.label() if self.api == 1 else chip.get_info().label)

    def _open(self, path: str) -> Any:
        if self.api == 1:
            return self._gpiod.Chip(path, self._gpiod.Chip.OPEN_BY_PATH)
        return self._gpiod.Chip(path)

    def _open_header_chip(self, paths: list[str]) -> tuple[Any, str, str]:
        seen: list[str] = []
        for path in paths:
            try:
                chip = self._open(path)
            except OSError as error:
                seen.append(f"{path} ({error.strerror or error})")
                continue
            label = self._label(chip)
            if label in HEADER_CHIP_LABELS:
                return chip, path, label
            seen.append(f"{path} [{label}]")
            chip.close()
        found = ", ".join(seen) or "no /dev/gpiochip* at all"
        raise GpioUnavailable(
            f"no GPIO chip labelled {' or '.join(HEADER_CHIP_LABELS)} (the 40-pin header of a Pi 5, Pi 4, Pi 0-3); "
            f"found: {found}. Not a Raspberry Pi, or the unit's sandbox hides /dev/gpiochip* "
            f"(DeviceAllow=char-gpiochip rw)"
        )

    # --- the RPi.GPIO-shaped API ---

    def setmode(self, mode: int) -> None:
        if mode != self.BCM:
            raise ValueError("the libgpiod backend numbers pins as BCM (line offsets on the header's chip)")
        self._mode = mode

    def getmode(self) -> int | None:
        return self._mode

    def setup(self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
        if channel in self._lines:
            self._lines.pop(channel).release()
        gpiod = self._gpiod
        if self.api == 1:
            handle = self._chip.get_line(channel)
            if direction == self.OUT:
                handle.request(consumer=_CONSUMER, type=gpiod.LINE_REQ_DIR_OUT, default_val=1 if initial == 1 else 0)
            else:
                flags = {
                    self.PUD_UP: gpiod.LINE_REQ_FLAG_BIAS_PULL_UP,
                    self.PUD_DOWN: gpiod.LINE_REQ_FLAG_BIAS_PULL_DOWN,
                    self.PUD_OFF: gpiod.LINE_REQ_FLAG_BIAS_DISABLE,
                }[pull_up_down]
                handle.request(consumer=_CONSUMER, type=gpiod.LINE_REQ_DIR_IN, flags=flags)
        else:
            line = gpiod.line
            if direction == self.OUT:
                value = line.Value.ACTIVE if initial == 1 else line.Value.INACTIVE
                settings = gpiod.LineSettings(direction=line.Direction.OUTPUT, output_value=value)
            else:
                bias = {
                    self.PUD_UP: line.Bias.PULL_UP,
                    self.PUD_DOWN: line.Bias.PULL_DOWN,
                    self.PUD_OFF: line.Bias.DISABLED,
                }[pull_up_down]
                settings = gpiod.LineSettings(direction=line.Direction.INPUT, bias=bias)
            handle = self._chip.request_lines(config={channel: settings}, consumer=_CONSUMER)
        self._lines[channel] = _Line(gpiod, self.api, handle, channel)

    def _line(self, channel: int) -> _Line:
        line = self._lines.get(channel)
        if line is None:
            raise RuntimeError(f"GPIO{channel} is not set up (setup() first)")
        return line

    def input(self, channel: int) -> int:
        return self._line(channel).get()

    def output(self, channel: int, value: int) -> None:
        self._line(channel).set(value)

    def add_event_detect(
        self, channel: int, edge: int, callback: Callable[[int], None] | None = None, bouncetime: int = 0
    ) -> None:
        raise RuntimeError("the libgpiod backend does not watch edges: the pin is polled and debounced on the clock")

    def remove_event_detect(self, channel: int) -> None:
        return None

    def cleanup(self, channel: int | None = None) -> None:
        """Release one line (or all): an output goes back to the kernel, which keeps its last level."""
        channels = list(self._lines) if channel is None else [channel]
        for number in channels:
            line = self._lines.pop(number, None)
            if line is not None:
                line.release()

    def close(self) -> None:
        self.cleanup()
        self._chip.close()
