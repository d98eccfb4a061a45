"""Power-loss input (polarity, pull, debounce) and power-cut output, on the GPIO emulator."""

from __future__ import annotations

import sys

import pytest

from piclusterd.core.errors import CapabilityMissing, GpioUnavailable, PinUnavailable
from piclusterd.drivers.gpio_power import (
    EDGE_BOUNCETIME_MS,
    Level,
    PowerCutOutput,
    PowerCutPin,
    PowerLossInput,
    PowerLossPin,
    Pull,
    import_gpio,
)
from piclusterd.drivers.hat import get_profile, open_power_cut
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.gpio_emulator import EmulatedGpio

X728 = PowerLossPin(6, Level.HIGH, Pull.DOWN)
X1200 = PowerLossPin(6, Level.LOW, Pull.UP)


def make(spec: PowerLossPin, debounce_s: float = 0.5) -> tuple[PowerLossInput, EmulatedGpio, FakeClock]:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    return PowerLossInput(gpio, spec, clock, debounce_s=debounce_s), gpio, clock


@pytest.mark.parametrize(
    ("spec", "driven", "lost"),
    [
        (X728, "high", True),  # X728: GPIO6 HIGH = AC lost
        (X728, "low", False),
        (X1200, "low", True),  # X1200: GPIO6 LOW = supply failed
        (X1200, "high", False),
    ],
    ids=["x728-high-lost", "x728-low-ok", "x1200-low-lost", "x1200-high-ok"],
)
def test_polarity_per_profile(spec: PowerLossPin, driven: str, lost: bool) -> None:
    pin, gpio, _ = make(spec)
    getattr(gpio, f"drive_{driven}")(6)
    assert pin.is_mains_lost() is lost


@pytest.mark.parametrize(("spec", "pull"), [(X728, EmulatedGpio.PUD_DOWN), (X1200, EmulatedGpio.PUD_UP)])
def test_a_floating_pin_reads_mains_present_with_the_profile_pull(spec: PowerLossPin, pull: int) -> None:
    pin, gpio, _ = make(spec)
    assert gpio.pull(6) == pull
    assert pin.is_mains_lost() is False


def test_the_pin_is_set_up_in_bcm_mode_with_edge_detection() -> None:
    pin, gpio, _ = make(X1200)
    assert gpio.getmode() == EmulatedGpio.BCM and gpio.is_set_up(6)
    assert pin.edge_detection_error is None
    gpio.drive_low(6)
    assert pin.edges == 1


def test_a_change_is_accepted_only_after_the_debounce_time() -> None:
    pin, gpio, clock = make(X1200, debounce_s=0.5)
    assert pin.is_mains_lost() is False
    gpio.drive_low(6)
    clock.advance(0.2)
    assert pin.is_mains_lost() is False
    clock.advance(0.3)
    assert pin.is_mains_lost() is True


def test_a_glitch_shorter_than_the_debounce_is_ignored() -> None:
    pin, gpio, clock = make(X1200, debounce_s=0.5)
    assert pin.is_mains_lost() is False
    gpio.drive_low(6)
    clock.advance(0.1)
    assert pin.is_mains_lost() is False
    gpio.drive_high(6)
    clock.advance(1.0)
    assert pin.is_mains_lost() is False


def test_bounces_restart_the_debounce_from_the_last_edge() -> None:
    pin, gpio, clock = make(X1200, debounce_s=0.5)
    pin.is_mains_lost()
    gpio.drive_low(6)
    clock.advance(0.4)
    gpio.drive_high(6)
    clock.advance(0.05)
    gpio.drive_low(6)  # the last bounce
    clock.advance(0.3)
    assert pin.is_mains_lost() is False  # 0.3 s since the last edge
    clock.advance(0.2)
    assert pin.is_mains_lost() is True


def test_edges_closer_than_the_bouncetime_are_dropped_by_the_library() -> None:
    pin, gpio, clock = make(X1200)
    gpio.drive_low(6)
    clock.advance(EDGE_BOUNCETIME_MS / 2000.0)
    gpio.drive_high(6)
    assert pin.edges == 1


def test_without_edge_detection_a_change_needs_two_polls_debounce_apart() -> None:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    gpio.break_edge_detection()
    pin = PowerLossInput(gpio, X1200, clock, debounce_s=0.5)
    assert pin.edge_detection_error == "Failed to add edge detection"
    assert pin.is_mains_lost() is False
    gpio.drive_low(6)
    assert pin.is_mains_lost() is False  # first seen now
    clock.advance(0.5)
    assert pin.is_mains_lost() is True


def test_the_first_read_is_accepted_at_once() -> None:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    gpio.drive_low(6)
    assert PowerLossInput(gpio, X1200, clock).is_mains_lost() is True


def test_zero_debounce_accepts_at_once() -> None:
    pin, gpio, _ = make(X728, debounce_s=0.0)
    pin.is_mains_lost()
    gpio.drive_high(6)
    assert pin.is_mains_lost() is True


def test_a_busy_pin_names_the_gpio_group_and_the_boot_config_line() -> None:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    gpio.claim(6, "x120x-pld.py")
    with pytest.raises(PinUnavailable) as caught:
        PowerLossInput(gpio, X1200, clock)
    message = str(caught.value)
    assert "GPIO6" in message and "gpio group" in message and "gpio=6=ip,pu" in message
    assert isinstance(caught.value, RuntimeError)


def test_board_numbering_set_elsewhere_is_refused() -> None:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    gpio.setmode(EmulatedGpio.BOARD)
    with pytest.raises(GpioUnavailable, match="BCM"):
        PowerLossInput(gpio, X1200, clock)


def test_close_releases_the_pin_and_is_idempotent() -> None:
    pin, gpio, _ = make(X1200)
    pin.close()
    pin.close()
    assert not gpio.is_set_up(6)
    with pytest.raises(GpioUnavailable, match="closed"):
        pin.is_mains_lost()


def test_boot_config_line_follows_the_pull() -> None:
    assert X1200.boot_config == "gpio=6=ip,pu"
    assert X728.boot_config == "gpio=6=ip,pd"


def test_pins_off_the_header_are_refused() -> None:
    with pytest.raises(ValueError, match="40-pin header"):
        PowerLossPin(40, Level.LOW, Pull.UP)


# --- power cut ---


def test_x728_power_cut_holds_gpio26_high_then_releases() -> None:
    clock = FakeClock()
    gpio = EmulatedGpio(clock)
    cut = open_power_cut(get_profile("geekworm-x728"), gpio)
    assert gpio.output_history(26) == [0]  # set up inactive: starting never cuts power
    cut.cut(sleep=clock.advance)
    assert gpio.output_history(26) == [0, 1, 0]
    high, low = gpio.outputs[1], gpio.outputs[2]
    assert high.at is not None and low.at is not None
    assert 3.0 <= low.at - high.at <= 4.0


def test_power_cut_releases_the_pin_even_if_sleep_is_interrupted() -> None:
    gpio = EmulatedGpio()
    cut = PowerCutOutput(gpio, PowerCutPin(26, Level.HIGH, 3.5))

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cut.cut(sleep=interrupted)
    assert gpio.output_history(26) == [0, 1, 0]


def test_active_low_power_cut() -> None:
    gpio = EmulatedGpio()
    cut = PowerCutOutput(gpio, PowerCutPin(13, Level.LOW, 1.0))
    cut.cut(sleep=lambda _s: None)
    assert gpio.output_history(13) == [1, 0, 1]


def test_a_hat_without_power_cut_says_so() -> None:
    with pytest.raises(CapabilityMissing, match="no power-cut pin"):
        open_power_cut(get_profile("geekworm-x1200"), EmulatedGpio())


def test_missing_gpio_library_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)  # makes `import RPi.GPIO` fail as if not installed
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    with pytest.raises(GpioUnavailable, match="python3-libgpiod"):
        import_gpio()
