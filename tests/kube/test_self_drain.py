"""Issue 19, finding 1: a node's own shutdown ends its pods gracefully first, on every path.

The daemon (real :class:`PowerDaemon`, a scripted UPS) runs the self-drain before its shutdown command; the
self-drain speaks to the fake API server through the unmodified kubernetes client. Graceful deletion is on, so
an evicted pod stays Terminating for its own grace period, as a kubelet keeps it, and disappears after."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.self_drain import SELF_DRAIN_ANNOTATION, SelfDrain
from piclusterd.config.parse import parse_config
from piclusterd.core.kubelet_shutdown import KubeletShutdown
from piclusterd.core.last_minute_budget import pod_grace_s
from piclusterd.node.daemon import PowerDaemon
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pdb, make_pod
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps

CRITICAL = {"picluster.io/critical": "true"}


@dataclass
class Shutdown:
    """The shutdown command: records what the API server still held on this node when it ran."""

    server: FakeKubeServer
    pods_left: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str]) -> int:
        self.pods_left.append(
            sorted(p["metadata"]["name"] for p in self.server.list_objects("Pod") if p["spec"].get("nodeName") == "pi1")
        )
        return 0


@dataclass
class Rig:
    server: FakeKubeServer
    clock: FakeClock
    api: KubeClusterApi
    audit: CapturedAudit
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        self.server.run_controller_once()

    def drain(self, *, kubelet: KubeletShutdown | None = None, budget: float = 60.0) -> SelfDrain:
        return SelfDrain(
            self.api,
            "pi1",
            self.clock,
            kubelet=kubelet or KubeletShutdown(),
            budget=lambda: budget,
            sleep=self.sleep,
            log=self.audit.logger,
        )

    def pods_on(self, node: str) -> list[str]:
        return sorted(
            p["metadata"]["name"] for p in self.server.list_objects("Pod") if p["spec"].get("nodeName") == node
        )


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock(start=1000.0, epoch=1_800_000_000.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=False, graceful_deletion=True) as server:
        for name in ("pi1", "pi2"):
            server.put_object(make_node(name, cpu="4", memory="4Gi"))
        server.put_object(make_pod("web-0", node="pi1", owner=("ReplicaSet", "web-5d8f"), grace_period_s=10))
        server.put_object(
            make_pod(
                "records-db-0", node="pi1", owner=("StatefulSet", "records-db"), labels=CRITICAL, grace_period_s=20
            )
        )
        server.put_object(make_pod("node-exporter-a", node="pi1", owner=("DaemonSet", "node-exporter")))
        server.put_object(make_pod("web-1", node="pi2", owner=("ReplicaSet", "web-5d8f")))
        api_client = server.api_client(retries=False)
        yield Rig(server, clock, KubeClusterApi(api_client), CapturedAudit("pi1"))
        api_client.close()


def daemon(rig: Rig, shutdown: Shutdown, ups: ScriptedUps, mode: str = "enforce") -> PowerDaemon:
    config = parse_config(
        {"mode": mode, "node": {"name": "pi1"}, "daemon": {"runtime_dir": "/nonexistent/run"}}, "t.toml"
    )
    made = PowerDaemon(
        config,
        source_factory=lambda _c: ups,
        clock=rig.clock,
        log=rig.audit.logger,
        notifier=_Notifier(),
        shutdown=shutdown,
    )
    made.add_pre_shutdown_hook(rig.drain())
    return made


class _Notifier:
    def ready(self, status: str) -> None: ...
    def status(self, status: str) -> None: ...
    def watchdog(self) -> None: ...
    def reloading(self) -> None: ...
    def stopping(self) -> None: ...


def test_a_critical_node_ends_its_pods_before_its_shutdown_command(rig: Rig) -> None:
    shutdown = Shutdown(rig.server)
    ups = ScriptedUps(rig.clock, {"ups.status": "OB LB", "battery.charge": "8", "battery.runtime": "60"})
    node = daemon(rig, shutdown, ups)
    node.step()
    assert node.shutdown_started
    # When the shutdown command ran, only the DaemonSet pod (kubectl drain leaves it) was still on pi1.
    assert shutdown.pods_left == [["node-exporter-a"]]
    drained = rig.audit.named("shutdown.self_drained")[0]
    assert drained["ended"] == ["default/web-0", "default/records-db-0"]
    assert drained["left_running"] == []
    # Each pod had its own grace period: web-0 went after 10 s, records-db-0 (critical, last) 20 s later.
    assert drained["elapsed_s"] == pytest.approx(30.0, abs=2.0)


def test_a_cluster_request_runs_the_same_self_drain(rig: Rig) -> None:
    # The shed node's, each full-shutdown step's and the leader's own power-off all come through here.
    shutdown = Shutdown(rig.server)
    ups = ScriptedUps(rig.clock)
    node = daemon(rig, shutdown, ups)
    node.step()
    assert node.request_local_shutdown("power-off requested by pi2 (r-1)")
    assert shutdown.pods_left == [["node-exporter-a"]]


def test_critical_pods_end_after_the_others(rig: Rig) -> None:
    rig.drain().before_local_shutdown("test")
    requests = list(rig.server.requests)
    evicted = [r.path.rsplit("/", 2)[-2] for r in requests if r.path.endswith("/eviction")]
    assert evicted == ["web-0", "records-db-0"]
    # records-db-0 was asked only once web-0 was gone (after its 10 s grace period).
    web_gone = next(i for i, r in enumerate(requests) if r.path.endswith("/pods/web-0") and r.status == 404)
    db_asked = next(i for i, r in enumerate(requests) if r.path.endswith("/pods/records-db-0/eviction"))
    assert web_gone < db_asked


def test_the_budget_bounds_the_drain_and_the_shutdown_goes_on(rig: Rig) -> None:
    rig.drain(budget=15.0).before_local_shutdown("test")
    drained = rig.audit.named("shutdown.self_drained")[0]
    assert drained["ended"] == ["default/web-0"]
    assert drained["left_running"] == ["default/records-db-0: still terminating"]
    assert sum(rig.sleeps) <= 15.0


def test_a_pod_its_budget_refuses_to_evict_is_deleted_with_its_grace_period_in_time(rig: Rig) -> None:
    # A single-replica database behind maxUnavailable 0: eviction never succeeds. The node goes off anyway,
    # so, as the kubelet's graceful shutdown does, it is deleted with its grace period while that still fits.
    rig.server.put_object(make_pdb("records-db", match_labels=CRITICAL, max_unavailable=0))
    rig.server.run_controller_once()
    rig.drain(budget=40.0).before_local_shutdown("test")
    drained = rig.audit.named("shutdown.self_drained")[0]
    assert drained["deleted_past_budget"] == ["default/records-db-0"]
    assert "default/records-db-0" in drained["ended"]
    deletes = [r for r in rig.server.requests if r.method == "DELETE" and r.path.endswith("/pods/records-db-0")]
    assert len(deletes) == 1  # and, ended within the 40 s budget, it had its whole 20 s grace period


def test_the_kubelets_own_graceful_shutdown_is_relied_on(rig: Rig) -> None:
    rig.drain(kubelet=KubeletShutdown(60.0, 30.0, ("/etc/rancher/k3s/config.yaml",))).before_local_shutdown("test")
    assert rig.pods_on("pi1") == ["node-exporter-a", "records-db-0", "web-0"]
    assert "kubelet" in rig.audit.named("shutdown.self_drain_skipped")[0]["why"]


def test_no_energy_left_means_no_drain(rig: Rig) -> None:
    rig.drain(budget=0.0).before_local_shutdown("test")
    assert rig.pods_on("pi1") == ["node-exporter-a", "records-db-0", "web-0"]
    assert rig.audit.named("shutdown.self_drain_skipped")


def test_an_unreachable_api_server_costs_the_drain_not_the_power_off(rig: Rig) -> None:
    rig.server.fail_next(1000, 503, path="/api/v1/(nodes|pods)")
    shutdown = Shutdown(rig.server)
    ups = ScriptedUps(rig.clock, {"ups.status": "OB LB", "battery.charge": "8", "battery.runtime": "60"})
    node = daemon(rig, shutdown, ups)
    node.step()
    assert len(shutdown.pods_left) == 1  # the shutdown command ran
    assert rig.audit.named("shutdown.self_drain_failed")


def test_the_node_it_cordoned_is_uncordoned_at_the_next_start(rig: Rig) -> None:
    rig.drain().before_local_shutdown("test")
    node = rig.server.get_object("Node", None, "pi1")
    assert node is not None and node["spec"]["unschedulable"] is True
    assert SELF_DRAIN_ANNOTATION in node["metadata"]["annotations"]
    rig.drain().undo_after_boot()
    node = rig.server.get_object("Node", None, "pi1")
    assert node is not None and not node["spec"].get("unschedulable")
    assert SELF_DRAIN_ANNOTATION not in (node["metadata"].get("annotations") or {})


def test_a_node_already_cordoned_by_the_leader_stays_cordoned(rig: Rig) -> None:
    rig.api.patch_node("pi1", {"spec": {"unschedulable": True}})
    rig.drain().before_local_shutdown("test")
    rig.drain().undo_after_boot()
    node = rig.server.get_object("Node", None, "pi1")
    assert node is not None and node["spec"]["unschedulable"] is True


@pytest.mark.parametrize(
    ("pod", "grace"),
    [
        ({"spec": {"terminationGracePeriodSeconds": 45}}, 45),
        ({"spec": {}}, 30),
        ({"spec": {"terminationGracePeriodSeconds": -1}}, 30),
        ({"spec": {"terminationGracePeriodSeconds": "60"}}, 30),
        ({"spec": {"terminationGracePeriodSeconds": True}}, 30),
        ({"spec": {"terminationGracePeriodSeconds": 10**12}}, 86400),
        ({"metadata": {"deletionGracePeriodSeconds": 5}, "spec": {"terminationGracePeriodSeconds": 45}}, 5),
        ({"spec": "garbage"}, 30),
    ],
)
def test_a_pods_grace_period_is_read_with_bounds(pod: dict, grace: int) -> None:  # type: ignore[type-arg]
    assert pod_grace_s(pod) == grace
