"""HatPowerSource end to end through the emulators: discharge curves, power loss, rejections, profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.core.errors import ChipNotFound, GpioUnavailable, ProfileInvalid, SourceUnavailable
from piclusterd.core.reading import MainsState, UpsFlag, UpsReading
from piclusterd.drivers.charge_curve import Chemistry, charge_from_voltage
from piclusterd.drivers.gpio_power import Level, PowerLossPin, Pull
from piclusterd.drivers.hat import PROFILES, Chip, CurrentSign, HatPowerSource, HatProfile, generic_profile, get_profile
from piclusterd.drivers.ina219 import Register as InaRegister
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.emulated_hat import EmulatedHat
from piclusterd.testing.i2c_emulators import EmulatedSMBus, Ina219Emulator


def discharge_to_empty(hat: EmulatedHat, step_s: float = 60.0, rate_pct_per_h: float = 30.0) -> list[UpsReading]:
    readings = []
    for _ in range(1000):
        readings.append(hat.reading())
        if readings[-1].charge_pct == 0:
            break
        hat.discharge(step_s, rate_pct_per_h=rate_pct_per_h)
    return readings


def charges_of(readings: list[UpsReading]) -> list[float]:
    charges = [r.charge_pct for r in readings]
    assert all(c is not None for c in charges)
    return [c for c in charges if c is not None]


# --- a power cut and a full discharge, per board ---


def test_x1200_full_discharge_after_a_power_cut(x1200: EmulatedHat) -> None:
    assert x1200.reading().flags == {UpsFlag.OL}
    x1200.lose_mains()
    x1200.settle()
    readings = discharge_to_empty(x1200)

    charges = charges_of(readings)
    assert charges == sorted(charges, reverse=True) and charges[0] == 100 and charges[-1] == 0
    assert all(r.mains is MainsState.LOST and UpsFlag.DISCHRG in r.flags for r in readings)
    volts = [r.battery_voltage for r in readings if r.battery_voltage is not None]
    assert volts == sorted(volts, reverse=True)

    low = [UpsFlag.LB in r.flags for r in readings]
    first_low = low.index(True)
    assert all(low[first_low:]) and not any(low[:first_low])  # LB appears once and stays
    assert charges[first_low] < 10 <= charges[first_low - 1]

    assert readings[0].runtime_s is None  # the gauge has not seen a discharge yet (CRATE 0)
    runtimes = [r.runtime_s for r in readings[1:-1]]
    assert all(t is not None for t in runtimes)
    assert runtimes[0] == pytest.approx(99.5 / 30 * 3600, rel=0.01)  # CRATE: 99.5 % left at 30 %/h


def test_waveshare_full_discharge_inferred_from_the_current(waveshare_b: EmulatedHat) -> None:
    hat = waveshare_b
    first = hat.reading()
    assert first.flags == {UpsFlag.OL} and first.realpower_w is None and first.runtime_s is None
    hat.lose_mains()  # no pin: the battery current turns to discharging
    assert UpsFlag.OB in hat.reading().flags  # no debounce on the current
    readings = discharge_to_empty(hat, step_s=120.0)
    charges = charges_of(readings)
    assert charges == sorted(charges, reverse=True) and charges[-1] == 0
    assert all(UpsFlag.OB in r.flags for r in readings)
    assert any(UpsFlag.LB in r.flags for r in readings)
    volts, watts, charge = readings[0].battery_voltage, readings[0].realpower_w, charges[0]
    assert volts is not None and watts is not None
    assert watts == pytest.approx(volts * hat.load_a, rel=0.01)  # the INA219's power while discharging
    assert readings[0].runtime_s == pytest.approx(18.0 * charge / 100 / watts * 3600, rel=0.01)  # 18 Wh profile


def test_waveshare_charging_reads_ol_chrg(waveshare_b: EmulatedHat) -> None:
    waveshare_b.monitor.drive_charge(amps=0.8, seconds=60)
    assert waveshare_b.reading().flags == {UpsFlag.OL, UpsFlag.CHRG}


def test_waveshare_small_discharge_under_the_threshold_still_reads_ol(waveshare_b: EmulatedHat) -> None:
    waveshare_b.monitor.drive_discharge(amps=0.05, seconds=1)  # threshold is 0.1 A for the (B)
    assert waveshare_b.reading().mains is MainsState.PRESENT


# --- the pin ---


@pytest.mark.parametrize(("key", "lost_level"), [("geekworm-x728", 1), ("geekworm-x1200", 0)])
def test_ob_appears_on_the_pin_edge_with_the_board_polarity(key: str, lost_level: int) -> None:
    hat = EmulatedHat(get_profile(key))
    assert hat.reading().flags == {UpsFlag.OL}
    hat.lose_mains()
    assert hat.gpio.level(6) == lost_level  # X728 HIGH = AC lost; X1200 LOW = supply failed
    assert UpsFlag.OB not in hat.reading().flags  # debouncing
    hat.settle()
    assert {UpsFlag.OB, UpsFlag.DISCHRG} <= hat.reading().flags
    hat.restore_mains()
    hat.settle()
    assert hat.reading().flags == {UpsFlag.OL}


def test_x728_level_that_means_ok_on_an_x1200_means_lost_on_an_x728() -> None:
    x728, x1200 = EmulatedHat(get_profile("geekworm-x728")), EmulatedHat(get_profile("geekworm-x1200"))
    x728.gpio.drive_high(6)
    x1200.gpio.drive_high(6)
    x728.settle()
    x1200.settle()
    assert x728.reading().mains is MainsState.LOST
    assert x1200.reading().mains is MainsState.PRESENT


def test_floating_x1200_pin_with_pull_up_reads_ok(x1200: EmulatedHat) -> None:
    x1200.gpio.release(6)
    x1200.settle()
    assert x1200.gpio.level(6) == 1
    assert x1200.reading().flags == {UpsFlag.OL}


def test_a_pin_profile_without_a_gpio_module_names_the_package() -> None:
    bus = EmulatedSMBus(1)
    with pytest.raises(GpioUnavailable, match="python3-libgpiod"):
        HatPowerSource(get_profile("geekworm-x1200"), bus, FakeClock())


# --- values ---


def test_runtime_from_crate_while_discharging(x1200: EmulatedHat) -> None:
    x1200.gauge.set_soc(60.0)
    x1200.gauge.set_crate(-20.0)
    assert x1200.reading().runtime_s is None  # on mains: no runtime
    x1200.lose_mains()
    x1200.settle()
    assert x1200.reading().runtime_s == pytest.approx(60 / 20 * 3600, rel=0.01)


def test_crate_below_the_noise_floor_gives_no_runtime(x1200: EmulatedHat) -> None:
    x1200.gauge.set_crate(-0.4)
    x1200.lose_mains()
    x1200.settle()
    assert x1200.reading().runtime_s is None


def test_charging_crate_on_mains_reads_chrg(x1200: EmulatedHat) -> None:
    x1200.gauge.drive_charge(rate_pct_per_h=20.0, seconds=1)
    assert x1200.reading().flags == {UpsFlag.OL, UpsFlag.CHRG}


def test_a_max17040_board_has_no_runtime(x728: EmulatedHat) -> None:
    x728.lose_mains()
    x728.settle()
    x728.discharge(600)
    reading = x728.reading()
    assert reading.mains is MainsState.LOST and reading.runtime_s is None


def test_soc_far_over_100_is_rejected_and_the_voltage_estimate_used(x728: EmulatedHat) -> None:
    x728.gauge.set_voltage(3.85)  # about 60 % on the Li-ion curve
    x728.gauge.set_soc(120.0)  # a board reporting double SOC
    parsed = x728.source.poll()
    assert parsed.reading is not None
    assert [r.variable for r in parsed.rejections] == ["battery.charge"]
    assert parsed.reading.charge_pct == pytest.approx(charge_from_voltage(Chemistry.LI_ION, 1, 3.85), abs=0.5)


def test_soc_just_over_100_after_a_full_charge_reads_100(x1200: EmulatedHat) -> None:
    x1200.gauge.set_voltage(4.2)
    x1200.gauge.set_soc(100.4)
    parsed = x1200.source.poll()
    assert parsed.reading is not None and parsed.reading.charge_pct == 100.0
    assert [r.variable for r in parsed.rejections] == ["battery.charge"]  # still shown to the operator


def test_implausible_battery_voltage_is_refused_and_the_rest_kept(x1200: EmulatedHat) -> None:
    x1200.gauge.set_voltage(0.4)
    parsed = x1200.source.poll()
    assert parsed.reading is not None and parsed.reading.battery_voltage is None
    assert parsed.reading.charge_pct == 100.0
    assert [r.variable for r in parsed.rejections] == ["battery.voltage"]


def test_ina219_overflow_refuses_current_and_power_and_keeps_the_voltage(waveshare_b: EmulatedHat) -> None:
    waveshare_b.monitor.set_current(-4.0)  # beyond the shunt range
    parsed = waveshare_b.source.poll()
    assert parsed.reading is not None and parsed.reading.battery_voltage is not None
    assert parsed.reading.realpower_w is None and parsed.reading.mains is MainsState.LOST
    assert [r.variable for r in parsed.rejections] == ["ina219.current"]
    assert "OVF" in parsed.rejections[0].reason


def test_ina219_brown_out_mid_discharge_is_recalibrated_and_the_reading_unchanged(waveshare_b: EmulatedHat) -> None:
    hat = waveshare_b
    hat.lose_mains()
    before = hat.reading()
    hat.monitor.brown_out()
    after = hat.reading()
    assert hat.monitor.calibration == 4096
    assert after.flags == before.flags
    assert before.realpower_w is not None
    assert after.realpower_w == pytest.approx(before.realpower_w, rel=0.01)
    writes = hat.bus.writes_to(hat.profile.address, InaRegister.CALIBRATION)
    assert len(writes) == 2 and all(w == bytes([0x10, 0x00]) for w in writes)


def test_gauge_brown_out_keeps_the_source_working(x1200: EmulatedHat) -> None:
    x1200.gauge.set_soc(55.0)
    x1200.gauge.brown_out()  # SOC re-estimated from the voltage
    assert x1200.reading().charge_pct == pytest.approx(
        charge_from_voltage(Chemistry.LI_ION, 1, x1200.gauge.volts), abs=0.5
    )


def test_a_vanished_chip_raises_chip_not_found_naming_i2cdetect(x1200: EmulatedHat) -> None:
    x1200.bus.detach(0x36)
    with pytest.raises(ChipNotFound, match=r"i2cdetect -y 1"):
        x1200.source.poll()


def test_poll_after_close_is_source_unavailable(x1200: EmulatedHat) -> None:
    x1200.source.close()
    with pytest.raises(SourceUnavailable, match="closed"):
        x1200.source.poll()
    assert x1200.bus.closed and not x1200.gpio.is_set_up(6)


# --- profiles ---


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_every_shipped_profile_builds_a_working_source(key: str) -> None:
    hat = EmulatedHat(get_profile(key))
    profile = hat.profile
    assert hat.source.name == f"hat:{key}@i2c-1:0x{profile.address:02x}"
    reading = hat.reading()
    assert reading.mains is MainsState.PRESENT and reading.charge_pct == pytest.approx(100, abs=0.5)
    assert profile.capacity_wh is not None and profile.cells >= 1


def test_x1200_source_name() -> None:
    assert EmulatedHat(get_profile("geekworm-x1200")).source.name == "hat:geekworm-x1200@i2c-1:0x36"


def test_unknown_profile_suggests_the_nearest() -> None:
    with pytest.raises(ProfileInvalid, match="did you mean 'geekworm-x1200'"):
        get_profile("geekwrm-x1200")


def test_a_profile_that_cannot_tell_mains_loss_is_refused() -> None:
    with pytest.raises(ProfileInvalid, match="no way to tell that mains is lost"):
        HatProfile("pinless", "No pin", Chip.MAX17048, 0x36, Chemistry.LI_ION, 1, 10.0)


def test_a_two_cell_gauge_with_one_cell_is_refused() -> None:
    with pytest.raises(ProfileInvalid, match="2 cell"):
        HatProfile("x", "x", Chip.MAX17049, 0x36, Chemistry.LI_ION, 1, 10.0, PowerLossPin(6, Level.LOW, Pull.UP))


def test_profile_with_methods_change_one_thing() -> None:
    x1200 = get_profile("geekworm-x1200")
    assert x1200.with_capacity_wh(43.2).capacity_wh == 43.2
    assert x1200.with_low_battery_pct(20).low_battery_pct == 20
    assert x1200.with_address(0x37).address == 0x37 and x1200.address == 0x36


def test_generic_profile_from_config_keys() -> None:
    profile = generic_profile(
        chip="ina219",
        address=0x41,
        cells=4,
        chemistry="lifepo4",
        capacity_wh=64.0,
        discharge_sign="positive",
        shunt_ohm=0.05,
    )
    assert profile.key == "generic" and profile.discharge_sign is CurrentSign.POSITIVE
    assert profile.ina219_calibration.register_value == 8192
    hat = EmulatedHat(profile)
    hat.lose_mains()
    reading = hat.reading()
    assert hat.monitor.current_a > 0 and reading.mains is MainsState.LOST  # positive = discharging here
    assert hat.source.name == "hat:generic@i2c-1:0x41"


def test_generic_profile_with_a_pin() -> None:
    profile = generic_profile(
        chip="max17048", address=0x36, power_loss_pin=17, power_lost_level="low", power_loss_pull="up"
    )
    assert profile.power_loss == PowerLossPin(17, Level.LOW, Pull.UP)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"chip": "max9999", "address": 0x36}, 'chip = .max9999.: expected one of "max17040"'),
        ({"chip": "ina219", "address": 0x42, "chemistry": "nimh"}, "chemistry"),
        ({"chip": "max17048", "address": 0x36, "power_loss_pin": 6, "power_lost_level": "up"}, '"high" or "low"'),
        ({"chip": "max17048", "address": 0x36, "power_loss_pin": 6, "power_loss_pull": "pullup"}, "power_loss_pull"),
        ({"chip": "max17048", "address": 0x36, "power_loss_pin": 33}, "40-pin header"),
        ({"chip": "ina219", "address": 0x42}, "no way to tell"),
        ({"chip": "ina219", "address": 0x36, "discharge_sign": "negative"}, "0x40-0x4F"),
        ({"chip": "max17048", "address": 0x90, "power_loss_pin": 6}, "outside 0x03-0x77"),
        ({"chip": "ina219", "address": 0x42, "discharge_sign": "negative", "discharge_threshold_a": 0}, "positive"),
    ],
)
def test_generic_profile_errors_name_the_key(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileInvalid, match=message):
        generic_profile(**keys)  # type: ignore[arg-type]


def test_ina219_source_without_pin_needs_no_gpio() -> None:
    bus = EmulatedSMBus(1)
    bus.attach(0x43, Ina219Emulator(shunt_ohm=0.01, cells=1))  # the (C)'s real shunt, as in Waveshare's INA219.py
    source = HatPowerSource(get_profile("waveshare-ups-hat-c"), bus, FakeClock())
    parsed = source.poll()
    assert parsed.reading is not None and parsed.reading.charge_pct == pytest.approx(100)


@pytest.mark.parametrize("load_a", [0.30, 0.45])
def test_waveshare_c_sees_a_pi_zero_discharge(load_a: float) -> None:
    hat = EmulatedHat(get_profile("waveshare-ups-hat-c"), load_a=load_a)
    assert hat.monitor.shunt_ohm == 0.01
    assert hat.reading().mains is MainsState.PRESENT
    hat.lose_mains()
    reading = hat.reading()
    assert reading.mains is MainsState.LOST and reading.battery_voltage is not None
    assert reading.realpower_w == pytest.approx(reading.battery_voltage * load_a, rel=0.02)


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_every_shipped_profile_names_the_vendor_source_it_was_checked_against(key: str) -> None:
    assert len(PROFILES[key].source) > 20


def test_every_shipped_profile_is_documented_for_operators() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "hardware-profiles.md").read_text(encoding="utf-8")
    assert [key for key in PROFILES if f"| `{key}` |" not in doc] == []


def test_a_pin_that_cannot_be_read_is_source_unavailable_not_a_crash(x1200: EmulatedHat) -> None:
    x1200.gpio.cleanup(6)  # someone else released our pin
    with pytest.raises(SourceUnavailable, match="GPIO6"):
        x1200.source.poll()
