"""The whole cycle on clinic-5, against the fake API server over HTTP: mains fails -> one leader -> nodes
drained and powered off in order -> critical pods Ready on the nodes that stay on; and a leader killed in the
middle of a drain, whose job the next leader finishes exactly once."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.config.settings import ShedSettings
from piclusterd.core.node_records import SHED_ANNOTATION, ShedPhase, ShedRecord, parse_shed_record
from piclusterd.core.power_on_record import POWER_ON_ANNOTATION
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
CRITICAL_APPS = ("openmrs", "mariadb", "matrix-synapse")


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)  # 2026-11-24 01:00 UTC
    # Graceful termination off (explicitly): the shed order and timings pinned here predate drain timeouts that
    # follow the pods' grace periods (issue 14 item 3, drain timing); with pods Terminating for 30 s the storm
    # sheds pi4 then pi2 instead of pi4 then pi5.
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0, graceful_deletion=False) as server:
        server.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        yield made
        made.close()


def stamp(event: dict[str, object]) -> float:
    return datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def ready_critical_nodes(world: ClusterWorld) -> dict[str, set[str]]:
    """app -> nodes on which it has a Ready pod."""
    found: dict[str, set[str]] = {}
    for pod in world.server.list_objects("Pod"):
        app = (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if app in CRITICAL_APPS and ready:
            found.setdefault(app, set()).add(pod["spec"]["nodeName"])
    return found


def test_storm_one_leader_sheds_in_order_and_critical_services_stay_up(world: ClusterWorld) -> None:
    world.run(10)
    leaders = world.events("leader.acquired")
    assert [e["node"] for e in leaders] == ["pi1"]

    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    world.run(30)
    assert world.events("node.cordoned") == []  # inside on_battery_grace: a blip sheds nothing
    world.run_until(lambda: len(world.events("node.powered_off")) == 3, max_s=1200)
    world.run(60, step_s=5)  # and then nothing more happens

    decided = world.events("plan.decided")
    shed_plan = next(e for e in decided if e["decision"] != "hold_grace" and e["shed"])
    off = [e["target"] for e in world.events("node.powered_off")]
    assert shed_plan["shed"] == ["pi4", "pi5", "pi3"]  # agents first, then one server (not the leader's)
    # Re-planned after each node: the third server may be either non-leader one, never the leader's own.
    assert off[:2] == ["pi4", "pi5"] and off[2] in ("pi2", "pi3")
    planned = {name for e in decided for name in e["shed"]}
    assert set(off) <= planned
    assert shed_plan["projected_runtime_s"] > shed_plan["runtime_without_shedding_s"]
    for name in off:
        assert world.pis[name].shutdowns == ["systemctl poweroff"]  # each exactly once
        record = parse_shed_record(
            world.server.get_object("Node", None, name)["metadata"]["annotations"][SHED_ANNOTATION]
        )
        assert isinstance(record, ShedRecord) and record.phase is ShedPhase.POWERED_OFF
    survivors = {"pi1", "pi2", "pi3"} - set(off)
    assert len(survivors) == 2 and all(world.pis[n].alive for n in survivors)  # etcd keeps 2 of 3
    placed = ready_critical_nodes(world)
    assert set(placed) == set(CRITICAL_APPS)
    assert all(nodes <= survivors for nodes in placed.values())
    reasons = [e["reason"] for e in world.server.list_objects("Event")]
    assert reasons.count("PowerShed") == 3 and reasons.count("PowerOffRequested") == 3


def test_a_leader_killed_mid_drain_is_replaced_and_the_drain_finished_once(world: ClusterWorld) -> None:
    world.run(5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    leader = world.pis["pi1"]

    # Kill the leader right after it cordoned its first node: its process is gone, its record stays.
    original = leader.drainer.cordon_with_record  # type: ignore[union-attr]

    def cordon_then_die(node: str, record: ShedRecord) -> None:
        original(node, record)
        leader.alive = False
        raise SystemExit("SIGKILL")

    leader.drainer.cordon_with_record = cordon_then_die  # type: ignore[union-attr,method-assign]
    with pytest.raises(SystemExit):
        world.run(120)
    killed_at = world.clock.monotonic()
    cordoned = world.events("node.cordoned")[0]["target"]
    world.run_until(lambda: cordoned in [e["target"] for e in world.events("node.powered_off")], max_s=600)
    world.run(60, step_s=5)

    takeover = [e for e in world.events("leader.acquired") if e["node"] != "pi1"]
    assert takeover, "nobody took over"
    resumed = [e for e in world.events("node.drain_resumed") if e["target"] == cordoned]
    assert len(resumed) == 1
    powered_off = [e["target"] for e in world.events("node.powered_off")]
    assert powered_off.count(cordoned) == 1
    assert world.pis[cordoned].shutdowns == ["systemctl poweroff"]
    kill_wall = world.clock.wall() - (world.clock.monotonic() - killed_at)
    time_to_new_leader = stamp(takeover[0]) - kill_wall
    assert 0 < time_to_new_leader <= 15 + 2  # the lease duration, plus one retry period
    assert resumed[0]["node"] == takeover[0]["node"]  # the new leader did the resuming


def test_mains_back_a_shed_node_powered_on_again_rejoins(world: ClusterWorld) -> None:
    world.run(5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    world.run_until(lambda: "pi4" in [e["target"] for e in world.events("node.powered_off")], max_s=600)
    world.ups.drive(ups_status="OL CHRG")
    world.run(30)
    assert world.events("node.restored") == []  # still off: nothing to rejoin yet
    world.server.power_on_node("pi4")  # someone pressed its button
    world.run(10)
    (restored,) = world.events("node.restored")
    assert restored["target"] == "pi4" and restored["uncordoned"] is True
    node = world.server.get_object("Node", None, "pi4")
    assert node is not None and not node["spec"].get("unschedulable")
    # No record of ours but the power-on record (it holds for restore_after; the leader removes it then).
    assert not any(
        k.startswith("picluster.io/") and k != POWER_ON_ANNOTATION for k in node["metadata"].get("annotations") or {}
    )
    assert "PowerRestored" in [e["reason"] for e in world.server.list_objects("Event")]


def signed_by_the_leader(world: ClusterWorld, node: str, record: ShedRecord) -> str:
    """``record`` as the leader wrote it (signed, in its term): before its daemon restarted, say."""
    world.run(3)
    (leader,) = [pi for pi in world.pis.values() if pi.controller is not None and pi.controller.is_leader]
    return world.signer_for(leader.name).shed_record(node, record)


def test_mains_back_before_a_drained_node_is_powered_off_cancels_its_shedding(world: ClusterWorld) -> None:
    drained = ShedRecord(ShedPhase.DRAINED, "pi2", "on battery", "2026-11-24T02:01:00Z", False)
    value = signed_by_the_leader(world, "pi5", drained)
    world.server.update_object(
        "Node",
        None,
        "pi5",
        lambda n: (
            n["spec"].update(unschedulable=True),
            n["metadata"].setdefault("annotations", {}).update({SHED_ANNOTATION: value}),
        ),
    )
    world.run(10)  # mains present all along: the new leader finds the record
    (cancelled,) = world.events("node.shed_cancelled")
    assert cancelled["target"] == "pi5"
    node = world.server.get_object("Node", None, "pi5")
    assert node is not None and not node["spec"].get("unschedulable")
    assert SHED_ANNOTATION not in (node["metadata"].get("annotations") or {})
    assert world.pis["pi5"].shutdowns == [] and world.events("node.poweroff_requested") == []


def test_an_operators_cordon_is_kept_when_a_node_rejoins(world: ClusterWorld) -> None:
    shed = ShedRecord(ShedPhase.POWERED_OFF, "pi2", "on battery", "2026-11-24T02:01:00Z", True)
    value = signed_by_the_leader(world, "pi5", shed)
    world.server.update_object(
        "Node",
        None,
        "pi5",
        lambda n: (
            n["spec"].update(unschedulable=True),
            n["metadata"].setdefault("annotations", {}).update({SHED_ANNOTATION: value}),
        ),
    )
    world.run(10)
    (restored,) = world.events("node.restored")
    assert restored["uncordoned"] is False
    node = world.server.get_object("Node", None, "pi5")
    assert node is not None and node["spec"]["unschedulable"] is True


def test_a_drain_that_times_out_leaves_the_node_on_and_says_why(world: ClusterWorld) -> None:
    world.server.ready_delay_s = 3600.0  # replacements never turn Ready in time
    for pi in world.pis.values():
        pi.drainer._options = replace(pi.drainer._options, timeout_s=30.0)  # type: ignore[union-attr]
    world.run(5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    world.run_until(lambda: bool(world.events("node.drain_failed")), max_s=600)
    failed = world.events("node.drain_failed")[0]
    target = str(failed["target"])
    assert failed["reason"] == "timed out"
    blocked = [e for e in world.server.list_objects("Event") if e["reason"] == "DrainBlocked"]
    assert blocked and blocked[0]["type"] == "Warning" and blocked[0]["involvedObject"]["name"] == target
    assert "no Ready replacement elsewhere yet" in blocked[0]["message"]
    node = world.server.get_object("Node", None, target)
    assert node is not None and not node["spec"].get("unschedulable")
    assert world.pis[target].alive and world.pis[target].shutdowns == []
