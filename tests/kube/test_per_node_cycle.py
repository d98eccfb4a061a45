"""Per-node batteries end to end on solar-3, against the fake API server over HTTP: each node's power record
on its Node (as PowerPublisher writes it) -> the leader reads them all -> the node whose own battery runs
out is drained and powered off, its critical pod Ready elsewhere; a stale record is never acted on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.config.settings import ShedSettings
from piclusterd.core.node_batteries import Topology
from piclusterd.core.node_records import rfc3339
from piclusterd.core.planner import Decision
from piclusterd.core.power_record import POWER_ANNOTATION, BatteryRecord, PowerRecord, render_power_record
from piclusterd.core.power_state import PowerState
from piclusterd.core.reading import UpsFlag
from piclusterd.core.safety import SafetyRule
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario

SOLAR = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "solar-3.json"
NAMES = ("s1", "s2", "s3")


def _solar_world(*, with_node_battery: bool, topology: Topology | None) -> Iterator[ClusterWorld]:
    scenario = load_scenario(SOLAR)
    assert scenario.node_battery is not None
    # A 2 h target: s1 and s3 (90 %+) last it on their HATs, s2 (25 %) does not.
    policy = replace(scenario.policy, target_runtime_s=2 * 3600.0)
    settings = ShedSettings(
        policy,
        scenario.battery,
        scenario.hardware,
        dry_run=False,
        node_battery=scenario.node_battery if with_node_battery else None,
        topology=topology,
        power_record_max_age_s=600.0,
    )
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(SOLAR)
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        yield made
        made.close()


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    yield from _solar_world(with_node_battery=True, topology=Topology.PER_NODE)


def publish(world: ClusterWorld, node: str, charge: float, *, age_s: float = 0.0) -> None:
    """What a node's PowerPublisher patches: its record, with its HAT's own reading."""
    at = rfc3339(world.clock.wall() - age_s)
    hat = BatteryRecord("hat:x728@i2c-1:0x36", frozenset({UpsFlag.OB, UpsFlag.DISCHRG}), charge, 3600.0, at)
    record = PowerRecord(PowerState.ON_BATTERY, charge, 3600.0, "hat", (hat,), at)
    api = KubeClusterApi(world.server.api_client(retries=False))
    api.patch_node(node, {"metadata": {"annotations": {POWER_ANNOTATION: render_power_record(record)}}})


def test_the_node_whose_own_battery_runs_out_is_drained_and_powered_off(world: ClusterWorld) -> None:
    world.run(5)
    for node, charge in (("s1", 95.0), ("s2", 25.0), ("s3", 90.0)):
        publish(world, node, charge)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="95", battery_runtime="9000")
    world.run_until(lambda: "s2" in [e["target"] for e in world.events("node.powered_off")], max_s=900)
    world.run(30, step_s=5)

    decided = [e for e in world.events("plan.decided") if e["decision"] == Decision.PER_NODE.value]
    assert decided and decided[0]["shed"] == ["s2"] and decided[0]["topology"] == "per-node"
    assert "own battery (25 %)" in str(world.server.list_objects("Event"))
    assert [e["target"] for e in world.events("node.powered_off")] == ["s2"]
    assert world.pis["s2"].shutdowns == ["systemctl poweroff"]
    assert world.pis["s1"].alive and world.pis["s3"].alive
    openmrs = [
        p
        for p in world.server.list_objects("Pod")
        if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "openmrs"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]
    assert openmrs and all(p["spec"]["nodeName"] in ("s1", "s3") for p in openmrs)


def test_a_stale_record_is_unknown_never_acted_on_and_said_so(world: ClusterWorld) -> None:
    world.run(5)
    publish(world, "s1", 95.0)
    publish(world, "s2", 25.0, age_s=3600.0)  # an hour old: s2 may be anything by now
    publish(world, "s3", 90.0)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="95", battery_runtime="9000")
    world.run(240, step_s=5)

    assert world.events("node.cordoned") == []
    refused = [r for e in world.events("plan.decided") for r in e["refused"]]  # type: ignore[attr-defined]
    assert {"node": "s2", "rule": str(SafetyRule.POWER_UNKNOWN)} in [
        {"node": r["node"], "rule": r["rule"]} for r in refused
    ]
    assert any("s old (stale after 600 s)" in r["detail"] for r in refused if r["node"] == "s2")


@pytest.fixture
def world_auto_no_capacity() -> Iterator[ClusterWorld]:
    """node_capacity_wh not set (no node battery spec), topology "auto"."""
    yield from _solar_world(with_node_battery=False, topology=None)


@pytest.fixture
def world_shared_no_capacity() -> Iterator[ClusterWorld]:
    yield from _solar_world(with_node_battery=False, topology=Topology.SHARED)


def _run_an_outage_with_hats(world: ClusterWorld) -> None:
    world.run(5)
    for node, charge in (("s1", 95.0), ("s2", 25.0), ("s3", 90.0)):
        publish(world, node, charge)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="95", battery_runtime="9000")
    world.run(240, step_s=5)


def test_hats_published_without_node_capacity_warn_once_journal_and_event(
    world_auto_no_capacity: ClusterWorld,
) -> None:
    world = world_auto_no_capacity
    _run_an_outage_with_hats(world)

    # The leader cannot plan with the HATs: it says so once (not every poll), naming the nodes and the fix.
    warned = world.events("battery.node_capacity_unset")
    assert len(warned) == 1
    assert warned[0]["nodes"] == ["s1", "s2", "s3"]
    assert "node_capacity_wh" in str(warned[0]["fix"])
    kube_events = [e for e in world.server.list_objects("Event") if e.get("reason") == "NodeCapacityUnset"]
    assert len(kube_events) == 1 and kube_events[0]["type"] == "Warning"
    assert "node_capacity_wh is not set" in kube_events[0]["message"]
    # ...and it really did plan with the shared battery only: s2's short HAT was not acted on.
    assert all(e["topology"] == "shared" for e in world.events("plan.decided"))
    assert world.events("node.cordoned") == []


def test_a_configured_shared_topology_is_a_choice_not_warned(world_shared_no_capacity: ClusterWorld) -> None:
    _run_an_outage_with_hats(world_shared_no_capacity)
    assert world_shared_no_capacity.events("battery.node_capacity_unset") == []
