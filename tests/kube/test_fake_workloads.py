"""The fake API server's workloads (issue 16): Deployments, ReplicaSets, StatefulSets and Jobs made from a
loaded cluster's pods, their scale subresource and Job suspend, through the unmodified kubernetes client and
the exact calls the leader's scaler makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from piclusterd.sim import fake_rbac
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"
NS = "clinic"


@pytest.fixture
def district(kube: FakeKubeServer) -> FakeKubeServer:
    """district-10 as the demo loads it: pods whose owners are ReplicaSets of Deployments, a StatefulSet and Jobs."""
    kube.load_objects(json.loads((CLUSTERS / "district-10.json").read_text()))
    return kube


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


def error_body(error: ApiException) -> Any:
    return json.loads(error.body)


def pods_of(kube: FakeKubeServer, prefix: str, *, live_only: bool = True) -> list[str]:
    return sorted(
        pod["metadata"]["name"]
        for pod in kube.list_objects("pods", NS)
        if pod["metadata"]["name"].startswith(prefix) and not (live_only and pod["metadata"].get("deletionTimestamp"))
    )


# ---------------------------------------------------------------------------------- seeding


def test_loaded_pods_get_the_owners_their_controllers_made(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(NS).items}
    assert {name: d.spec.replicas for name, d in deployments.items()} == {
        "lab-reports": 2, "matrix-synapse": 1, "openmrs": 2, "pacs-viewer": 2, "prometheus": 1,
    }  # fmt: skip
    replica_set = apps.read_namespaced_replica_set("lab-reports-qb89fn5sgz", NS)
    assert replica_set.spec.replicas == 2
    owner = replica_set.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Deployment", "lab-reports", True)
    assert owner.uid == deployments["lab-reports"].metadata.uid
    assert replica_set.spec.template.metadata.labels["pod-template-hash"] == "qb89fn5sgz"
    assert "pod-template-hash" not in deployments["lab-reports"].spec.selector.match_labels
    mariadb = apps.read_namespaced_stateful_set("mariadb", NS)
    assert mariadb.spec.replicas == 2
    assert [claim.metadata.name for claim in mariadb.spec.volume_claim_templates] == ["data"]


def test_owner_uid_is_the_one_the_pods_name(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    pod = district.get_object("pods", NS, "mariadb-0")
    assert pod is not None
    assert apps.read_namespaced_stateful_set("mariadb", NS).metadata.uid == pod["metadata"]["ownerReferences"][0]["uid"]


def test_loaded_jobs_run_as_many_pods_as_they_have(district: FakeKubeServer, batch: client.BatchV1Api) -> None:
    job = batch.read_namespaced_job("analytics-nightly", NS)
    assert (job.spec.parallelism, job.spec.suspend, job.status.active) == (1, False, 1)
    assert {j.metadata.name for j in batch.list_job_for_all_namespaces().items} == {
        "analytics-nightly",
        "backup-29400120",
    }


def test_workloads_list_per_namespace_and_across_all(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    assert len(apps.list_deployment_for_all_namespaces().items) == 5
    assert apps.list_namespaced_deployment("monitoring").items == []
    assert len(apps.list_replica_set_for_all_namespaces().items) == 5
    assert [s.metadata.name for s in apps.list_stateful_set_for_all_namespaces().items] == ["mariadb"]


def test_a_replica_set_not_named_for_a_template_hash_has_no_deployment(kube: FakeKubeServer) -> None:
    from piclusterd.sim.fake_api_server import make_node, make_pod

    kube.put_object(make_node("pi1"))
    kube.put_object(make_pod("web-0", node="pi1", owner=("ReplicaSet", "web-5d8f")))
    kube.put_object(make_pod("web-1", node="pi1", owner=("ReplicaSet", "web-5d8f")))
    replica_set = kube.get_object("replicasets", "default", "web-5d8f")
    assert replica_set is not None and replica_set["spec"]["replicas"] == 2
    assert "ownerReferences" not in replica_set["metadata"]
    assert kube.list_objects("deployments") == []


# --------------------------------------------------------------------- the scaler's calls


def test_the_scalers_deployment_calls(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    """read_namespaced_replica_set finds the Deployment; read/patch_namespaced_deployment_scale change it."""
    owner = apps.read_namespaced_replica_set("lab-reports-qb89fn5sgz", NS).metadata.owner_references[0]
    scale = apps.read_namespaced_deployment_scale(owner.name, NS)
    assert (scale.kind, scale.api_version, scale.spec.replicas, scale.status.replicas) == (
        "Scale",
        "autoscaling/v1",
        2,
        2,
    )
    assert scale.status.selector == "app.kubernetes.io/name=lab-reports,app.kubernetes.io/part-of=clinic"
    patched = apps.patch_namespaced_deployment_scale(owner.name, NS, {"spec": {"replicas": 0}})
    assert patched.spec.replicas == 0
    deployment = apps.read_namespaced_deployment(owner.name, NS)
    assert deployment.spec.replicas == 0
    assert deployment.metadata.generation == 2  # a spec change is a new generation


def test_the_scalers_replica_set_and_stateful_set_calls(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    assert apps.read_namespaced_replica_set_scale("prometheus-dzv5k6hvgh", NS).spec.replicas == 1
    assert (
        apps.patch_namespaced_replica_set_scale("prometheus-dzv5k6hvgh", NS, {"spec": {"replicas": 0}}).spec.replicas
        == 0
    )
    assert apps.read_namespaced_stateful_set_scale("mariadb", NS).spec.replicas == 2
    assert apps.patch_namespaced_stateful_set_scale("mariadb", NS, {"spec": {"replicas": 1}}).spec.replicas == 1
    assert apps.read_namespaced_stateful_set("mariadb", NS).spec.replicas == 1


def test_the_scalers_job_calls(district: FakeKubeServer, batch: client.BatchV1Api) -> None:
    job = batch.patch_namespaced_job("analytics-nightly", NS, {"spec": {"suspend": True}})
    assert job.spec.suspend is True
    assert batch.read_namespaced_job("analytics-nightly", NS).spec.suspend is True


def test_scale_replace_puts_the_replicas(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    scale = apps.read_namespaced_deployment_scale("openmrs", NS)
    scale.spec.replicas = 1
    assert apps.replace_namespaced_deployment_scale("openmrs", NS, scale).spec.replicas == 1
    assert apps.read_namespaced_deployment("openmrs", NS).spec.replicas == 1


def test_scale_replace_with_a_stale_resource_version_is_409(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    stale = apps.read_namespaced_deployment_scale("openmrs", NS)
    apps.patch_namespaced_deployment_scale("openmrs", NS, {"spec": {"replicas": 1}})
    stale.spec.replicas = 0
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment_scale("openmrs", NS, stale)
    assert caught.value.status == 409
    assert error_body(caught.value)["reason"] == "Conflict"
    assert apps.read_namespaced_deployment("openmrs", NS).spec.replicas == 1


def test_negative_replicas_on_scale_is_422_as_validate_scale_says(
    district: FakeKubeServer, apps: client.AppsV1Api
) -> None:
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("openmrs", NS, {"spec": {"replicas": -1}})
    assert caught.value.status == 422
    body = error_body(caught.value)
    assert body["message"] == (
        'Scale.autoscaling "openmrs" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    assert apps.read_namespaced_deployment("openmrs", NS).spec.replicas == 2


def test_negative_replicas_on_the_object_is_422(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_stateful_set("mariadb", NS, {"spec": {"replicas": -3}})
    assert caught.value.status == 422
    assert error_body(caught.value)["message"].startswith('StatefulSet.apps "mariadb" is invalid: spec.replicas')


def test_negative_job_parallelism_is_422(district: FakeKubeServer, batch: client.BatchV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        batch.patch_namespaced_job("analytics-nightly", NS, {"spec": {"parallelism": -1}})
    assert caught.value.status == 422
    assert error_body(caught.value)["details"]["group"] == "batch"


def test_scale_of_a_missing_workload_is_404(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment_scale("nope", NS)
    assert caught.value.status == 404
    assert error_body(caught.value)["message"] == 'deployments.apps "nope" not found'
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_stateful_set_scale("nope", NS, {"spec": {"replicas": 0}})
    assert caught.value.status == 404


def test_jobs_have_no_scale_subresource(district: FakeKubeServer) -> None:
    assert district.call("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/analytics-nightly/scale").status == 404


def test_dry_run_scale_changes_nothing(district: FakeKubeServer, apps: client.AppsV1Api) -> None:
    answered = apps.patch_namespaced_deployment_scale("openmrs", NS, {"spec": {"replicas": 0}}, dry_run="All")
    assert answered.spec.replicas == 0
    assert apps.read_namespaced_deployment("openmrs", NS).spec.replicas == 2


# ----------------------------------------------------------------------------------- RBAC


def rbac_with(rules: list[dict[str, Any]]) -> fake_rbac.RbacAuthorizer:
    """The shipped RBAC with ``rules`` as its only rules for apps and batch (whatever it grants there today)."""
    documents = fake_rbac.shipped_rbac()
    for document in documents:
        if document.get("kind") == "ClusterRole":
            kept = [r for r in document["rules"] if r.get("apiGroups") not in (["apps"], ["batch"])]
            document["rules"] = [*kept, *rules]
    return fake_rbac.RbacAuthorizer(documents)


@pytest.fixture
def without_scale_rule(clock: FakeClock) -> Iterator[FakeKubeServer]:
    """The shipped RBAC without any rule for workloads: what a cluster whose RBAC was not updated refuses."""
    with FakeKubeServer(clock=clock, rbac=rbac_with([])) as server:
        server.load_objects(json.loads((CLUSTERS / "district-10.json").read_text()))
        yield server


def test_scaling_without_the_rbac_rule_is_403(without_scale_rule: FakeKubeServer) -> None:
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/openmrs/scale"
    reply = without_scale_rule.call(
        "PATCH", path, {"spec": {"replicas": 0}}, content_type="application/merge-patch+json", token=DAEMON_TOKEN
    )
    assert reply.status == 403
    assert reply.body["message"] == (
        'deployments.apps "openmrs" is forbidden: User "system:serviceaccount:piclusterd:piclusterd" cannot '
        f'patch resource "deployments/scale" in API group "apps" in the namespace "{NS}"'
    )
    suspend = without_scale_rule.call(
        "PATCH",
        f"/apis/batch/v1/namespaces/{NS}/jobs/analytics-nightly",
        {"spec": {"suspend": True}},
        content_type="application/merge-patch+json",
        token=DAEMON_TOKEN,
    )
    assert suspend.status == 403


def test_the_scale_rule_grants_the_subresource_only(clock: FakeClock) -> None:
    """A rule for ``deployments/scale`` lets the scale through and not a patch of the Deployment itself."""
    rbac = rbac_with([{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}])
    with FakeKubeServer(clock=clock, rbac=rbac) as server:
        server.load_objects(json.loads((CLUSTERS / "district-10.json").read_text()))
        path = f"/apis/apps/v1/namespaces/{NS}/deployments/openmrs"
        scaled = server.call(
            "PATCH", path + "/scale", {"spec": {"replicas": 1}},
            content_type="application/merge-patch+json", token=DAEMON_TOKEN,
        )  # fmt: skip
        assert scaled.status == 200
        direct = server.call(
            "PATCH", path, {"spec": {"replicas": 0}}, content_type="application/merge-patch+json", token=DAEMON_TOKEN
        )
        assert direct.status == 403


# ------------------------------------------------------------------------------ controllers


@pytest.fixture
def running(clock: FakeClock) -> Iterator[FakeKubeServer]:
    """district-10 with the controllers on: graceful termination (30 s) and pods Ready 5 s after binding."""
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=5.0) as server:
        server.load_objects(json.loads((CLUSTERS / "district-10.json").read_text()))
        yield server


@pytest.fixture
def running_api(running: FakeKubeServer) -> Iterator[client.ApiClient]:
    api_client = running.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def running_apps(running_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(running_api)


@pytest.fixture
def running_batch(running_api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(running_api)


def settle(kube: FakeKubeServer, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Let the controllers run for ``seconds`` of the fake clock."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        kube.run_controller_once()
        elapsed += step


def test_deployment_scaled_down_loses_its_pods_and_scaled_up_gets_them_back(
    running: FakeKubeServer, clock: FakeClock, running_apps: client.AppsV1Api
) -> None:
    before = pods_of(running, "lab-reports-")
    assert len(before) == 2
    running_apps.patch_namespaced_deployment_scale("lab-reports", NS, {"spec": {"replicas": 0}})
    assert running_apps.read_namespaced_replica_set("lab-reports-qb89fn5sgz", NS).spec.replicas == 0
    terminating = [p for p in running.list_objects("pods", NS) if p["metadata"]["name"] in before]
    assert all(p["metadata"].get("deletionTimestamp") for p in terminating)  # graceful, as a real deletion
    assert pods_of(running, "lab-reports-") == []
    settle(running, clock, 31)
    assert pods_of(running, "lab-reports-", live_only=False) == []  # gone after their grace period, not replaced
    running_apps.patch_namespaced_deployment_scale("lab-reports", NS, {"spec": {"replicas": 2}})
    back = pods_of(running, "lab-reports-")
    assert len(back) == 2 and not set(back) & set(before)
    assert all(name.startswith("lab-reports-qb89fn5sgz-") and len(name) == len(before[0]) for name in back)
    settle(running, clock, 6)
    pods = [running.get_object("pods", NS, name) for name in back]
    assert all(p is not None and p["spec"].get("nodeName") and p["status"]["phase"] == "Running" for p in pods)
    deployment = running_apps.read_namespaced_deployment("lab-reports", NS)
    assert (deployment.status.replicas, deployment.status.ready_replicas) == (2, 2)


def test_a_replaced_pod_still_comes_back_when_the_scale_did_not_change(
    running: FakeKubeServer, running_apps: client.AppsV1Api, running_api: client.ApiClient
) -> None:
    client.CoreV1Api(running_api).delete_namespaced_pod("lab-reports-qb89fn5sgz-8gmj2", NS)
    assert len(pods_of(running, "lab-reports-")) == 2
    assert running_apps.read_namespaced_replica_set("lab-reports-qb89fn5sgz", NS).spec.replicas == 2


def test_replica_set_deletes_unscheduled_then_not_ready_pods_first(
    kube: FakeKubeServer, apps: client.AppsV1Api
) -> None:
    """getPodsToDelete's ranking: a pod on no node, then a pod not Ready, before Ready pods."""
    from piclusterd.sim.fake_api_server import make_node, make_pod

    kube.put_object(make_node("pi1"))
    owner = ("ReplicaSet", "web-5d8f")
    kube.put_object(make_pod("web-ready", node="pi1", labels={"app": "web"}, owner=owner))
    kube.put_object(make_pod("web-unready", node="pi1", labels={"app": "web"}, owner=owner, ready=False))
    kube.put_object(make_pod("web-pending", labels={"app": "web"}, owner=owner))
    kube.put_object(make_pod("web-ready-2", node="pi1", labels={"app": "web"}, owner=owner))
    apps.patch_namespaced_replica_set_scale("web-5d8f", "default", {"spec": {"replicas": 3}})
    kube.run_controller_once()
    assert kube.get_object("pods", "default", "web-pending") is None  # unbound: deleted at once
    apps.patch_namespaced_replica_set_scale("web-5d8f", "default", {"spec": {"replicas": 2}})
    kube.run_controller_once()
    unready = kube.get_object("pods", "default", "web-unready")
    assert unready is not None and unready["metadata"].get("deletionTimestamp")
    ready = [kube.get_object("pods", "default", name) for name in ("web-ready", "web-ready-2")]
    assert all(p is not None and not p["metadata"].get("deletionTimestamp") for p in ready)


def test_stateful_set_scales_down_from_the_highest_ordinal_one_at_a_time(
    running: FakeKubeServer, clock: FakeClock, running_apps: client.AppsV1Api
) -> None:
    running_apps.patch_namespaced_stateful_set_scale("mariadb", NS, {"spec": {"replicas": 0}})
    one = running.get_object("pods", NS, "mariadb-1")
    zero = running.get_object("pods", NS, "mariadb-0")
    assert one is not None and one["metadata"].get("deletionTimestamp")
    assert zero is not None and not zero["metadata"].get("deletionTimestamp")  # waits for mariadb-1 to be gone
    settle(running, clock, 29)
    zero = running.get_object("pods", NS, "mariadb-0")
    assert zero is not None and not zero["metadata"].get("deletionTimestamp")
    settle(running, clock, 2)
    assert running.get_object("pods", NS, "mariadb-1") is None
    zero = running.get_object("pods", NS, "mariadb-0")
    assert zero is not None and zero["metadata"].get("deletionTimestamp")
    settle(running, clock, 31)
    assert pods_of(running, "mariadb-", live_only=False) == []


def test_stateful_set_scales_up_from_the_lowest_missing_ordinal_each_once_the_last_is_ready(
    running: FakeKubeServer, clock: FakeClock, running_apps: client.AppsV1Api
) -> None:
    running_apps.patch_namespaced_stateful_set_scale("mariadb", NS, {"spec": {"replicas": 0}})
    settle(running, clock, 62)
    running_apps.patch_namespaced_stateful_set_scale("mariadb", NS, {"spec": {"replicas": 2}})
    assert pods_of(running, "mariadb-") == ["mariadb-0"]  # mariadb-1 waits for mariadb-0 to be Running and Ready
    settle(running, clock, 4)
    assert pods_of(running, "mariadb-") == ["mariadb-0"]
    settle(running, clock, 2)
    assert pods_of(running, "mariadb-") == ["mariadb-0", "mariadb-1"]
    pod = running.get_object("pods", NS, "mariadb-1")
    assert pod is not None
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "mariadb-1"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == ["data-mariadb-1"]  # its own claim, kept across the scale-down (whenScaled: Retain)


def test_job_suspend_deletes_its_pods_and_resume_brings_them_back(
    running: FakeKubeServer, clock: FakeClock, running_batch: client.BatchV1Api
) -> None:
    before = pods_of(running, "analytics-nightly-")
    assert before == ["analytics-nightly-kxwtd"]
    running_batch.patch_namespaced_job("analytics-nightly", NS, {"spec": {"suspend": True}})
    pod = running.get_object("pods", NS, "analytics-nightly-kxwtd")
    assert pod is not None and pod["metadata"].get("deletionTimestamp")  # graceful, as the job controller deletes
    job = running_batch.read_namespaced_job("analytics-nightly", NS)
    [condition] = [c for c in job.status.conditions if c.type == "Suspended"]
    assert (condition.status, condition.reason, condition.message) == ("True", "JobSuspended", "Job suspended")
    settle(running, clock, 31)
    assert pods_of(running, "analytics-nightly-", live_only=False) == []  # not replaced while suspended
    assert running_batch.read_namespaced_job("analytics-nightly", NS).status.active is None
    running_batch.patch_namespaced_job("analytics-nightly", NS, {"spec": {"suspend": False}})
    back = pods_of(running, "analytics-nightly-")
    assert len(back) == 1 and back != before
    settle(running, clock, 6)
    job = running_batch.read_namespaced_job("analytics-nightly", NS)
    [condition] = [c for c in job.status.conditions if c.type == "Suspended"]
    assert (condition.status, condition.reason) == ("False", "JobResumed")
    assert job.status.active == 1
    pod = running.get_object("pods", NS, back[0])
    assert pod is not None and pod["spec"].get("nodeName") and pod["status"]["phase"] == "Running"


def test_a_pdb_counts_the_deployments_replicas(running: FakeKubeServer, running_apps: client.AppsV1Api) -> None:
    """getExpectedScale reads the Deployment's scale: scaled to 1, a maxUnavailable 0 budget expects 1 pod."""
    from piclusterd.sim.fake_api_server import make_pdb

    running.put_object(make_pdb("lab", NS, match_labels={"app.kubernetes.io/name": "lab-reports"}, max_unavailable=0))
    assert running.get_object("pdb", NS, "lab")["status"]["expectedPods"] == 2  # type: ignore[index]
    running_apps.patch_namespaced_deployment_scale("lab-reports", NS, {"spec": {"replicas": 1}})
    assert running.get_object("pdb", NS, "lab")["status"]["expectedPods"] == 1  # type: ignore[index]


def test_a_deployment_created_through_the_api_gets_its_replica_set_and_pods(
    running: FakeKubeServer, running_apps: client.AppsV1Api
) -> None:
    labels = {"app": "web"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    }
    running_apps.create_namespaced_deployment(NS, body)
    running.run_controller_once()
    [replica_set] = [
        rs for rs in running_apps.list_namespaced_replica_set(NS).items if rs.metadata.name.startswith("web-")
    ]
    assert replica_set.spec.replicas == 2
    template_hash = replica_set.metadata.labels["pod-template-hash"]
    assert replica_set.metadata.name == f"web-{template_hash}"
    assert len(pods_of(running, f"web-{template_hash}-")) == 2
