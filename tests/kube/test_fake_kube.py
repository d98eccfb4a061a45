"""The fake API server, exercised through the unmodified kubernetes client as piclusterd will use it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pdb, make_pod
from piclusterd.sim.fake_clock import FakeClock

NS = "default"


@pytest.fixture
def kube(clock: FakeClock) -> Iterator[FakeKubeServer]:
    """Opted out of graceful termination: these tests each check one REST rule, and a deletion that finishes
    at once keeps them about that rule. Graceful termination has its own tests (test_fake_upstream_rules.py)."""
    with FakeKubeServer(clock=clock, graceful_deletion=False) as server:
        yield server


def error_body(error: ApiException) -> Any:
    return json.loads(error.body)


def evict(core: client.CoreV1Api, name: str, namespace: str = NS, body_name: str | None = None) -> Any:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=body_name or name, namespace=namespace))
    return core.create_namespaced_pod_eviction(name, namespace, body)


def seed_web(kube: FakeKubeServer, *, replicas: int = 3, ready: int | None = None) -> list[str]:
    """Nodes pi1..pi3 and a Deployment's pods web-0.. spread over them; the first ``ready`` are Ready."""
    for index in range(1, 4):
        kube.put_object(make_node(f"pi{index}"))
    names = []
    for index in range(replicas):
        is_ready = ready is None or index < ready
        pod = make_pod(
            f"web-{index}",
            node=f"pi{index % 3 + 1}",
            labels={"app": "web"},
            owner=("ReplicaSet", "web-5d8f"),
            ready=is_ready,
        )
        kube.put_object(pod)
        names.append(f"web-{index}")
    return names


def pdb_status(policy: client.PolicyV1Api, name: str, namespace: str = NS) -> Any:
    budgets = policy.list_namespaced_pod_disruption_budget(namespace).items
    return next(budget for budget in budgets if budget.metadata.name == name).status


# ------------------------------------------------------------------------------- wire format


def test_single_object_carries_kind_uid_resource_version_and_creation_time(
    kube: FakeKubeServer, clock: FakeClock
) -> None:
    kube.put_object(make_node("pi1"))
    reply = kube.call("GET", "/api/v1/nodes/pi1")
    assert reply.status == 200
    assert reply.body["kind"] == "Node" and reply.body["apiVersion"] == "v1"
    metadata = reply.body["metadata"]
    assert metadata["uid"] and metadata["resourceVersion"].isdigit()
    expected = dt.datetime.fromtimestamp(clock.wall(), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metadata["creationTimestamp"] == expected


def test_list_items_carry_no_kind_and_the_list_carries_a_resource_version(kube: FakeKubeServer) -> None:
    kube.put_object(make_node("pi1"))
    reply = kube.call("GET", "/api/v1/nodes")
    assert reply.body["kind"] == "NodeList"
    assert int(reply.body["metadata"]["resourceVersion"]) >= int(reply.body["items"][0]["metadata"]["resourceVersion"])
    assert "kind" not in reply.body["items"][0]


def test_resource_version_is_one_counter_across_kinds(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    pod = core.create_namespaced_pod(NS, make_pod("a"))
    node = core.patch_node("pi1", {"metadata": {"labels": {"x": "1"}}})
    lease = client.CoordinationV1Api(core.api_client).create_namespaced_lease(
        NS,
        client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec(holder_identity="a")),
    )
    versions = [int(pod.metadata.resource_version), int(node.metadata.resource_version)]
    versions.append(int(lease.metadata.resource_version))
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_missing_object_is_a_404_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("nope", NS)
    assert caught.value.status == 404
    assert error_body(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }


# ------------------------------------------------------------------------------------- nodes


def test_list_nodes_by_label_selector(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1", labels={"role": "storage", "zone": "a"}))
    kube.put_object(make_node("pi2", labels={"role": "compute", "zone": "a"}))
    kube.put_object(make_node("pi3", labels={"zone": "b"}))

    def names(selector: str) -> list[str]:
        return [node.metadata.name for node in core.list_node(label_selector=selector).items]

    assert names("role=storage") == ["pi1"]
    assert names("zone=a,role!=storage") == ["pi2"]
    assert names("role in (storage,compute)") == ["pi1", "pi2"]
    assert names("!role") == ["pi3"]


def test_cordon_is_a_strategic_merge_patch(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1", labels={"keep": "me"}))
    node = core.patch_node("pi1", {"spec": {"unschedulable": True}})
    assert node.spec.unschedulable is True
    assert node.metadata.labels["keep"] == "me"
    assert kube.requests[-1].content_type == "application/strategic-merge-patch+json"


def test_uncordon_with_null_deletes_the_field(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1", unschedulable=True))
    core.patch_node("pi1", {"spec": {"unschedulable": None}})
    stored = kube.get_object("Node", None, "pi1")
    assert stored is not None
    assert "unschedulable" not in stored["spec"]


def test_merge_patch_null_deletes_an_annotation(kube: FakeKubeServer) -> None:
    node = make_node("pi1")
    node["metadata"]["annotations"] = {"a": "1", "b": "2"}
    kube.put_object(node)
    reply = kube.call(
        "PATCH",
        "/api/v1/nodes/pi1",
        {"metadata": {"annotations": {"a": None, "c": "3"}}},
        content_type="application/merge-patch+json",
    )
    assert reply.status == 200
    assert reply.body["metadata"]["annotations"] == {"b": "2", "c": "3"}


def test_list_body_is_sent_and_applied_as_json_patch(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1", taints=[{"key": "a", "effect": "NoSchedule"}]))
    taint = {"key": "piclusterd/shed", "value": "power", "effect": "NoSchedule"}
    node = core.patch_node("pi1", [{"op": "add", "path": "/spec/taints/-", "value": taint}])
    assert [t.key for t in node.spec.taints] == ["a", "piclusterd/shed"]
    assert kube.requests[-1].content_type == "application/json-patch+json"


def test_failed_json_patch_test_operation_changes_nothing(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    before = kube.get_object("nodes", None, "pi1")
    with pytest.raises(ApiException) as caught:
        core.patch_node(
            "pi1",
            [
                {"op": "test", "path": "/spec/unschedulable", "value": True},
                {"op": "add", "path": "/metadata/labels/x", "value": "y"},
            ],
        )
    assert caught.value.status == 422
    assert kube.get_object("nodes", None, "pi1") == before


def test_strategic_merge_replaces_the_taints_list_whole(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    """spec.taints has no merge key: a patch that adds a taint this way drops the others (hence the
    read-modify-write with a resourceVersion check in piclusterd)."""
    kube.put_object(make_node("pi1", taints=[{"key": "operator", "effect": "NoSchedule"}]))
    node = core.patch_node("pi1", {"spec": {"taints": [{"key": "piclusterd", "effect": "NoSchedule"}]}})
    assert [taint.key for taint in node.spec.taints] == ["piclusterd"]


def test_strategic_merge_merges_conditions_by_type(kube: FakeKubeServer) -> None:
    kube.put_object(make_node("pi1"))
    patch = {"status": {"conditions": [{"type": "DiskPressure", "status": "False"}]}}
    reply = kube.call("PATCH", "/api/v1/nodes/pi1/status", patch, content_type="application/strategic-merge-patch+json")
    assert sorted(c["type"] for c in reply.body["status"]["conditions"]) == ["DiskPressure", "Ready"]


def test_replace_with_a_stale_resource_version_is_a_409_conflict(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    node = core.read_node("pi1")
    core.patch_node("pi1", {"metadata": {"labels": {"someone": "else"}}})
    node.spec.unschedulable = True
    with pytest.raises(ApiException) as caught:
        core.replace_node("pi1", node)
    assert caught.value.status == 409
    body = error_body(caught.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on nodes "pi1": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_replace_with_the_current_resource_version_succeeds_and_keeps_status(
    kube: FakeKubeServer, core: client.CoreV1Api
) -> None:
    kube.put_object(make_node("pi1"))
    node = core.read_node("pi1")
    node.spec.unschedulable = True
    node.status.conditions = []
    updated = core.replace_node("pi1", node)
    assert updated.spec.unschedulable is True
    assert [c.type for c in updated.status.conditions] == ["Ready"]


def test_power_off_makes_the_node_and_its_pods_not_ready_after_the_grace_period(
    kube: FakeKubeServer, core: client.CoreV1Api, clock: FakeClock
) -> None:
    """pkg/controller/nodelifecycle: Ready turns Unknown only after --node-monitor-grace-period (40 s)."""
    seed_web(kube)
    kube.power_off_node("pi1")
    clock.advance(39)
    node = core.read_node("pi1")
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"
    assert not node.spec.taints
    clock.advance(1)
    node = core.read_node("pi1")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "Unknown"
    assert {(t.key, t.effect) for t in node.spec.taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    pod = core.read_namespaced_pod("web-0", NS)
    assert next(c for c in pod.status.conditions if c.type == "Ready").status == "False"


def test_power_on_restores_ready_and_removes_the_taints(
    kube: FakeKubeServer, core: client.CoreV1Api, clock: FakeClock
) -> None:
    seed_web(kube)
    kube.power_off_node("pi1")
    clock.advance(40)
    kube.run_controller_once()
    kube.power_on_node("pi1")
    node = core.read_node("pi1")
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"
    assert not node.spec.taints
    pod = core.read_namespaced_pod("web-0", NS)
    assert next(c for c in pod.status.conditions if c.type == "Ready").status == "True"


# -------------------------------------------------------------------------------------- pods


def test_list_pods_in_all_namespaces_on_one_node(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    kube.put_object(make_node("pi2"))
    kube.put_object(make_pod("a", "default", node="pi1"))
    kube.put_object(make_pod("b", "longhorn-system", node="pi1"))
    kube.put_object(make_pod("c", "default", node="pi2"))
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=pi1").items
    assert sorted((p.metadata.namespace, p.metadata.name) for p in pods) == [
        ("default", "a"),
        ("longhorn-system", "b"),
    ]


def test_list_pods_in_one_namespace_by_label(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_pod("a", "default", labels={"app": "web"}))
    kube.put_object(make_pod("b", "default", labels={"app": "db"}))
    kube.put_object(make_pod("c", "other", labels={"app": "web"}))
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert [p.metadata.name for p in pods] == ["a"]


def test_unsupported_field_selector_is_a_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_pod_for_all_namespaces(field_selector="spec.priority=5")
    assert caught.value.status == 400
    assert error_body(caught.value)["message"] == "field label not supported: spec.priority"


def test_paging_returns_every_pod_once_from_a_consistent_snapshot(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    for index in range(7):
        kube.put_object(make_pod(f"p{index}", node="pi1"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_pod_for_all_namespaces(limit=3, _continue=token)
        seen += [pod.metadata.name for pod in page.items]
        pages += 1
        if pages == 1:
            assert page.metadata.remaining_item_count == 4
            kube.put_object(make_pod("p99", node="pi1"))  # created mid-listing: not in this list
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3
    assert seen == [f"p{index}" for index in range(7)]


def test_create_pod_is_pending_with_server_defaults(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(NS, {"metadata": {"generateName": "job-"}, "spec": make_pod("x")["spec"]})
    assert pod.metadata.name.startswith("job-") and len(pod.metadata.name) == len("job-") + 5
    assert pod.status.phase == "Pending"
    assert pod.spec.termination_grace_period_seconds == 30


def test_create_existing_pod_is_409_already_exists(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_pod("a"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(NS, make_pod("a"))
    assert caught.value.status == 409
    assert error_body(caught.value)["reason"] == "AlreadyExists"


def test_delete_pod_removes_it(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    kube.put_object(make_pod("a", node="pi1"))
    deleted = core.delete_namespaced_pod("a", NS, grace_period_seconds=10)
    assert deleted.metadata.name == "a"
    assert kube.get_object("pods", NS, "a") is None


def test_graceful_delete_keeps_the_pod_terminating_for_its_grace_period(clock: FakeClock) -> None:
    with FakeKubeServer(clock=clock, graceful_deletion=True) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(make_pod("a", node="pi1"))
        with kube.api_client() as api:
            client.CoreV1Api(api).delete_namespaced_pod("a", NS, grace_period_seconds=20)
        pod = kube.get_object("pods", NS, "a")
        assert pod is not None and pod["metadata"]["deletionGracePeriodSeconds"] == 20
        clock.advance(19)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "a") is not None
        clock.advance(1)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "a") is None


def test_graceful_delete_never_finishes_while_the_node_is_down(clock: FakeClock) -> None:
    with FakeKubeServer(clock=clock, graceful_deletion=True) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(make_pod("a", node="pi1"))
        kube.power_off_node("pi1")
        with kube.api_client() as api:
            client.CoreV1Api(api).delete_namespaced_pod("a", NS)
        clock.advance(3600)
        kube.run_controller_once()
        assert kube.get_object("pods", NS, "a") is not None


# ---------------------------------------------------------------------------------- eviction


def test_evicting_a_pod_without_budget_is_201_and_the_pod_is_gone(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    seed_web(kube)
    evict(core, "web-0")
    assert kube.requests[-1].status == 201
    assert kube.get_object("pods", NS, "web-0") is None


def test_evicting_a_missing_pod_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        evict(core, "ghost")
    assert caught.value.status == 404


def test_eviction_named_differently_from_the_url_is_400(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    seed_web(kube)
    with pytest.raises(ApiException) as caught:
        evict(core, "web-0", body_name="web-1")
    assert caught.value.status == 400
    assert error_body(caught.value)["message"] == "name in URL does not match name in Eviction object"
    assert kube.get_object("pods", NS, "web-0") is not None


def test_pod_with_two_budgets_cannot_be_evicted(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("one", match_labels={"app": "web"}, max_unavailable=1))
    kube.put_object(make_pdb("two", match_labels={}, max_unavailable=1))  # empty selector: every pod
    with pytest.raises(ApiException) as caught:
        evict(core, "web-0")
    assert caught.value.status == 500
    assert error_body(caught.value)["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    )
    assert kube.get_object("pods", NS, "web-0") is not None


def test_exhausted_budget_refuses_with_429_until_a_pod_is_ready_again(
    kube: FakeKubeServer, core: client.CoreV1Api
) -> None:
    seed_web(kube, replicas=3, ready=2)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, min_available=2))
    with pytest.raises(ApiException) as caught:
        evict(core, "web-0")
    assert caught.value.status == 429
    body = error_body(caught.value)
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
        }
    ]
    assert "retryAfterSeconds" not in body["details"]
    kube.set_pod_ready(NS, "web-2")
    evict(core, "web-0")
    assert kube.get_object("pods", NS, "web-0") is None


def test_budget_not_yet_observed_refuses_with_retry_after(
    kube: FakeKubeServer, core: client.CoreV1Api, policy: client.PolicyV1Api
) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    kube.disruption_controller_paused = True
    policy.patch_namespaced_pod_disruption_budget("web", NS, {"spec": {"maxUnavailable": 2}})
    with pytest.raises(ApiException) as caught:
        evict(core, "web-0")
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "10"
    body = error_body(caught.value)
    assert body["details"]["retryAfterSeconds"] == 10
    assert (
        body["details"]["causes"][0]["message"] == "The disruption budget web is still being processed by the server."
    )
    kube.disruption_controller_paused = False
    evict(core, "web-0")


def test_eviction_spends_one_disruption_and_records_the_pod(
    kube: FakeKubeServer, core: client.CoreV1Api, policy: client.PolicyV1Api
) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, min_available=1))
    kube.disruption_controller_paused = True  # look at the eviction's own bookkeeping
    evict(core, "web-0")
    status = pdb_status(policy, "web")
    assert status.disruptions_allowed == 1
    assert list(status.disrupted_pods) == ["web-0"]


def test_second_eviction_under_max_unavailable_one_is_refused(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    evict(core, "web-0")
    with pytest.raises(ApiException) as caught:
        evict(core, "web-1")
    assert caught.value.status == 429


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed"])
def test_pods_not_running_are_evicted_without_budget_check(
    kube: FakeKubeServer, core: client.CoreV1Api, phase: str
) -> None:
    kube.put_object(make_node("pi1"))
    kube.put_object(make_pod("job", node="pi1", labels={"app": "web"}, phase=phase))
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=0))
    evict(core, "job")
    assert kube.get_object("pods", NS, "job") is None


@pytest.mark.parametrize(("policy_name", "evicted"), [(None, False), ("IfHealthyBudget", False), ("AlwaysAllow", True)])
def test_unready_pod_under_an_unhealthy_budget_follows_the_eviction_policy(
    kube: FakeKubeServer, core: client.CoreV1Api, policy_name: str | None, evicted: bool
) -> None:
    seed_web(kube, replicas=3, ready=1)
    pdb = make_pdb("web", match_labels={"app": "web"}, min_available=2, unhealthy_pod_eviction_policy=policy_name)
    kube.put_object(pdb)
    try:
        evict(core, "web-2")
    except ApiException as error:
        assert error.status == 429
    assert (kube.get_object("pods", NS, "web-2") is None) is evicted


def test_unready_pod_under_a_healthy_budget_goes_without_spending_it(
    kube: FakeKubeServer, core: client.CoreV1Api, policy: client.PolicyV1Api
) -> None:
    seed_web(kube, replicas=4, ready=3)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, min_available=2))
    kube.disruption_controller_paused = True
    evict(core, "web-3")  # not Ready; 3 healthy >= 2 desired
    assert pdb_status(policy, "web").disruptions_allowed == 1


def test_evicted_pod_gets_the_disruption_target_condition_when_deleted_gracefully(clock: FakeClock) -> None:
    with FakeKubeServer(clock=clock, graceful_deletion=True) as kube:
        seed_web(kube)
        with kube.api_client() as api:
            evict(client.CoreV1Api(api), "web-0")
        pod = kube.get_object("pods", NS, "web-0")
        assert pod is not None
        target = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert target["reason"] == "EvictionByEvictionAPI"


# ----------------------------------------------------------------------------- budget status


@pytest.mark.parametrize(
    ("spec", "desired", "allowed"),
    [
        ({"min_available": 2}, 2, 1),
        ({"min_available": "50%"}, 2, 1),  # ceil(1.5)
        ({"max_unavailable": 1}, 2, 1),
        ({"max_unavailable": "34%"}, 1, 2),  # ceil(1.02) unavailable
        ({"max_unavailable": 0}, 3, 0),
        ({"min_available": 4}, 4, 0),
    ],
)
def test_budget_status_counts_ready_pods(
    kube: FakeKubeServer, policy: client.PolicyV1Api, spec: dict[str, Any], desired: int, allowed: int
) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, **spec))
    status = pdb_status(policy, "web")
    assert (status.current_healthy, status.desired_healthy, status.expected_pods) == (3, desired, 3)
    assert status.disruptions_allowed == allowed


def test_budget_created_through_the_api_gets_status_and_is_listed_everywhere(
    kube: FakeKubeServer, policy: client.PolicyV1Api
) -> None:
    seed_web(kube)
    created = policy.create_namespaced_pod_disruption_budget(
        NS, make_pdb("web", match_labels={"app": "web"}, max_unavailable=1)
    )
    assert created.metadata.generation == 1
    listed = policy.list_pod_disruption_budget_for_all_namespaces().items
    assert [budget.metadata.name for budget in listed] == ["web"]
    assert listed[0].status.observed_generation == 1
    assert listed[0].status.disruptions_allowed == 1


def test_budget_of_a_workload_keeps_its_expected_count_while_a_pod_is_replaced(
    kube: FakeKubeServer, core: client.CoreV1Api, policy: client.PolicyV1Api
) -> None:
    seed_web(kube)
    kube.put_object(make_pdb("web", match_labels={"app": "web"}, max_unavailable=1))
    evict(core, "web-0")
    status = pdb_status(policy, "web")
    assert (status.expected_pods, status.current_healthy, status.disruptions_allowed) == (3, 2, 0)


# ------------------------------------------------------------------------------------ events


def test_events_can_be_created_patched_and_listed(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    event = {
        "metadata": {"name": "pi1.shed", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "pi1", "apiVersion": "v1"},
        "reason": "PowerShed",
        "message": "powered off to save battery",
        "type": "Normal",
        "count": 1,
        "source": {"component": "piclusterd"},
        "reportingComponent": "piclusterd",
        "firstTimestamp": "2026-11-24T02:00:00Z",
        "lastTimestamp": "2026-11-24T02:00:00Z",
    }
    core.create_namespaced_event("default", event)
    core.patch_namespaced_event("pi1.shed", "default", {"count": 2, "lastTimestamp": "2026-11-24T02:05:00Z"})
    listed = core.list_namespaced_event("default", field_selector="involvedObject.name=pi1,reason=PowerShed")
    assert [(e.count, e.last_timestamp.minute) for e in listed.items] == [(2, 5)]
    assert core.list_namespaced_event("default", field_selector="source=piclusterd").items


# ------------------------------------------------------------------------------------ leases


def lease_body(name: str, holder: str, resource_version: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": "2026-11-24T02:00:00.123456Z",
        },
    }


def test_lease_micro_time_keeps_six_fractional_digits_in_utc(kube: FakeKubeServer) -> None:
    body = lease_body("l", "pi1")
    body["spec"]["acquireTime"] = "2026-11-24T05:00:00.000000+03:00"
    reply = kube.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", body)
    assert reply.status == 201
    assert reply.body["spec"]["acquireTime"] == "2026-11-24T02:00:00.000000Z"
    assert reply.body["spec"]["renewTime"] == "2026-11-24T02:00:00.123456Z"


def test_lease_time_without_six_fractional_digits_is_refused(kube: FakeKubeServer) -> None:
    """What ``datetime.isoformat()`` writes when microseconds are zero; kube-apiserver refuses it."""
    body = lease_body("l", "pi1")
    body["spec"]["renewTime"] = "2026-11-24T02:00:00+00:00"
    reply = kube.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", body)
    assert reply.status == 400


def test_lease_replace_race_gives_the_loser_a_409(coordination: client.CoordinationV1Api) -> None:
    coordination.create_namespaced_lease("kube-system", lease_body("leader", "pi1"))
    first = coordination.read_namespaced_lease("leader", "kube-system")
    second = coordination.read_namespaced_lease("leader", "kube-system")
    first.spec.holder_identity = "pi2"
    coordination.replace_namespaced_lease("leader", "kube-system", first)
    second.spec.holder_identity = "pi3"
    with pytest.raises(ApiException) as caught:
        coordination.replace_namespaced_lease("leader", "kube-system", second)
    assert caught.value.status == 409
    assert error_body(caught.value)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert coordination.read_namespaced_lease("leader", "kube-system").spec.holder_identity == "pi2"


def test_lease_replace_without_resource_version_is_422(coordination: client.CoordinationV1Api) -> None:
    coordination.create_namespaced_lease("kube-system", lease_body("leader", "pi1"))
    with pytest.raises(ApiException) as caught:
        coordination.replace_namespaced_lease("leader", "kube-system", lease_body("leader", "pi2"))
    assert caught.value.status == 422
    body = error_body(caught.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


# --------------------------------------------------------------------------------- discovery


def test_discovery_lists_exactly_the_served_resources(kube: FakeKubeServer) -> None:
    core_resources = {r["name"] for r in kube.call("GET", "/api/v1").body["resources"]}
    assert core_resources == {
        "nodes", "nodes/status", "pods", "pods/status", "pods/eviction", "events", "configmaps",
        "persistentvolumes", "persistentvolumes/status", "persistentvolumeclaims", "persistentvolumeclaims/status",
    }  # fmt: skip
    groups = {g["name"] for g in kube.call("GET", "/apis").body["groups"]}
    assert groups == {"policy", "coordination.k8s.io", "apps", "storage.k8s.io", "batch", "authorization.k8s.io"}
    policy_resources = {r["name"] for r in kube.call("GET", "/apis/policy/v1").body["resources"]}
    assert policy_resources == {"poddisruptionbudgets", "poddisruptionbudgets/status"}
    apps_resources = {r["name"] for r in kube.call("GET", "/apis/apps/v1").body["resources"]}
    assert apps_resources == {
        "daemonsets", "daemonsets/status",  # kubectl drain reads a DaemonSet pod's owner
        "deployments", "deployments/status", "deployments/scale",  # the leader's scaler (issue 16)
        "replicasets", "replicasets/status", "replicasets/scale",
        "statefulsets", "statefulsets/status", "statefulsets/scale",
    }  # fmt: skip
    batch_resources = {r["name"] for r in kube.call("GET", "/apis/batch/v1").body["resources"]}
    assert batch_resources == {"jobs", "jobs/status"}
    assert kube.call("GET", "/api").body["versions"] == ["v1"]


def test_discovery_serves_the_dynamic_client(kube: FakeKubeServer, api: client.ApiClient) -> None:
    from kubernetes.dynamic import DynamicClient

    kube.put_object(make_node("pi1"))
    dynamic = DynamicClient(api)
    nodes = dynamic.resources.get(api_version="v1", kind="Node").get()
    assert [node.metadata.name for node in nodes.items] == ["pi1"]
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")


# -------------------------------------------------------------------------------- controller


def controlled(clock: FakeClock, ready_delay_s: float = 5.0) -> FakeKubeServer:
    # Opted out of graceful termination, as the ``kube`` fixture above: the controller's rules one at a time.
    return FakeKubeServer(clock=clock, controller=True, ready_delay_s=ready_delay_s, graceful_deletion=False)


def test_controller_replaces_an_evicted_deployment_pod_on_a_node_that_fits(clock: FakeClock) -> None:
    with controlled(clock) as kube:
        kube.put_object(make_node("pi1", cpu="1"))
        kube.put_object(make_node("pi2", cpu="4", unschedulable=True))  # cordoned
        kube.put_object(make_node("pi3", cpu="1"))  # full
        kube.put_object(make_node("pi4", cpu="2"))
        kube.put_object(make_pod("filler", node="pi3", cpu="900m"))
        kube.put_object(
            make_pod("web-abcde", node="pi1", cpu="500m", labels={"app": "web"}, owner=("ReplicaSet", "web-5d8f"))
        )
        with kube.api_client() as api:
            evict(client.CoreV1Api(api), "web-abcde")
        [replacement] = [p for p in kube.list_objects("pods") if p["metadata"]["name"].startswith("web-5d8f-")]
        assert replacement["spec"]["nodeName"] in ("pi1", "pi4")
        assert replacement["status"]["phase"] == "Pending"
        assert replacement["metadata"]["labels"] == {"app": "web"}


def test_replacement_turns_ready_after_the_ready_delay(clock: FakeClock) -> None:
    with controlled(clock, ready_delay_s=5.0) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(make_pod("web-abcde", node="pi1", labels={"app": "web"}, owner=("ReplicaSet", "web-5d8f")))
        kube.delete_object("pods", NS, "web-abcde")
        clock.advance(4.9)
        kube.run_controller_once()
        [pod] = kube.list_objects("pods")
        assert pod["status"]["phase"] == "Pending"
        clock.advance(0.1)
        kube.run_controller_once()
        [pod] = kube.list_objects("pods")
        assert pod["status"]["phase"] == "Running"
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"


def test_replacement_stays_pending_when_no_node_fits(clock: FakeClock) -> None:
    with controlled(clock) as kube:
        kube.put_object(make_node("pi1", cpu="1"))
        kube.put_object(make_node("pi2", cpu="4"))
        kube.put_object(make_pod("big", node="pi2", cpu="3500m"))
        kube.put_object(make_pod("db-0", node="pi1", cpu="1", labels={"app": "db"}, owner=("StatefulSet", "db")))
        kube.update_object("nodes", None, "pi1", lambda node: node["spec"].update(unschedulable=True))
        with kube.api_client() as api:
            evict(client.CoreV1Api(api), "db-0")
        clock.advance(60)
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "db-0")  # a StatefulSet pod comes back under its own name
        assert pod is not None and "nodeName" not in pod["spec"]
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
        assert "1 Insufficient cpu" in scheduled["message"]
        assert "1 node(s) were unschedulable" in scheduled["message"]


def test_pending_replacement_is_scheduled_once_a_node_comes_back(clock: FakeClock) -> None:
    with controlled(clock, ready_delay_s=0) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(make_node("pi2"))
        kube.put_object(make_pod("web-abcde", node="pi1", labels={"app": "web"}, owner=("ReplicaSet", "web-5d8f")))
        kube.power_off_node("pi2")
        clock.advance(40)  # the node-monitor grace period: until then pi2 still looks Ready
        kube.run_controller_once()
        kube.update_object("nodes", None, "pi1", lambda node: node["spec"].update(unschedulable=True))
        kube.delete_object("pods", NS, "web-abcde")
        [pod] = kube.list_objects("pods")
        assert "nodeName" not in pod["spec"]
        kube.power_on_node("pi2")
        [pod] = kube.list_objects("pods")
        assert pod["spec"]["nodeName"] == "pi2" and pod["status"]["phase"] == "Running"


@pytest.mark.parametrize(
    ("pod_extra", "expected_node"),
    [
        ({"node_selector": {"role": "storage"}}, "pi2"),
        ({}, "pi1"),  # pi2's NoSchedule taint is not tolerated
        (
            {
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "node_selector": {"role": "storage"},
            },
            "pi2",
        ),
    ],
)
def test_scheduler_honours_node_selector_and_taints(
    clock: FakeClock, pod_extra: dict[str, Any], expected_node: str
) -> None:
    with controlled(clock) as kube:
        kube.put_object(make_node("pi1", cpu="2"))
        kube.put_object(make_node("pi2", cpu="8", labels={"role": "storage"}))
        if "tolerations" in pod_extra or not pod_extra:
            kube.update_object(
                "nodes",
                None,
                "pi2",
                lambda node: node["spec"].update(taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
            )
        kube.put_object(make_pod("p", **pod_extra))
        pod = kube.get_object("pods", NS, "p")
        assert pod is not None and pod["spec"]["nodeName"] == expected_node


def test_controller_off_creates_no_replacement(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    seed_web(kube)
    evict(core, "web-0")
    assert sorted(p["metadata"]["name"] for p in kube.list_objects("pods")) == ["web-1", "web-2"]


# ----------------------------------------------------------------------------- fault hooks


def test_fail_next_fails_that_many_matching_requests(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    kube.put_object(make_node("pi1"))
    kube.fail_next(2, 503, path=r"^/api/v1/nodes/pi1$", method="GET")
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            core.read_node("pi1")
        assert caught.value.status == 503
    core.list_node()  # other paths are not affected
    assert core.read_node("pi1").metadata.name == "pi1"


def test_paused_server_hangs_until_resumed(kube: FakeKubeServer) -> None:
    kube.put_object(make_node("pi1"))
    with kube.api_client(retries=False) as api:
        core = client.CoreV1Api(api)
        kube.pause()
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            core.read_node("pi1", _request_timeout=(5, 0.2))  # a float alone is ignored by 22.6
        kube.resume()
        assert core.read_node("pi1", _request_timeout=(5, 5)).metadata.name == "pi1"


def test_stopped_server_refuses_connections_and_restarts_on_the_same_port(kube: FakeKubeServer) -> None:
    kube.put_object(make_node("pi1"))
    with kube.api_client(retries=False) as api:
        core = client.CoreV1Api(api)
        core.read_node("pi1")
        port = kube.port
        kube.stop()
        with pytest.raises(urllib3.exceptions.HTTPError):
            core.read_node("pi1", _request_timeout=(2, 2))
        kube.start()
        assert kube.port == port
        assert core.read_node("pi1", _request_timeout=(2, 2)).metadata.name == "pi1"


def test_request_log_records_method_path_and_status(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException):
        core.read_node("missing")
    record = kube.requests[-1]
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/nodes/missing", 404)


# --------------------------------------------------------------------------- seeding, standalone


def kubectl_list() -> dict[str, Any]:
    """What ``kubectl get nodes,pods,pdb -A -o json`` prints (items carry kind and apiVersion)."""
    items = [
        make_node("pi1"),
        make_pod("web-0", node="pi1", labels={"app": "web"}),
        make_pdb("web", match_labels={"app": "web"}, min_available=1),
    ]
    for item in items:
        item["metadata"]["resourceVersion"] = "4711"
        item["metadata"]["uid"] = f"uid-{item['metadata']['name']}-{item['kind']}"
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def test_load_objects_seeds_from_a_kubectl_list_file(
    tmp_path: Path, kube: FakeKubeServer, policy: client.PolicyV1Api
) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(kubectl_list()))
    assert kube.load_objects(path) == 3
    pod = kube.get_object("pods", NS, "web-0")
    assert pod is not None and pod["metadata"]["uid"] == "uid-web-0-Pod"
    assert pdb_status(policy, "web").disruptions_allowed == 0  # one Ready pod, minAvailable 1


def test_load_objects_refuses_kinds_it_does_not_serve(kube: FakeKubeServer) -> None:
    with pytest.raises(ValueError, match="CronJob"):
        kube.load_objects({"kind": "List", "items": [{"kind": "CronJob", "metadata": {"name": "x"}}]})


def test_standalone_server_prints_its_url_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps(kubectl_list()))
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "piclusterd.sim.fake_api_server",
            "--port",
            "0",
            "--load",
            str(cluster),
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        with api:
            nodes = client.CoreV1Api(api).list_node().items
        assert [node.metadata.name for node in nodes] == ["pi1"]
        assert api.configuration.host == url
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


# -------------------------------------------------------------------------------- configmaps


def configmap_body(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_configmap_round_trips_its_data_and_is_gone_after_delete(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("kube-system", configmap_body("piclusterd-outage", {"record": "{}"}))
    read = core.read_namespaced_config_map("piclusterd-outage", "kube-system")
    assert read.data == {"record": "{}"} and read.metadata.namespace == "kube-system"
    core.patch_namespaced_config_map("piclusterd-outage", "kube-system", {"data": {"record": '{"v":1}'}})
    assert core.read_namespaced_config_map("piclusterd-outage", "kube-system").data == {"record": '{"v":1}'}
    core.delete_namespaced_config_map("piclusterd-outage", "kube-system")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("piclusterd-outage", "kube-system")
    assert missing.value.status == 404
    assert error_body(missing.value)["message"] == 'configmaps "piclusterd-outage" not found'


def test_configmap_created_twice_is_a_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("kube-system", configmap_body("c", {}))
    with pytest.raises(ApiException) as twice:
        core.create_namespaced_config_map("kube-system", configmap_body("c", {}))
    assert twice.value.status == 409 and error_body(twice.value)["reason"] == "AlreadyExists"


def test_configmap_replace_with_a_stale_resource_version_is_a_409(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("kube-system", configmap_body("c", {"a": "1"}))
    first = core.read_namespaced_config_map("c", "kube-system")
    second = core.read_namespaced_config_map("c", "kube-system")
    first.data = {"a": "2"}
    core.replace_namespaced_config_map("c", "kube-system", first)
    second.data = {"a": "3"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("c", "kube-system", second)
    assert stale.value.status == 409
    assert core.read_namespaced_config_map("c", "kube-system").data == {"a": "2"}


def test_a_watch_replays_the_changes_after_its_resource_version(kube: FakeKubeServer, core: client.CoreV1Api) -> None:
    from kubernetes import watch

    kube.put_object(make_node("pi1"))
    since = core.list_node().metadata.resource_version
    kube.put_object(make_node("pi2"))
    kube.update_object("Node", None, "pi1", lambda n: n["spec"].update(unschedulable=True))
    kube.delete_object("Node", None, "pi2")
    kube.put_object(make_pod("web-a", node="pi1"))  # another resource: not in a watch of nodes
    stream = watch.Watch().stream(core.list_node, resource_version=since, timeout_seconds=1)
    seen = [(e["type"], e["object"].metadata.name, e["object"].spec.unschedulable) for e in stream]
    # The second MODIFIED is the node lifecycle controller adding the unschedulable taint to the cordoned pi1.
    assert seen == [
        ("ADDED", "pi2", None),
        ("MODIFIED", "pi1", True),
        ("MODIFIED", "pi1", True),
        ("DELETED", "pi2", None),
    ]


def test_a_watch_filters_by_label_and_says_when_its_start_is_too_old(
    kube: FakeKubeServer, core: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import watch

    from piclusterd.sim import fake_api_server as fake_kube

    kube.put_object(make_pod("web-a", node="pi1", labels={"app": "web"}))
    since = core.list_namespaced_pod("default").metadata.resource_version
    kube.put_object(make_pod("db-a", node="pi1", labels={"app": "db"}))
    kube.put_object(make_pod("web-b", node="pi1", labels={"app": "web"}))
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="app=web", resource_version=since, timeout_seconds=1
    )
    assert [(e["type"], e["object"].metadata.name) for e in stream] == [("ADDED", "web-b")]

    monkeypatch.setattr(fake_kube, "_WATCH_HISTORY", 2)  # the server keeps only the last two changes
    for name in ("c", "d", "e"):
        kube.put_object(make_pod(f"web-{name}", node="pi1", labels={"app": "web"}))
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=since, timeout_seconds=1))
    assert caught.value.status == 410  # as kube-apiserver: relist, then watch from the new resourceVersion


def test_a_started_replacement_gets_an_ip_from_its_nodes_pod_cidr(clock: FakeClock) -> None:
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=5.0) as kube:
        node = make_node("pi2", address="192.168.10.12")
        node["spec"]["podCIDR"] = "10.42.2.0/24"
        kube.put_object(node)
        kube.put_object(make_pod("web-a", node="pi2", owner=("ReplicaSet", "web-1")))
        kube.delete_object("Pod", "default", "web-a")
        clock.advance(5)
        kube.run_controller_once()
        [replacement] = kube.list_objects("Pod")
        assert replacement["status"]["phase"] == "Running"
        assert replacement["status"]["podIP"] == "10.42.2.100" and replacement["status"]["hostIP"] == "192.168.10.12"
