"""The physical optimum of a mixed cluster (solar-3) counts the energy in the nodes' own batteries (issue 16).

Figures by hand (examples/clusters/solar-3.toml, hardware.md section 3): the optimum keeps s1 (the only etcd
member) and s3 (mariadb's volume) on and sheds s2, whose critical openmrs (1200m) moves to s3. A Pi 4B draws
2.7 W + 3.7 W x utilisation + 0.5 W for its HAT: s1 (lab-reports 500m + node-exporter 50m of 4000m)
3.70875 W, s3 (mariadb 500m + openmrs 1200m + node-exporter 50m) 4.81875 W, s2 halted 0.2 W, the switch 4 W:
12.7275 W. The LiFePO4 (256 Wh x 0.9, DC-DC 0.9) feeds them down to its 10 % low-voltage disconnect; then
each Pi lives on its HAT (21.6 Wh x 0.8, boost 0.9) down to the HAT's 10 %.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from piclusterd.core.node_batteries import NodeBatteries, NodeBattery, Topology, runtime_with_own_batteries_s
from piclusterd.core.planner import physical_optimum
from piclusterd.sim.scenarios import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0
SHARED_S = 256 * 0.9 * (0.5 - 0.1) / (12.7275 / 0.9) * HOUR  # the LiFePO4 from 50 % to its disconnect
HAT_WH = 21.6 * 0.8 * (0.5 - 0.1)  # one HAT from 50 % to its shutdown level
S1_S = HAT_WH / (3.70875 / 0.9) * HOUR
S3_S = HAT_WH / (4.81875 / 0.9) * HOUR


def solar() -> Scenario:
    return load_scenario(ROOT / "examples" / "clusters" / "solar-3.json")


def own(scenario: Scenario, charges: dict[str, float | None], topology: Topology = Topology.MIXED) -> NodeBatteries:
    assert scenario.node_battery is not None
    found = {name: NodeBattery(name, pct, on_battery=False) for name, pct in charges.items()}
    return NodeBatteries(topology, scenario.node_battery, found)


def optimum_s(scenario: Scenario, batteries: NodeBatteries | None) -> float:
    found = physical_optimum(
        scenario.view,
        scenario.battery,
        scenario.policy,
        hardware=scenario.hardware,
        charge_pct=50.0,
        node_batteries=batteries,
    )
    assert found.nodes_on == ("s1", "s3") and found.load_w == pytest.approx(12.7275)
    return found.runtime_s


def test_the_optimum_of_a_mixed_cluster_runs_on_the_nodes_own_batteries_after_the_shared_one() -> None:
    """The optimum counted the LiFePO4 only (6 h 31 min here), so solar-3's long night read 120 % of it."""
    scenario = solar()
    assert optimum_s(scenario, None) == pytest.approx(SHARED_S)
    found = physical_optimum(
        scenario.view,
        scenario.battery,
        scenario.policy,
        hardware=scenario.hardware,
        charge_pct=50.0,
        node_batteries=own(scenario, {"s1": 50.0, "s2": 50.0, "s3": 50.0}),
    )
    # The cluster is up while one of its nodes runs: s1, the lighter, lasts longest on its HAT.
    assert found.own_runtime_s == pytest.approx(S1_S)
    assert found.runtime_s == pytest.approx(SHARED_S + S1_S)


@pytest.mark.parametrize("s2", [0.0, 50.0, 100.0, None])
def test_a_shed_nodes_own_battery_adds_nothing_the_optimum_keeps_it_off(s2: float | None) -> None:
    scenario = solar()
    assert optimum_s(scenario, own(scenario, {"s1": 50.0, "s2": s2, "s3": 50.0})) == pytest.approx(SHARED_S + S1_S)


def test_an_unknown_own_battery_adds_nothing() -> None:
    scenario = solar()
    assert optimum_s(scenario, own(scenario, {"s1": None, "s2": 50.0, "s3": 50.0})) == pytest.approx(SHARED_S + S3_S)


@pytest.mark.parametrize("topology", [Topology.SHARED, Topology.PER_NODE])
def test_other_topologies_keep_the_shared_batterys_optimum(topology: Topology) -> None:
    scenario = solar()
    batteries = own(scenario, {"s1": 50.0, "s2": 50.0, "s3": 50.0}, topology)
    assert optimum_s(scenario, batteries) == pytest.approx(optimum_s(scenario, None))


def test_the_shared_battery_feeds_down_to_its_disconnect_whatever_critical_runtime_says() -> None:
    """No node shuts down at the shared battery's critical_runtime on a mixed cluster: each goes on on its HAT."""
    scenario = solar()
    long_critical = dataclasses.replace(scenario.battery, shutdown_runtime_s=2 * HOUR)
    batteries = own(scenario, {"s1": 50.0, "s2": 50.0, "s3": 50.0})
    shared_s, own_s = runtime_with_own_batteries_s(long_critical, 50.0, 12.7275, batteries, {"s1": 3.70875})
    assert shared_s == pytest.approx(SHARED_S) and own_s == pytest.approx(S1_S)


def test_below_the_disconnect_only_the_own_batteries_count() -> None:
    scenario = solar()
    batteries = own(scenario, {"s1": 50.0, "s2": 50.0, "s3": 50.0})
    shared_s, own_s = runtime_with_own_batteries_s(scenario.battery, 5.0, 12.7275, batteries, {"s3": 4.81875})
    assert shared_s == 0.0 and own_s == pytest.approx(S3_S)
