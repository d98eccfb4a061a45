"""RBAC in the fake API server (issue 14 finding 7) and the least privilege of deploy/rbac.yaml (issue 13 item 8).

The fake evaluates the shipped deploy/rbac.yaml for the daemons' ServiceAccount token, so a rule missing there
fails here, not as a 403 on a hospital's cluster. Each rule cites kube-apiserver's source.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from piclusterd.config.settings import ShedSettings
from piclusterd.sim import fake_rbac
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import ADMIN_TOKEN, DAEMON_TOKEN, FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[2]
CLINIC = REPO / "examples" / "clusters" / "clinic-5.json"
DAEMON_USER = "system:serviceaccount:piclusterd:piclusterd"


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {}}


def test_the_package_ships_deploy_rbac_yaml_unchanged() -> None:
    """The demo and the tests evaluate exactly the file users apply."""
    shipped = (REPO / "piclusterd" / "sim" / "data" / "rbac.yaml").read_text()
    assert shipped == (REPO / "deploy" / "rbac.yaml").read_text()


def test_an_unknown_token_is_401_unauthorized(kube: FakeKubeServer) -> None:
    """kube-apiserver's authentication filter (staging/src/k8s.io/apiserver/pkg/endpoints/filters/
    authentication.go) answers a token no authenticator accepts with 401 and the Status "Unauthorized"."""
    reply = kube.call("GET", "/api/v1/nodes", token="stolen")
    assert reply.status == 401
    assert (reply.body["kind"], reply.body["reason"], reply.body["message"]) == (
        "Status",
        "Unauthorized",
        "Unauthorized",
    )


def test_the_daemon_may_not_create_a_configmap_in_kube_system(kube: FakeKubeServer) -> None:
    """Issue 13 finding 14: the shared token could create coredns-custom in kube-system, which k3s's CoreDNS
    imports. Now a 403 with the message of responsewriters/errors.go forbiddenMessage."""
    reply = kube.call("POST", "/api/v1/namespaces/kube-system/configmaps", configmap("kube-system", "coredns-custom"),
                      token=DAEMON_TOKEN)  # fmt: skip
    assert reply.status == 403
    assert reply.body["reason"] == "Forbidden"
    assert reply.body["message"] == (
        f'configmaps is forbidden: User "{DAEMON_USER}" cannot create resource "configmaps" in API group "" '
        'in the namespace "kube-system"'
    )
    assert reply.body["details"] == {"kind": "configmaps"}
    assert kube.get_object("ConfigMap", "kube-system", "coredns-custom") is None


def test_the_daemon_creates_configmaps_only_in_its_namespace_and_reads_only_its_record(kube: FakeKubeServer) -> None:
    """pkg/apis/rbac/v1/evaluation_helpers.go ResourceNameMatches: a rule with resourceNames allows only those
    names (get/update/delete of piclusterd-outage), while create needs a rule without resourceNames."""
    path = "/api/v1/namespaces/piclusterd/configmaps"
    assert kube.call("POST", path, configmap("piclusterd", "piclusterd-outage"), token=DAEMON_TOKEN).status == 201
    assert kube.call("POST", path, configmap("piclusterd", "other"), token=DAEMON_TOKEN).status == 201
    assert kube.call("GET", f"{path}/piclusterd-outage", token=DAEMON_TOKEN).status == 200
    denied = kube.call("GET", f"{path}/other", token=DAEMON_TOKEN)
    assert denied.status == 403
    assert denied.body["message"].startswith('configmaps "other" is forbidden:')
    assert kube.call("DELETE", f"{path}/other", token=DAEMON_TOKEN).status == 403


def test_the_daemon_counts_node_events_only_in_default(kube: FakeKubeServer) -> None:
    """deploy/rbac.yaml grants patching Events (counting a repeated Node Event) in "default" only, where Node
    Events must live (legacyValidateEvent). Creating an Event is granted in every namespace since the leader
    stops non-critical work: its Event goes on the workload, in the workload's namespace (issue 16)."""
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reports", "namespace": "lab"},
        "reason": "Test",
    }
    assert kube.call("POST", "/api/v1/namespaces/lab/events", event, token=DAEMON_TOKEN).status == 201
    merge = "application/merge-patch+json"
    counted = kube.call(
        "PATCH", "/api/v1/namespaces/lab/events/e1", {"count": 2}, content_type=merge, token=DAEMON_TOKEN
    )
    assert counted.status == 403
    event["involvedObject"] = {"apiVersion": "v1", "kind": "Node", "name": "pi1"}
    assert kube.call("POST", "/api/v1/namespaces/default/events", event, token=DAEMON_TOKEN).status == 201


def test_subresources_are_authorized_apart_from_their_resource(kube: FakeKubeServer) -> None:
    """evaluation_helpers.go ResourceMatches compares "resource/subresource": patching nodes does not allow
    patching nodes/status (a daemon cannot fake a node's Ready condition), and pods/status is not granted by
    pods (the daemon may delete a pod in its own last minute, never rewrite a pod's status)."""
    kube.call("POST", "/api/v1/nodes", {"metadata": {"name": "pi1"}})
    patch = {"metadata": {"annotations": {"a": "b"}}}
    merge = "application/merge-patch+json"
    assert kube.call("PATCH", "/api/v1/nodes/pi1", patch, content_type=merge, token=DAEMON_TOKEN).status == 200
    status = kube.call("PATCH", "/api/v1/nodes/pi1/status", patch, content_type=merge, token=DAEMON_TOKEN)
    assert status.status == 403
    assert 'cannot patch resource "nodes/status"' in status.body["message"]
    pod_status = kube.call(
        "PATCH", "/api/v1/namespaces/default/pods/web-0/status", patch, content_type=merge, token=DAEMON_TOKEN
    )
    assert pod_status.status == 403 and 'cannot patch resource "pods/status"' in pod_status.body["message"]


def test_the_admin_may_do_anything(kube: FakeKubeServer) -> None:
    """system:masters bypasses authorization (apiserver authorizerfactory's privileged groups)."""
    path = "/api/v1/namespaces/kube-system/configmaps"
    assert kube.call("POST", path, configmap("kube-system", "x"), token=ADMIN_TOKEN).status == 201


@pytest.fixture
def daemon_api(kube: FakeKubeServer) -> Iterator[client.ApiClient]:
    api_client = kube.api_client(token=DAEMON_TOKEN)
    yield api_client
    api_client.close()


def self_review(api_client: client.ApiClient, **attributes: str) -> Any:
    body = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attributes))
    )
    return client.AuthorizationV1Api(api_client).create_self_subject_access_review(body)


def test_self_subject_access_review_answers_for_the_caller(daemon_api: client.ApiClient) -> None:
    """authorization.k8s.io/v1 SelfSubjectAccessReview (pkg/registry/authorization/selfsubjectaccessreview/
    rest.go): the caller's own identity, judged by the same authorizer; what ``kubectl auth can-i`` asks."""
    allowed = self_review(daemon_api, verb="create", resource="pods", subresource="eviction", namespace="web")
    assert allowed.status.allowed is True
    denied = self_review(daemon_api, verb="update", resource="pods", namespace="web")
    assert denied.status.allowed is False
    lease = self_review(
        daemon_api, verb="update", group="coordination.k8s.io", resource="leases", namespace="piclusterd",
        name="piclusterd-leader",
    )  # fmt: skip
    assert lease.status.allowed is True
    elsewhere = self_review(
        daemon_api, verb="update", group="coordination.k8s.io", resource="leases", namespace="kube-system",
        name="piclusterd-leader",
    )  # fmt: skip
    assert elsewhere.status.allowed is False


def test_the_daemon_reads_volumes_for_the_planner(daemon_api: client.ApiClient) -> None:
    """Issue 14: the planner reads PVs and PVCs (local-path volumes pin pods), so the daemon may list them."""
    for resource in ("persistentvolumes", "persistentvolumeclaims"):
        assert self_review(daemon_api, verb="list", resource=resource).status.allowed is True
        assert self_review(daemon_api, verb="watch", resource=resource).status.allowed is True


def test_a_list_with_a_name_field_selector_is_authorized_as_that_name(kube: FakeKubeServer) -> None:
    """requestinfo.go: a list or watch with ``fieldSelector=metadata.name=X`` carries the name X, so a
    resourceNames rule applies to it (how an informer on one Lease is authorized)."""
    request = fake_rbac.request_attributes(
        "GET", ["api", "v1", "namespaces", "piclusterd", "configmaps"],
        {"watch": "true", "fieldSelector": "metadata.name=piclusterd-outage"},
    )  # fmt: skip
    assert (request.verb, request.name, request.namespace) == ("watch", "piclusterd-outage", "piclusterd")


def test_discovery_serves_authorization_for_kubectl_auth_can_i(kube: FakeKubeServer) -> None:
    groups = {g["name"] for g in kube.call("GET", "/apis", token=DAEMON_TOKEN).body["groups"]}
    assert "authorization.k8s.io" in groups
    listed = kube.call("GET", "/apis/authorization.k8s.io/v1", token=DAEMON_TOKEN).body["resources"]
    assert [r["name"] for r in listed] == ["selfsubjectaccessreviews"]


def test_a_storm_under_the_shipped_rbac_needs_no_other_right() -> None:
    """The whole cycle (leader election, drains, evictions, power-off requests, Events) as the ServiceAccount
    of deploy/rbac.yaml: not one request is refused, and every request ran as that ServiceAccount."""
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(CLINIC)
        server.run_controller_once()
        world = ClusterWorld(server, clock, ("pi1", "pi2", "pi3", "pi4", "pi5"), settings)
        try:
            server.clear_requests()
            world.run(10)
            world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
            world.run_until(lambda: len(world.events("node.powered_off")) >= 1, max_s=1200)
        finally:
            world.close()
        requests = server.requests
    assert requests
    assert {r.user for r in requests} == {DAEMON_USER}
    refused = [(r.method, r.path, r.status) for r in requests if r.status in (401, 403)]
    assert refused == []
    written = {r.path.split("/namespaces/")[1].split("/")[0] for r in requests if "/namespaces/" in r.path
               and r.method != "GET" and "/pods/" not in r.path}  # fmt: skip
    assert written <= {"piclusterd", "default"}


def test_an_rbac_without_the_eviction_grant_is_a_403_the_daemon_sees(kube: FakeKubeServer) -> None:
    """A broken RBAC (pods/eviction removed) is refused as on a real cluster, not silently allowed."""
    documents = fake_rbac.shipped_rbac()
    for document in documents:
        if document.get("kind") == "ClusterRole":
            document["rules"] = [r for r in document["rules"] if r["resources"] != ["pods/eviction"]]
    broken = FakeKubeServer(rbac=fake_rbac.RbacAuthorizer(documents))
    with broken:
        reply = broken.call(
            "POST", "/api/v1/namespaces/default/pods/web-0/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}}, token=DAEMON_TOKEN,
        )  # fmt: skip
    assert reply.status == 403
    assert 'cannot create resource "pods/eviction"' in reply.body["message"]


def test_api_exception_carries_the_status(kube: FakeKubeServer, daemon_api: client.ApiClient) -> None:
    """The kubernetes client sees the 403 as an ApiException whose body is the Status."""
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(daemon_api).create_namespaced_config_map("kube-system", configmap("kube-system", "x"))
    assert raised.value.status == 403
