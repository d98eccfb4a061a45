"""Every node's last minute on one timeline (issue 19): its pods end before its halt, and the UPS is cut last.

``ClusterWorld`` wires each node's self-drain and the leader's UPS-kill flag as the daemon does, and runs the
system-shutdown hook's UPS half once a node has halted; :attr:`ClusterWorld.timeline` orders all of it. The
fake API server ends pods gracefully here (a pod is gone only after its grace period), so "ended" means the
pod's containers had their SIGTERM and their time, not that an object vanished.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from piclusterd.config.settings import ShedSettings
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
EVENING = datetime.datetime(2026, 11, 24, 17, 0, tzinfo=datetime.UTC).timestamp()
LEADER = "pi1"
#: Long enough for every node's grace periods in turn: no node here protects itself before its turn.
FULL_SHUTDOWN_WAIT_S = 290.0
PEERS = tuple(name for name in NAMES if name != LEADER)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0, epoch=EVENING - 1000.0 - 10.0)


@pytest.fixture
def server(clock: FakeClock) -> Iterator[FakeKubeServer]:
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0, graceful_deletion=True) as made:
        made.load_objects(with_network_volumes(CLINIC))
        made.run_controller_once()
        yield made


def make_world(server: FakeKubeServer, clock: FakeClock, **options: Any) -> ClusterWorld:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    return ClusterWorld(server, clock, NAMES, settings, **options)


def critical_battery(world: ClusterWorld) -> None:
    world.ups.drive(ups_status="OB DISCHRG LB", battery_charge="18", battery_runtime="200", ups_realpower="14")


def all_down(world: ClusterWorld) -> bool:
    return not any(pi.alive for pi in world.pis.values())


@pytest.fixture
def instant_server(clock: FakeClock) -> Iterator[FakeKubeServer]:
    """Pods gone the moment they are deleted: the full shutdown's own timing without the grace periods."""
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0, graceful_deletion=False) as made:
        made.load_objects(with_network_volumes(CLINIC))
        made.run_controller_once()
        yield made


def at(world: ClusterWorld, node: str, what: str) -> int:
    """The position of ``node``'s first ``what`` on the world's timeline (fails if there is none)."""
    for index, (_time, who, said) in enumerate(world.timeline):
        if who == node and said == what:
            return index
    raise AssertionError(f"{node}: no {what!r} on the timeline")


def assert_pods_ended_before_each_halt(world: ClusterWorld, names: Sequence[str]) -> None:
    for name in names:
        assert world.pis[name].pods_at_halt == [[]], f"{name} halted with pods still to end"
        assert at(world, name, "shutdown.self_drained") < at(world, name, "halted"), name
        (drained,) = [e for e in world.events("shutdown.self_drained") if e["node"] == name]
        assert drained["left_running"] == [], name


def test_clinic5_full_shutdown_ends_every_nodes_pods_and_cuts_the_ups_only_after_the_leaders_halt(
    server: FakeKubeServer, clock: FakeClock
) -> None:
    world = make_world(server, clock, full_shutdown_wait_s=FULL_SHUTDOWN_WAIT_S)
    world.run(10)
    critical_battery(world)
    world.run_until(lambda: all_down(world), max_s=900)

    assert world.shutdown_order == ["pi4", "pi5", "pi2", "pi3", LEADER]
    # Each step of the full shutdown, and the leader last: pods ended (self-drain), then the halt.
    assert_pods_ended_before_each_halt(world, NAMES)
    (leader_drain,) = [e for e in world.events("shutdown.self_drained") if e["node"] == LEADER]
    assert leader_drain["ended"] == ["clinic/lab-reports-qb89fn5sgz-fh5x6"]  # nobody else drains the leader
    # The UPS kill is armed only once every other node has halted, and sent only after the leader's halt.
    armed = at(world, LEADER, "ups-kill armed")
    assert all(at(world, peer, "halted") < armed for peer in PEERS)
    assert armed < at(world, LEADER, "halted") < at(world, "ups", "INSTCMD shutdown.return")
    assert [line for _, line in world.ups.commands] == ["SET VAR ups.delay.shutdown 10", "INSTCMD shutdown.return"]
    (hook_said, sent) = world.pis[LEADER].console
    assert "pi1 is the last node" in hook_said and "root file system ro" in hook_said
    assert sent.startswith("piclusterd-power-cut: sent:")
    for peer in PEERS:
        assert world.pis[peer].console == []  # no flag on them: their hook does nothing


def test_a_node_that_does_not_halt_leaves_the_ups_kill_unarmed_and_the_journal_names_it(
    instant_server: FakeKubeServer, clock: FakeClock
) -> None:
    """pi4's daemon is dead and the Pi up: the leader goes down last without arming the kill, says which
    node is still up, and its halt tells the UPS nothing. (With grace periods on top of pi4's ack and
    off timeouts, the leader's own full_shutdown_wait runs out first here: it protects itself before the UPS
    step, and arms nothing either; this test reaches the step itself.)"""
    world = make_world(instant_server, clock, full_shutdown_wait_s=FULL_SHUTDOWN_WAIT_S)
    world.run(10)
    world.pis["pi4"].alive = False
    critical_battery(world)
    world.run_until(lambda: all(not world.pis[n].alive for n in NAMES if n != "pi4"), max_s=1200)

    assert_pods_ended_before_each_halt(world, [n for n in NAMES if n != "pi4"])
    assert not any(who == LEADER and what == "ups-kill armed" for _, who, what in world.timeline)
    (ups,) = world.events("shutdown.ups_return")
    assert ups["node"] == LEADER and ups["outcome"] == "failed"
    assert str(ups["detail"]).startswith("not armed: pi4 neither NotReady nor acknowledged")
    assert at(world, LEADER, "halted") > at(world, LEADER, "shutdown.ups_return")
    assert world.ups.commands == [] and world.pis[LEADER].console == []


def test_nodes_critical_on_their_own_end_their_pods_before_their_halt(
    server: FakeKubeServer, clock: FakeClock
) -> None:
    """The leader hangs in its hook: pi2 and pi3, never asked, protect themselves after full_shutdown_wait,
    each ending its own pods first (the leader's drain never reached them)."""
    world = make_world(server, clock, full_shutdown_wait_s=60.0)
    world.hook_duration_s = 600.0
    world.run(10)
    critical_battery(world)
    world.run_until(lambda: all_down(world), max_s=900)

    for name in ("pi2", "pi3"):
        (started,) = [e for e in world.events("shutdown.local_started") if e["node"] == name]
        assert started["by"] == "local_protection"
    (drained,) = [e for e in world.events("shutdown.self_drained") if e["node"] == "pi2"]
    assert drained["ended"] == ["clinic/prometheus-dzv5k6hvgh-dzjfw"]  # pi3 holds only a DaemonSet pod
    assert_pods_ended_before_each_halt(world, NAMES)


def test_a_shed_node_ends_its_pods_before_its_halt(server: FakeKubeServer, clock: FakeClock) -> None:
    """An ordinary outage: the leader drains each shed node, whose self-drain then finds the rest (DaemonSet
    pods are left to the OS), before its halt; the UPS is never told anything."""
    world = make_world(server, clock)
    world.run(10)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    world.run_until(lambda: len(world.events("node.powered_off")) == 3, max_s=1200, step_s=5)

    shed = sorted(str(e["target"]) for e in world.events("node.powered_off"))
    assert_pods_ended_before_each_halt(world, shed)
    for name in shed:
        assert len([e for e in world.events("node.drained") if e["target"] == name]) == 1  # the leader's drain
    assert world.ups.commands == []


def test_the_ups_delay_is_the_configs_ups_off_delay(instant_server: FakeKubeServer, clock: FakeClock) -> None:
    world = make_world(instant_server, clock, ups_off_delay_s=45)
    world.run(10)
    critical_battery(world)
    world.run_until(lambda: all_down(world), max_s=900)

    assert world.pis[LEADER].ups_requests == [45.0]
    assert [line for _, line in world.ups.commands] == ["SET VAR ups.delay.shutdown 45", "INSTCMD shutdown.return"]
