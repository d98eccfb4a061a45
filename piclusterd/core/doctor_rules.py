"""``piclusterctl doctor``'s findings about a cluster, from one snapshot and the configuration. Pure.

Each rule looks for one thing known to bite on a first real cluster and says it with its fix. A finding is
a ``problem`` (piclusterd will not do its job as configured), a ``warning`` (it will, with a cost a person
should know), or ``info`` (a fact worth seeing, such as a value that could not be checked here).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.placement_constraints import stuck_volume

__all__ = ["Finding", "Level", "cluster_findings", "exit_status"]


class Level(enum.StrEnum):
    PROBLEM = "problem"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str  # a short stable name, for --json and scripts
    subject: str  # the node, object or file it is about
    message: str
    fix: str = ""


def exit_status(findings: Sequence[Finding]) -> int:
    """0 when nothing needs a person, 1 when something does (a problem or a warning)."""
    return 1 if any(f.level is not Level.INFO for f in findings) else 0


def cluster_findings(
    view: ClusterView, *, critical_priority: int, power_methods: Mapping[str, str], this_node: str
) -> list[Finding]:
    """Everything :mod:`piclusterd.core.doctor_rules` checks in a snapshot, in a stable order."""
    return [
        *_blocking_pdbs(view),
        *_critical_workloads(view, critical_priority),
        *_pinned_volumes(view, critical_priority),
        *_etcd_members(view),
        *_power_on_methods(view, power_methods, this_node),
    ]


def _blocking_pdbs(view: ClusterView) -> list[Finding]:
    """A budget that allows no disruption while every pod it covers is healthy blocks every drain forever:
    kured's best-known deadlock (minAvailable equal to the replicas, or maxUnavailable 0)."""
    out = []
    for pdb in view.pdbs:
        if pdb.disruptions_allowed == 0 and pdb.expected_pods > 0 and pdb.current_healthy >= pdb.expected_pods:
            out.append(
                Finding(
                    Level.PROBLEM,
                    "pdb_blocks_drain",
                    f"PodDisruptionBudget {pdb.key}",
                    f"allows no disruption with all {pdb.expected_pods} of its pods healthy: a drain of any "
                    "node running one waits until the drain timeout, and that node is never shed",
                    "set maxUnavailable: 1 (or a minAvailable below the replicas), or add a replica",
                )
            )
    return out


def _critical_workloads(view: ClusterView, critical_priority: int) -> list[Finding]:
    owners: dict[tuple[str, str], list[str]] = {}
    pinned: set[tuple[str, str]] = set()  # said by _pinned_volumes: such a pod does not move at all
    for pod in view.pods:
        if pod.is_finished or pod.is_daemonset or not pod.is_critical(critical_priority):
            continue
        key = (pod.namespace, pod.owner_name or pod.name)
        owners.setdefault(key, []).append(pod.node or "(not scheduled)")
        if pod.node is not None and stuck_volume(pod, view) is not None:
            pinned.add(key)
    if not owners:
        return [
            Finding(
                Level.WARNING,
                "nothing_critical",
                "cluster",
                f"no pod is critical (priority {critical_priority} or more, or label picluster.io/critical=true): "
                "the planner may shed any node, the medical records' included",
                "give the critical workloads a PriorityClass with that value, or label their pods "
                "picluster.io/critical=true",
            )
        ]
    out = []
    for (namespace, owner), nodes in sorted(owners.items()):
        if len(nodes) == 1 and (namespace, owner) not in pinned:
            out.append(
                Finding(
                    Level.WARNING,
                    "critical_single_replica",
                    f"{namespace}/{owner}",
                    f"a critical workload with one replica, on {nodes[0]}: it is down while it moves when "
                    f"{nodes[0]} is shed",
                    "run two replicas where the application allows it, or accept the move's downtime",
                )
            )
    return out


def _pinned_volumes(view: ClusterView, critical_priority: int) -> list[Finding]:
    """A critical pod whose volume no other node can mount (k3s local-path) pins its node: the planner's
    ``pinned_volume`` rule never sheds that node (:func:`~piclusterd.core.placement_constraints.stuck_volume`,
    the planner's own test)."""
    out = []
    for pod in view.pods:
        if pod.is_finished or pod.is_daemonset or pod.node is None or not pod.is_critical(critical_priority):
            continue
        pin = stuck_volume(pod, view)
        if pin is None:
            continue
        claim = f"{pod.namespace}/{pin.claim}"
        if claim in view.volumes_unchecked:
            volume = " (not checked: counted as pinned)"
        else:
            volume = f" (PersistentVolume {pin.volume})" if pin.volume else ""
        out.append(
            Finding(
                Level.WARNING,
                "pinned_volume",
                f"pod {pod.namespace}/{pod.name}",
                f"critical, with claim {claim}{volume} that only {pod.node} can mount: "
                f"{pod.node} stays on during shedding, however long the outage",
                "put the claim on network storage (NFS, Longhorn) so the pod can move, or accept that "
                f"{pod.node} is never shed",
            )
        )
    if view.volumes_unchecked:
        out.append(
            Finding(
                Level.INFO,
                "volumes_unchecked",
                "cluster",
                f"claims not checked ({', '.join(view.volumes_unchecked[:5])}): they count as pinned to their node",
            )
        )
    return out


def _etcd_members(view: ClusterView) -> list[Finding]:
    out = []
    servers = [n for n in view.nodes if n.is_control_plane]
    if len(servers) > 1 and not view.etcd_members:
        out.append(
            Finding(
                Level.WARNING,
                "etcd_members_unknown",
                "cluster",
                f"{len(servers)} control-plane nodes and no etcd member known: with embedded etcd, the quorum "
                "rule cannot protect it",
                "label the etcd members picluster.io/etcd-member=true (k3s with --cluster-init marks them itself)",
            )
        )
    for node in view.nodes:
        for note in node.role_notes:
            out.append(Finding(Level.INFO, "node_roles", f"node {node.name}", note))
    return out


def _power_on_methods(view: ClusterView, methods: Mapping[str, str], this_node: str) -> list[Finding]:
    out = []
    names = {n.name for n in view.nodes}
    for name in sorted(names):
        if name == this_node:
            continue
        method = methods.get(name, "manual")
        if method == "manual":
            out.append(
                Finding(
                    Level.WARNING,
                    "no_power_on_method",
                    f"node {name}",
                    "no way to power it back on (method manual): after it is shed someone must press its button",
                    f"add [node_power.{name}] with method wol, rtc-wake, gpio-relay or nut-outlet (docs/power-on.md)",
                )
            )
    for name in sorted(set(methods) - names):
        out.append(
            Finding(
                Level.WARNING,
                "power_on_unknown_node",
                f"[node_power.{name}]",
                "names no node of the cluster",
                "use the node's name as kubectl get nodes shows it",
            )
        )
    return out
