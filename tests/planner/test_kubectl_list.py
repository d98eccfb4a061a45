"""parse_kubectl_list reads what ``kubectl get nodes,pods,pdb -A -o json`` prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from piclusterd.core.cluster_view import (
    ANNOTATION_CPU_USAGE,
    PodPhase,
    SelectorOperator,
    ShedState,
    SnapshotInvalid,
    TaintEffect,
    parse_kubectl_list,
    parse_quantity,
)
from piclusterd.core.node_records import ShedPhase, ShedRecord, render_shed_record


def record(phase: str) -> str:
    """A shed record as the leader writes it; an unknown phase gives a record no piclusterd can read."""
    try:
        known = ShedPhase(phase)
    except ValueError:
        return json.dumps({"v": 1, "phase": phase})
    return render_shed_record(ShedRecord(known, "pi1", "test", "2026-11-24T02:00:00Z", False))


def node_json(name: str = "pi1", **overrides: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "node-role.kubernetes.io/control-plane": "true",
                "node-role.kubernetes.io/etcd": "true",
            },
            "annotations": {"k3s.io/hostname": name},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "3879731Ki", "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }
    for key, value in overrides.items():
        node[key] = value
    return node


def pod_json(name: str = "web-1", node: str = "pi1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "clinic",
            "uid": "u-1",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "controller": True}],
        },
        "spec": {
            "nodeName": node,
            "priority": 1000000,
            "priorityClassName": "clinic-critical",
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "250m", "memory": "256Mi"}}},
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            ],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def as_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def test_node_fields() -> None:
    view = parse_kubectl_list(as_list(node_json()))
    node = view.node("pi1")
    assert (node.allocatable_cpu_m, node.allocatable_memory_b, node.allocatable_pods) == (
        4000,
        3972844544,
        110,
    )
    assert node.ready and not node.unschedulable
    assert node.is_control_plane and node.is_etcd_member
    assert node.roles == frozenset({"control-plane", "etcd"})


def test_node_keeps_only_our_annotations() -> None:
    raw = node_json()
    raw["metadata"]["annotations"]["picluster.io/shed"] = record("draining")
    node = parse_kubectl_list(as_list(raw)).node("pi1")
    assert dict(node.annotations) == {"picluster.io/shed": record("draining")}
    assert node.shed_state is ShedState.DRAINING


@pytest.mark.parametrize(
    ("record", "state"),
    [
        (None, ShedState.NONE),
        (record("draining"), ShedState.DRAINING),
        (record("drained"), ShedState.DRAINING),
        (record("poweroff_requested"), ShedState.DRAINING),
        (record("powered_off"), ShedState.POWERED_OFF),
        (record("restoring"), ShedState.RESTORING),
        (record("exploded"), ShedState.UNREADABLE),
        ("not json", ShedState.UNREADABLE),
        ('["draining"]', ShedState.UNREADABLE),
    ],
)
def test_shed_record_phase(record: str | None, state: ShedState) -> None:
    raw = node_json()
    if record is not None:
        raw["metadata"]["annotations"]["picluster.io/shed"] = record
    assert parse_kubectl_list(as_list(raw)).node("pi1").shed_state is state


@pytest.mark.parametrize(
    ("labels", "control_plane", "etcd"),
    [
        ({"node-role.kubernetes.io/control-plane": "true"}, True, False),
        ({"node-role.kubernetes.io/master": "true"}, True, False),
        ({"node-role.kubernetes.io/etcd": "true"}, True, True),
        ({"node-role.kubernetes.io/control-plane": "", "picluster.io/etcd-member": "true"}, True, True),
        ({"node-role.kubernetes.io/etcd": "true", "picluster.io/etcd-member": "false"}, True, False),
        ({"node-role.kubernetes.io/worker": "true"}, False, False),
        ({}, False, False),
    ],
)
def test_node_roles(labels: dict[str, str], control_plane: bool, etcd: bool) -> None:
    raw = node_json()
    raw["metadata"]["labels"] = labels
    node = parse_kubectl_list(as_list(raw)).node("pi1")
    assert (node.is_control_plane, node.is_etcd_member) == (control_plane, etcd)


def test_not_ready_cordoned_tainted_node() -> None:
    raw = node_json(
        spec={
            "unschedulable": True,
            "taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"},
            ],
        }
    )
    raw["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    node = parse_kubectl_list(as_list(raw)).node("pi1")
    assert not node.ready and node.unschedulable
    assert [(t.key, t.effect, t.repels) for t in node.taints] == [
        ("node.kubernetes.io/unschedulable", TaintEffect.NO_SCHEDULE, True),
        ("gpu", TaintEffect.PREFER_NO_SCHEDULE, False),
    ]


def test_pod_fields() -> None:
    view = parse_kubectl_list(as_list(node_json(), pod_json()))
    (pod,) = view.pods_on("pi1")
    assert pod.key == "clinic/web-1" and pod.uid == "u-1"
    assert (pod.owner_kind, pod.owner_name) == ("ReplicaSet", "web-abc")
    # a container with limits only is defaulted to requests = limits, as the API server does
    assert (pod.cpu_request_m, pod.memory_request_b) == (500, 512 * 2**20)
    assert pod.priority == 1000000 and pod.priority_class_name == "clinic-critical"
    assert pod.is_critical(1000000) and not pod.is_critical(1000001)
    assert pod.volume_kinds == frozenset({"emptyDir", "persistentVolumeClaim"})
    assert pod.phase is PodPhase.RUNNING and pod.ready
    assert pod.must_move and not pod.is_daemonset and not pod.is_mirror


def test_pod_requests_follow_the_scheduler_rule_for_init_containers_and_overhead() -> None:
    raw = pod_json()
    raw["spec"]["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}]
    raw["spec"]["overhead"] = {"cpu": "10m", "memory": "1Mi"}
    (pod,) = parse_kubectl_list(as_list(raw)).pods
    assert (pod.cpu_request_m, pod.memory_request_b) == (2010, 513 * 2**20)


def test_daemonset_pod_with_matchfields_affinity() -> None:
    raw = pod_json("node-exporter-x")
    raw["metadata"]["ownerReferences"][0]["kind"] = "DaemonSet"
    raw["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["pi1"]}]}]
            }
        }
    }
    view = parse_kubectl_list(as_list(node_json(), node_json("pi2"), raw))
    (pod,) = view.pods
    assert pod.is_daemonset and not pod.must_move
    assert pod.required_node_affinity is not None
    assert [term.matches(view.node("pi1")) for term in pod.required_node_affinity] == [True]
    assert [term.matches(view.node("pi2")) for term in pod.required_node_affinity] == [False]


@pytest.mark.parametrize(
    ("metadata", "status", "must_move", "has_controller"),
    [
        ({"annotations": {"kubernetes.io/config.mirror": "abc"}}, {"phase": "Running"}, False, True),
        ({"deletionTimestamp": "2026-11-24T02:00:00Z"}, {"phase": "Running"}, False, True),
        ({}, {"phase": "Succeeded"}, False, True),
        ({}, {"phase": "Failed"}, False, True),
        ({"ownerReferences": []}, {"phase": "Running"}, True, False),
        ({"ownerReferences": [{"kind": "ReplicaSet", "name": "x"}]}, {"phase": "Running"}, True, False),
    ],
)
def test_drain_relevant_pod_kinds(
    metadata: dict[str, Any], status: dict[str, Any], must_move: bool, has_controller: bool
) -> None:
    raw = pod_json()
    raw["metadata"].update(metadata)
    raw["status"] = status
    (pod,) = parse_kubectl_list(as_list(raw)).pods
    assert (pod.must_move, pod.has_controller) == (must_move, has_controller)


def test_cpu_usage_annotation() -> None:
    raw = pod_json()
    raw["metadata"]["annotations"] = {"picluster.io/cpu-usage": "1.2"}
    (pod,) = parse_kubectl_list(as_list(raw)).pods
    assert pod.cpu_usage_m == 1200 and pod.cpu_load_m == 1200


def test_pending_pod_is_not_on_a_node() -> None:
    raw = pod_json()
    del raw["spec"]["nodeName"]
    raw["status"] = {"phase": "Pending"}
    view = parse_kubectl_list(as_list(node_json(), raw))
    assert view.pods[0].node is None and view.pods_on("pi1") == ()


def test_pdb_fields_and_matching() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "clinic", "generation": 2},
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}],
            },
        },
        "status": {
            "disruptionsAllowed": 0,
            "currentHealthy": 1,
            "desiredHealthy": 1,
            "expectedPods": 2,
            "observedGeneration": 2,
        },
    }
    other_namespace = pod_json("web-2")
    other_namespace["metadata"]["namespace"] = "lab"
    view = parse_kubectl_list(as_list(node_json(), pod_json(), other_namespace, pdb))
    (budget,) = view.pdbs
    assert budget.max_unavailable == "1" and budget.min_available is None
    assert budget.disruptions_allowed == 0 and budget.generation == budget.observed_generation == 2
    assert budget.selector is not None
    assert budget.selector.match_expressions[0].operator is SelectorOperator.NOT_IN
    assert [p.key for p in view.pods if view.pdbs_for(p)] == ["clinic/web-1"]


def test_typed_lists_without_item_kinds() -> None:
    """The API returns NodeList/PodList whose items carry no kind."""
    node = node_json()
    del node["kind"]
    view = parse_kubectl_list({"apiVersion": "v1", "kind": "NodeList", "items": [node]})
    assert [n.name for n in view.nodes] == ["pi1"]


def test_other_kinds_are_ignored() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    assert parse_kubectl_list(as_list(node_json(), service)).pods == ()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(kind="Pod"), "expected a kubectl List"),
        (lambda o: o["items"][0]["metadata"].pop("name"), "node without metadata.name"),
        (lambda o: o["items"][0]["status"]["allocatable"].update(cpu="four"), "node pi1: quantity 'four'"),
        (lambda o: o["items"][1]["spec"].update(priority="high"), "spec.priority"),
        (
            lambda o: o["items"][0].update(spec={"taints": [{"key": "k", "effect": "Sometimes"}]}),
            "unknown effect",
        ),
        (lambda o: o["items"].append(o["items"][0]), "appears twice"),
        (lambda o: o.update(items={"a": 1}), "expected a list"),
    ],
)
def test_malformed_objects_are_refused_with_where(mutate: Any, message: str) -> None:
    obj = as_list(node_json(), pod_json())
    mutate(obj)
    with pytest.raises(SnapshotInvalid, match=message):
        parse_kubectl_list(obj)


# --- hostile values (issue 13, findings 8 and 9): one pod's garbage keeps that pod's defaults ---


def with_usage(value: Any, name: str = "web-1") -> dict[str, Any]:
    pod = pod_json(name)
    pod["metadata"]["annotations"] = {ANNOTATION_CPU_USAGE: value}
    return pod


@pytest.mark.parametrize("value", ["lots", "9" * 5000, "1e400", "NaN", "-1", "1" + "0" * 30, "Infinity", "1e28"])
def test_a_garbage_cpu_usage_keeps_the_pods_request_and_the_snapshot_is_read(value: str) -> None:
    view = parse_kubectl_list(as_list(node_json(), with_usage(value), with_usage("300m", "web-2")))
    garbage, good = (next(p for p in view.pods if p.name == n) for n in ("web-1", "web-2"))
    assert garbage.cpu_usage_m is None and garbage.cpu_load_m == garbage.cpu_request_m == 500
    assert good.cpu_usage_m == 300
    assert [(r.where, r.key) for r in view.refused] == [("pod clinic/web-1", ANNOTATION_CPU_USAGE)]
    assert len(view.refused[0].value) <= 40


@pytest.mark.parametrize("value", ["1GB", "9" * 5000, 10**40, [1], {"a": 1}, True, 1e300])
def test_a_garbage_request_counts_as_unset_and_is_reported(value: Any) -> None:
    pod = pod_json()
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = value
    view = parse_kubectl_list(as_list(node_json(), pod))
    assert view.pods[0].memory_request_b == 256 * 2**20  # container b's limit; a's garbage counts as 0
    assert [r.key for r in view.refused] == ["containers[0].requests.memory"]


@pytest.mark.parametrize("value", ["9" * 5000, 2**100, 10**28, "1e28", [1], None, "1" * 65])
def test_parse_quantity_raises_only_snapshot_invalid(value: Any) -> None:
    with pytest.raises(SnapshotInvalid):
        parse_quantity(value)
