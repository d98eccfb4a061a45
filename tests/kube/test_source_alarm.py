"""Loss of UPS data is said on the node's own Node as a Kubernetes Event (not only in the journal): one
Warning per loss, one Normal when the readings are back, through the real controller tick on the fake API
server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.config.settings import ShedSettings
from piclusterd.node.source_alarm import SOURCE_LOST_REASON, SOURCE_RESTORED_REASON
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3")


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        yield made
        made.close()


def source_events(world: ClusterWorld) -> list[tuple[str, str, str, int]]:
    """(node, reason, type, count) of every UPS-data Event, sorted."""
    found = []
    for event in world.server.list_objects("Event"):
        if event.get("reason") in (SOURCE_LOST_REASON, SOURCE_RESTORED_REASON):
            node = event["involvedObject"]["name"]
            found.append((node, event["reason"], event["type"], int(event.get("count", 1))))
    return sorted(found)


def test_ups_data_lost_is_one_warning_per_node_and_its_return_one_normal_event(world: ClusterWorld) -> None:
    world.run(5)
    assert source_events(world) == []  # readable UPS: nothing said
    world.ups.go_silent()
    world.run(60)  # a minute of failed polls, past stale_after: still one Event each
    lost = [(name, SOURCE_LOST_REASON, "Warning", 1) for name in NAMES]
    assert source_events(world) == lost
    messages = {e["message"] for e in world.server.list_objects("Event") if e["reason"] == SOURCE_LOST_REASON}
    assert messages == {
        "UPS data lost (last known state: online): piclusterd will not act on stale power data and goes critical "
        "if it stays silent on battery. Check upsd and the network: upsc UPS@HOST"
    }
    world.ups.come_back()
    world.run(30)
    restored = [(name, SOURCE_RESTORED_REASON, "Normal", 1) for name in NAMES]
    assert source_events(world) == sorted(lost + restored)
    world.ups.go_silent()  # a second loss is said again (the same message: the Event's count goes up)
    world.run(10)
    assert source_events(world) == sorted([(name, SOURCE_LOST_REASON, "Warning", 2) for name in NAMES] + restored)


def test_a_daemon_that_never_read_its_ups_says_so(world: ClusterWorld) -> None:
    world.ups.go_silent()
    world.run(20)
    assert source_events(world) == [(name, SOURCE_LOST_REASON, "Warning", 1) for name in NAMES]
    message = {e["message"] for e in world.server.list_objects("Event") if e["reason"] == SOURCE_LOST_REASON}
    assert message == {
        "UPS data lost (last known state: unknown): piclusterd will not act on stale power data and goes critical "
        "if it stays silent on battery. Check upsd and the network: upsc UPS@HOST"
    }


def test_an_api_failure_is_logged_and_the_event_not_retried_every_poll(world: ClusterWorld) -> None:
    world.run(5)
    world.ups.go_silent()
    world.server.fail_next(100, 500, path=r"/api/v1/namespaces/default/events")
    world.run(5)
    failed = [e for e in world.events("cluster.api_failed") if "UPS data lost" in str(e["step"])]
    assert sorted(e["node"] for e in failed) == list(NAMES)  # once per node, not once per poll
    assert source_events(world) == []
    assert all(pi.alive for pi in world.pis.values())  # and the nodes go on
    assert len(world.events("leader.acquired")) == 1


def test_a_loss_on_battery_is_said_once_even_when_the_fail_safe_then_goes_critical(world: ClusterWorld) -> None:
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="90", battery_runtime="6000", ups_realpower="23")
    world.run(3)
    world.ups.go_silent()
    world.run(20)  # past stale_after: every node is critical by NUT's fail-safe
    assert all(pi.daemon is not None and pi.daemon.memory.state.value == "critical" for pi in world.pis.values())
    assert source_events(world) == [(name, SOURCE_LOST_REASON, "Warning", 1) for name in NAMES]
    messages = {e["message"] for e in world.server.list_objects("Event") if e["reason"] == SOURCE_LOST_REASON}
    assert messages == {
        "UPS data lost (last known state: on_battery): piclusterd will not act on stale power data and goes "
        "critical if it stays silent on battery. Check upsd and the network: upsc UPS@HOST"
    }
