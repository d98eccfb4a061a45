"""The simulator's physics: energy is conserved and runtimes match scenarios.md's arithmetic."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.core.planner import plan
from piclusterd.core.power_draw import PowerSituation, SupplyKind
from piclusterd.sim.scenarios import Scenario, load_scenario
from piclusterd.sim.simulator import OUTAGES, Outage, Policy, SimResult, SimSettings, simulate

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"
HOUR = 3600.0
# clinic-5 with every node on: 4 W switch + 5 x 2.7 W idle + 3.7 W x 3950m / 4000m busy (test_scenarios.py)
CLINIC_LOAD_W = 4 + 5 * 2.7 + 3.7 * 3950 / 4000


def clinic() -> Scenario:
    return load_scenario(CLUSTERS / "clinic-5.json")


def integral_wh(result: SimResult, stop_s: float) -> float:
    """Energy through the battery, from the timeline: each row's power holds until the next row."""
    rows = result.timeline
    ends = [row.t_s for row in rows[1:]] + [stop_s]
    return sum(row.battery_w * (end - row.t_s) for row, end in zip(rows, ends, strict=True)) / HOUR


@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("name", ["clinic-5", "district-10"])
def test_energy_lost_by_the_battery_is_the_integral_of_its_power(policy: Policy, name: str) -> None:
    outage = OUTAGES["storm-2am"]  # discharges to empty, recharges, discharges again
    result = simulate(load_scenario(CLUSTERS / f"{name}.json"), outage, policy)
    first, last = result.timeline[0], result.timeline[-1]
    final_wh = last.energy_wh - last.battery_w * (outage.stop_s - last.t_s) / HOUR
    assert first.energy_wh - final_wh == pytest.approx(integral_wh(result, outage.stop_s), abs=1e-6)
    discharged = [row for row in result.timeline if row.battery_w > 0]
    assert discharged and all(not row.mains for row in discharged)
    assert result.summary.energy_drawn_wh > 67.2 * 0.8  # down to the 20 % shutdown, then part of the recharge


@pytest.mark.parametrize(
    ("kind", "draw_w"),
    [
        (SupplyKind.AC, CLINIC_LOAD_W / 0.85 + 5.0),  # inverter efficiency + UPS overhead
        (SupplyKind.DC, CLINIC_LOAD_W / 0.9),  # DC-DC converter efficiency
    ],
)
def test_runtime_without_shedding_is_usable_energy_over_draw(kind: SupplyKind, draw_w: float) -> None:
    scenario = clinic()
    scenario = replace(scenario, battery=replace(scenario.battery, kind=kind))
    result = simulate(scenario, OUTAGES["long-night"], Policy.NO_SHEDDING)
    outage = result.summary.outages[0]
    expected_s = 84.0 * 0.8 * (1 - 0.2) / draw_w * HOUR  # until the 20 % shutdown level, not empty
    assert outage.runtime_s == pytest.approx(expected_s, rel=1e-9)
    assert outage.no_shedding_runtime_s == pytest.approx(expected_s, rel=1e-9)
    assert not outage.survived and result.summary.full_shutdowns == 1


def test_lead_acid_derating_shortens_the_runtime_as_peukert_says() -> None:
    settings = SimSettings(peukert_exponent=1.2, rated_hours=20.0)
    result = simulate(clinic(), OUTAGES["long-night"], Policy.NO_SHEDDING, settings)
    draw_w = CLINIC_LOAD_W / 0.85 + 5.0
    derated_w = draw_w * (draw_w / (84.0 / 20.0)) ** 0.2
    assert result.summary.outages[0].runtime_s == pytest.approx(67.2 * 0.8 / derated_w * HOUR, rel=1e-9)


def test_the_battery_recharges_linearly_on_mains() -> None:
    # long-night takes the battery to its 20 % shutdown level; the hour after mains returns puts back 1/8 of
    # it (recharge 8 h).
    result = simulate(clinic(), OUTAGES["long-night"], Policy.NO_SHEDDING, SimSettings(recharge_h=8.0))
    last = result.timeline[-1]
    stop = OUTAGES["long-night"].stop_s
    final_pct = last.charge_pct - last.battery_w * (stop - last.t_s) / HOUR / 67.2 * 100
    assert final_pct == pytest.approx(20 + 100 / 8, rel=1e-6)


def test_outage_intervals_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="is not after"):
        Outage("bad", ((100.0, 200.0), (150.0, 300.0)))


@pytest.mark.parametrize("name", ["clinic-5", "district-10"])
def test_the_planned_runtime_is_when_the_cluster_actually_goes_down(name: str) -> None:
    """The bug this catches: the planner projected runtime to an EMPTY battery (clinic-5: 2 h 14 min) while
    every node shuts down at the UPS's low-battery level (20 %), so the cluster went down at 1 h 47 min.

    The plan at the start of the outage says how long the battery lasts with nothing shed; the simulation
    without shedding must go down then (same arithmetic: to a millisecond). With shedding, the plan's
    projection (every action done) must match the time the simulated cluster goes down within 4 %, and
    never be short of it: the simulation sheds one node per minute (district-10: eight, its non-critical pods
    given up by default), so the first minutes draw more than the projection assumes.
    """
    scenario = load_scenario(CLUSTERS / f"{name}.json")
    assert scenario.battery.shutdown_charge_pct == 20.0
    outage = OUTAGES["long-night"]  # 10 h: neither policy lasts
    off_at = outage.intervals[0][0]
    power = PowerSituation("on_battery", on_battery_since=off_at, charge_pct=100.0)
    now = off_at + scenario.policy.on_battery_grace_s
    # The simulator plans as the leader does: it may stop non-critical work (cluster.scaler, issue 16 item 4).
    policy = replace(scenario.policy, can_stop_work=True)
    decided = plan(scenario.view, power, scenario.battery, policy, now, hardware=scenario.hardware)
    assert decided.runtime_without_shedding_s is not None and decided.projected_runtime_s is not None

    upsmon = simulate(scenario, outage, Policy.NO_SHEDDING).summary.outages[0]
    assert not upsmon.survived
    assert upsmon.runtime_s == pytest.approx(decided.runtime_without_shedding_s, abs=1e-3)

    shedding = simulate(scenario, outage, Policy.PICLUSTERD).summary.outages[0]
    assert not shedding.survived
    grace = scenario.policy.on_battery_grace_s
    planned_s = grace + decided.projected_runtime_s
    assert 0.96 * planned_s <= shedding.runtime_s <= planned_s
