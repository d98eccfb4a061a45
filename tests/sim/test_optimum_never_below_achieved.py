"""Issue 16, finding 3: the optimum is never below what was achieved, on every reference scenario and storm.

solar-3's optimum counted only the shared LiFePO4, while its run goes on on each Pi's own HAT after the
LiFePO4's low-voltage disconnect: its long night read 120.3 % of the "optimum" in `piclusterctl simulate`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from piclusterd.core.planner import physical_optimum
from piclusterd.sim.simulate_command import load_simulation, render_summary
from piclusterd.sim.simulator import Policy, SimSettings, optimum_runtime_s, simulate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
FILES = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
HOUR = 3600.0


def test_every_reference_scenario_and_storm_is_here() -> None:
    clusters, outages = ("clinic-5", "district-10", "solar-3"), ("blip", "brownout", "long-night", "storm")
    expected = sorted(f"{c}-{o}" for c in clusters for o in outages)
    assert expected == FILES


@pytest.mark.parametrize("stop_work", [False, True], ids=["leader-today", "stop-work"])
@pytest.mark.parametrize("name", FILES)
def test_the_optimum_is_never_below_what_was_achieved(name: str, stop_work: bool) -> None:
    """Every failure of every run (piclusterd's and no shedding's, with and without stops of non-critical work);
    and `piclusterctl simulate` says "outlasted the outage" where the battery did, else a share of at most 100 %."""
    loaded = load_simulation(SCENARIOS / f"{name}.toml")
    assert loaded.outage is not None
    settings = dataclasses.replace(loaded.settings, stop_work=stop_work)
    results = [simulate(loaded.scenario, loaded.outage, policy, settings) for policy in Policy]
    for result in results:
        for failure in result.summary.outages:
            assert failure.optimum_runtime_s >= failure.runtime_s - 1e-6, (result.summary.policy, failure)
    (line,) = [x for x in render_summary(results, loaded.outage).splitlines() if x.startswith("  vs physical optimum")]
    cells = re.findall(r"outlasted the outage|[\d.]+ %", line)
    assert len(cells) == len(results), line
    for result, cell in zip(results, cells, strict=True):
        main = result.summary.main_outage
        assert main is not None
        if main.survived:
            assert cell == "outlasted the outage"
        else:
            assert float(cell.removesuffix(" %")) <= 100.0, line


def test_solar_3s_long_night_is_a_share_of_an_optimum_that_counts_the_hats() -> None:
    """It read 120.3 % (8 h 15 min of a 6 h 51 min "optimum"); the optimum now runs s1 and s3 on their HATs
    after the LiFePO4, as the run does: 8 h 37 min, and the run reaches over 95 % of it."""
    loaded = load_simulation(SCENARIOS / "solar-3-long-night.toml")
    assert loaded.outage is not None
    result = simulate(loaded.scenario, loaded.outage, Policy.PICLUSTERD, loaded.settings)
    main = result.summary.main_outage
    assert main is not None and not main.survived
    assert 0.95 <= main.runtime_s / main.optimum_runtime_s <= 1.0, main


def test_a_run_without_own_batteries_gets_an_optimum_without_them() -> None:
    """The demo's UPS is solar-3's shared battery only (no HATs), and it passes no own charges: its optimum
    stays the shared battery's, as its run is; the simulator's, which runs the HATs, counts them."""
    scenario = load_simulation(SCENARIOS / "solar-3-long-night.toml").scenario
    shared_only = physical_optimum(
        scenario.view, scenario.battery, scenario.policy, hardware=scenario.hardware, charge_pct=50.0
    )
    assert optimum_runtime_s(scenario, scenario.policy, 50.0, SimSettings()) == shared_only.runtime_s
    charged = {"s1": 50.0, "s2": 50.0, "s3": 50.0}
    with_hats = optimum_runtime_s(scenario, scenario.policy, 50.0, SimSettings(), charged)
    assert with_hats > shared_only.runtime_s + HOUR
