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
