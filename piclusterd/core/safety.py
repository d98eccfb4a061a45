"""The safety rules that decide whether a node may be shed: one predicate per rule. Pure.

Each ``check_*`` function states its rule in its docstring and returns ``None`` when the rule allows the
step, or a :class:`Refusal` naming the rule (a string enum) and what blocked it in words an operator
understands (the pods, the PDB, the count). Refusals end up in the journal and in Kubernetes Events.

Counting rules (quorum, last control plane, ``min_nodes``) take a :class:`Headcount`, which the planner
updates as it goes (:meth:`Headcount.with_shed`) instead of recounting the cluster for every candidate;
:func:`headcount` computes one from scratch. Whether evicted pods fit is answered by
:class:`~piclusterd.core.pod_packing.PodPacker`, which places pods one node at a time and can take a
placement back; :func:`check_pods_fit` asks it a one-off question. :func:`check_shed` runs every rule for one
node, first refusal wins. :class:`SafetyRule` and :class:`Refusal` are defined in
:mod:`piclusterd.core.refusal` (the packer answers with a refusal too) and exported here with the rules.

A node counts as *up* when it is Ready, carries no shed record (``picluster.io/shed``) and the plan at
hand does not shed it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from piclusterd.core.cluster_view import ANNOTATION_SHED, ClusterView, Node, Pod, PodPhase, ShedState
from piclusterd.core.placement_constraints import may_give_up, stuck_volume
from piclusterd.core.pod_packing import PodPacker
from piclusterd.core.refusal import Refusal, SafetyRule

__all__ = [
    "KNOWN_POWER_STATES",
    "Headcount",
    "Refusal",
    "SafetyRule",
    "check_control_plane_remains",
    "check_emptydir",
    "check_etcd_quorum",
    "check_min_nodes",
    "check_not_being_shed",
    "check_pdbs",
    "check_pinned_volumes",
    "check_pods_fit",
    "check_power_known",
    "check_ready",
    "check_resume",
    "check_shed",
    "check_unreplicated",
    "headcount",
    "is_up",
]

_NAMES_IN_DETAIL = 5


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_NAMES_IN_DETAIL])
    more = len(items) - _NAMES_IN_DETAIL
    return f"{shown} and {more} more" if more > 0 else shown


def is_up(node: Node, off: Collection[str] = ()) -> bool:
    """Up: Ready, not being shed by piclusterd, and not shed by the plan at hand (``off``)."""
    return node.ready and node.shed_state is ShedState.NONE and node.name not in off


# --------------------------------------------------------------------------------------------------------
# Power


KNOWN_POWER_STATES = frozenset({"online", "on_battery", "low_battery", "critical"})


def check_power_known(state: str) -> Refusal | None:
    """Rule: never act on unknown power.

    Until the power state machine has a trustworthy verdict (start-up, a silent UPS), nothing is shed:
    a false "on battery" would power off healthy nodes for nothing. A state string this module does not
    know counts as unknown.
    """
    if state not in KNOWN_POWER_STATES:
        return Refusal(SafetyRule.POWER_UNKNOWN, f"power state is {state!r}; nothing is shed until it is known")
    return None


# --------------------------------------------------------------------------------------------------------
# Node state


def check_not_being_shed(node: Node) -> Refusal | None:
    """Rule: never shed a node that is already being shed (drain still running) or already shed."""
    if node.shed_state is not ShedState.NONE:
        return Refusal(
            SafetyRule.SHED_IN_PROGRESS,
            f"{node.name} is already being shed (state {node.shed_state.value!r})",
        )
    return None


def check_not_settling(node: Node, settling: Collection[str]) -> Refusal | None:
    """Rule (anti-flap): never shed a node that piclusterd powered back on less than ``restore_after`` ago.

    Without it a flapping mains would cycle a node: restored in a lull, shed again at the next outage.
    ``settling`` is the restorer's answer (:func:`piclusterd.core.restore.is_settling`), passed in by the leader.
    """
    if node.name in settling:
        return Refusal(
            SafetyRule.SETTLING,
            f"{node.name} was powered back on less than restore_after ago; it is not shed again until it has settled",
        )
    return None


def check_ready(node: Node) -> Refusal | None:
    """Rule: only a Ready node is drained and powered off; a NotReady one cannot be drained reliably."""
    if not node.ready:
        return Refusal(SafetyRule.NODE_NOT_READY, f"{node.name} is not Ready")
    return None


# --------------------------------------------------------------------------------------------------------
# Counting rules


@dataclass(frozen=True, slots=True)
class Headcount:
    """How many nodes are up, in total and per role, and how many etcd members exist at all."""

    up: int
    control_plane_up: int
    control_plane_total: int
    etcd_up: int
    etcd_total: int

    @property
    def etcd_quorum(self) -> int:
        """floor(n/2) + 1 of all etcd members, up or down."""
        return self.etcd_total // 2 + 1

    def with_shed(self, node: Node) -> Headcount:
        """The count after ``node`` (assumed up) is shed."""
        return Headcount(
            up=self.up - 1,
            control_plane_up=self.control_plane_up - node.is_control_plane,
            control_plane_total=self.control_plane_total,
            etcd_up=self.etcd_up - node.is_etcd_member,
            etcd_total=self.etcd_total,
        )


def headcount(view: ClusterView, off: Collection[str] = ()) -> Headcount:
    """Count the nodes that are up with ``off`` shed (see :func:`is_up`)."""
    up = [node for node in view.nodes if is_up(node, off)]
    return Headcount(
        up=len(up),
        control_plane_up=sum(node.is_control_plane for node in up),
        control_plane_total=sum(node.is_control_plane for node in view.nodes),
        etcd_up=sum(node.is_etcd_member for node in up),
        etcd_total=sum(node.is_etcd_member for node in view.nodes),
    )


def check_etcd_quorum(node: Node, count: Headcount) -> Refusal | None:
    """Rule: never break etcd quorum, counting members already down.

    Quorum is floor(n/2) + 1 of *all* n etcd members; shedding an etcd member must leave at least that many
    up. Losing quorum freezes the API: no lease renewals, no drains, no recovery.
    """
    if not node.is_etcd_member:
        return None
    left = count.etcd_up - 1
    if left < count.etcd_quorum:
        return Refusal(
            SafetyRule.ETCD_QUORUM,
            f"shedding {node.name} would leave {left} of {count.etcd_total} etcd members up; "
            f"quorum needs {count.etcd_quorum}",
        )
    return None


def check_control_plane_remains(node: Node, count: Headcount) -> Refusal | None:
    """Rule: never shed the last control-plane node that is up (without one there is no API at all)."""
    if node.is_control_plane and count.control_plane_up <= 1:
        return Refusal(SafetyRule.LAST_CONTROL_PLANE, f"{node.name} is the last control-plane node that is up")
    return None


def check_min_nodes(node: Node, count: Headcount, min_nodes: int) -> Refusal | None:
    """Rule: at least ``min_nodes`` nodes stay up."""
    if count.up - 1 < min_nodes:
        return Refusal(
            SafetyRule.MIN_NODES,
            f"shedding {node.name} would leave {count.up - 1} nodes up; min_nodes is {min_nodes}",
        )
    return None


# --------------------------------------------------------------------------------------------------------
# Drain rules (kubectl drain's filters; DaemonSet and mirror pods are ignored, finished pods just removed)


def check_unreplicated(view: ClusterView, node: Node, allow_unreplicated: bool) -> Refusal | None:
    """Rule: a pod with no controller (nothing recreates it once evicted) blocks the drain unless allowed.

    This is kubectl drain's ``--force`` filter; piclusterd refuses by default.
    """
    if allow_unreplicated:
        return None
    blocking = [pod.key for pod in view.pods_on(node.name) if pod.must_move and not pod.has_controller]
    if blocking:
        return Refusal(
            SafetyRule.UNREPLICATED_POD,
            f"{node.name} runs pods that no controller would recreate: {_names(blocking)}",
        )
    return None


def check_emptydir(view: ClusterView, node: Node, evict_emptydir: bool) -> Refusal | None:
    """Rule: pods with ``emptyDir`` volumes lose that data when evicted; allowed by default
    (kubectl's ``--delete-emptydir-data``), refused when the policy says so."""
    if evict_emptydir:
        return None
    blocking = [pod.key for pod in view.pods_on(node.name) if pod.must_move and "emptyDir" in pod.volume_kinds]
    if blocking:
        return Refusal(SafetyRule.EMPTYDIR_DATA, f"{node.name} runs pods with emptyDir data: {_names(blocking)}")
    return None


def check_pdbs(view: ClusterView, node: Node) -> Refusal | None:
    """Rule: a PodDisruptionBudget that allows no disruption now, for a pod that must move, blocks the node.

    Mirrors the eviction API: only Running pods are checked; a pod covered by two budgets cannot be evicted
    at all; a budget whose status is older than its spec is not trusted yet; a pod that is not Ready may go
    without spending budget when the budget's ``unhealthyPodEvictionPolicy`` is ``AlwaysAllow``, or
    (``IfHealthyBudget``) when currentHealthy >= desiredHealthy > 0.
    """
    if not view.pdbs:
        return None
    problems: list[str] = []
    for pod in view.pods_on(node.name):
        if not pod.must_move or pod.phase is not PodPhase.RUNNING:
            continue
        budgets = view.pdbs_for(pod)
        if len(budgets) > 1:
            names = ", ".join(b.key for b in budgets)
            problems.append(f"pod {pod.key} is covered by more than one PodDisruptionBudget ({names})")
            continue
        if not budgets:
            continue
        budget = budgets[0]
        if budget.observed_generation < budget.generation:
            problems.append(f"PodDisruptionBudget {budget.key} has a status older than its spec (pod {pod.key})")
            continue
        if budget.disruptions_allowed > 0:
            continue
        if not pod.ready and (
            budget.unhealthy_pod_eviction_policy == "AlwaysAllow"
            or budget.current_healthy >= budget.desired_healthy > 0
        ):
            continue
        problems.append(
            f"PodDisruptionBudget {budget.key} allows 0 disruptions (needs {budget.desired_healthy} healthy, "
            f"has {budget.current_healthy}) for pod {pod.key}"
        )
    if problems:
        return Refusal(SafetyRule.PDB_BLOCKS, f"{node.name}: " + "; ".join(problems[:_NAMES_IN_DETAIL]))
    return None


def check_pinned_volumes(view: ClusterView, node: Node, given_up: Callable[[Pod], bool]) -> Refusal | None:
    """Rule: a pod whose volume only its own node can mount cannot move, so its node is not shed.

    k3s's default ``local-path`` PersistentVolumes carry a required node affinity to the one node holding
    their directory; an evicted pod using one gets a replacement that stays Pending ("volume node affinity
    conflict"), the drain waits for it in vain and the service is down. Only a pod the plan may give up
    (``given_up``, :func:`~piclusterd.core.placement_constraints.may_give_up`) lets the node go.
    """
    for pod in view.pods_on(node.name):
        if not pod.must_move or given_up(pod):
            continue
        pin = stuck_volume(pod, view)
        if pin is not None:
            volume = (
                f"(volume {pin.volume}) that only {node.name} can mount"
                if pin.volume
                else f"whose volume was not read (counted as pinned to {node.name}, the safe reading)"
            )
            return Refusal(
                SafetyRule.PINNED_VOLUME,
                f"pod {pod.key} on {node.name} uses claim {pin.claim} {volume}; its replacement would stay "
                f"Pending, so {node.name} stays on",
            )
    return None


# --------------------------------------------------------------------------------------------------------
# Placement (the packer itself is piclusterd.core.pod_packing)


def check_pods_fit(
    view: ClusterView,
    node: Node,
    off: Collection[str] = (),
    *,
    priority_threshold: int,
    allow_pending_noncritical: bool = False,
) -> Refusal | None:
    """Rule: every pod evicted from the nodes being shed must fit on the nodes that stay on.

    Fit means CPU and memory requests within allocatable minus what is already requested there, a free pod
    slot, and the pod's nodeSelector, required node affinity and tolerations. Critical pods are placed
    first. Pods of nodes already being shed (and of ``off``) are placed before ``node``'s; they go anyway, so
    those that fit nowhere (not even after a re-pack) are left Pending rather than block ``node``. Receivers are
    up, schedulable nodes. With ``allow_pending_noncritical`` only critical pods need a home.
    """
    going = [n.name for n in view.nodes if n.name in off or n.shed_state.is_leaving]
    receivers = [n.name for n in view.nodes if is_up(n, off) and not n.unschedulable and n.name != node.name]
    packer = PodPacker(
        view,
        receivers,
        priority_threshold=priority_threshold,
        allow_pending_noncritical=allow_pending_noncritical,
    )
    for name in going:
        if name != node.name:
            packer.shed(name, force=True)
    result = packer.shed(node.name)
    return result if isinstance(result, Refusal) else None


def check_shed(
    view: ClusterView,
    node: Node,
    off: Collection[str] = (),
    *,
    min_nodes: int,
    allow_unreplicated: bool,
    evict_emptydir: bool,
    priority_threshold: int,
    allow_pending_noncritical: bool = False,
) -> Refusal | None:
    """Every rule for shedding ``node`` on top of ``off``, in a fixed order; the first refusal wins."""
    count = headcount(view, off)
    return (
        check_not_being_shed(node)
        or check_ready(node)
        or check_etcd_quorum(node, count)
        or check_control_plane_remains(node, count)
        or check_min_nodes(node, count, min_nodes)
        or check_unreplicated(view, node, allow_unreplicated)
        or check_emptydir(view, node, evict_emptydir)
        or check_pdbs(view, node)
        or check_pinned_volumes(
            view,
            node,
            lambda pod: may_give_up(
                pod, priority_threshold=priority_threshold, allow_pending_noncritical=allow_pending_noncritical
            ),
        )
        or check_pods_fit(
            view,
            node,
            off,
            priority_threshold=priority_threshold,
            allow_pending_noncritical=allow_pending_noncritical,
        )
    )


def check_resume(
    view: ClusterView,
    name: str,
    *,
    min_nodes: int,
    allow_unreplicated: bool,
    evict_emptydir: bool,
    priority_threshold: int,
    allow_pending_noncritical: bool = False,
) -> Refusal | None:
    """Rule: a recorded shed is finished only if shedding the node is allowed *now*.

    Before each destructive step of a shed found recorded on a Node (drain, power-off), every rule of
    :func:`check_shed` runs again on the fresh ``view``, as if ``name`` were not being shed yet; every other
    node with a shed record counts as down. A record, whoever wrote it (a previous leader that planned on
    older facts, or someone forging ``phase: draining`` on two etcd members), never bypasses a rule.
    """
    node = view.node(name)
    unrecorded = replace(node, annotations={k: v for k, v in node.annotations.items() if k != ANNOTATION_SHED})
    fresh = ClusterView(tuple(unrecorded if n.name == name else n for n in view.nodes), view.pods, view.pdbs)
    return check_shed(
        fresh,
        unrecorded,
        min_nodes=min_nodes,
        allow_unreplicated=allow_unreplicated,
        evict_emptydir=evict_emptydir,
        priority_threshold=priority_threshold,
        allow_pending_noncritical=allow_pending_noncritical,
    )
