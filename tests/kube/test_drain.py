"""Drain against the fake API server over HTTP, with the unmodified kubernetes client: kubectl drain's
semantics, the PDB retry, the timeout rollback, and fencing before every eviction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from piclusterd.cluster.authority import RequestSigner
from piclusterd.cluster.drain import DrainAction, Drainer, DrainOptions, drain_action
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.core.authority import ClusterKeys
from piclusterd.core.errors import NotLeader
from piclusterd.core.node_records import SHED_ANNOTATION, ShedPhase, ShedRecord, parse_shed_record
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pdb, make_pod
from piclusterd.sim.fake_clock import FakeClock

CRITICAL = {"picluster.io/critical": "true"}


class _LeaderInTerm:
    """pi1 leads in term 1: what the drainer's records are signed as."""

    identity = "pi1"

    def term(self) -> int:
        return 1


@dataclass
class Rig:
    server: FakeKubeServer
    clock: FakeClock
    api: KubeClusterApi
    audit: CapturedAudit
    fence_calls: int = 0
    fence_fails_after: int | None = None

    def fence(self) -> None:
        self.fence_calls += 1
        if self.fence_fails_after is not None and self.fence_calls > self.fence_fails_after:
            raise NotLeader("lease lost")

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.server.run_controller_once()

    def drainer(self, **options: object) -> Drainer:
        return Drainer(
            self.api,
            self.clock,
            sleep=self.sleep,
            options=DrainOptions(**{"timeout_s": 60.0, **options}),  # type: ignore[arg-type]
            fence=self.fence,
            log=self.audit.logger,
            signer=RequestSigner(ClusterKeys(b"k" * 32), _LeaderInTerm()),
        )

    def node(self, name: str) -> dict:  # type: ignore[type-arg]
        found = self.server.get_object("Node", None, name)
        assert found is not None
        return found

    def evictions(self) -> list[tuple[str, int]]:
        return [(r.path.rsplit("/", 2)[-2], r.status) for r in self.server.requests if r.path.endswith("/eviction")]


def record(was_unschedulable: bool = False) -> ShedRecord:
    return ShedRecord(ShedPhase.DRAINING, "pi1", "on battery", "2026-11-24T02:01:00Z", was_unschedulable)


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock(start=1000.0, epoch=1_800_000_000.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=3.0) as server:
        for name in ("pi1", "pi2", "pi3"):
            server.put_object(make_node(name, cpu="4", memory="4Gi"))
        server.put_object(make_pod("node-exporter-a", node="pi3", owner=("DaemonSet", "node-exporter")))
        api_client = server.api_client(retries=False)
        yield Rig(server, clock, KubeClusterApi(api_client), CapturedAudit("pi1"))
        api_client.close()


def put_web(rig: Rig, replicas: int = 2, labels: dict[str, str] | None = None) -> None:
    for i in range(replicas):
        rig.server.put_object(
            make_pod(f"web-{i}", node="pi3", owner=("ReplicaSet", "web-5d8f"), labels={"app": "web", **(labels or {})})
        )


def test_drain_moves_pods_and_records_progress(rig: Rig) -> None:
    put_web(rig, labels=CRITICAL)
    result = rig.drainer().drain("pi3", record())
    assert result.ok, result
    assert result.evicted == ("default/web-0", "default/web-1")
    node = rig.node("pi3")
    assert node["spec"]["unschedulable"] is True
    saved = parse_shed_record(node["metadata"]["annotations"][SHED_ANNOTATION])
    assert isinstance(saved, ShedRecord) and saved.phase is ShedPhase.DRAINED and not saved.was_unschedulable
    web = [p for p in rig.server.list_objects("Pod") if p["metadata"]["name"].startswith("web")]
    assert {p["spec"]["nodeName"] for p in web} <= {"pi1", "pi2"}
    assert rig.server.get_object("Pod", "default", "node-exporter-a") is not None  # DaemonSet pod stays
    assert [e["event"] for e in rig.audit.events][:2] == ["node.cordoned", "node.drain_started"]
    assert rig.audit.named("node.drained")[0]["evicted"] == ["default/web-0", "default/web-1"]


def test_a_pdb_429_is_retried_until_the_replacement_is_ready(rig: Rig) -> None:
    put_web(rig)
    rig.server.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    rig.server.run_controller_once()
    result = rig.drainer().drain("pi3", record())
    assert result.ok
    statuses = [status for _, status in rig.evictions()]
    assert statuses.count(201) == 2 and 429 in statuses
    # Retried every 5 s, not hammered: 3 s to Ready means one or two refusals at most.
    assert statuses.count(429) <= 2


def test_a_drain_that_cannot_finish_rolls_back_and_names_the_blockers(rig: Rig) -> None:
    rig.server.put_object(make_pod("db-0", node="pi3", owner=("StatefulSet", "db"), labels={"app": "db"}))
    rig.server.put_object(make_pdb("db", match_labels={"app": "db"}, min_available=1))
    rig.server.run_controller_once()
    result = rig.drainer(timeout_s=20.0).drain("pi3", record())
    assert not result.ok and result.reason == "timed out"
    assert result.blocked[0][0] == "default/db-0"
    assert any("disruption budget db" in b for b in result.budgets)
    node = rig.node("pi3")
    assert "unschedulable" not in node["spec"]  # we cordoned it, so we uncordoned it
    assert SHED_ANNOTATION not in (node["metadata"].get("annotations") or {})
    assert rig.server.get_object("Pod", "default", "db-0") is not None
    failed = rig.audit.named("node.drain_failed")[0]
    assert failed["blocking_pods"][0].startswith("default/db-0: Cannot evict pod")


def test_an_operators_cordon_survives_a_failed_drain(rig: Rig) -> None:
    rig.server.update_object("Node", None, "pi3", lambda n: n["spec"].update(unschedulable=True))
    rig.server.put_object(make_pod("lonely", node="pi3", owner=None))
    result = rig.drainer().drain("pi3", record(was_unschedulable=True))
    assert not result.ok
    node = rig.node("pi3")
    assert node["spec"]["unschedulable"] is True
    assert SHED_ANNOTATION not in (node["metadata"].get("annotations") or {})


def test_an_unreplicated_pod_blocks_before_anything_is_evicted(rig: Rig) -> None:
    put_web(rig)
    rig.server.put_object(make_pod("lonely", node="pi3", owner=None))
    result = rig.drainer().drain("pi3", record())
    assert not result.ok
    assert result.blocked == (("default/lonely", "not managed by a controller: nothing would recreate it elsewhere"),)
    assert rig.evictions() == []


def test_a_pod_under_two_budgets_fails_the_drain(rig: Rig) -> None:
    put_web(rig, replicas=1)
    rig.server.put_object(make_pdb("one", match_labels={"app": "web"}, max_unavailable=1))
    rig.server.put_object(make_pdb("two", match_labels={"app": "web"}, max_unavailable=1))
    rig.server.run_controller_once()
    result = rig.drainer().drain("pi3", record())
    assert not result.ok and result.reason == "an eviction failed"
    assert "more than one PodDisruptionBudget" in result.blocked[0][1]
    assert "unschedulable" not in rig.node("pi3")["spec"]


def test_a_leader_that_loses_its_lease_evicts_nothing_more(rig: Rig) -> None:
    put_web(rig, replicas=2)
    rig.fence_fails_after = 2  # cordon + first eviction pass
    with pytest.raises(NotLeader):
        rig.drainer().drain("pi3", record())
    assert len(rig.evictions()) == 1


def test_a_leader_that_lost_its_lease_while_waiting_does_not_rewrite_the_record(rig: Rig) -> None:
    """Found by tests/integration (a SIGSTOPped leader): while it waited for replacements, another leader
    finished the node; waking up, the old one wrote "drained" over the new leader's record."""
    rig.server.ready_delay_s = 30.0
    put_web(rig, replicas=1, labels=CRITICAL)
    rig.fence_fails_after = 2  # cordon + the eviction; the lease is gone by the time the replacement is Ready
    with pytest.raises(NotLeader):
        rig.drainer(timeout_s=120.0).drain("pi3", record())
    saved = parse_shed_record(rig.node("pi3")["metadata"]["annotations"][SHED_ANNOTATION])
    assert isinstance(saved, ShedRecord) and saved.phase is ShedPhase.DRAINING
    assert rig.audit.named("node.drained") == []


def test_critical_pods_must_be_ready_elsewhere_before_the_drain_is_done(rig: Rig) -> None:
    rig.server.ready_delay_s = 30.0
    put_web(rig, replicas=1, labels=CRITICAL)
    result = rig.drainer(timeout_s=120.0).drain("pi3", record())
    assert result.ok
    assert result.elapsed_s >= 30.0  # waited for the replacement, not only for the old pod to go
    replacement = [p for p in rig.server.list_objects("Pod") if p["metadata"]["name"].startswith("web")]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in replacement[0]["status"]["conditions"])


@pytest.mark.parametrize(
    ("pod", "options", "expected"),
    [
        (dict(owner=("DaemonSet", "x")), {}, DrainAction.SKIP),
        (dict(owner=("DaemonSet", "x")), {"ignore_daemonsets": False}, DrainAction.BLOCK),
        (dict(owner=("ReplicaSet", "x"), annotations={"kubernetes.io/config.mirror": "x"}), {}, DrainAction.SKIP),
        (dict(owner=None, phase="Succeeded"), {}, DrainAction.EVICT),
        (dict(owner=("ReplicaSet", "x"), volumes=[{"name": "d", "emptyDir": {}}]), {}, DrainAction.EVICT),
        (
            dict(owner=("ReplicaSet", "x"), volumes=[{"name": "d", "emptyDir": {}}]),
            {"delete_emptydir_data": False},
            DrainAction.BLOCK,
        ),
        (dict(owner=None), {}, DrainAction.BLOCK),
        (dict(owner=None), {"allow_unreplicated": True}, DrainAction.EVICT),
        (dict(owner=("StatefulSet", "db")), {}, DrainAction.EVICT),
    ],
)
def test_drain_filters_in_kubectls_order(pod: dict, options: dict, expected: DrainAction) -> None:  # type: ignore[type-arg]
    from piclusterd.core.cluster_view import parse_kubectl_list

    raw = make_pod("p", node="pi3", **pod)
    raw["metadata"]["uid"] = "u"
    (parsed,) = parse_kubectl_list({"kind": "List", "items": [raw]}).pods
    assert drain_action(parsed, DrainOptions(**options))[0] is expected


# --- Drain on real timing (issue 14, finding 2): grace periods, a node that dies mid-drain ---------------


@pytest.mark.parametrize(
    ("graces", "options", "expected"),
    [
        ((), {}, 60.0),  # nothing to evict: the configured timeout
        ((30, 30), {}, 60.0),  # 30 s + 10 s margin is within it
        ((30, 90), {}, 100.0),  # the largest grace period + 10 s
        ((90,), {"grace_period_s": 5}, 60.0),  # an override (kubectl --grace-period) wins over the pod's
        ((7200,), {}, 3600.0),  # at most max_timeout_s
        ((600,), {"max_timeout_s": 120.0}, 120.0),  # the full shutdown's cap
        ((600,), {"max_timeout_s": 30.0}, 60.0),  # never below the configured timeout
    ],
)
def test_the_drain_timeout_follows_the_pods_grace_periods(
    graces: tuple[int, ...], options: dict[str, float], expected: float
) -> None:
    from piclusterd.cluster.drain import drain_timeout_s
    from piclusterd.core.cluster_view import Pod

    pods = [Pod("default", f"p{i}", "pi3", termination_grace_s=g) for i, g in enumerate(graces)]
    assert drain_timeout_s(pods, DrainOptions(timeout_s=60.0, **options)) == expected  # type: ignore[arg-type]


def test_a_drain_waits_for_the_pods_own_grace_period(rig: Rig) -> None:
    """Real pods stay Terminating for terminationGracePeriodSeconds (kubelet: SIGTERM, then SIGKILL after
    the grace period; pkg/registry/core/pod/strategy.go CheckGracefulDelete). A database given 90 s to flush
    must not make a 30 s drain fail and roll back."""
    rig.server.put_object(make_pod("db-0", node="pi3", owner=("StatefulSet", "db"), grace_period_s=90))
    result = rig.drainer(timeout_s=30.0).drain("pi3", record())
    assert result.ok, result
    assert result.elapsed_s >= 90.0
    assert rig.audit.named("node.drain_started")[0]["timeout_s"] == 100.0


def test_a_drain_reports_done_only_once_the_evicted_pod_is_gone(rig: Rig) -> None:
    """The fake's default, as Kubernetes: an evicted pod stays Terminating for its 30 s grace period
    (pkg/registry/core/pod/strategy.go CheckGracefulDelete) and the drain waits for it, by UID, as kubectl
    drain does. On old main the fake removed it at once and the drain was done in a second."""
    rig.server.put_object(make_pod("web-0", node="pi3", owner=("ReplicaSet", "web-5d8f")))
    result = rig.drainer().drain("pi3", record())
    assert result.ok, result
    assert result.elapsed_s >= 30.0
    assert rig.server.get_object("Pod", "default", "web-0") is None


def test_the_full_shutdown_drain_outlasts_the_default_grace_period(rig: Rig) -> None:
    """[shutdown] drain_timeout defaults to 30 s, the default grace period too: the drain waits 40 s, so a
    routine pod does not end as "drain incomplete"; a pod asking for 10 minutes gets 2 (the battery is
    critical by then) and the halt stops it."""
    from piclusterd.cluster.drain import FULL_SHUTDOWN_DRAIN_MAX_S

    put_web(rig, replicas=1)
    shutdown = {"timeout_s": 30.0, "wait_for_critical_replacements": False, "max_timeout_s": FULL_SHUTDOWN_DRAIN_MAX_S}
    result = rig.drainer(**shutdown).drain("pi3", record())
    assert result.ok, result
    rig.server.put_object(make_pod("slow-0", node="pi3", owner=("StatefulSet", "slow"), grace_period_s=600))
    rig.server.update_object("Node", None, "pi3", lambda n: n["spec"].pop("unschedulable", None))
    started = rig.clock.monotonic()
    result = rig.drainer(**shutdown).drain("pi3", record())
    assert not result.ok and result.reason == "timed out"
    assert rig.clock.monotonic() - started == pytest.approx(FULL_SHUTDOWN_DRAIN_MAX_S, abs=2.0)


def test_a_node_that_dies_mid_drain_ends_the_drain_at_once_not_after_the_timeout(rig: Rig) -> None:
    """A node that loses power mid-drain cannot finish deleting its pods: they stay Terminating until it
    returns (the kubelet confirms deletion; pkg/kubelet/status/status_manager.go), and a StatefulSet's
    same-name replacement waits for them. Found: the drain waited its full 5 minutes and failed. Now it ends
    once the pods are past their deadline on a NotReady node, names them and says how to free them."""
    rig.server.put_object(make_pod("db-0", node="pi3", owner=("StatefulSet", "db")))

    def sleep_then_die(seconds: float) -> None:
        rig.sleep(seconds)
        if rig.clock.monotonic() >= 1005.0:
            rig.server.power_off_node("pi3")

    drainer = Drainer(
        rig.api,
        rig.clock,
        sleep=sleep_then_die,
        options=DrainOptions(timeout_s=300.0),
        fence=rig.fence,
        log=rig.audit.logger,
        signer=RequestSigner(ClusterKeys(b"k" * 32), _LeaderInTerm()),
    )
    result = drainer.drain("pi3", record())
    assert not result.ok and result.reason == "pi3 went NotReady mid-drain"
    assert result.elapsed_s < 90.0  # grace (30 s) + stuck_terminating_s (30 s), not the 300 s timeout
    assert result.blocked[0][0] == "default/db-0" and "force-delete" in result.blocked[0][1]
    assert rig.server.get_object("Pod", "default", "db-0") is not None  # never force-deleted by us
    assert "unschedulable" not in rig.node("pi3")["spec"]  # rolled back, as any failed drain


def test_a_resumed_drain_of_a_dead_node_ends_at_once(rig: Rig) -> None:
    """A leader resuming the drain of a node that died meanwhile finds its pods Terminating long past
    their deadline: the drain ends on the first poll instead of waiting 5 minutes."""
    rig.server.put_object(make_pod("db-0", node="pi3", owner=("StatefulSet", "db")))
    rig.api.evict("default", "db-0")
    rig.server.power_off_node("pi3")
    rig.clock.advance(600.0)
    rig.server.run_controller_once()
    assert rig.server.get_object("Pod", "default", "db-0") is not None  # stuck Terminating
    result = rig.drainer(timeout_s=300.0).drain("pi3", record())
    assert not result.ok and result.reason == "pi3 went NotReady mid-drain"
    assert result.elapsed_s < 5.0
