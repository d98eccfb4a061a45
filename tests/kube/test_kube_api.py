"""The Kubernetes adapter over HTTP: the snapshot is kubectl's format, Events are counted, not flooded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from piclusterd.cluster.kube_api import ApiCallFailed, EventRecorder, KubeClusterApi
from piclusterd.core.cluster_view import parse_kubectl_list
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pdb, make_pod


@pytest.fixture
def server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as fake:
        fake.put_object(make_node("pi1"))
        for i in range(7):
            fake.put_object(make_pod(f"web-{i}", node="pi1", owner=("ReplicaSet", "web-1"), labels={"app": "web"}))
        fake.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
        yield fake


def test_snapshot_is_a_kubectl_list_the_core_parses(server: FakeKubeServer) -> None:
    with server.api_client(retries=False) as client:
        snapshot = KubeClusterApi(client).snapshot()
    assert snapshot["kind"] == "List"
    assert {i["kind"] for i in snapshot["items"]} == {"Node", "Pod", "PodDisruptionBudget"}
    view = parse_kubectl_list(snapshot)
    assert len(view.nodes) == 1 and len(view.pods) == 7 and len(view.pdbs) == 1


def test_the_snapshot_carries_pvs_and_pvcs_so_a_pinned_pod_is_seen(server: FakeKubeServer) -> None:
    """Issue 14, finding 1: the daemon reads PersistentVolumes and PersistentVolumeClaims, so a pod on a
    local-path volume carries its node pin (the PV's required node affinity)."""
    server.put_object(
        make_pod(
            "db-0",
            node="pi1",
            owner=("StatefulSet", "db"),
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
        )
    )
    server.put_object(
        {
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-db-0", "namespace": "default"},
            "spec": {"storageClassName": "local-path", "volumeName": "pvc-1"},
            "status": {"phase": "Bound"},
        }
    )
    hostname = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["pi1"]}
    server.put_object(
        {
            "kind": "PersistentVolume",
            "metadata": {"name": "pvc-1"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [hostname]}]}}},
            "status": {"phase": "Bound"},
        }
    )
    with server.api_client(retries=False) as client:
        snapshot = KubeClusterApi(client).snapshot()
    view = parse_kubectl_list(snapshot)
    db = next(p for p in view.pods if p.name == "db-0")
    assert [pin.volume for pin in db.volume_pins] == ["pvc-1"]
    assert view.volumes_unchecked == ()


def test_pages_are_followed(server: FakeKubeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("piclusterd.cluster.kube_api.PAGE_SIZE", 3)
    with server.api_client(retries=False) as client:
        pods = KubeClusterApi(client).pods_on_node("pi1")
    assert len(pods) == 7
    assert sum(1 for r in server.requests if r.path == "/api/v1/pods") == 3


def test_a_repeated_event_bumps_its_count(server: FakeKubeServer) -> None:
    with server.api_client(retries=False) as client:
        recorder = EventRecorder(client, reporter="pi1")
        for _ in range(3):
            recorder.emit("pi1", "DrainBlocked", "web-0 is blocked by budget web", warning=True)
        recorder.emit("pi1", "PowerShed", "pi1 powered off")
    events = {e["reason"]: e for e in server.list_objects("Event")}
    assert events["DrainBlocked"]["count"] == 3 and events["DrainBlocked"]["type"] == "Warning"
    assert events["PowerShed"]["count"] == 1
    assert events["DrainBlocked"]["involvedObject"]["kind"] == "Node"
    assert events["DrainBlocked"]["source"]["component"] == "piclusterd"


def test_an_unreachable_server_is_a_cluster_error(server: FakeKubeServer) -> None:
    with server.api_client(retries=False) as client:
        api = KubeClusterApi(client, request_timeout_s=2)
        server.stop()
        with pytest.raises(ApiCallFailed) as caught:
            api.get_node("pi1")
    assert caught.value.status == 0
