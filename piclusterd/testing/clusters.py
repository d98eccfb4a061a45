"""Cluster builders for tests, the simulator and the benchmarks. Pure.

- :func:`make_node` / :func:`make_pod` build model objects with sensible defaults, so a test states only
  what it is about;
- :func:`synthetic_cluster` builds a large deterministic cluster (3 k3s servers, agents, Deployments,
  some critical, one DaemonSet) for benchmarks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

from piclusterd.core.cluster_view import (
    ANNOTATION_SHED,
    LABEL_CRITICAL,
    LABEL_TIER,
    ClusterView,
    Node,
    NodeSelectorTerm,
    Pod,
    PodPhase,
    Taint,
    Toleration,
)
from piclusterd.core.node_records import ShedPhase, ShedRecord, render_shed_record

__all__ = ["make_node", "make_pod", "synthetic_cluster"]

GIB = 1024**3
MIB = 1024**2
CONTROL_PLANE_LABELS: Mapping[str, str] = {
    "node-role.kubernetes.io/control-plane": "true",
    "node-role.kubernetes.io/master": "true",
    "node-role.kubernetes.io/etcd": "true",
}


def _shed_record(phase: str) -> str:
    """The record the leader writes for ``phase``; an unknown phase makes one no piclusterd can read."""
    try:
        known = ShedPhase(phase)
    except ValueError:
        return json.dumps({"v": 1, "phase": phase})
    return render_shed_record(ShedRecord(known, "leader", "test", "2026-11-24T02:00:00Z", False))


def make_node(
    name: str,
    *,
    cpu_m: int = 4000,
    memory_b: int = 8 * GIB,
    server: bool = False,
    tier: int | None = None,
    labels: Mapping[str, str] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    taints: tuple[Taint, ...] = (),
    shed_phase: str | None = None,
    max_pods: int = 110,
) -> Node:
    """A node; ``server`` makes it a k3s server (control plane + embedded etcd member)."""
    all_labels = {"kubernetes.io/hostname": name}
    if server:
        all_labels.update(CONTROL_PLANE_LABELS)
    if tier is not None:
        all_labels[LABEL_TIER] = str(tier)
    all_labels.update(labels or {})
    annotations = {} if shed_phase is None else {ANNOTATION_SHED: _shed_record(shed_phase)}
    return Node(
        name=name,
        allocatable_cpu_m=cpu_m,
        allocatable_memory_b=memory_b,
        allocatable_pods=max_pods,
        labels=all_labels,
        annotations=annotations,
        ready=ready,
        unschedulable=unschedulable,
        taints=taints,
    )


def make_pod(
    name: str,
    node: str | None,
    *,
    namespace: str = "default",
    cpu_m: int = 100,
    memory_b: int = 128 * MIB,
    owner_kind: str | None = "ReplicaSet",
    critical: bool = False,
    priority: int = 0,
    labels: Mapping[str, str] | None = None,
    volume_kinds: frozenset[str] = frozenset(),
    node_selector: Mapping[str, str] | None = None,
    tolerations: tuple[Toleration, ...] = (),
    required_node_affinity: tuple[NodeSelectorTerm, ...] | None = None,
    cpu_usage_m: int | None = None,
    phase: PodPhase = PodPhase.RUNNING,
    ready: bool = True,
) -> Pod:
    """A pod bound to ``node``, owned by a ReplicaSet unless said otherwise."""
    all_labels = {"app": name.rsplit("-", 1)[0]}
    if critical:
        all_labels[LABEL_CRITICAL] = "true"
    all_labels.update(labels or {})
    return Pod(
        namespace=namespace,
        name=name,
        node=node,
        cpu_request_m=cpu_m,
        memory_request_b=memory_b,
        owner_kind=owner_kind,
        priority=priority,
        labels=all_labels,
        volume_kinds=volume_kinds,
        node_selector=node_selector or {},
        tolerations=tolerations,
        required_node_affinity=required_node_affinity,
        cpu_usage_m=cpu_usage_m,
        phase=phase,
        ready=ready,
    )


def synthetic_cluster(
    nodes: int, pods: int, *, seed: int = 0, critical_share: float = 0.2, fill: float = 0.35
) -> ClusterView:
    """A deterministic cluster: 3 servers (fewer if ``nodes`` < 3) then agents, 8 GB / 4 CPU each, one
    DaemonSet pod per node, and ``pods`` Deployment pods spread round-robin, sized so that on average
    ``fill`` of each node's CPU and memory is requested (each pod half to one and a half times the mean).

    About ``critical_share`` of the pods are critical; every pod fits its node.
    """
    rng = random.Random(seed)
    node_list = [make_node(f"node-{i:04d}", server=i < min(3, nodes), tier=rng.randrange(3)) for i in range(nodes)]
    pod_list = [
        make_pod(
            f"node-exporter-{i:04d}",
            n.name,
            namespace="monitoring",
            cpu_m=50,
            memory_b=64 * MIB,
            owner_kind="DaemonSet",
        )
        for i, n in enumerate(node_list)
    ]
    per_node = max(1, -(-pods // max(1, nodes)))
    mean_cpu = fill * 3950 / per_node
    mean_mem = fill * (8 * GIB - 64 * MIB) / per_node
    for i in range(pods):
        node = node_list[i % nodes].name
        pod_list.append(
            make_pod(
                f"app-{i % 997:03d}-{i:06d}",
                node,
                namespace=f"ns-{i % 17}",
                cpu_m=max(1, round(mean_cpu * rng.choice((0.5, 1.0, 1.5)))),
                memory_b=max(1, round(mean_mem * rng.choice((0.5, 1.0, 1.5)))),
                critical=rng.random() < critical_share,
            )
        )
    return ClusterView(tuple(node_list), tuple(pod_list))
