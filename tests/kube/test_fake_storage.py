"""PersistentVolumes, claims and StorageClasses in the fake API server, with k3s local-path semantics (issue 14,
finding 1's API side: the planner's reading of them is engineer C's part)."""

from __future__ import annotations

from typing import Any

from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer, make_node, make_pod
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.fake_storage import make_local_path_pv, make_local_path_storage_class, make_network_pv, make_pvc

NS = "clinic"


def statefulset_pod(name: str, node: str | None, claim: str) -> dict[str, Any]:
    return make_pod(
        name,
        NS,
        node=node,
        labels={"app": "mariadb"},
        owner=("StatefulSet", "mariadb"),
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
    )


def controlled(clock: FakeClock) -> FakeKubeServer:
    return FakeKubeServer(clock=clock, controller=True, ready_delay_s=0)


def test_volumes_claims_and_classes_are_listed_as_kubectl_and_the_daemon_read_them(kube: FakeKubeServer) -> None:
    """Served as kube-apiserver serves them: /api/v1/persistentvolumes, /api/v1/persistentvolumeclaims (all
    namespaces too) and storage.k8s.io/v1 storageclasses; the daemon's token may list PVs and PVCs."""
    kube.put_object(make_local_path_storage_class())
    claim = kube.put_object(make_pvc("data-mariadb-0", NS, volume="pvc-1"))
    kube.put_object(make_local_path_pv("pvc-1", "pi2", claim))
    pvs = kube.call("GET", "/api/v1/persistentvolumes", token=DAEMON_TOKEN)
    assert pvs.status == 200 and pvs.body["kind"] == "PersistentVolumeList"
    assert [item["metadata"]["name"] for item in pvs.body["items"]] == ["pvc-1"]
    pvcs = kube.call("GET", "/api/v1/persistentvolumeclaims", token=DAEMON_TOKEN)
    assert [item["spec"]["volumeName"] for item in pvcs.body["items"]] == ["pvc-1"]
    classes = kube.call("GET", "/apis/storage.k8s.io/v1/storageclasses").body["items"]
    assert [(c["metadata"]["name"], c["volumeBindingMode"]) for c in classes] == [
        ("local-path", "WaitForFirstConsumer")
    ]


def test_a_local_path_claim_is_provisioned_on_the_node_of_its_first_pod(clock: FakeClock) -> None:
    """local-path is WaitForFirstConsumer (k3s manifests/local-storage.yaml): the claim stays Pending until
    its pod is scheduled; then rancher/local-path-provisioner makes a PV on that node with a required node
    affinity to it, and the claim is Bound."""
    with controlled(clock) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(make_local_path_storage_class())
        kube.put_object(make_pvc("data-mariadb-0", NS))
        kube.put_object(statefulset_pod("mariadb-0", None, "data-mariadb-0"))
        kube.run_controller_once()
        claim = kube.get_object("pvc", NS, "data-mariadb-0")
        assert claim is not None and claim["status"]["phase"] == "Bound"
        volume = kube.get_object("pv", None, claim["spec"]["volumeName"])
        assert volume is not None
        [term] = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert term["matchExpressions"] == [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["pi1"]}]


def test_a_pod_bound_to_a_local_volume_stays_pending_when_its_node_is_cordoned(clock: FakeClock) -> None:
    """pkg/scheduler/framework/plugins/volumebinding: a node the bound PV's node affinity excludes is never
    chosen ("node(s) had volume node affinity conflict"); the pod stays Pending with PodScheduled False and
    the scheduler records a Warning Event FailedScheduling. The old fake rescheduled mariadb-0 onto pi3."""
    with controlled(clock) as kube:
        for name in ("pi1", "pi2", "pi3"):
            kube.put_object(make_node(name))
        kube.put_object(make_local_path_storage_class())
        claim = kube.put_object(make_pvc("data-mariadb-0", NS, volume="pvc-1"))
        kube.put_object(make_local_path_pv("pvc-1", "pi2", claim))
        kube.put_object(statefulset_pod("mariadb-0", "pi2", "data-mariadb-0"))
        kube.update_object("nodes", None, "pi2", lambda n: n["spec"].update(unschedulable=True))
        kube.delete_object("pods", NS, "mariadb-0")  # evicted; its StatefulSet makes mariadb-0 again
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "mariadb-0")
        assert pod is not None and "nodeName" not in pod["spec"] and pod["status"]["phase"] == "Pending"
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["status"] == "False"
        assert "2 node(s) had volume node affinity conflict" in scheduled["message"]
        assert "1 node(s) were unschedulable" in scheduled["message"]
        events = [e for e in kube.list_objects("events", NS) if e["reason"] == "FailedScheduling"]
        assert events and events[0]["involvedObject"]["name"] == "mariadb-0" and events[0]["type"] == "Warning"
        kube.update_object("nodes", None, "pi2", lambda n: n["spec"].update(unschedulable=False))
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "mariadb-0")
        assert pod is not None and pod["spec"]["nodeName"] == "pi2"  # back where its data is


def test_a_pod_on_a_network_volume_moves(clock: FakeClock) -> None:
    """A PV without node affinity (NFS) fits every node, so the VolumeBinding filter lets the pod move."""
    with controlled(clock) as kube:
        for name in ("pi1", "pi2"):
            kube.put_object(make_node(name))
        claim = kube.put_object(make_pvc("data-mariadb-0", NS, storage_class="nfs", volume="nfs-1"))
        kube.put_object(make_network_pv("nfs-1", claim))
        kube.put_object(statefulset_pod("mariadb-0", "pi2", "data-mariadb-0"))
        kube.update_object("nodes", None, "pi2", lambda n: n["spec"].update(unschedulable=True))
        kube.delete_object("pods", NS, "mariadb-0")
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "mariadb-0")
        assert pod is not None and pod["spec"]["nodeName"] == "pi1"


def test_a_pod_whose_claim_is_missing_stays_pending(clock: FakeClock) -> None:
    """volumebinding PreFilter: a claim that does not exist makes the pod unschedulable."""
    with controlled(clock) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(statefulset_pod("mariadb-0", None, "nowhere"))
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "mariadb-0")
        assert pod is not None and "nodeName" not in pod["spec"]
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert 'persistentvolumeclaim "nowhere" not found' in scheduled["message"]
