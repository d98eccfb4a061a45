"""Stopped non-critical work in the simulator (issue 16 item 4): it draws nothing while stopped and comes back
with the restore."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from piclusterd.core.planner import GiveUpNoncritical, physical_optimum
from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import Outage, Policy, SimSettings, simulate

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"
HOUR = 3600.0
# One hour on battery from t=10 min, then mains for good: the restore follows 2 min after.
# The planner's stops carried out (the simulator's default, as the leader's scaler does).
STOPS = SimSettings(stop_work=True)
ONE_HOUR = Outage("one-hour", ((600.0, 600.0 + HOUR),), end_s=600.0 + HOUR + 1200.0)


def test_district_10_runs_at_the_optimum_load_and_its_work_comes_back_with_the_restore() -> None:
    scenario = load_scenario(CLUSTERS / "district-10.json")
    result = simulate(scenario, ONE_HOUR, Policy.PICLUSTERD, STOPS)
    optimum = physical_optimum(scenario.view, scenario.battery, scenario.policy, hardware=scenario.hardware)
    on_battery = [row for row in result.timeline if not row.mains]
    assert min(row.load_w for row in on_battery) == pytest.approx(optimum.load_w)
    first, last = result.timeline[0], result.timeline[-1]
    assert last.mains and last.nodes_powered == first.nodes_powered == 10
    assert last.load_w == pytest.approx(first.load_w)  # every stopped pod runs again where it ran


def test_without_stops_the_kept_nodes_carry_the_work_that_has_room() -> None:
    """Without the stops (the leader before its scaler; ``stop_work=False``) the same run lasts on more load."""
    scenario = load_scenario(CLUSTERS / "district-10.json")
    stopped = simulate(scenario, ONE_HOUR, Policy.PICLUSTERD, STOPS)
    kept = simulate(scenario, ONE_HOUR, Policy.PICLUSTERD, SimSettings(stop_work=False))
    low = min(r.load_w for r in stopped.timeline if not r.mains)
    assert min(r.load_w for r in kept.timeline if not r.mains) > low + 5.0  # 5.5 W: analytics, reports, PACS...


def test_never_gives_up_and_stops_nothing() -> None:
    scenario = load_scenario(CLUSTERS / "district-10.json")
    never = dataclasses.replace(
        scenario, policy=dataclasses.replace(scenario.policy, give_up_noncritical=GiveUpNoncritical.NEVER)
    )
    result = simulate(never, ONE_HOUR, Policy.PICLUSTERD, STOPS)
    kept = simulate(scenario, ONE_HOUR, Policy.PICLUSTERD, SimSettings(stop_work=False))
    assert min(r.load_w for r in result.timeline if not r.mains) >= min(r.load_w for r in kept.timeline if not r.mains)
