"""The libgpiod backend at its API boundary: stand-ins with the exact shapes of libgpiod's 1.6 and 2.x bindings.

Bookworm's kernel has no gpio-sim, so the kernel side cannot be exercised here; the shapes below follow libgpiod's
``bindings/python`` (v1.6.x ``gpiodmodule.c``: ``Chip(descr, how)``, ``chip.label()``, ``get_line``,
``line.request(consumer, type, flags, default_val)``; 2.x: ``Chip(path)``, ``get_info().label``,
``request_lines(config, consumer)``, ``LineSettings``, ``gpiod.line.{Direction, Bias, Value}``). Where Debian's
real 1.6 module (python3-libgpiod) and PyPI's 2.x binding are checked too: both are installed by .ci/run.
"""

from __future__ import annotations

import enum
import errno
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from piclusterd.core.errors import GpioUnavailable
from piclusterd.drivers.gpio_libgpiod import HEADER_CHIP_LABELS, LibgpiodGpio, gpiod_api_version
from piclusterd.drivers.gpio_power import (
    Level,
    PowerCutOutput,
    PowerCutPin,
    PowerLossInput,
    Pull,
    open_gpio,
)
from piclusterd.drivers.hat import get_profile
from piclusterd.sim.fake_clock import FakeClock


@dataclass
class FakeLineState:
    """What the kernel knows about one line: the level outside, and who asked for what."""

    outside: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    written: list[int] = field(default_factory=list)
    released: int = 0


# Pi 5 on a kernel before 6.6.45: the header is gpiochip4, after four brcmstb chips.
PI5_OLD_KERNEL = {f"/dev/gpiochip{n}": f"gpio-brcmstb@107d5{n}" for n in range(4)} | {"/dev/gpiochip4": "pinctrl-rp1"}
PI5_NEW_KERNEL = {"/dev/gpiochip0": "pinctrl-rp1", "/dev/gpiochip10": "gpio-brcmstb@107d508500"}
PI4 = {"/dev/gpiochip0": "pinctrl-bcm2711", "/dev/gpiochip1": "raspberrypi-exp-gpio"}


def _missing(path: str) -> OSError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def fake_gpiod_v1(chips: dict[str, str], lines: dict[int, FakeLineState]) -> types.ModuleType:
    """libgpiod 1.6's module shape (the C extension)."""
    module = types.ModuleType("gpiod")
    module.LINE_REQ_DIR_AS_IS, module.LINE_REQ_DIR_IN, module.LINE_REQ_DIR_OUT = 1, 2, 3  # type: ignore[attr-defined]
    module.LINE_REQ_FLAG_BIAS_DISABLE = 8  # type: ignore[attr-defined]
    module.LINE_REQ_FLAG_BIAS_PULL_DOWN = 16  # type: ignore[attr-defined]
    module.LINE_REQ_FLAG_BIAS_PULL_UP = 32  # type: ignore[attr-defined]

    class Line:
        def __init__(self, offset: int) -> None:
            self._state = lines.setdefault(offset, FakeLineState())
            self._out: int | None = None

        def request(self, consumer: str, type: int = 1, flags: int = 0, default_val: int = 0) -> None:
            request = {"consumer": consumer, "type": type, "flags": flags, "default_val": default_val}
            self._state.requests.append(request)
            if type == module.LINE_REQ_DIR_OUT:  # type: ignore[attr-defined]
                self._out = default_val
                self._state.written.append(default_val)

        def get_value(self) -> int:
            return self._state.outside if self._out is None else self._out

        def set_value(self, value: int) -> None:
            assert isinstance(value, int)
            self._out = value
            self._state.written.append(value)

        def release(self) -> None:
            self._state.released += 1

    class Chip:
        OPEN_LOOKUP, OPEN_BY_PATH, OPEN_BY_NAME, OPEN_BY_LABEL, OPEN_BY_NUMBER = 1, 2, 3, 4, 5

        def __init__(self, descr: str, how: int = 1) -> None:
            assert how == Chip.OPEN_BY_PATH
            if descr not in chips:
                raise _missing(descr)
            self._label = chips[descr]
            self.closed = False

        def label(self) -> str:
            return self._label

        def get_line(self, offset: int) -> Line:
            return Line(offset)

        def close(self) -> None:
            self.closed = True

    module.Chip = Chip  # type: ignore[attr-defined]
    module.ChipIter = object  # type: ignore[attr-defined]
    return module


def fake_gpiod_v2(chips: dict[str, str], lines: dict[int, FakeLineState]) -> types.ModuleType:
    """libgpiod 2.x's package shape (pure Python over the C core)."""
    module = types.ModuleType("gpiod")
    line = types.ModuleType("gpiod.line")

    class Direction(enum.Enum):
        AS_IS, INPUT, OUTPUT = 1, 2, 3

    class Bias(enum.Enum):
        AS_IS, UNKNOWN, DISABLED, PULL_UP, PULL_DOWN = 1, 2, 3, 4, 5

    class Value(enum.Enum):
        INACTIVE, ACTIVE = 0, 1

    line.Direction, line.Bias, line.Value = Direction, Bias, Value  # type: ignore[attr-defined]

    @dataclass
    class LineSettings:
        direction: Direction = Direction.AS_IS
        bias: Bias = Bias.AS_IS
        active_low: bool = False
        output_value: Value = Value.INACTIVE

    @dataclass
    class ChipInfo:
        name: str
        label: str
        num_lines: int

    class LineRequest:
        def __init__(self, config: dict[int, LineSettings]) -> None:
            self._settings = config
            self._out = {o: s.output_value for o, s in config.items() if s.direction is Direction.OUTPUT}
            for offset, value in self._out.items():
                lines[offset].written.append(value.value)

        def get_value(self, offset: int) -> Value:
            if offset in self._out:
                return self._out[offset]
            return Value(lines[offset].outside)

        def set_value(self, offset: int, value: Value) -> None:
            assert isinstance(value, Value)
            self._out[offset] = value
            lines[offset].written.append(value.value)

        def release(self) -> None:
            for offset in self._settings:
                lines[offset].released += 1

    class Chip:
        def __init__(self, path: str) -> None:
            if path not in chips:
                raise _missing(path)
            self._info = ChipInfo(path.rsplit("/", 1)[-1], chips[path], 54)

        def get_info(self) -> ChipInfo:
            return self._info

        def request_lines(
            self, config: dict[int, LineSettings], consumer: str | None = None, event_buffer_size: int | None = None
        ) -> LineRequest:
            for offset, settings in config.items():
                lines.setdefault(offset, FakeLineState()).requests.append({"consumer": consumer, "settings": settings})
            return LineRequest(config)

        def close(self) -> None:
            pass

    module.line = line  # type: ignore[attr-defined]
    module.LineSettings = LineSettings  # type: ignore[attr-defined]
    module.Chip = Chip  # type: ignore[attr-defined]
    module.is_gpiochip_device = lambda path: path in chips  # type: ignore[attr-defined]
    return module


FAKES = [pytest.param(fake_gpiod_v1, id="libgpiod-1.6-bookworm"), pytest.param(fake_gpiod_v2, id="libgpiod-2-trixie")]


@pytest.mark.parametrize("fake", FAKES)
@pytest.mark.parametrize(
    ("chips", "path", "label"),
    [
        (PI5_OLD_KERNEL, "/dev/gpiochip4", "pinctrl-rp1"),
        (PI5_NEW_KERNEL, "/dev/gpiochip0", "pinctrl-rp1"),
        (PI4, "/dev/gpiochip0", "pinctrl-bcm2711"),
        ({"/dev/gpiochip0": "pinctrl-bcm2835"}, "/dev/gpiochip0", "pinctrl-bcm2835"),
    ],
)
def test_the_header_chip_is_found_by_its_label_not_its_number(
    fake: Any, chips: dict[str, str], path: str, label: str
) -> None:
    gpio = LibgpiodGpio(fake(chips, {}), chip_paths=lambda: sorted(chips))
    assert (gpio.chip_path, gpio.chip_label) == (path, label)


@pytest.mark.parametrize("fake", FAKES)
def test_no_header_chip_names_what_was_found_and_the_sandbox(fake: Any) -> None:
    chips = {"/dev/gpiochip0": "gpio-mockup-A"}
    with pytest.raises(GpioUnavailable, match=r"pinctrl-rp1.*gpiochip0 \[gpio-mockup-A\].*DeviceAllow=char-gpiochip"):
        LibgpiodGpio(fake(chips, {}), chip_paths=lambda: [*chips, "/dev/gpiochip9"])


@pytest.mark.parametrize("fake", FAKES)
@pytest.mark.parametrize(("key", "lost_level"), [("geekworm-x1200", 0), ("geekworm-x728", 1)])
def test_the_power_loss_pin_reads_through_libgpiod_with_its_pull(fake: Any, key: str, lost_level: int) -> None:
    lines: dict[int, FakeLineState] = {}
    module = fake(PI5_NEW_KERNEL, lines)
    gpio = LibgpiodGpio(module, chip_paths=lambda: sorted(PI5_NEW_KERNEL))
    spec = get_profile(key).power_loss
    assert spec is not None
    clock = FakeClock()
    pin = PowerLossInput(gpio, spec, clock, debounce_s=0.5)
    assert pin.edge_detection_error is not None  # polled, debounced on the clock
    lines[6].outside = 1 - lost_level
    assert not pin.is_mains_lost()
    lines[6].outside = lost_level
    assert not pin.is_mains_lost()  # debouncing
    clock.advance(0.5)
    assert pin.is_mains_lost()
    request = lines[6].requests[0]
    assert request["consumer"] == "piclusterd"
    if module.__dict__.get("LINE_REQ_DIR_IN"):
        pull_flag = {Pull.UP: 32, Pull.DOWN: 16}[spec.pull]
        assert (request["type"], request["flags"]) == (module.LINE_REQ_DIR_IN, pull_flag)
    else:
        settings = request["settings"]
        assert settings.direction is module.line.Direction.INPUT
        assert settings.bias is {Pull.UP: module.line.Bias.PULL_UP, Pull.DOWN: module.line.Bias.PULL_DOWN}[spec.pull]
    pin.close()
    assert lines[6].released == 1


@pytest.mark.parametrize("fake", FAKES)
def test_the_x728_power_cut_pulses_high_then_low_through_libgpiod(fake: Any) -> None:
    lines: dict[int, FakeLineState] = {}
    gpio = LibgpiodGpio(fake(PI4, lines), chip_paths=lambda: sorted(PI4))
    spec = get_profile("geekworm-x728").power_cut
    assert spec == PowerCutPin(26, Level.HIGH, 3.5)
    slept: list[float] = []
    cut = PowerCutOutput(gpio, spec)
    cut.cut(sleep=slept.append)
    cut.close()
    assert lines[26].written == [0, 1, 0] and slept == [3.5] and lines[26].released == 1


def test_open_gpio_prefers_libgpiod() -> None:
    module = fake_gpiod_v2(PI5_NEW_KERNEL, {})
    gpio = open_gpio(import_gpiod=lambda: module, chip_paths=lambda: sorted(PI5_NEW_KERNEL))
    assert isinstance(gpio, LibgpiodGpio) and gpio.api == 2


def test_without_any_gpio_module_the_hint_names_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)

    def no_gpiod() -> object:
        raise ImportError("No module named 'gpiod'")

    with pytest.raises(GpioUnavailable) as caught:
        open_gpio(import_gpiod=no_gpiod)
    assert "apt install python3-libgpiod" in str(caught.value)
    assert "rpi-lgpio" not in str(caught.value)


def test_a_module_of_neither_shape_is_not_taken_for_libgpiod() -> None:
    assert gpiod_api_version(types.ModuleType("gpiod")) == 0
    with pytest.raises(GpioUnavailable, match=r"neither the libgpiod 1\.x nor the 2\.x"):
        LibgpiodGpio(types.ModuleType("gpiod"), chip_paths=list)


DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def _debians_gpiod() -> types.ModuleType:
    """Debian's python3-libgpiod (the 1.6 API on bookworm), loaded from where apt put it: the venv cannot see it."""
    spec = importlib.machinery.PathFinder.find_spec("gpiod", [DEBIAN_DIST_PACKAGES])
    if spec is None or spec.loader is None:
        pytest.fail(f"Debian's gpiod is not in {DEBIAN_DIST_PACKAGES}: apt install python3-libgpiod (.ci/run does)")
    venvs = sys.modules.pop("gpiod", None)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        # A single-phase C extension puts itself in sys.modules: give the name back to the venv's gpiod.
        sys.modules.pop("gpiod", None)
        if venvs is not None:
            sys.modules["gpiod"] = venvs
    return module


def _pypis_gpiod() -> types.ModuleType:
    """PyPI's gpiod (the 2.x API, what trixie's python3-libgpiod speaks), from the venv's test extra."""
    try:
        return importlib.import_module("gpiod")
    except ImportError:
        pytest.fail("PyPI's gpiod is not in this venv: pip install -e '.[test]' (.ci/run does)")


def _assert_has_the_shape_used(gpiod: types.ModuleType, expected_api: int) -> None:
    api = gpiod_api_version(gpiod)
    assert api == expected_api
    if api == 1:
        for name in ("LINE_REQ_DIR_IN", "LINE_REQ_DIR_OUT", "LINE_REQ_FLAG_BIAS_PULL_UP", "LINE_REQ_FLAG_BIAS_DISABLE"):
            assert isinstance(getattr(gpiod, name), int)
        assert isinstance(gpiod.Chip.OPEN_BY_PATH, int)
        for method in ("label", "get_line", "close"):
            assert callable(getattr(gpiod.Chip, method))
        for method in ("request", "get_value", "set_value", "release"):
            assert callable(getattr(gpiod.Line, method))
    else:
        assert {"INPUT", "OUTPUT"} <= set(gpiod.line.Direction.__members__)
        assert {"PULL_UP", "PULL_DOWN", "DISABLED"} <= set(gpiod.line.Bias.__members__)
    with pytest.raises(GpioUnavailable, match=r"/nonexistent/gpiochip0"):
        LibgpiodGpio(gpiod, chip_paths=lambda: ["/nonexistent/gpiochip0"])


def test_debians_real_gpiod_module_has_the_shape_used() -> None:
    _assert_has_the_shape_used(_debians_gpiod(), expected_api=1)


def test_pypis_real_gpiod_2x_module_has_the_shape_used() -> None:
    _assert_has_the_shape_used(_pypis_gpiod(), expected_api=2)


def test_header_labels_are_the_kernel_drivers() -> None:
    assert HEADER_CHIP_LABELS == ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")


@pytest.mark.parametrize("fake", FAKES)
def test_an_x1200_source_starts_and_reads_on_a_pi5_through_libgpiod(fake: Any) -> None:
    from piclusterd.core.reading import MainsState, UpsFlag
    from piclusterd.drivers.hat import HatPowerSource
    from piclusterd.testing.i2c_emulators import EmulatedSMBus, Max1704xEmulator

    lines = {6: FakeLineState(outside=1)}  # X1200: GPIO6 high = supply OK
    gpio = LibgpiodGpio(fake(PI5_OLD_KERNEL, lines), chip_paths=lambda: sorted(PI5_OLD_KERNEL))
    bus = EmulatedSMBus(1)
    bus.attach(0x36, Max1704xEmulator(soc_pct=80.0))
    clock = FakeClock()
    source = HatPowerSource(get_profile("geekworm-x1200"), bus, clock, gpio=gpio, debounce_s=0.5)
    parsed = source.poll()
    assert parsed.reading is not None and parsed.reading.flags == {UpsFlag.OL}
    lines[6].outside = 0
    source.poll()
    clock.advance(0.5)
    parsed = source.poll()
    assert parsed.reading is not None and parsed.reading.mains is MainsState.LOST
    source.close()
    assert lines[6].released == 1
