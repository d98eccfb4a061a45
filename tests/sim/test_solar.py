"""Solar charging into the shared battery (solar-3's [solar]): a half sine over the day, exact energy."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.core.errors import ConfigError
from piclusterd.core.power_draw import SolarProfile
from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import HOUR, Outage, Policy, SimSettings, simulate

ROOT = Path(__file__).resolve().parents[2]


def test_a_clear_day_gives_the_half_sine_integral() -> None:
    sun = SolarProfile(100.0, 6 * HOUR, 18 * HOUR)
    assert sun.energy_wh(0, 24 * HOUR) == pytest.approx(100 * 2 * 12 / math.pi)  # 764 Wh
    assert sun.energy_wh(6 * HOUR, 12 * HOUR) == pytest.approx(sun.energy_wh(12 * HOUR, 18 * HOUR))
    assert sun.energy_wh(20 * HOUR, 30 * HOUR) == 0.0  # the night, across midnight
    assert sun.energy_wh(24 * HOUR + 6 * HOUR, 24 * HOUR + 18 * HOUR) == pytest.approx(sun.energy_wh(0, 24 * HOUR))


def test_sunrise_after_sunset_is_refused() -> None:
    with pytest.raises(ConfigError, match="sunrise"):
        SolarProfile(100.0, 18 * HOUR, 6 * HOUR)


def test_the_sun_puts_back_exactly_its_energy_during_an_outage() -> None:
    # solar-3 from 19:50, mains off from 20:00 to 10:00 the next morning, half charged, nobody shedding.
    scenario = load_scenario(ROOT / "examples" / "clusters" / "solar-3.json")
    assert scenario.solar is not None
    outage = Outage("night-and-morning", ((600.0, 600.0 + 14 * HOUR),), start_clock_s=(19 * 60 + 50) * 60.0)
    settings = SimSettings(initial_charge_pct=50.0)
    sunny = simulate(scenario, outage, Policy.NO_SHEDDING, settings)
    dark = simulate(replace(scenario, solar=None), outage, Policy.NO_SHEDDING, settings)
    # Energy through the battery is the integral of its net power, sun included.
    rows = sunny.timeline
    ends = [row.t_s for row in rows[1:]] + [outage.stop_s]
    integral = sum(r.battery_w * (e - r.t_s) for r, e in zip(rows, ends, strict=True)) / HOUR
    last = rows[-1]
    final_wh = last.energy_wh - last.battery_w * (outage.stop_s - last.t_s) / HOUR
    assert rows[0].energy_wh - final_wh == pytest.approx(integral, abs=1e-6)
    # The morning sun (06:00-10:00) recharges the LiFePO4 while mains is still off.
    sun = scenario.solar.energy_wh(24 * HOUR + 6 * HOUR, 24 * HOUR + 10 * HOUR)
    assert sun > 100.0
    morning = [r for r in rows if 10 * HOUR + 600 <= r.t_s < 14 * HOUR + 600]
    assert any(r.battery_w < 0 and not r.mains for r in morning)
    # The cluster went down at night either way (no restart before mains); when mains returns the battery
    # holds exactly the morning's solar energy more (it never reached full).
    left = sunny.summary.outages[0].energy_left_wh - dark.summary.outages[0].energy_left_wh
    assert left == pytest.approx(sun, rel=1e-9)


def figures_with(tmp_path: Path, extra: str) -> Path:
    """solar-3's snapshot with its figures plus ``extra``, as files a user would write."""
    clusters = ROOT / "examples" / "clusters"
    (tmp_path / "solar-3.json").write_text((clusters / "solar-3.json").read_text())
    text = (clusters / "solar-3.toml").read_text()
    (tmp_path / "solar-3.toml").write_text(text + extra)
    return tmp_path / "solar-3.json"


def test_a_bad_sunrise_names_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    snapshot = figures_with(tmp_path, "")
    figures = snapshot.with_suffix(".toml")
    figures.write_text(figures.read_text().replace('sunrise = "06:00"', 'sunrise = "dawn"'))
    with pytest.raises(ConfigError) as error:
        load_scenario(snapshot)
    assert "solar.sunrise" in str(error.value) and "HH:MM" in str(error.value) and str(figures) in str(error.value)


def test_a_node_battery_without_capacity_is_refused_clearly(tmp_path: Path) -> None:
    snapshot = figures_with(tmp_path, "")
    figures = snapshot.with_suffix(".toml")
    figures.write_text(figures.read_text().replace("capacity_wh = 21.6\n", ""))
    with pytest.raises(ConfigError, match=r"node_battery\.capacity_wh"):
        load_scenario(snapshot)


def test_a_bad_start_time_in_a_simulation_file_is_a_clear_error(tmp_path: Path) -> None:
    from piclusterd.sim.simulate_command import load_simulation

    scenario = tmp_path / "sim.toml"
    clusters = ROOT / "examples" / "clusters"
    scenario.write_text(
        f'[cluster]\nsnapshot = "{clusters / "solar-3.json"}"\n[outage]\nprofile = "blip"\n'
        '[simulate]\nstart = "25:00"\n'
    )
    with pytest.raises(ConfigError) as error:
        load_simulation(scenario)
    assert "simulate.start" in str(error.value) and "HH:MM" in str(error.value)
    scenario.write_text(scenario.read_text().replace("25:00", "06:30"))
    assert load_simulation(scenario).settings.start_clock_s == 6.5 * HOUR
