"""Rules of kube-apiserver and the k3s controllers that the fake API server copies (issue 14, findings 3, 4, 6).

Each test names the upstream source it follows: a fake is only as good as its fidelity.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from piclusterd.sim.fake_api_server import ADMIN_TOKEN, FakeKubeServer, make_node, make_pdb, make_pod
from piclusterd.sim.fake_clock import FakeClock

NS = "default"


def seed(kube: FakeKubeServer, *, owner: tuple[str, str] | None, replicas: int = 3) -> None:
    for index in range(1, 4):
        kube.put_object(make_node(f"pi{index}"))
    for index in range(replicas):
        kube.put_object(make_pod(f"web-{index}", node=f"pi{index % 3 + 1}", labels={"app": "web"}, owner=owner))


def budget(kube: FakeKubeServer, name: str = "web") -> Any:
    pdb = kube.get_object("poddisruptionbudgets", NS, name)
    assert pdb is not None
    return pdb["status"]


def evict_body(name: str, *, dry_run: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    if dry_run:
        body["deleteOptions"] = {"dryRun": ["All"]}
    return body


# ---------------------------------------------------------------------------- finding 3: PDB status


def test_budget_over_pods_without_a_controller_allows_no_disruption(kube: FakeKubeServer) -> None:
    """pkg/controller/disruption/disruption.go updatePdbStatus: ``if expectedCount <= 0 ||
    disruptionsAllowed <= 0 { disruptionsAllowed = 0 }``. Bare pods have no controller, so a maxUnavailable
    budget expects 0 pods and allows nothing, however many are healthy (the old fake allowed 3)."""
    seed(kube, owner=None)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    status = budget(kube)
    assert (status["expectedPods"], status["currentHealthy"], status["disruptionsAllowed"]) == (0, 3, 0)
    reply = kube.call("POST", f"/api/v1/namespaces/{NS}/pods/web-0/eviction", evict_body("web-0"))
    assert reply.status == 429
    assert kube.get_object("pods", NS, "web-0") is not None


def test_budget_over_pods_whose_controller_has_no_scale_fails_safe(kube: FakeKubeServer) -> None:
    """disruption.go getExpectedScale: a pod whose controller none of the finders can size (a DaemonSet has
    no scale subresource) fails the sync with "found no controllers for pod"; failSafe then sets
    disruptionsAllowed to 0 and the DisruptionAllowed condition False with reason SyncFailed."""
    seed(kube, owner=("DaemonSet", "agent"))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable="50%"))
    status = budget(kube)
    assert status["disruptionsAllowed"] == 0
    condition = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert condition["message"] == 'found no controllers for pod "web-0"'


def test_budget_with_neither_min_available_nor_max_unavailable_allows_nothing(kube: FakeKubeServer) -> None:
    """disruption.go getExpectedPodCount leaves expectedCount 0 when neither field is set (policy/v1
    validation accepts such a budget), so updatePdbStatus allows 0 disruptions; the old fake allowed 1."""
    seed(kube, owner=("ReplicaSet", "web-5d8f"))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}))
    assert budget(kube)["disruptionsAllowed"] == 0


def test_budget_of_a_scalable_workload_still_allows_its_disruptions(kube: FakeKubeServer) -> None:
    """The same rules leave the ordinary case alone: 3 ReplicaSet pods, maxUnavailable 1 -> 1 allowed."""
    seed(kube, owner=("ReplicaSet", "web-5d8f"))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    status = budget(kube)
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (3, 1)


# ---------------------------------------------------------------------------- finding 4: dry run


def test_dry_run_eviction_checks_the_budget_and_changes_nothing(kube: FakeKubeServer) -> None:
    """pkg/registry/core/pod/storage/eviction.go: ``deleteOptions.dryRun`` in the Eviction body is honoured
    (propagateDryRun); checkAndDecrement returns before writing the budget and the pod is not deleted.
    This is what ``kubectl drain --dry-run=server`` sends."""
    seed(kube, owner=("ReplicaSet", "web-5d8f"))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    before = kube.get_object("pods", NS, "web-0")
    reply = kube.call("POST", f"/api/v1/namespaces/{NS}/pods/web-0/eviction", evict_body("web-0", dry_run=True))
    assert reply.status == 201
    assert kube.get_object("pods", NS, "web-0") == before
    assert budget(kube)["disruptionsAllowed"] == 1
    assert "disruptedPods" not in budget(kube)


def test_dry_run_eviction_still_answers_429_when_the_budget_is_spent(kube: FakeKubeServer) -> None:
    """eviction.go runs every check in a dry run; only the writes are skipped."""
    seed(kube, owner=("ReplicaSet", "web-5d8f"))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=0))
    reply = kube.call("POST", f"/api/v1/namespaces/{NS}/pods/web-0/eviction", evict_body("web-0", dry_run=True))
    assert reply.status == 429


def test_dry_run_query_on_a_patch_persists_nothing(kube: FakeKubeServer) -> None:
    """KEP-576 (dry run): ``?dryRun=All`` runs a write through admission and validation and persists nothing."""
    kube.put_object(make_node("pi1"))
    reply = kube.call(
        "PATCH",
        "/api/v1/nodes/pi1?dryRun=All",
        {"spec": {"unschedulable": True}},
        content_type="application/merge-patch+json",
    )
    assert reply.status == 200 and reply.body["spec"]["unschedulable"] is True
    node = kube.get_object("nodes", None, "pi1")
    assert node is not None and not node["spec"].get("unschedulable")


def test_dry_run_with_an_unknown_value_is_a_400(kube: FakeKubeServer) -> None:
    """apimachinery meta/v1 validation ValidateDryRun: the only supported value is ``All``."""
    kube.put_object(make_node("pi1"))
    reply = kube.call(
        "PATCH", "/api/v1/nodes/pi1?dryRun=Yes", {"metadata": {}}, content_type="application/merge-patch+json"
    )
    assert reply.status == 400


# ---------------------------------------------------------------------------- finding 6: Lease, Events


def lease_body(name: str = "piclusterd-leader", duration: int = 15) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "pi1", "leaseDurationSeconds": duration},
    }


def test_put_to_a_missing_lease_creates_it(kube: FakeKubeServer) -> None:
    """pkg/registry/coordination/lease/strategy.go: ``AllowCreateOnUpdate() bool { return true }``: an update
    of a Lease that does not exist creates it (201), where the old fake answered 404."""
    reply = kube.call(
        "PUT", "/apis/coordination.k8s.io/v1/namespaces/piclusterd/leases/piclusterd-leader", lease_body()
    )
    assert reply.status == 201
    assert kube.get_object("leases", "piclusterd", "piclusterd-leader") is not None


def test_lease_duration_of_zero_is_422(kube: FakeKubeServer) -> None:
    """pkg/apis/coordination/validation/validation.go ValidateLeaseSpec: leaseDurationSeconds "must be
    greater than 0"."""
    reply = kube.call("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease_body(duration=0))
    assert reply.status == 422
    assert reply.body["reason"] == "Invalid"
    assert reply.body["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"


def test_lease_update_to_a_negative_duration_is_422(kube: FakeKubeServer) -> None:
    """The same rule runs on update (ValidateLeaseUpdate calls ValidateLeaseSpec)."""
    created = kube.call("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease_body()).body
    body = lease_body(duration=-5)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    reply = kube.call("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/piclusterd-leader", body)
    assert reply.status == 422


def node_event(namespace: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "pi1.test.1", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": "pi1"},
        "reason": "Test",
        "message": "hello",
        "type": "Normal",
    }
    event.update(fields)
    return event


def test_event_with_event_time_but_no_reporting_controller_is_422(kube: FakeKubeServer) -> None:
    """pkg/apis/core/validation/events.go legacyValidateEvent: an Event with eventTime needs
    reportingComponent (a core/v1 Event's name for reportingController) and reportingInstance."""
    event = node_event("default", eventTime="2026-11-24T02:00:00.000000Z", action="Test")
    reply = kube.call("POST", "/api/v1/namespaces/default/events", event)
    assert reply.status == 422
    fields = {cause["field"] for cause in reply.body["details"]["causes"]}
    assert fields == {"reportingComponent", "reportingInstance"}


def test_old_style_event_about_a_node_must_live_in_default(kube: FakeKubeServer) -> None:
    """legacyValidateEvent: an Event without eventTime whose involved object has no namespace (a Node) must be
    in namespace "" or "default", so piclusterd's Node Events cannot move into its own namespace."""
    reply = kube.call("POST", "/api/v1/namespaces/piclusterd/events", node_event("piclusterd"))
    assert reply.status == 422
    assert reply.body["details"]["causes"][0]["field"] == "involvedObject.namespace"
    assert kube.call("POST", "/api/v1/namespaces/default/events", node_event("default")).status == 201


# ---------------------------------------------------------------------------- finding 2: graceful termination


def test_an_evicted_pod_stays_terminating_for_its_grace_period_by_default(clock: FakeClock) -> None:
    """pkg/registry/core/pod/strategy.go CheckGracefulDelete: a pod on a node is deleted gracefully with its
    terminationGracePeriodSeconds (30 s by default): deletionTimestamp is set and the kubelet removes it when
    the containers have stopped. The old fake removed evicted pods at once unless a test asked otherwise."""
    with FakeKubeServer(clock=clock, controller=True) as kube:
        seed(kube, owner=("ReplicaSet", "web-5d8f"))
        assert kube.call("POST", f"/api/v1/namespaces/{NS}/pods/web-0/eviction", evict_body("web-0")).status == 201
        pod = kube.get_object("pods", NS, "web-0")
        assert pod is not None and pod["metadata"]["deletionGracePeriodSeconds"] == 30
        clock.advance(29)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "web-0") is not None
        clock.advance(1)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "web-0") is None


def test_a_pod_on_an_unreachable_node_stays_terminating_until_the_node_returns(clock: FakeClock) -> None:
    """Only the kubelet finishes a graceful deletion; a dead node's pods stay Terminating until it comes back
    or they are force-deleted (kubernetes.io docs: "Pods on an unreachable Node ... remain in Terminating")."""
    with FakeKubeServer(clock=clock, controller=True) as kube:
        seed(kube, owner=("ReplicaSet", "web-5d8f"))
        kube.power_off_node("pi1")
        clock.advance(40)
        kube.run_controller_once()
        assert kube.call("POST", f"/api/v1/namespaces/{NS}/pods/web-0/eviction", evict_body("web-0")).status == 201
        clock.advance(3600)
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "web-0")
        assert pod is not None and pod["metadata"].get("deletionTimestamp")
        kube.power_on_node("pi1")
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "web-0") is None


def test_a_pod_stuck_on_an_unreachable_node_goes_when_force_deleted(clock: FakeClock) -> None:
    """kubernetes.io "Pod Lifecycle", forced termination: a delete with gracePeriodSeconds=0 (kubectl delete
    --force --grace-period=0) removes the pod from the API at once, without waiting for the kubelet; the
    StatefulSet controller can then create the same-name replacement."""
    with FakeKubeServer(clock=clock, controller=True) as kube:
        for index in range(1, 3):
            kube.put_object(make_node(f"pi{index}"))
        kube.put_object(make_pod("db-0", node="pi1", labels={"app": "db"}, owner=("StatefulSet", "db")))
        kube.power_off_node("pi1")
        clock.advance(40)
        kube.run_controller_once()
        assert kube.call("POST", f"/api/v1/namespaces/{NS}/pods/db-0/eviction", evict_body("db-0")).status == 201
        clock.advance(600)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "db-0")["spec"]["nodeName"] == "pi1"  # type: ignore[index]
        force = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        assert kube.call("DELETE", f"/api/v1/namespaces/{NS}/pods/db-0", force).status == 200
        kube.run_controller_once()
        kube.run_controller_once()
        replacement = kube.get_object("pods", NS, "db-0")
        assert replacement is not None and replacement["spec"].get("nodeName") == "pi2"


def test_a_statefulset_replacement_keeps_the_name_and_waits_for_the_old_pod(clock: FakeClock) -> None:
    """pkg/controller/statefulset: the replacement of ``db-0`` is ``db-0`` again, created only once the old
    pod is gone (at most one pod per ordinal)."""
    with FakeKubeServer(clock=clock, controller=True) as kube:
        for index in range(1, 3):
            kube.put_object(make_node(f"pi{index}"))
        kube.put_object(make_pod("db-0", node="pi1", labels={"app": "db"}, owner=("StatefulSet", "db")))
        old_uid = kube.get_object("pods", NS, "db-0")["metadata"]["uid"]  # type: ignore[index]
        assert kube.call("POST", f"/api/v1/namespaces/{NS}/pods/db-0/eviction", evict_body("db-0")).status == 201
        clock.advance(10)
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "db-0")
        assert pod is not None and pod["metadata"]["uid"] == old_uid and pod["metadata"].get("deletionTimestamp")
        clock.advance(20)
        kube.run_controller_once()
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "db-0")
        assert pod is not None and pod["metadata"]["uid"] != old_uid and not pod["metadata"].get("deletionTimestamp")


# ---------------------------------------------------------------------------- issue 17: boolean query parameters


@pytest.mark.parametrize(
    ("value", "watches"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
    ],
)
def test_a_boolean_query_parameter_is_false_only_for_0_or_false(
    kube: FakeKubeServer, value: str, watches: bool
) -> None:
    """apimachinery pkg/runtime/conversion.go ``Convert_Slice_string_To_bool``: "Only the absence of a value, a
    value of "false", or a value of "0" resolve to false", in any case. Debian's kubernetes client 22.6 sends
    ``watch=True``; the fake served it a LIST, so the informer never saw a change under 22.6."""
    kube.put_object(make_node("pi1"))
    request = urllib.request.Request(
        f"{kube.url}/api/v1/nodes?watch={value}&timeoutSeconds=1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        first = json.loads(response.readline())
    assert ("type" in first) is watches and (first.get("kind") == "NodeList") is not watches


# ---------------------------------------------------------------------------- issue 17: selecting watches


def test_a_pods_watch_selects_on_spec_node_name_and_sees_pods_enter_and_leave(kube: FakeKubeServer) -> None:
    """pkg/registry/core/pod/strategy.go ``ToSelectableFields``: a pod's field set includes ``spec.nodeName``
    (what a node's own pods are selected by); cacher ``cache_watcher.go`` ``convertToWatchEvent``: a selecting
    watch sees an object that enters the selection as ADDED and one that leaves it as DELETED."""
    from kubernetes import client, watch

    kube.put_object(make_node("pi1"))
    kube.put_object(make_pod("web-a", node="pi1", labels={"app": "web"}))
    kube.put_object(make_pod("web-b", node="pi2", labels={"app": "web"}))
    pending = make_pod("web-c", node="pi1", labels={"app": "web"})
    pending["spec"].pop("nodeName")
    kube.put_object(pending)
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        since = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=pi1").metadata.resource_version
        kube.update_object("Pod", NS, "web-c", lambda p: p["spec"].update(nodeName="pi1"))  # bound: enters
        kube.update_object("Pod", NS, "web-b", lambda p: p["metadata"]["labels"].update(x="1"))  # not on pi1
        kube.update_object("Pod", NS, "web-a", lambda p: p["metadata"]["labels"].update(app="db"))
        on_pi1 = watch.Watch().stream(
            core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=pi1",
            resource_version=since,
            timeout_seconds=1,
        )
        assert [(e["type"], e["object"].metadata.name) for e in on_pi1] == [("ADDED", "web-c"), ("MODIFIED", "web-a")]
        web = watch.Watch().stream(
            core.list_pod_for_all_namespaces, label_selector="app=web", resource_version=since, timeout_seconds=1
        )
        seen = [(e["type"], e["object"].metadata.name, e["object"].metadata.labels["app"]) for e in web]
        # web-a left app=web: DELETED, as it was before (still app=web), at the version of the change.
        assert seen == [("MODIFIED", "web-c", "web"), ("MODIFIED", "web-b", "web"), ("DELETED", "web-a", "web")]
        with pytest.raises(client.ApiException) as refused:
            core.list_pod_for_all_namespaces(field_selector="spec.hostname=pi1")
        assert refused.value.status == 400  # not in the pod's field set
