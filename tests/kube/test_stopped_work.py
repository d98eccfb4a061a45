"""The leader's scaler (issue 16, item 4): non-critical work a plan stops is scaled down behind a signed
write-ahead record, comes back with the restore, is left alone when a person changed it, and comes back from
whichever node leads then.

The daemon's own parts (KubeClusterApi, the Lease elector, the signer and verifier, the scaler) on the fake API
server as the daemon's ServiceAccount (deploy/rbac.yaml), with the real ``kubernetes`` client; the workloads
are created through the API as ``kubectl apply`` would."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client as k8s

from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.election import KubeLeaseStore, LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.scaler import STOP_SETTLE_S, StoppedWorkStore, WorkScaler
from piclusterd.core.authority import KEY_BYTES, ClusterKeys
from piclusterd.core.planner import ScaleDown
from piclusterd.core.stopped_work import STOPPED_WORK_CONFIGMAP, STOPPED_WORK_KEY
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock

NAMESPACE = "piclusterd"  # the outage namespace: the record's ConfigMap lives there
LAB = "lab"
REPORTS_RS = "reports-7d9f5c"
LABELS = {"app": "reports"}


def _template(labels: dict[str, str]) -> dict[str, object]:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]},
    }


@dataclass
class Leader:
    """One node's leader parts, sharing the cluster key with the others."""

    name: str
    elector: LeaseElector
    scaler: WorkScaler
    audit: CapturedAudit
    api: KubeClusterApi

    def lead(self) -> None:
        attempt = self.elector.try_acquire_or_renew()
        assert attempt.leader, f"{self.name} could not take the Lease: {attempt.error}"


class Cluster:
    def __init__(self, server: FakeKubeServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.keys = ClusterKeys(secrets.token_bytes(KEY_BYTES))
        self.admin = server.api_client()
        self.apps = k8s.AppsV1Api(self.admin)
        self.batch = k8s.BatchV1Api(self.admin)
        self.core = k8s.CoreV1Api(self.admin)
        self._clients = [self.admin]

    def leader(self, name: str) -> Leader:
        api_client = self.server.api_client(retries=False, token=DAEMON_TOKEN)
        self._clients.append(api_client)
        audit = CapturedAudit(name, wall=self.clock.wall)
        elector = LeaseElector.on_kubernetes(api_client, self.clock, name)
        events = EventRecorder(api_client, reporter=name, wall=self.clock.wall)
        verifier = RequestVerifier(self.keys, KubeLeaseStore(api_client), name, log=audit.logger, events=events)
        api = KubeClusterApi(api_client)
        store = StoppedWorkStore(
            api, NAMESPACE, audit.logger, signer=RequestSigner(self.keys, elector), verifier=verifier
        )
        scaler = WorkScaler(api=api, store=store, elector=elector, events=events, clock=self.clock, log=audit.logger)
        made = Leader(name, elector, scaler, audit, api)
        return made

    def deployment(self, name: str = "reports", replicas: int = 2) -> None:
        """A Deployment and the ReplicaSet it controls (as the deployment controller names and owns it)."""
        created = self.apps.create_namespaced_deployment(
            LAB,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": LAB},
                "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS}, "template": _template(LABELS)},
            },
        )
        if self.replica_set_of(name) is None:  # a fake without the deployment controller: made as it would be
            labels = {**LABELS, "pod-template-hash": "7d9f5c"}
            self.apps.create_namespaced_replica_set(
                LAB,
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": REPORTS_RS,
                        "namespace": LAB,
                        "labels": labels,
                        "ownerReferences": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "Deployment",
                                "name": name,
                                "uid": created.metadata.uid,
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": _template(labels)},
                },
            )

    def replica_set_of(self, deployment: str) -> str | None:
        for rs in self.apps.list_namespaced_replica_set(LAB).items:
            for owner in rs.metadata.owner_references or []:
                if owner.controller and owner.kind == "Deployment" and owner.name == deployment:
                    return str(rs.metadata.name)
        return None

    def job(self, name: str = "analytics", *, suspend: bool = False) -> None:
        labels = {"job": name}
        template = _template(labels)
        template["spec"] = {**template["spec"], "restartPolicy": "Never"}  # type: ignore[dict-item]
        self.batch.create_namespaced_job(
            LAB,
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "namespace": LAB},
                "spec": {"suspend": suspend, "template": template},
            },
        )

    def replicas(self, name: str = "reports") -> int:
        return int(self.apps.read_namespaced_deployment_scale(name, LAB).spec.replicas or 0)

    def suspended(self, name: str = "analytics") -> bool:
        return bool(self.batch.read_namespaced_job(name, LAB).spec.suspend)

    def record(self) -> dict[str, object] | None:
        found = self.server.get_object("ConfigMap", NAMESPACE, STOPPED_WORK_CONFIGMAP)
        return None if found is None else json.loads(found["data"][STOPPED_WORK_KEY])

    def events_on(self, kind: str, name: str) -> list[dict[str, object]]:
        return [
            e
            for e in self.server.list_objects("Event", LAB)
            if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
        ]

    def writes(self) -> list[tuple[str, str]]:
        return [
            (r.method, r.path) for r in self.server.requests if r.method not in ("GET",) and "/leases" not in r.path
        ]

    def close(self) -> None:
        for api_client in self._clients:
            api_client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def cluster(kube: FakeKubeServer, clock: FakeClock) -> Iterator[Cluster]:
    made = Cluster(kube, clock)
    yield made
    made.close()


def reports_stop(cluster: Cluster, pods: int = 1) -> ScaleDown:
    """The planner names the pods' controller: the ReplicaSet (core.planner scale_downs)."""
    rs = cluster.replica_set_of("reports")
    assert rs is not None
    return ScaleDown(LAB, "ReplicaSet", rs, tuple(f"{LAB}/{rs}-pod{i}" for i in range(pods)))


def test_a_stop_writes_its_record_first_then_scales_the_deployment_and_says_so(cluster: Cluster) -> None:
    cluster.deployment(replicas=2)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    cluster.server.clear_requests()
    assert pi1.scaler.stop([reports_stop(cluster)], dry_run=False)
    assert cluster.replicas() == 1
    # The Deployment, not its ReplicaSet: the deployment controller would undo a change to the ReplicaSet.
    writes = cluster.writes()
    scale = ("PATCH", f"/apis/apps/v1/namespaces/{LAB}/deployments/reports/scale")
    record = ("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    assert scale in writes and record in writes and writes.index(record) < writes.index(scale)  # write-ahead
    assert not any("replicasets" in path for _, path in writes)
    stored = cluster.record()
    assert stored is not None and stored["leader"] == "pi1"
    assert stored["entries"] == [
        {"namespace": LAB, "kind": "Deployment", "name": "reports", "replicasBefore": 2, "replicasSet": 1}
    ]
    (said,) = pi1.audit.named("work.stopped")
    assert said["workload"] == "Deployment lab/reports" and (said["replicas_from"], said["replicas_to"]) == (2, 1)
    (event,) = cluster.events_on("Deployment", "reports")
    assert event["reason"] == "WorkStopped"
    assert event["message"] == (
        "scaled Deployment lab/reports from 2 to 1 to reach the target runtime; back with the restore"
    )


def test_the_restore_scales_it_back_and_clears_the_record(cluster: Cluster) -> None:
    cluster.deployment(replicas=3)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    pi1.scaler.stop([reports_stop(cluster, pods=2)], dry_run=False)
    assert cluster.replicas() == 1 and pi1.scaler.pending
    assert not pi1.scaler.bring_back(now_allowed=False)  # the restore policy holds: nothing comes back yet
    assert cluster.replicas() == 1
    assert pi1.scaler.bring_back(now_allowed=True)
    assert cluster.replicas() == 3
    assert cluster.record() is None and not pi1.scaler.pending
    (said,) = pi1.audit.named("work.restored")
    assert (said["replicas_from"], said["replicas_to"]) == (1, 3)
    assert sorted(e["reason"] for e in cluster.events_on("Deployment", "reports")) == ["WorkRestored", "WorkStopped"]


def test_a_count_changed_by_a_person_meanwhile_is_left_as_it_is(cluster: Cluster) -> None:
    cluster.deployment(replicas=2)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    pi1.scaler.stop([reports_stop(cluster)], dry_run=False)
    cluster.apps.patch_namespaced_deployment_scale("reports", LAB, {"spec": {"replicas": 4}})  # kubectl scale
    pi1.scaler.bring_back(now_allowed=True)
    assert cluster.replicas() == 4  # the user wins
    assert cluster.record() is None
    (said,) = pi1.audit.named("work.left_changed")
    assert (said["replicas_set"], said["replicas_now"], said["replicas_before"]) == (1, 4, 2)
    assert "WorkLeftAsChanged" in {e["reason"] for e in cluster.events_on("Deployment", "reports")}


def test_a_job_is_suspended_and_resumed_and_one_a_person_suspended_is_never_touched(cluster: Cluster) -> None:
    cluster.job("analytics")
    cluster.job("backfill", suspend=True)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    stops = [ScaleDown(LAB, "Job", "analytics", ("lab/analytics-x",)), ScaleDown(LAB, "Job", "backfill", ("lab/b",))]
    pi1.scaler.stop(stops, dry_run=False)
    assert cluster.suspended("analytics") and cluster.suspended("backfill")
    stored = cluster.record()
    assert stored is not None and [e["name"] for e in stored["entries"]] == ["analytics"]  # type: ignore[union-attr]
    pi1.scaler.bring_back(now_allowed=True)
    assert not cluster.suspended("analytics")
    assert cluster.suspended("backfill")  # suspended by its owner: stays suspended
    assert cluster.record() is None


def test_a_forged_record_is_refused_said_and_nothing_is_scaled(cluster: Cluster) -> None:
    cluster.deployment(replicas=1)
    forged = {
        "v": 1,
        "leader": "mallory",
        "entries": [{"namespace": LAB, "kind": "Deployment", "name": "reports", "replicasBefore": 9, "replicasSet": 1}],
    }
    cluster.core.create_namespaced_config_map(
        NAMESPACE,
        {"metadata": {"name": STOPPED_WORK_CONFIGMAP}, "data": {STOPPED_WORK_KEY: json.dumps(forged)}},
    )
    pi1 = cluster.leader("pi1")
    pi1.lead()
    cluster.server.clear_requests()
    assert not pi1.scaler.bring_back(now_allowed=True)
    assert not pi1.scaler.stop([reports_stop(cluster)], dry_run=False)
    assert cluster.replicas() == 1  # neither "restored" to 9 nor stopped
    assert cluster.writes() == [("POST", "/api/v1/namespaces/default/events")]  # only the RecordRefused Event
    (said,) = pi1.audit.named("cluster.record_refused")
    assert said["check"] == "signature" and said["signer"] == "mallory"
    assert pi1.audit.named("work.stop_refused")


def test_dry_run_says_what_it_would_stop_and_writes_nothing(cluster: Cluster) -> None:
    cluster.deployment(replicas=2)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    cluster.server.clear_requests()
    assert not pi1.scaler.stop([reports_stop(cluster)], dry_run=True)
    assert not pi1.scaler.stop([reports_stop(cluster)], dry_run=True)  # said once
    assert cluster.writes() == []
    assert cluster.replicas() == 2 and cluster.record() is None
    (said,) = pi1.audit.named("work.stop_planned")
    assert said["workload"] == "Deployment lab/reports" and (said["replicas_from"], said["replicas_to"]) == (2, 1)


def test_a_new_leader_puts_back_what_a_dead_leader_stopped(cluster: Cluster, clock: FakeClock) -> None:
    """pi1 stops the work and dies before the restore; pi2 takes the Lease over and brings it back."""
    cluster.deployment(replicas=2)
    cluster.job("analytics")
    pi1, pi2 = cluster.leader("pi1"), cluster.leader("pi2")
    pi1.lead()
    pi1.scaler.stop([reports_stop(cluster), ScaleDown(LAB, "Job", "analytics", ("lab/a",))], dry_run=False)
    assert cluster.replicas() == 1 and cluster.suspended("analytics")
    assert not pi2.elector.try_acquire_or_renew().leader  # pi2 sees pi1 hold the Lease; then pi1 dies
    clock.advance(pi1.elector.timings.lease_duration_s + 1)
    pi2.lead()  # pi1's Lease ran out: pi2 leads in the next term
    assert pi2.scaler.bring_back(now_allowed=True)
    assert cluster.replicas() == 2 and not cluster.suspended("analytics")
    assert cluster.record() is None
    assert {e["workload"] for e in pi2.audit.named("work.restored")} == {"Deployment lab/reports", "Job lab/analytics"}
    assert not pi2.audit.named("cluster.record_refused")


def test_a_second_stop_keeps_the_first_count_to_put_back(cluster: Cluster, clock: FakeClock) -> None:
    cluster.deployment(replicas=3)
    pi1 = cluster.leader("pi1")
    pi1.lead()
    pi1.scaler.stop([reports_stop(cluster)], dry_run=False)
    assert not pi1.scaler.stop([reports_stop(cluster)], dry_run=False)  # just scaled: a stale plan is not obeyed
    assert cluster.replicas() == 2
    clock.advance(STOP_SETTLE_S)
    pi1.lead()
    assert pi1.scaler.stop([reports_stop(cluster)], dry_run=False)
    assert cluster.replicas() == 1
    stored = cluster.record()
    assert stored is not None and stored["entries"][0]["replicasBefore"] == 3  # type: ignore[index]
    pi1.scaler.bring_back(now_allowed=True)
    assert cluster.replicas() == 3


def test_an_unreadable_scale_refuses_that_workload_only(cluster: Cluster) -> None:
    cluster.deployment(replicas=2)
    cluster.job("analytics")
    pi1 = cluster.leader("pi1")
    pi1.lead()
    # A Deployment that is not there (deleted since the snapshot) and a Job: the Job is still stopped.
    stops = [ScaleDown(LAB, "StatefulSet", "gone", ("lab/gone-0",)), ScaleDown(LAB, "Job", "analytics", ("lab/a",))]
    assert pi1.scaler.stop(stops, dry_run=False)
    assert cluster.suspended("analytics")
    stored = cluster.record()
    assert stored is not None and [e["name"] for e in stored["entries"]] == ["analytics"]  # type: ignore[union-attr]
