"""Battery rotation end to end on solar-3 (per-node batteries), the real daemons of three nodes on one fake clock
against the fake API server over HTTP: s3's own battery runs short and it is shed (keeping 60 %); later s2 runs
low (25 %) but cannot go (``min_nodes`` = 2). The leader powers s3 back on, on battery (rotation), not within
``restore_after`` of its power-off; s3 rejoins; the next plan drains and powers off s2. Critical pods stay
Ready, no node is powered off twice. Also: unknown own-battery data is said once per change, loudly."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.power_on_backends import ManualPower, PowerResult
from piclusterd.config.settings import ShedSettings
from piclusterd.core.node_batteries import Topology
from piclusterd.core.node_records import ShedPhase, ShedRecord, rfc3339
from piclusterd.core.power_record import POWER_ANNOTATION, BatteryRecord, PowerRecord, render_power_record
from piclusterd.core.power_state import PowerState
from piclusterd.core.reading import UpsFlag
from piclusterd.core.restore import RestorePolicy
from piclusterd.sim.cluster_world import BootInWorld, ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

SOLAR = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "solar-3.json"
NAMES = ("s1", "s2", "s3")
RESTORE_AFTER_S = 300.0
CRITICAL_APPS = ("openmrs", "mariadb")


def _world(power_on: Callable[[ClusterWorld], PowerOnBackends], *, dry_run: bool = False) -> Iterator[ClusterWorld]:
    scenario = load_scenario(SOLAR)
    assert scenario.node_battery is not None
    # A 2 h target: 90 %+ lasts it on a HAT, 60 % and 25 % do not. Two nodes stay on whatever happens.
    policy = replace(scenario.policy, target_runtime_s=2 * 3600.0, min_nodes=2)
    settings = ShedSettings(
        policy,
        scenario.battery,
        scenario.hardware,
        dry_run=dry_run,
        node_battery=scenario.node_battery,
        topology=Topology.PER_NODE,
        power_record_max_age_s=600.0,
        restore=RestorePolicy(restore_after_s=RESTORE_AFTER_S, restore_stagger_s=30.0),
    )
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(with_network_volumes(SOLAR))  # the rotation's mechanics: s3's database may move
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings, power_on=power_on)
        yield made
        made.close()


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    yield from _world(lambda w: PowerOnBackends({}, default=BootInWorld(w, 30.0)))


@pytest.fixture
def manual_world() -> Iterator[ClusterWorld]:
    yield from _world(lambda w: PowerOnBackends({}, default=ManualPower({"s3": "shelf 2"})))


def publish(world: ClusterWorld, node: str, charge: float, *, age_s: float = 0.0) -> None:
    """What a node's PowerPublisher patches: its record, with its HAT's own reading."""
    at = rfc3339(world.clock.wall() - age_s)
    hat = BatteryRecord("hat:x728@i2c-1:0x36", frozenset({UpsFlag.OB, UpsFlag.DISCHRG}), charge, 3600.0, at)
    record = PowerRecord(PowerState.ON_BATTERY, charge, 3600.0, "hat", (hat,), at)
    api = KubeClusterApi(world.server.api_client(retries=False))
    api.patch_node(node, {"metadata": {"annotations": {POWER_ANNOTATION: render_power_record(record)}}})


def critical_ready(world: ClusterWorld) -> set[str]:
    """The critical apps with a Ready pod on a running node."""
    alive = {name for name, pi in world.pis.items() if pi.alive}
    found = set()
    for pod in world.server.list_objects("Pod"):
        app = (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if app in CRITICAL_APPS and ready and pod["spec"].get("nodeName") in alive:
            found.add(app)
    return found


class Outage:
    """The outage as the nodes' publishers would tell it: each running node republishes its HAT's charge every
    minute (a shed node cannot: its last record stays); the critical apps are checked Ready after every poll."""

    def __init__(self, world: ClusterWorld, charges: dict[str, float]) -> None:
        self.world = world
        self.charges = charges
        self.published_at = -1e9
        self.silent: set[str] = set()  # nodes whose publisher stopped (a dead daemon, a HAT gone quiet)

    def start(self) -> None:
        self.world.run(5)
        self.republish()
        self.world.ups.drive(ups_status="OB DISCHRG", battery_charge="95", battery_runtime="9000")

    def republish(self) -> None:
        for name, pi in self.world.pis.items():
            if pi.alive and name not in self.silent:
                publish(self.world, name, self.charges[name])
        self.published_at = self.world.clock.monotonic()

    def run(self, seconds: float) -> None:
        end = self.world.clock.monotonic() + seconds
        self.until(lambda: self.world.clock.monotonic() >= end, max_s=seconds + 5)

    def until(self, done: Callable[[], bool], max_s: float) -> None:
        end = self.world.clock.monotonic() + max_s
        while not done():
            assert self.world.clock.monotonic() < end, f"not done after {max_s} simulated seconds"
            if self.world.clock.monotonic() - self.published_at >= 60:
                self.republish()
            self.world.step(5.0)
            assert critical_ready(self.world) == set(CRITICAL_APPS)


def powered_off(world: ClusterWorld) -> list[str]:
    return [str(e["target"]) for e in world.events("node.powered_off")]


def kube_events(world: ClusterWorld, reason: str) -> list[dict[str, object]]:
    return [e for e in world.server.list_objects("Event") if e.get("reason") == reason]


def _shed_s3_then_run_s2_low(world: ClusterWorld) -> tuple[Outage, float]:
    outage = Outage(world, {"s1": 95.0, "s2": 95.0, "s3": 40.0})
    outage.start()
    outage.until(lambda: "s3" in powered_off(world), max_s=900)
    off_at = world.clock.monotonic()
    outage.charges["s2"] = 15.0
    outage.republish()
    return outage, off_at


def test_a_charged_shed_node_comes_back_and_the_low_one_is_shed(world: ClusterWorld) -> None:
    outage, s3_off_at = _shed_s3_then_run_s2_low(world)
    outage.until(lambda: "s2" in powered_off(world), max_s=1800)
    outage.run(120)  # two minutes more: nothing else moves

    # s3 came back on battery, once, through its power-on backend, not within restore_after of its power-off.
    backend = world.power_on.backend_for("s3")
    assert isinstance(backend, BootInWorld)
    assert [node for _, node in backend.power_ons] == ["s3"]
    assert backend.power_ons[0][0] - s3_off_at >= RESTORE_AFTER_S
    requested = world.events("node.power_on_requested")
    assert [e["target"] for e in requested] == ["s3"]
    assert str(requested[0]["reason"]).startswith("rotation: s3 kept 40 %")
    assert "relieve s2" in str(requested[0]["reason"])
    assert any("rotation" in str(e["message"]) for e in kube_events(world, "PowerOnRequested"))
    assert any("powers on s3 on battery" in str(e["message"]) for e in kube_events(world, "PowerOnPlanned"))

    # Then s3 rejoined, and only after that was s2 drained and powered off: no node twice.
    restored = [e for e in world.events("node.restored") if e["target"] == "s3"]
    assert restored
    assert powered_off(world) == ["s3", "s2"]
    assert world.shutdown_order == ["s3", "s2"]
    cordoned = [str(e["target"]) for e in world.events("node.cordoned")]
    assert cordoned == ["s3", "s2"]
    assert world.pis["s1"].alive and world.pis["s3"].alive and not world.pis["s2"].alive
    # s3 is back to stay (schedulable, no shed record); s2 carries the shed record now.
    nodes = {n["metadata"]["name"]: n for n in world.server.list_objects("Node")}
    assert not nodes["s3"]["spec"].get("unschedulable")
    assert "picluster.io/shed" not in (nodes["s3"]["metadata"].get("annotations") or {})
    assert '"phase":"powered_off"' in nodes["s2"]["metadata"]["annotations"]["picluster.io/shed"]


def test_a_manual_node_is_asked_for_once_on_battery_and_never_withdrawn(manual_world: ClusterWorld) -> None:
    world = manual_world
    outage, _ = _shed_s3_then_run_s2_low(world)
    outage.until(lambda: bool(kube_events(world, "PowerOnNeeded")), max_s=1800)
    outage.run(300)  # nobody at the button for five minutes: the request stands, asked once

    needed = kube_events(world, "PowerOnNeeded")
    assert len(needed) == 1 and needed[0].get("count", 1) == 1 and needed[0]["type"] == "Warning"
    message = str(needed[0]["message"])
    assert message.startswith("on battery, to relieve a node whose own battery runs low")
    assert "press the power button on s3 (shelf 2)" in message
    # On battery is why s3 was asked for: the leader does not take it back as "mains failed again".
    assert world.events("node.power_on_withdrawn") == []
    assert world.events("node.power_on_requested")[0]["outcome"] == "waiting_for_operator"

    world.boot_later("s3", 30.0)  # someone pressed the button
    outage.until(lambda: "s2" in powered_off(world), max_s=1800)
    assert powered_off(world) == ["s3", "s2"]
    assert len(kube_events(world, "PowerOnNeeded")) == 1


def test_unknown_own_battery_is_said_once_per_change(world: ClusterWorld) -> None:
    outage = Outage(world, {"s1": 95.0, "s2": 95.0, "s3": 95.0})
    outage.start()
    outage.run(120)
    assert world.events("battery.node_unknown") == []

    # s2 stops publishing: its record goes stale (600 s) and is unknown, said once, however long it lasts.
    outage.silent.add("s2")  # its daemon is gone; the Pi (and its kubelet) still run
    outage.run(1200)
    unknown = world.events("battery.node_unknown")
    assert [e["target"] for e in unknown] == ["s2"]
    assert "stale after 600 s" in str(unknown[0]["detail"]) and unknown[0]["level"] == "warning"
    warned = kube_events(world, "NodeBatteryUnknown")
    assert len(warned) == 1 and warned[0].get("count", 1) == 1 and warned[0]["type"] == "Warning"
    assert warned[0]["involvedObject"]["name"] == "s2"
    assert "will not shed or rotate it" in str(warned[0]["message"])

    # It publishes again: known (said once), and a second silence is said again.
    outage.silent.clear()
    outage.run(120)
    assert [e["target"] for e in world.events("battery.node_known")] == ["s2"]
    outage.silent.add("s2")
    outage.run(900)
    assert [e["target"] for e in world.events("battery.node_unknown")] == ["s2", "s2"]
    assert world.events("node.cordoned") == []  # never acted on


@pytest.fixture
def dry_world() -> Iterator[ClusterWorld]:
    yield from _world(lambda w: PowerOnBackends({}, default=BootInWorld(w, 30.0)), dry_run=True)


def test_dry_run_says_the_rotation_and_powers_nothing_on(dry_world: ClusterWorld) -> None:
    world = dry_world
    # s3 was shed earlier (an enforcing leader's record), keeping 90 %; s2 runs low and may not go (min_nodes).
    publish(world, "s3", 90.0, age_s=3000.0)
    world.run(3)  # signed by the leader of this term, as an enforcing one would have
    (leader,) = [pi.name for pi in world.pis.values() if pi.controller is not None and pi.controller.is_leader]
    shed = ShedRecord(ShedPhase.POWERED_OFF, "s1", "own battery short", "x", False, "r1", "x")
    record = world.signer_for(leader).shed_record("s3", shed)
    api = KubeClusterApi(world.server.api_client(retries=False))
    api.patch_node("s3", {"metadata": {"annotations": {"picluster.io/shed": record}}, "spec": {"unschedulable": True}})
    world.pis["s3"].alive = False
    world.server.power_off_node("s3")
    outage = Outage(world, {"s1": 95.0, "s2": 15.0, "s3": 90.0})
    outage.start()
    for _ in range(120):  # ten minutes, well past restore_after
        if world.clock.monotonic() - outage.published_at >= 60:
            outage.republish()
        world.step(5.0)

    decided = [e for e in world.events("plan.decided") if e["power_on"]]
    assert decided and decided[0]["dry_run"] is True
    assert [(p["node"], p["relieves"]) for p in decided[0]["power_on"]] == [("s3", "s2")]  # type: ignore[union-attr]
    planned = kube_events(world, "PowerOnPlanned")
    assert len(planned) == 1 and "would power on (dry-run) s3 on battery" in str(planned[0]["message"])
    backend = world.power_on.backend_for("s3")
    assert isinstance(backend, BootInWorld) and backend.power_ons == []
    assert world.events("node.power_on_requested") == [] and not world.pis["s3"].alive


class FailsFirst(BootInWorld):
    """A relay whose first power-on raises (its ``via`` node unreachable, say), then works."""

    def __init__(self, world: ClusterWorld) -> None:
        super().__init__(world, 30.0, name="gpio-relay")
        self.failed = 0

    def power_on(self, node: str) -> PowerResult:
        if not self.failed:
            self.failed += 1
            raise OSError("relay request to s1 timed out")
        return super().power_on(node)


@pytest.fixture
def failing_world() -> Iterator[ClusterWorld]:
    yield from _world(lambda w: PowerOnBackends({}, default=FailsFirst(w)))


def test_a_failed_rotation_power_on_is_said_put_back_and_retried(failing_world: ClusterWorld) -> None:
    world = failing_world
    outage, _ = _shed_s3_then_run_s2_low(world)
    outage.until(lambda: bool(world.events("node.power_on_failed")), max_s=1800)
    stamp = str(world.events("node.power_on_failed")[0]["timestamp"]).replace("Z", "+00:00")
    failed_at = datetime.datetime.fromisoformat(stamp).timestamp() - (world.clock.wall() - world.clock.monotonic())
    # The record is back to powered_off with its own shed reason: a later plan may ask again.
    s3 = next(n for n in world.server.list_objects("Node") if n["metadata"]["name"] == "s3")
    shed = s3["metadata"]["annotations"]["picluster.io/shed"]
    assert '"phase":"powered_off"' in shed and "rotation" not in shed
    failed = kube_events(world, "PowerOnFailed")
    assert len(failed) == 1 and failed[0]["type"] == "Warning" and "relay request to s1" in str(failed[0]["message"])

    outage.until(lambda: "s2" in powered_off(world), max_s=1800)
    backend = world.power_on.backend_for("s3")
    assert isinstance(backend, FailsFirst)
    assert [node for _, node in backend.power_ons] == ["s3"]
    assert backend.power_ons[0][0] - failed_at >= 60.0  # 2 x restore_stagger later, not on the next poll
    assert powered_off(world) == ["s3", "s2"]


def test_a_new_leader_keeps_a_manual_rotation_request(manual_world: ClusterWorld) -> None:
    world = manual_world
    outage, _ = _shed_s3_then_run_s2_low(world)
    outage.until(lambda: bool(kube_events(world, "PowerOnNeeded")), max_s=1800)
    leader = str(world.events("node.power_on_requested")[0]["node"])
    world.pis[leader].alive = False  # its daemon dies (the Pi stays up): another node takes the lease
    end = world.clock.monotonic() + 600
    while world.clock.monotonic() < end:
        if world.clock.monotonic() - outage.published_at >= 60:
            outage.republish()
        world.step(5.0)

    acquired = [str(e["node"]) for e in world.events("leader.acquired")]
    assert acquired[-1] != leader  # a new leader
    # It reads the rotation from s3's record: still asked for, not withdrawn as "mains failed again", not re-asked.
    assert world.events("node.power_on_withdrawn") == []
    assert len(kube_events(world, "PowerOnNeeded")) == 1
    s3 = next(n for n in world.server.list_objects("Node") if n["metadata"]["name"] == "s3")
    assert '"phase":"restoring"' in s3["metadata"]["annotations"]["picluster.io/shed"]
