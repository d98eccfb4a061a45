"""Cluster builders for tests, the simulator and the benchmarks. Pure.

- :func:`make_node` / :func:`make_pod` build model objects with sensible defaults, so a test states only
  what it is about;
- :func:`synthetic_cluster` builds a large deterministic cluster (3 k3s servers, agents, Deployments,
  some critical, one DaemonSet) for benchmarks;
- :func:`few_large_pods_cluster` and :func:`random_shape_cluster` build the planner benchmark's hard
  families: one or two big pods per node, and pods of any size and constraint on nodes of any size.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from piclusterd.core.cluster_view import (
    ANNOTATION_SHED,
    LABEL_CRITICAL,
    LABEL_TIER,
    ClusterView,
    Node,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    PodPhase,
    Taint,
    TaintEffect,
    Toleration,
    TopologySpread,
    VolumePin,
)
from piclusterd.core.node_records import ShedPhase, ShedRecord, render_shed_record

__all__ = [
    "few_large_pods_cluster",
    "make_node",
    "make_pod",
    "random_shape_cluster",
    "synthetic_cluster",
    "with_network_volumes",
]

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
    volume_pins: tuple[VolumePin, ...] = (),
    pod_affinity: tuple[PodAffinityTerm, ...] = (),
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = (),
    topology_spread: tuple[TopologySpread, ...] = (),
    host_ports: tuple[str, ...] = (),
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
        claims=tuple(pin.claim for pin in volume_pins),
        volume_pins=volume_pins,
        pod_affinity=pod_affinity,
        pod_anti_affinity=pod_anti_affinity,
        topology_spread=topology_spread,
        host_ports=host_ports,
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


def _daemonset(node_list: list[Node]) -> list[Pod]:
    return [
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


def few_large_pods_cluster(nodes: int, pods_per_node: int = 1, *, seed: int = 0) -> ClusterView:
    """The planner's hardest packing (issue 17): 3 servers then agents, 4 CPU / 8 GB each, one DaemonSet pod
    and ``pods_per_node`` Deployment pods of 0.9-1.7 CPU and 1-3 GiB per node, a fifth of them critical."""
    rng = random.Random(seed)
    node_list = [make_node(f"node-{i:04d}", server=i < min(3, nodes), tier=rng.randrange(3)) for i in range(nodes)]
    pod_list = _daemonset(node_list)
    for i in range(nodes * pods_per_node):
        pod_list.append(
            make_pod(
                f"app-{i:06d}",
                node_list[i % nodes].name,
                namespace=f"ns-{i % 7}",
                cpu_m=rng.randrange(900, 1701, 10),
                memory_b=rng.randrange(1024, 3073, 64) * MIB,
                critical=rng.random() < 0.2,
            )
        )
    return ClusterView(tuple(node_list), tuple(pod_list))


def random_shape_cluster(nodes: int, pods: int, *, seed: int = 0) -> ClusterView:
    """Any shape (issue 17): nodes of 2, 4 or 8 GiB and 4 CPU, a third with a ``disk=ssd`` label and one in
    ten tainted ``dedicated=db:NoSchedule``; pods of 10m-2 CPU and 16 MiB-3 GiB (log-uniform), placed
    wherever they fit on a random node, some pinned to SSD nodes or tolerating the taint, some critical."""
    rng = random.Random(seed)
    taint = Taint("dedicated", TaintEffect.NO_SCHEDULE, "db")
    node_list = []
    for i in range(nodes):
        ssd = rng.random() < 1 / 3
        node_list.append(
            make_node(
                f"node-{i:04d}",
                server=i < min(3, nodes),
                tier=rng.randrange(3),
                memory_b=rng.choice((2, 4, 8)) * GIB,
                labels={"disk": "ssd"} if ssd else None,
                taints=(taint,) if i >= 3 and rng.random() < 0.1 else (),
            )
        )
    pod_list = _daemonset(node_list)
    free = {n.name: [n.allocatable_cpu_m - 50, n.allocatable_memory_b - 64 * MIB] for n in node_list}
    for i in range(pods):
        cpu = round(math.exp(rng.uniform(math.log(10), math.log(2000))))
        mem = round(math.exp(rng.uniform(math.log(16 * MIB), math.log(3 * GIB))))
        ssd_only = rng.random() < 0.15
        tolerant = rng.random() < 0.1
        fitting = [
            n
            for n in node_list
            if free[n.name][0] >= cpu
            and free[n.name][1] >= mem
            and (not ssd_only or n.labels.get("disk") == "ssd")
            and (tolerant or not n.taints)
        ]
        if not fitting:
            continue
        node = rng.choice(fitting)
        free[node.name][0] -= cpu
        free[node.name][1] -= mem
        pod_list.append(
            make_pod(
                f"app-{i:06d}",
                node.name,
                namespace=f"ns-{i % 11}",
                cpu_m=cpu,
                memory_b=mem,
                critical=rng.random() < 0.2,
                node_selector={"disk": "ssd"} if ssd_only else None,
                tolerations=(Toleration("dedicated", "Equal", "db", "NoSchedule"),) if tolerant else (),
            )
        )
    return ClusterView(tuple(node_list), tuple(pod_list))


def with_network_volumes(snapshot: Path) -> dict[str, Any]:
    """A reference snapshot (``kubectl get ... -o json``) with every PersistentVolume's node affinity removed:
    the databases on network storage, which can follow their pods. The clusters' own files give them k3s's
    local-path volumes, pinned to their node (issue 14); tests of shedding mechanics that need the database's
    node to be sheddable use this."""
    data: dict[str, Any] = json.loads(snapshot.read_text())
    for item in data.get("items", []):
        if item.get("kind") == "PersistentVolume":
            item.get("spec", {}).pop("nodeAffinity", None)
    return data
