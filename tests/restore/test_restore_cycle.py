"""Whole outages on clinic-5, end to end: the real daemons of five nodes on one fake clock, the fake API server
over HTTP, a scripted UPS following the reference outages (scenarios.md), and a power-on backend that boots a
node 30 s after the leader asks. The leader sheds, waits for mains to be stable and the battery charged,
brings the nodes back one at a time, and the cluster ends as it started.

The battery: charge falls by ``6 + 4 x nodes running`` % per hour on battery (five nodes: about 4 h; two:
about 7 h) and rises 20 % per hour on mains; ``battery.runtime`` follows the same figures, and the UPS says
``LB`` under 10 %.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.power_on_backends import RtcWakeAlarm, RtcWakePower
from piclusterd.config.settings import ShedSettings
from piclusterd.core.restore import RestorePolicy
from piclusterd.node.daemon import PowerDaemon
from piclusterd.sim.cluster_world import BootInWorld, ClusterWorld, SimulatedPi
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import OUTAGES, Outage
from piclusterd.testing.clusters import with_network_volumes

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
HOUR = 3600.0
BOOT_S = 30.0
LOW_CHARGE = 10.0  # the scripted UPS's LB threshold (%)
RESTORE = RestorePolicy()  # the defaults: 2 min stable mains, 50 % charge, 30 s apart


@dataclass
class Battery:
    """The scripted UPS's battery, following an outage's mains intervals (times from ``start``)."""

    world: ClusterWorld
    outage: Outage
    start: float
    charge: float = 100.0
    last: float | None = None

    def mains_on(self, t: float) -> bool:
        return not any(off <= t < on for off, on in self.outage.intervals)

    def update(self) -> None:
        now = self.world.clock.monotonic()
        t = now - self.start
        running = sum(pi.alive for pi in self.world.pis.values())
        drain_per_h = 6.0 + 4.0 * running
        on = self.mains_on(t)
        if self.last is not None:
            hours = (now - self.last) / HOUR
            self.charge = min(100.0, self.charge + 20.0 * hours) if on else max(0.0, self.charge - drain_per_h * hours)
        self.last = now
        runtime = self.charge / drain_per_h * HOUR
        status = (
            ("OL CHRG" if self.charge < 100 else "OL")
            if on
            else ("OB DISCHRG LB" if self.charge < LOW_CHARGE else "OB DISCHRG")
        )
        self.world.ups.drive(
            ups_status=status, battery_charge=f"{self.charge:.1f}", battery_runtime=f"{max(0.0, runtime):.0f}"
        )

    def near_a_change(self, t: float, within_s: float = 1200.0) -> bool:
        return any(0 <= t - edge < within_s for interval in self.outage.intervals for edge in interval)

    def restoring(self, t: float) -> bool:
        """Mains on, a node still off and enough charge to bring it back: restore is at work."""
        waiting = not all(pi.alive for pi in self.world.pis.values())
        return self.mains_on(t) and waiting and self.charge >= RESTORE.restore_min_charge_pct - 1


@pytest.fixture
def server() -> Iterator[FakeKubeServer]:
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 600.0 - 1000.0)  # t = 0 (monotonic 1000) is 01:50 UTC
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as made:
        made.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        made.run_controller_once()
        yield made


def clock_of(server: FakeKubeServer) -> FakeClock:
    clock = server._clock
    assert isinstance(clock, FakeClock)
    return clock


def make_world(server: FakeKubeServer) -> ClusterWorld:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=RESTORE)
    clock = server._clock
    assert isinstance(clock, FakeClock)
    return ClusterWorld(
        server, clock, NAMES, settings, power_on=lambda world: PowerOnBackends({}, default=BootInWorld(world, BOOT_S))
    )


@pytest.fixture
def world(server: FakeKubeServer) -> Iterator[ClusterWorld]:
    made = make_world(server)
    yield made
    made.close()


def stamp(event: dict[str, object]) -> float:
    return datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def backend(world: ClusterWorld) -> BootInWorld:
    found = world.power_on.backend_for("pi4")
    assert isinstance(found, BootInWorld)
    return found


def live(world: ClusterWorld, battery: Battery, until_t: float) -> None:
    """Run the world to ``until_t`` (outage time): 5 s polls near a mains change, while a node is off on
    mains (restore at work) or the battery is near low (a step must stay under the Lease's renew deadline there:
    with 60 s steps the leader's own lease had lapsed by its next poll, so no node waited for its full
    shutdown), 60 s polls through the long quiet stretches."""
    while world.clock.monotonic() - battery.start < until_t:
        t = world.clock.monotonic() - battery.start
        battery.update()
        busy = battery.near_a_change(t) or battery.restoring(t) or battery.charge < LOW_CHARGE + 5.0
        world.step(5.0 if busy else 60.0)


def state_of(server: FakeKubeServer) -> dict[str, Any]:
    """What a user would compare: each node's schedulability, annotations, taints and readiness, and the
    number of Running + Ready pods per workload."""
    nodes = {}
    for node in server.list_objects("Node"):
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        nodes[node["metadata"]["name"]] = {
            "unschedulable": bool(node["spec"].get("unschedulable")),
            "annotations": dict(node["metadata"].get("annotations") or {}),
            "taints": copy.deepcopy(node["spec"].get("taints") or []),
            "ready": ready == ["True"],
        }
    pods: dict[str, list[bool]] = {}
    for pod in server.list_objects("Pod"):
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("name", pod["metadata"]["name"])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        pods.setdefault(owner, []).append(pod["status"].get("phase") == "Running" and ready)
    return {"nodes": nodes, "pods": {owner: (len(states), all(states)) for owner, states in sorted(pods.items())}}


def off_and_on(world: ClusterWorld) -> tuple[list[str], list[str]]:
    """The node of every power-off (seen NotReady after the request) and of every power-on, in order."""
    offs = [str(e["target"]) for e in world.events("node.powered_off")]
    return offs, [node for _, node in backend(world).power_ons]


def restored_state_is_the_start(world: ClusterWorld, before: dict[str, Any]) -> None:
    after = state_of(world.server)
    assert after["nodes"] == before["nodes"]
    assert after["pods"] == before["pods"]
    assert all(ok for _, ok in after["pods"].values())
    assert all(pi.alive for pi in world.pis.values())
    assert world.events("node.power_on_failed") == []  # BootInWorld refuses to power on a running node


def test_storm_2am_sheds_rides_the_flickers_restores_and_ends_as_it_started(world: ClusterWorld) -> None:
    outage = OUTAGES["storm-2am"]
    before = state_of(world.server)
    world.run(10)
    battery = Battery(world, outage, start=world.clock.monotonic() - 10)
    (_first_off, first_back), *flickers, (second_off, second_back) = outage.intervals

    live(world, battery, first_back)  # 02:00 -> 06:00 on battery
    shed_first = [e["target"] for e in world.events("node.powered_off")]
    assert len(shed_first) == 3 and backend(world).power_ons == []
    assert battery.charge < RESTORE.restore_min_charge_pct  # the night cost more than half the battery

    live(world, battery, flickers[-1][1] + 60)  # 06:00, three flickers
    assert backend(world).power_ons == []  # nothing comes back while mains flickers
    assert len(world.events("node.powered_off")) == 3  # and a 20 s flicker sheds nothing more (grace)

    live(world, battery, second_off)  # stable until 06:30: charge passes 50 %, nodes come back
    first_round = list(backend(world).power_ons)
    assert sorted(node for _, node in first_round) == sorted(shed_first)
    times = [at - battery.start for at, _ in first_round]
    assert times[0] >= flickers[-1][1] + RESTORE.restore_after_s  # mains stable for restore_after first
    assert all(b - a >= RESTORE.restore_stagger_s for a, b in itertools.pairwise(times))
    order = [node for _, node in first_round]
    assert order[0] in ("pi2", "pi3") and order[1:] == ["pi4", "pi5"]  # the control plane first, then by name
    assert len(world.events("node.restored")) == 3

    live(world, battery, second_back)  # 06:30 fails again for 45 min: shed again
    assert len(world.events("node.powered_off")) == 6
    live(world, battery, second_back + 3 * HOUR)  # back for good
    offs, ons = off_and_on(world)
    assert len(offs) == 6 and len(ons) == 6  # each shed node off once per long outage, on once after it
    for name in NAMES:
        assert ons.count(name) == offs.count(name)
    restored_state_is_the_start(world, before)
    reasons = [e["reason"] for e in world.server.list_objects("Event")]
    assert "PowerOnRequested" in reasons and "PowerRestored" in reasons and "PowerOnFailed" not in reasons


def after_an_hour_out(outage: Outage) -> Outage:
    """A one-hour outage (it sheds three nodes), then ``outage`` moved to start 5 s after mains is back."""
    shift = HOUR + 5.0
    return Outage(
        f"1h+{outage.name}",
        ((600.0, 600.0 + HOUR), *((off + shift, on + shift) for off, on in outage.intervals)),
    )


def test_brownout_flap_after_an_outage_costs_one_power_off_and_one_power_on_per_shed_node(world: ClusterWorld) -> None:
    """The bound: while mains flaps, each spell on battery (5-15 s) is shorter than on_battery_grace (60 s), so
    nothing more is shed, and each spell on mains is shorter than restore_after (2 min), so nothing comes back.
    Power-offs are the nodes the hour-long outage shed (3), power-ons the same 3, each once, after mains has
    been stable for restore_after."""
    outage = after_an_hour_out(OUTAGES["brownout-flap"])
    before = state_of(world.server)
    world.run(10)
    battery = Battery(world, outage, start=world.clock.monotonic() - 10)
    flap_ends = outage.intervals[-1][1]
    live(world, battery, flap_ends)
    assert len(world.events("node.powered_off")) == 3 and backend(world).power_ons == []
    live(world, battery, flap_ends + HOUR)

    offs, ons = off_and_on(world)
    assert len(offs) == 3 and sorted(ons) == sorted(offs) and len(set(ons)) == 3
    first_on = backend(world).power_ons[0][0] - battery.start
    assert first_on >= flap_ends + RESTORE.restore_after_s
    restored_state_is_the_start(world, before)


def test_a_node_just_powered_on_is_not_shed_again_until_restore_after(world: ClusterWorld) -> None:
    """A new 5-minute outage 40 s after the first power-on: the nodes still settling are refused (rule
    settling) and shed only once restore_after has passed since their power-on."""
    world.run(10)
    start = world.clock.monotonic() - 10
    quiet = Battery(world, Outage("1h", ((600.0, 600.0 + HOUR),)), start=start)
    live(world, quiet, 600.0 + HOUR + 10.0)
    while not backend(world).power_ons:
        quiet.update()
        world.step(5.0)
    first_on = backend(world).power_ons[0][0] - start
    again = first_on + 40.0
    battery = Battery(world, Outage("1h+5m", ((600.0, 600.0 + HOUR), (again, again + 300.0))), start, quiet.charge)
    battery.last = quiet.last
    live(world, battery, again + 300.0)

    wall_offset = world.clock.wall() - world.clock.monotonic()
    cordoned = [(stamp(e) - wall_offset, str(e["target"])) for e in world.events("node.cordoned")]
    for powered_at, node in backend(world).power_ons:
        later = [at for at, name in cordoned if name == node and at > powered_at]
        assert all(at - powered_at >= RESTORE.restore_after_s for at in later), (node, powered_at, later)
    refused = {r["node"] for e in world.events("plan.decided") for r in e["refused"] if r["rule"] == "settling"}
    assert refused, "no plan refused a settling node"
    assert refused <= {node for _, node in backend(world).power_ons}


@pytest.mark.parametrize("ups_cycles_output", [False, True], ids=["shed-stay-off", "ups-power-cycles-all"])
def test_long_night_nodes_shed_early_come_back_after_the_battery_ran_out(
    world: ClusterWorld, ups_cycles_output: bool
) -> None:
    """long-night: the battery cannot last 10 h. The shed nodes go first; later every node shuts itself down
    on a critical battery. When mains returns the UPS powers the others up; the shed ones are the leader's to
    bring back, once the battery holds restore_min_charge again. If the UPS cut its output and every node
    boots when it returns, the shed ones are shed again at once (issue 16: the smallest safe set on a low
    battery) and come back the same way."""
    outage = OUTAGES["long-night"]
    before = state_of(world.server)
    world.run(10)
    battery = Battery(world, outage, start=world.clock.monotonic() - 10)
    _off_at, back_at = outage.intervals[0]
    live(world, battery, back_at)
    shed = {str(e["target"]) for e in world.events("node.powered_off")}
    assert len(shed) == 3
    assert not any(pi.alive for pi in world.pis.values())  # the battery ran out: everyone shut down
    assert all(world.pis[name].shutdowns == ["systemctl poweroff"] for name in NAMES)

    battery.update()
    booting = set(NAMES) if ups_cycles_output else set(NAMES) - shed
    for name in sorted(booting):
        world.boot_later(name, BOOT_S)  # the UPS output is back: the nodes that shut down on critical boot
    live(world, battery, back_at + 4 * HOUR)
    if ups_cycles_output:
        # Every node was cordoned (the shed ones by the leader, the last one by its own self-drain before its
        # halt); after the boot each is uncordoned: by the leader, or by the node's own next start.
        restored = {str(e["target"]) for e in world.events("node.restored")}
        undone = {str(e["node"]) for e in world.events("node.self_drain_undone")}
        assert restored | undone == set(NAMES)
    assert sorted(node for _, node in backend(world).power_ons) == sorted(shed)
    first_on = backend(world).power_ons[0][0] - battery.start
    assert first_on >= back_at + RESTORE.restore_after_s
    restored_state_is_the_start(world, before)


def test_after_a_full_shutdown_on_a_low_battery_the_shed_nodes_go_off_again_and_a_flicker_costs_the_least(
    world: ClusterWorld,
) -> None:
    """Issue 16, item 2: long-night runs the battery out (a full shutdown); mains returns with the charge near
    0 %, the UPS output returns and all five Pis boot. The three nodes shed before the full shutdown are drained
    and powered off again right after the boot (the smallest safe set), so that a 20 s flicker 15 min later
    finds them off. Before, they rejoined and ran at full draw on the empty battery until the next failure.
    Once the charge reaches restore_min_charge, the restore policy brings them back, one at a time."""
    night = OUTAGES["long-night"]
    _off_at, back_at = night.intervals[0]
    flicker = (back_at + 900.0, back_at + 920.0)
    outage = Outage("long-night+flicker", (*night.intervals, flicker))
    before = state_of(world.server)
    world.run(10)
    battery = Battery(world, outage, start=world.clock.monotonic() - 10)
    live(world, battery, back_at)
    shed = {str(e["target"]) for e in world.events("node.powered_off")}
    assert len(shed) == 3 and not any(pi.alive for pi in world.pis.values())  # the full shutdown
    battery.update()
    assert battery.charge < RESTORE.restore_min_charge_pct
    down_at_boot = len(world.shutdown_order)
    for name in NAMES:
        world.boot_later(name, BOOT_S)  # the UPS output is back: every Pi boots

    live(world, battery, flicker[0])
    off_again = [str(e["target"]) for e in world.events("node.powered_off")]  # the booted daemons' own logs
    assert sorted(off_again) == sorted(shed)  # each shed node off again after the boot, before the flicker
    assert {name for name, pi in world.pis.items() if not pi.alive} == shed
    kept = [e for e in world.events("restore.kept_off") if e["nodes"]]
    assert kept and set(kept[0]["nodes"]) == shed and "restore_min_charge" in str(kept[0]["why"])
    decided = [e for e in world.events("plan.decided") if e["decision"] == "keep_off_after_full_shutdown"]
    assert decided
    live(world, battery, flicker[1] + 60)
    assert {name for name, pi in world.pis.items() if not pi.alive} == shed  # the flicker cost nothing more
    assert sorted(world.shutdown_order[down_at_boot:]) == sorted(shed)  # no other node shut down since the boot
    assert backend(world).power_ons == []  # and nothing came back on the low battery

    live(world, battery, back_at + 4 * HOUR)  # the charge passes restore_min_charge: the restore policy
    assert sorted(node for _, node in backend(world).power_ons) == sorted(shed)
    first_on = backend(world).power_ons[0][0] - battery.start
    assert first_on >= back_at + 2.4 * HOUR  # 20 %/h on mains from about 1 %: 50 % takes about 2.5 h
    restored_state_is_the_start(world, before)


class RtcInWorld(RtcWakeAlarm):
    """A Pi 5's RTC in the world: ``+N`` arms it N seconds ahead on the world's clock; :meth:`fire` boots the
    node when its alarm time has come (and clears it), as the PMIC would."""

    def __init__(self, world: ClusterWorld, node: str) -> None:
        super().__init__(Path("/nonexistent/wakealarm"))
        self._world = world
        self.node = node
        self.armed: float | None = None
        self.wakes: list[float] = []

    def _write(self, text: str) -> None:
        self.armed = None if text == "0" else self._world.clock.monotonic() + int(text.removeprefix("+"))

    def armed_at(self) -> int | None:
        return None if self.armed is None else round(self.armed)

    def fire(self) -> None:
        pi = self._world.pis[self.node]
        if self.armed is not None and not pi.alive and self._world.clock.monotonic() >= self.armed:
            self.armed = None
            self.wakes.append(self._world.clock.monotonic())
            self._world.reboot(self.node)


def test_storm_2am_with_a_pi5_on_rtc_wake_it_wakes_halts_again_and_comes_back(server: FakeKubeServer) -> None:
    """pi5 is a Pi 5 whose method is rtc-wake (recheck 15 min): through the 4-hour outage it wakes every 15
    minutes, checks in, re-arms and halts again, and the leader never rejoins it while mains is out. Once the
    restore policy asks it back it comes back at its next alarm, and the cluster ends as it started."""
    rtcs: dict[str, RtcInWorld] = {}
    holder: list[ClusterWorld] = []
    lives: list[SimulatedPi] = []

    def agent(pi: SimulatedPi, api: KubeClusterApi, daemon: PowerDaemon) -> NodeAgent:
        if pi.name != "pi5":
            return NodeAgent(api, pi.name, daemon, pi.audit.logger, verifier=pi.require_verifier())
        lives.append(pi)  # each boot is a new daemon with its own journal
        rtc = rtcs.setdefault("pi5", RtcInWorld(holder[0], "pi5"))
        return NodeAgent(
            api, pi.name, daemon, pi.audit.logger, verifier=pi.require_verifier(), wake_alarm=rtc, recheck_s=900
        )

    def backends(world: ClusterWorld) -> PowerOnBackends:
        holder.append(world)
        return PowerOnBackends({"pi5": RtcWakePower(900)}, default=BootInWorld(world, BOOT_S))

    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=RESTORE)
    world = ClusterWorld(server, clock_of(server), NAMES, settings, power_on=backends, node_agent=agent)
    try:
        outage = OUTAGES["storm-2am"]
        before = state_of(world.server)
        world.run(10)
        battery = Battery(world, outage, start=world.clock.monotonic() - 10)
        while world.clock.monotonic() - battery.start < outage.intervals[-1][1] + 3 * HOUR:
            t = world.clock.monotonic() - battery.start
            battery.update()
            rtcs["pi5"].fire()
            world.step(5.0 if battery.near_a_change(t) or battery.restoring(t) else 60.0)

        wall_offset = world.clock.wall() - world.clock.monotonic()

        def outage_time(event: dict[str, object]) -> float:
            return stamp(event) - wall_offset - battery.start

        first_back = outage.intervals[0][1]
        wakes_while_out = [at - battery.start for at in rtcs["pi5"].wakes if at - battery.start < first_back]
        assert len(wakes_while_out) >= 12  # about every 15 min through the 4 hours
        (first_life,) = lives[0].audit.named("node.checked_in")
        assert first_life["action"] == "rejoin"  # the daemon's own start, on mains: nothing to do
        check_ins = [e for life in lives[1:] for e in life.audit.named("node.checked_in")]
        assert [e["action"] for e in check_ins if outage_time(e) < first_back] == ["halt_and_rearm"] * len(
            wakes_while_out
        )
        for event in world.events("node.restored"):
            if event["target"] == "pi5":  # never rejoined while mains was out
                at = outage_time(event)
                assert not any(off <= at < on for off, on in outage.intervals), at
        # Back only when the restore policy asked (mains stable, battery charged), at its next alarm: a wake
        # between mains coming back and that request halts again, whatever the flickers' lulls look like.
        asked = [outage_time(e) for e in world.events("node.power_on_requested") if e["target"] == "pi5"]
        assert len(asked) == 2 and {
            e["outcome"] for e in world.events("node.power_on_requested") if e["target"] == "pi5"
        } == {"wakes_itself"}
        # The first request came 10 min before 06:30: pi5's next alarm fell inside the new outage, so the
        # request was withdrawn and it stayed off; the second one brought it back at its next alarm.
        withdrawn = [outage_time(e) for e in world.events("node.power_on_withdrawn") if e["target"] == "pi5"]
        assert len(withdrawn) == 1 and asked[0] < withdrawn[0] < asked[1]
        (back,) = [outage_time(e) for e in world.events("node.restored") if e["target"] == "pi5"]
        assert asked[1] <= back <= asked[1] + 900 + 60
        rejoins = [outage_time(e) for e in check_ins if e["action"] == "rejoin"]
        assert len(rejoins) == 1 and asked[1] <= rejoins[0] <= back
        restored_state_is_the_start(world, before)
    finally:
        world.close()
