"""Stopping non-critical work to reach the target (issue 16 item 4): ``give_up_noncritical`` and
:attr:`~piclusterd.core.planner.Plan.scale_down`. Outage-start plans of the reference clusters, then small
decision tables on district-10's snapshot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.planner import GiveUpNoncritical, Plan, plan
from piclusterd.core.power_draw import PowerSituation
from piclusterd.sim.scenarios import Scenario, load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clusters"
HOUR = 3600.0


def outage_start(
    scenario: Scenario,
    give_up: GiveUpNoncritical | None = None,
    target_h: float | None = None,
    view: ClusterView | None = None,
) -> Plan:
    """Mains failed at t=0 with a full battery; the grace period has just passed."""
    policy = dataclasses.replace(scenario.policy, can_stop_work=True)  # the simulator's world
    if give_up is not None:
        policy = dataclasses.replace(policy, give_up_noncritical=give_up)
    if target_h is not None:
        policy = dataclasses.replace(policy, target_runtime_s=target_h * HOUR)
    power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)
    return plan(
        view or scenario.view, power, scenario.battery, policy, policy.on_battery_grace_s, hardware=scenario.hardware
    )


def district() -> Scenario:
    return load_scenario(EXAMPLES / "district-10.json")


def stopped(result: Plan) -> set[str]:
    return {pod for scale in result.scale_down for pod in scale.pods}


def test_by_default_district_10_stops_its_non_critical_work_and_plans_the_physical_optimum() -> None:
    """The 4 h target is out of reach: the lab's reports, PACS viewer, prometheus and the nightly analytics
    on the shed nodes stop (room is left for them on the kept nodes, so leaving them Pending would not stop
    them), and the plan lasts as long as the physical optimum, not 87.9 % of it."""
    result = outage_start(district())
    assert result.optimum is not None and result.projected_runtime_s is not None
    assert result.projected_runtime_s == pytest.approx(result.optimum.runtime_s)
    assert {(s.owner_kind, s.owner_name, len(s.pods)) for s in result.scale_down} == {
        ("Job", "analytics-nightly", 1),
        ("ReplicaSet", "lab-reports-qb89fn5sgz", 2),
        ("ReplicaSet", "pacs-viewer-5jbtbbqgtb", 1),
        ("ReplicaSet", "prometheus-dzv5k6hvgh", 1),
    }
    assert stopped(result) == {p.pod for p in result.given_up}
    assert "stops 5 of them until the restore" in result.reason
    assert "suspends Job clinic/analytics-nightly" in result.reason


def test_a_leader_that_cannot_stop_work_never_plans_on_it() -> None:
    """A policy whose executor cannot stop work (``can_stop_work`` off, the default of a bare PlannerPolicy)
    keeps the old meaning: only pods with no room are given up."""
    scenario = district()
    power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)
    result = plan(scenario.view, power, scenario.battery, scenario.policy, 60.0, hardware=scenario.hardware)
    assert not scenario.policy.can_stop_work
    assert result.scale_down == ()


def test_never_stops_nothing_and_keeps_every_pod_placed() -> None:
    result = outage_start(district(), GiveUpNoncritical.NEVER)
    assert result.scale_down == () and result.given_up == ()


def test_when_the_target_is_reachable_with_every_pod_kept_nothing_is_stopped() -> None:
    """The default gives work up only when the target cannot be reached otherwise."""
    result = outage_start(district(), target_h=2.5)
    assert result.projected_runtime_s is not None and result.projected_runtime_s >= 2.5 * HOUR
    assert result.scale_down == ()


@pytest.mark.parametrize("give_up", list(GiveUpNoncritical))
@pytest.mark.parametrize("name", ["clinic-5", "district-10", "solar-3"])
def test_a_critical_pod_is_never_stopped(name: str, give_up: GiveUpNoncritical) -> None:
    scenario = load_scenario(EXAMPLES / f"{name}.json")
    result = outage_start(scenario, give_up, target_h=24.0)
    pods = {p.key: p for p in scenario.view.pods}
    threshold = scenario.policy.critical_priority_threshold
    assert all(not pods[key].is_critical(threshold) for key in stopped(result))


def test_a_pod_labelled_critical_is_placed_not_stopped() -> None:
    """lab-reports labelled ``picluster.io/critical=true``: its pods move to the kept nodes, never stop."""
    scenario = district()
    pods = tuple(
        dataclasses.replace(p, labels={**p.labels, "picluster.io/critical": "true"}) if p.name.startswith("lab-") else p
        for p in scenario.view.pods
    )
    view = dataclasses.replace(scenario.view, pods=pods)
    result = outage_start(scenario, view=view)
    assert not any("lab-reports" in key for key in stopped(result))
    assert all(p.to_node is not None for p in result.placements if "lab-reports" in p.pod)


def test_work_without_a_stoppable_controller_is_not_stopped() -> None:
    """A ReplicationController has no place in the stop list (only Deployments through their ReplicaSets,
    ReplicaSets, StatefulSets and Jobs): its pod keeps a home on a kept node."""
    scenario = district()
    pods = tuple(
        dataclasses.replace(p, owner_kind="ReplicationController") if p.name.startswith("prometheus") else p
        for p in scenario.view.pods
    )
    view = dataclasses.replace(scenario.view, pods=pods)
    result = outage_start(scenario, view=view)
    assert not any("prometheus" in key for key in stopped(result))
    assert stopped(result)  # the rest still stops
