"""An RPi.GPIO stand-in with pins a test can drive, shipped for piclusterd's and users' tests.

:class:`EmulatedGpio` has the module-level API of RPi.GPIO that piclusterd uses (constants, ``setmode``,
``setup`` with pulls, ``input``, ``output``, ``add_event_detect`` with callbacks and ``bouncetime``,
``cleanup``), raising the same exception types with the same messages as RPi.GPIO for the same mistakes.
The outside world is played by :meth:`~EmulatedGpio.drive_high`, :meth:`~EmulatedGpio.drive_low` and
:meth:`~EmulatedGpio.release` (the pin floats: the pull decides). Every output transition is recorded in
:attr:`~EmulatedGpio.outputs` (gpiozero's MockFactory idea), stamped with the injected clock if one is given.

Edge callbacks run synchronously inside ``drive_*``, in the test's thread. ``bouncetime`` is honoured with the
injected clock (edges within that many ms of the last reported one are dropped); without a clock it is ignored.
A floating pin without pull reads ``floating_level`` (real hardware reads noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from piclusterd.core.ports import Clock

__all__ = ["EmulatedGpio", "OutputChange"]

# RPi.GPIO's physical (BOARD) pin -> BCM number, for the 40-pin header.
_BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25,
    23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutputChange:
    """An output pin changed level (``at`` is the injected clock's monotonic time, or None without a clock)."""

    pin: int
    level: int
    at: float | None


@dataclass(slots=True)
class _Detector:
    edge: int
    callback: Callable[[int], None] | None
    bouncetime_ms: int | None
    channel: int
    last_reported: float | None = None
    detected: bool = False


class EmulatedGpio:
    """Use it where ``RPi.GPIO`` would go: ``PowerLossInput(EmulatedGpio(clock), spec, clock)``."""

    BOARD = 10
    BCM = 11
    OUT = 0
    IN = 1
    LOW = 0
    HIGH = 1
    PUD_OFF = 20
    PUD_DOWN = 21
    PUD_UP = 22
    RISING = 31
    FALLING = 32
    BOTH = 33

    def __init__(self, clock: Clock | None = None, *, floating_level: int = 0) -> None:
        self._clock = clock
        self._floating = floating_level
        self._mode: int | None = None
        self._function: dict[int, int] = {}
        self._pull: dict[int, int] = {}
        self._output: dict[int, int] = {}
        self._external: dict[int, int] = {}
        self._detectors: dict[int, _Detector] = {}
        self._claimed: dict[int, str] = {}
        self._edge_detection_broken = False
        self.warnings = True
        self.outputs: list[OutputChange] = []

    # --- the outside world ---

    def drive_high(self, pin: int) -> None:
        """Something outside the Pi drives the pin (BCM number) high."""
        self._drive(pin, 1)

    def drive_low(self, pin: int) -> None:
        self._drive(pin, 0)

    def release(self, pin: int) -> None:
        """The outside stops driving: the pin floats and the pull decides."""
        before = self._level(pin)
        self._external.pop(pin, None)
        self._changed(pin, before)

    def claim(self, pin: int, owner: str = "another process") -> None:
        """Another program holds the pin: ``setup`` fails as lgpio's "GPIO busy" does."""
        self._claimed[pin] = owner

    def break_edge_detection(self) -> None:
        """``add_event_detect`` fails, as RPi.GPIO 0.7 does on kernels without sysfs GPIO."""
        self._edge_detection_broken = True

    def level(self, pin: int) -> int:
        """The pin's level now (BCM number), whatever its set-up."""
        return self._level(pin)

    def output_history(self, pin: int) -> list[int]:
        """The levels an output pin was set to, in order."""
        return [change.level for change in self.outputs if change.pin == pin]

    def is_set_up(self, pin: int) -> bool:
        return pin in self._function

    def pull(self, pin: int) -> int | None:
        return self._pull.get(pin)

    def _drive(self, pin: int, level: int) -> None:
        before = self._level(pin)
        self._external[pin] = level
        self._changed(pin, before)

    def _level(self, bcm: int) -> int:
        if self._function.get(bcm) == self.OUT:
            return self._output.get(bcm, 0)
        if bcm in self._external:
            return self._external[bcm]
        pull = self._pull.get(bcm, self.PUD_OFF)
        if pull == self.PUD_UP:
            return 1
        if pull == self.PUD_DOWN:
            return 0
        return self._floating

    def _now(self) -> float | None:
        return None if self._clock is None else self._clock.monotonic()

    def _changed(self, bcm: int, before: int) -> None:
        after = self._level(bcm)
        detector = self._detectors.get(bcm)
        if after == before or detector is None:
            return
        wanted = detector.edge == self.BOTH or (detector.edge == self.RISING) == (after == 1)
        if not wanted:
            return
        now = self._now()
        if (
            now is not None
            and detector.bouncetime_ms is not None
            and detector.last_reported is not None
            and (now - detector.last_reported) * 1000.0 < detector.bouncetime_ms
        ):
            return
        detector.last_reported = now
        detector.detected = True
        if detector.callback is not None:
            detector.callback(detector.channel)

    # --- RPi.GPIO API ---

    def _bcm(self, channel: int) -> int:
        if self._mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        bcm = _BOARD_TO_BCM.get(channel) if self._mode == self.BOARD else channel
        if bcm is None or not 0 <= bcm <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        return bcm

    def setwarnings(self, flag: bool) -> None:
        self.warnings = flag

    def setmode(self, mode: int) -> None:
        if mode not in (self.BOARD, self.BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        if self._mode is not None and self._mode != mode:
            raise ValueError("A different mode has already been set!")
        self._mode = mode

    def getmode(self) -> int | None:
        return self._mode

    def setup(self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
        bcm = self._bcm(channel)
        if bcm in self._claimed:
            raise RuntimeError(f"GPIO busy (GPIO{bcm} is held by {self._claimed[bcm]})")
        if direction not in (self.IN, self.OUT):
            raise ValueError("An invalid direction was passed to setup()")
        if pull_up_down not in (self.PUD_OFF, self.PUD_DOWN, self.PUD_UP):
            raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN")
        if direction == self.OUT and pull_up_down != self.PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        before = self._level(bcm)
        if direction == self.OUT:
            self._detectors.pop(bcm, None)
        self._function[bcm] = direction
        self._pull[bcm] = pull_up_down
        if direction == self.OUT:
            level = self._output.get(bcm, 0) if initial == -1 else int(bool(initial))
            self._set_output(bcm, level, record=initial != -1 or before != level)
        else:
            self._changed(bcm, before)

    def _set_output(self, bcm: int, level: int, *, record: bool = True) -> None:
        self._output[bcm] = level
        if record:
            self.outputs.append(OutputChange(bcm, level, self._now()))

    def input(self, channel: int) -> int:
        bcm = self._bcm(channel)
        if bcm not in self._function:
            raise RuntimeError("You must setup() the GPIO channel first")
        return self._level(bcm)

    def output(self, channel: int, value: int) -> None:
        bcm = self._bcm(channel)
        if self._function.get(bcm) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self._set_output(bcm, int(bool(value)))

    def add_event_detect(
        self,
        channel: int,
        edge: int,
        callback: Callable[[int], None] | None = None,
        bouncetime: int | None = None,
    ) -> None:
        bcm = self._bcm(channel)
        if self._function.get(bcm) != self.IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if edge not in (self.RISING, self.FALLING, self.BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        if bcm in self._detectors:
            raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
        if self._edge_detection_broken:
            raise RuntimeError("Failed to add edge detection")
        self._detectors[bcm] = _Detector(edge, callback, bouncetime, channel)

    def remove_event_detect(self, channel: int) -> None:
        self._detectors.pop(self._bcm(channel), None)

    def event_detected(self, channel: int) -> bool:
        detector = self._detectors.get(self._bcm(channel))
        if detector is None or not detector.detected:
            return False
        detector.detected = False
        return True

    def cleanup(self, channel: int | None = None) -> None:
        """Return the channel (or every channel, and the numbering mode) to an input without pull."""
        pins = list(self._function) if channel is None else [self._bcm(channel)]
        for bcm in pins:
            self._detectors.pop(bcm, None)
            self._function.pop(bcm, None)
            self._pull.pop(bcm, None)
        if channel is None:
            self._mode = None
