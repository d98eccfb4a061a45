"""District-10's storm with the whole daemon on every node (issue 16, item 4): the leader stops non-critical work
to reach the target, is killed before the restore, and the node that leads next puts every count back.

Ten daemons on the fake API server over HTTP, whose controllers make the pods' owners (Deployments, ReplicaSets,
StatefulSets, Jobs) from the loaded cluster and act on their scale and suspend as upstream's do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.config.settings import ShedSettings
from piclusterd.core.stopped_work import STOPPED_WORK_CONFIGMAP
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

DISTRICT = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "district-10.json"
NAMES = tuple(f"n{i}" for i in range(1, 11))


def counts(server: FakeKubeServer) -> dict[str, int | bool]:
    """Every scalable workload's spec.replicas and every Job's spec.suspend, by kind/namespace/name."""
    found: dict[str, int | bool] = {}
    for kind in ("Deployment", "StatefulSet"):
        for obj in server.list_objects(kind):
            found[f"{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}"] = int(
                obj["spec"].get("replicas", 1)
            )
    for obj in server.list_objects("Job"):
        found[f"Job {obj['metadata']['namespace']}/{obj['metadata']['name']}"] = bool(obj["spec"].get("suspend"))
    return found


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    scenario = load_scenario(DISTRICT)
    policy = replace(scenario.policy, can_stop_work=True)  # as settings_from_config makes the leader's
    settings = ShedSettings(policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0, graceful_deletion=False) as server:
        server.load_objects(with_network_volumes(DISTRICT))
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        yield made
        made.close()


def test_a_new_leader_puts_back_the_work_a_killed_leader_stopped(world: ClusterWorld) -> None:
    world.run(10)
    before = counts(world.server)
    assert before, "the fake made no workload objects from the cluster's pods"
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="20000", ups_realpower="60")
    world.run_until(lambda: bool(world.events("work.stopped")), max_s=900, step_s=2)
    stopped = world.events("work.stopped")
    leader = str(stopped[0]["node"])
    assert world.server.get_object("ConfigMap", "piclusterd", STOPPED_WORK_CONFIGMAP) is not None
    during = counts(world.server)
    assert during != before
    lowered = {k for k in before if during[k] != before[k]}
    assert lowered == {str(e["workload"]) for e in stopped}
    # Every workload lowered is non-critical (the storm's critical ones are openmrs, mariadb, matrix-synapse).
    assert not any(name in k for k in lowered for name in ("openmrs", "mariadb", "matrix-synapse"))

    world.pis[leader].alive = False  # killed before the restore: its record stays in the ConfigMap
    world.run(120, step_s=2)
    assert any(e["node"] != leader for e in world.events("leader.acquired"))

    world.ups.drive(ups_status="OL CHRG", battery_charge="95", battery_runtime="20000", ups_realpower="40")
    world.run_until(
        lambda: world.server.get_object("ConfigMap", "piclusterd", STOPPED_WORK_CONFIGMAP) is None,
        max_s=1800,
        step_s=5,
    )
    assert counts(world.server) == before
    restored = world.events("work.restored")
    # Everything stopped (by either leader: the new one may stop more while the outage lasts) came back.
    assert {str(e["workload"]) for e in restored} == {str(e["workload"]) for e in world.events("work.stopped")}
    assert all(e["node"] != leader for e in restored)
    assert not world.events("work.left_changed")
