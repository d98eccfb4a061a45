"""A hostile cluster against five real nodes on the fake API server (issue 13, findings 7, 8, 9 and item 7).

An absurd Lease, garbage on pods, NaN in the outage record and a crash inside the leader's work: every daemon
keeps running, a real node leads and plans on battery, and each problem is said once. The hostile inputs are
listed in tests/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from piclusterd.config.settings import ShedSettings
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
LEASE_S = 15  # the configured (default) lease duration


@contextmanager
def make_world(seed: Callable[[FakeKubeServer], None] | None = None) -> Iterator[ClusterWorld]:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)  # 2026-11-24 01:00 UTC
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        if seed is not None:
            seed(server)
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        yield made
        made.close()


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    with make_world() as made:
        yield made


def on_battery(world: ClusterWorld) -> None:
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")


def planned_a_shed(world: ClusterWorld) -> bool:
    return any(e["shed"] for e in world.events("plan.decided"))


def ghost_lease(server: FakeKubeServer) -> None:
    server.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "piclusterd-leader", "namespace": "piclusterd"},
            "spec": {
                "holderIdentity": "ghost",
                "leaseDurationSeconds": 2**31 - 1,
                "acquireTime": "2026-11-24T00:59:00.000000Z",
                "renewTime": "2026-11-24T00:59:59.000000Z",
                "leaseTransitions": 7,
            },
        }
    )


def test_a_ghost_holding_the_lease_for_68_years_is_replaced_and_the_leader_plans_on_battery() -> None:
    """Finding 7: holder "ghost" with leaseDurationSeconds 2^31-1 meant no node ever led again."""
    with make_world(ghost_lease) as world:
        on_battery(world)
        took = world.run_until(lambda: bool(world.events("leader.acquired")), max_s=120, step_s=1)
        assert took <= LEASE_S + 3  # within about the configured duration
        assert len(world.events("leader.acquired")) == 1
        distrusted = world.events("leader.lease_distrusted")
        assert distrusted and all(e["holder"] == "ghost" for e in distrusted)
        assert len([e for e in distrusted if e["node"] == "pi1"]) == 1  # once per node, not once per poll
        world.run_until(lambda: planned_a_shed(world), max_s=300)


def test_a_lease_duration_out_of_range_from_a_real_node_counts_as_the_configured_one() -> None:
    def absurd(server: FakeKubeServer) -> None:
        ghost_lease(server)
        server.update_object(
            "Lease", "piclusterd", "piclusterd-leader", lambda o: o["spec"].update(holderIdentity="pi3")
        )

    with make_world(absurd) as world:
        took = world.run_until(lambda: bool(world.events("leader.acquired")), max_s=120, step_s=1)
        assert took <= LEASE_S + 3
        assert "outside 1..150" in world.events("leader.lease_distrusted")[0]["why"]


def test_a_lease_that_cannot_be_written_is_said_once_per_cause_with_its_status(world: ClusterWorld) -> None:
    world.server.fail_next(100_000, 403, path="/leases", method="POST")
    world.run(20)
    unavailable = [e for e in world.events("leader.unavailable") if e["node"] == "pi1"]
    assert [(e["doing"], e["http_status"]) for e in unavailable] == [("creating", 403)]
    assert world.events("leader.acquired") == []


def test_garbage_cpu_usage_on_pods_does_not_stop_the_leader_planning(world: ClusterWorld) -> None:
    """Finding 8: cpu-usage "lots" made every poll fail with cluster.api_failed; 5,000 digits killed the leader."""
    pods = sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in world.server.list_objects("Pod"))
    for (namespace, name), value in zip(pods[:2], ["lots", "9" * 5000], strict=True):
        world.server.update_object(
            "Pod",
            namespace,
            name,
            lambda p, v=value: p["metadata"].setdefault("annotations", {}).update({"picluster.io/cpu-usage": v}),
        )
    world.run(10)
    on_battery(world)
    world.run_until(lambda: planned_a_shed(world), max_s=300)
    assert world.events("cluster.api_failed") == []
    refused = [e for e in world.events("cluster.value_refused") if e["node"] == "pi1"]
    assert sorted(e["object"] for e in refused) == sorted(f"pod {ns}/{n}" for ns, n in pods[:2])  # once each


@pytest.mark.parametrize("bad", ["NaN", "1e400"])
def test_nan_in_the_outage_record_does_not_crash_the_leader(bad: str) -> None:
    """Finding 9: NaN or 1e400 in the outage record killed the leader."""
    record = (
        '{"v":1,"startedAt":"2026-11-24T00:30:00Z","leader":"pi1","chargeAtStart":90,"energyWh":' + bad + ',"shed":[],'
        '"criticalDownS":0,"criticalDownSince":"","lastReadingAt":"","fullShutdown":null,"mainsBackAt":""}'
    )

    def seed(server: FakeKubeServer) -> None:
        body = {"metadata": {"name": "piclusterd-outage", "namespace": "piclusterd"}, "data": {"record": record}}
        server.put_object({"apiVersion": "v1", "kind": "ConfigMap", **body})

    with make_world(seed) as world:
        world.run(10)
        on_battery(world)
        world.run_until(lambda: planned_a_shed(world), max_s=300)  # every node's tick returned: no daemon died
        assert [e for e in world.events("outage.record_invalid") if e["node"] == "pi1"]
        assert world.events("cluster.tick_failed") == []


def test_a_crash_inside_the_leaders_work_does_not_stop_its_local_shutdown(world: ClusterWorld) -> None:
    """Item 7: an unexpected exception in the leader's step used to end the daemon, and its protection."""
    world.run(10)
    leader = world.pis["pi1"]
    assert leader.controller is not None and leader.controller.is_leader

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in the leader's work")

    leader.controller._lead = broken  # type: ignore[method-assign]  # the fault, not a client
    world.ups.drive(ups_status="OB DISCHRG LB", battery_charge="18", battery_runtime="200", ups_realpower="14")
    world.run_until(lambda: bool(leader.shutdowns), max_s=300)
    assert leader.shutdowns == ["systemctl poweroff"]
    failed = [e for e in world.events("cluster.tick_failed") if e["node"] == "pi1"]
    assert len(failed) == 1 and "RuntimeError" in failed[0]["traceback"]
    assert leader.controller.tick_failures >= 3
    warnings = [e for e in world.server.list_objects("Event") if e["reason"] == "ClusterTickFailing"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"


def test_deep_and_non_finite_records_on_nodes_do_not_stop_the_leader(world: ClusterWorld) -> None:
    """Finding 9: a deep value in picluster.io/shed or picluster.io/power killed the leader and every successor."""
    deep = "[" * 100_000 + "]" * 100_000
    hostile = {
        "pi4": {"picluster.io/shed": deep},
        "pi5": {"picluster.io/power": deep},
        "pi3": {"picluster.io/power": '{"v":1,"charge":NaN}'},
    }
    for name, values in hostile.items():
        world.server.update_object(
            "Node", None, name, lambda n, a=values: n["metadata"].setdefault("annotations", {}).update(a)
        )
    world.run(10)
    on_battery(world)
    world.run_until(lambda: planned_a_shed(world), max_s=300)
    assert world.events("cluster.tick_failed") == []
    assert len(world.events("leader.acquired")) == 1  # the first leader never died
    shed = next(e["shed"] for e in world.events("plan.decided") if e["shed"])
    assert "pi4" not in shed  # a node whose shed record cannot be read is never touched
