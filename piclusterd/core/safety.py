"""The safety rules that decide whether a node may be shed: one predicate per rule. Pure.

Each ``check_*`` function states its rule in its docstring and returns ``None`` when the rule allows the
step, or a :class:`Refusal` naming the rule (a string enum) and what blocked it in words an operator
understands (the pods, the PDB, the count). Refusals end up in the journal and in Kubernetes Events.

Counting rules (quorum, last control plane, ``min_nodes``) take a :class:`Headcount`, which the planner
updates as it goes (:meth:`Headcount.with_shed`) instead of recounting the cluster for every candidate;
:func:`headcount` computes one from scratch. Whether evicted pods fit is answered by :class:`PodPacker`,
which places pods one node at a time and can take a placement back; :func:`check_pods_fit` wraps it for a
one-off question. :func:`check_shed` runs every rule for one node, first refusal wins.

A node counts as *up* when it is Ready, carries no shed record (``picluster.io/shed``) and the plan at
hand does not shed it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from piclusterd.core.cluster_view import ClusterView, Node, Pod, PodPhase, ShedState

__all__ = [
    "KNOWN_POWER_STATES",
    "Headcount",
    "Move",
    "PodPacker",
    "Refusal",
    "SafetyRule",
    "can_run_on",
    "check_control_plane_remains",
    "check_emptydir",
    "check_etcd_quorum",
    "check_min_nodes",
    "check_not_being_shed",
    "check_pdbs",
    "check_pods_fit",
    "check_power_known",
    "check_ready",
    "check_shed",
    "check_unreplicated",
    "headcount",
    "is_up",
]

_GIB = 1024**3
_REPACK_PODS = 400  # no re-pack once more pods than this have been displaced (costly, rarely useful)
_EXACT_PODS = 40  # re-packs of at most this many pods may fall back to an exhaustive search...
_EXACT_STEPS = 20_000  # ...of at most this many steps
_NAMES_IN_DETAIL = 5


class SafetyRule(enum.StrEnum):
    """The rule behind a refusal."""

    POWER_UNKNOWN = "power_unknown"
    SHED_IN_PROGRESS = "shed_in_progress"
    NODE_NOT_READY = "node_not_ready"
    ETCD_QUORUM = "etcd_quorum"
    LAST_CONTROL_PLANE = "last_control_plane"
    MIN_NODES = "min_nodes"
    UNREPLICATED_POD = "unreplicated_pod"
    EMPTYDIR_DATA = "emptydir_data"
    PDB_BLOCKS = "pdb_blocks"
    PODS_DO_NOT_FIT = "pods_do_not_fit"
    SETTLING = "settling"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule said no. ``detail`` is the whole explanation, ready for an Event message."""

    rule: SafetyRule
    detail: str


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_NAMES_IN_DETAIL])
    more = len(items) - _NAMES_IN_DETAIL
    return f"{shown} and {more} more" if more > 0 else shown


def _mem(memory_b: int) -> str:
    return f"{memory_b / _GIB:.2f}Gi"


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


# --------------------------------------------------------------------------------------------------------
# Placement


def can_run_on(pod: Pod, node: Node) -> bool:
    """Scheduling constraints other than resources: nodeSelector, required node affinity, taints
    (NoSchedule and NoExecute taints must be tolerated)."""
    labels = node.labels
    if any(labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    terms = pod.required_node_affinity
    if terms is not None and not any(term.matches(node) for term in terms):
        return False
    return all(
        not taint.repels or any(toleration.tolerates(taint) for toleration in pod.tolerations) for taint in node.taints
    )


@dataclass(frozen=True, slots=True)
class Move:
    """One evicted pod and where the placement put it (``to_node`` ``None``: left Pending, allowed)."""

    pod: str
    from_node: str
    to_node: str | None


_Signature = tuple[tuple[tuple[str, str], ...], object, object]


@dataclass(slots=True)
class _Undo:
    """What one :meth:`PodPacker.shed` changed, to take it back if a pod does not fit."""

    taken: list[tuple[int, int, int]] = field(default_factory=list)
    starts: list[tuple[_Signature, int]] = field(default_factory=list)


_ANYWHERE: _Signature = ((), (), None)


def _signature(pod: Pod) -> _Signature:
    if not pod.node_selector and not pod.tolerations and pod.required_node_affinity is None:
        return _ANYWHERE
    return (tuple(sorted(pod.node_selector.items())), pod.tolerations, pod.required_node_affinity)


class PodPacker:
    """Where would evicted pods go? A first-fit placement of pods onto the nodes that stay on, one shed
    node at a time, with a full re-pack when that fails.

    ``receivers`` are the nodes that may take pods, in order of preference (the nodes least likely to be
    shed first, so that pods move once). :meth:`shed` takes one more node out: its pods that must move
    (including pods moved onto it before) are placed critical first, then largest first, each on the first
    receiver that satisfies its constraints (:func:`can_run_on`) and has the CPU, memory and pod slots its
    requests need. If one does not fit, every pod displaced so far is placed again from scratch in the same
    order (first-fit decreasing over the whole set, which packs better than node by node, tried in four
    orders; for a few dozen pods at most, then a bounded exhaustive search); if that fails too, nothing
    changes and a refusal says which pod did not fit and why. Re-packs are limited to ``max_repacks`` per
    packer so that a plan on a cluster near capacity stays fast.

    With ``allow_pending_noncritical``, non-critical pods are not placed at all: they are given up and left
    Pending, so they never hold back shedding; critical pods must always fit.

    Placement is a witness that a home exists for every pod, not a prediction of the scheduler's choice.
    Cost: one pass over the pods to set up; each pod placed scans its eligible receivers from the first
    one that still has room for the smallest pod (receivers that cannot take any pod are skipped for good);
    a re-pack costs a scan per displaced pod.
    """

    def __init__(
        self,
        view: ClusterView,
        receivers: Sequence[str],
        *,
        priority_threshold: int,
        allow_pending_noncritical: bool = False,
        max_repacks: int = 8,
    ) -> None:
        self._view = view
        self._threshold = priority_threshold
        self._allow_pending = allow_pending_noncritical
        self._repacks_left = max_repacks
        self._order = [view.node(name) for name in receivers]
        self._index = {node.name: i for i, node in enumerate(self._order)}
        self._alive = [True] * len(self._order)
        self._free_cpu = [node.allocatable_cpu_m for node in self._order]
        self._free_mem = [node.allocatable_memory_b for node in self._order]
        self._free_pods = [node.allocatable_pods for node in self._order]
        self._load: dict[str, int] = {}
        self._movable: dict[str, list[Pod]] = {}
        self._eligible: dict[_Signature, list[int]] = {}
        self._start: dict[_Signature, int] = {}
        self._orders: dict[str, tuple[bool, float, str]] = {}
        self._signatures: dict[str, _Signature] = {}
        self._at: dict[str, str | None] = {}  # displaced pod -> where it is now (None: Pending)
        self._displaced: dict[str, Pod] = {}
        free_cpu, free_mem, free_pods = self._free_cpu, self._free_mem, self._free_pods
        min_cpu: list[int] = []
        min_mem: list[int] = []
        for node in view.nodes:
            pods = view.pods_on(node.name)
            holding = [pod for pod in pods if pod.holds_resources]
            movable = [pod for pod in pods if pod.must_move]
            i = self._index.get(node.name)
            if i is not None:
                free_cpu[i] -= sum(pod.cpu_request_m for pod in holding)
                free_mem[i] -= sum(pod.memory_request_b for pod in holding)
                free_pods[i] -= len(holding)
            self._load[node.name] = sum(pod.cpu_load_m for pod in holding)
            self._movable[node.name] = movable
            if movable:
                min_cpu.append(min(pod.cpu_request_m for pod in movable))
                min_mem.append(min(pod.memory_request_b for pod in movable))
        self._base = (list(free_cpu), list(free_mem), list(free_pods))
        self._min_cpu = min(min_cpu, default=0)
        self._min_mem = min(min_mem, default=0)

    def pods_to_move(self, node: str) -> tuple[Pod, ...]:
        """The pods that would have to move if ``node`` were shed now (its own and those moved onto it)."""
        return tuple(self._movable.get(node, ()))

    def load_m(self, node: str) -> int:
        """CPU (millicores) kept busy on ``node`` now, including pods moved onto it."""
        return self._load.get(node, 0)

    def shed(self, node: str, *, force: bool = False) -> tuple[Move, ...] | Refusal:
        """Take ``node`` out and place its pods; a :class:`Refusal` (and no change) if one does not fit.

        The moves returned include pods moved again by a re-pack (``from_node`` is where they were).
        With ``force`` (a node already going away), pods that fit nowhere are left Pending instead.
        """
        undo = _Undo()
        i = self._index.get(node)
        if i is not None:
            self._alive[i] = False
        pods = sorted(self._movable[node], key=self._placement_order)
        moves: list[Move] = []
        for pod in pods:
            critical = not self._placement_order(pod)[0]
            if self._allow_pending and not critical:
                moves.append(Move(pod.key, node, None))
                continue
            target = self._find(pod, undo)
            if target is None:
                if force:
                    moves.append(Move(pod.key, node, None))
                    continue
                why = self._why_not(node, pod, critical)
                self._rollback(undo)
                repacked = self._repack(node)
                if repacked is not None:
                    return repacked
                if i is not None:
                    self._alive[i] = True
                return Refusal(SafetyRule.PODS_DO_NOT_FIT, why)
            self._take(target, pod, undo)
            moves.append(Move(pod.key, node, self._order[target].name))
        self._commit(node, moves, {pod.key: pod for pod in pods})
        return tuple(moves)

    def _commit(self, node: str, moves: Sequence[Move], pods: Mapping[str, Pod]) -> None:
        for move in moves:
            pod = pods[move.pod]
            if move.from_node != node:
                self._movable[move.from_node].remove(pod)
                self._load[move.from_node] -= pod.cpu_load_m
            if move.to_node is not None:
                self._movable[move.to_node].append(pod)
                self._load[move.to_node] += pod.cpu_load_m
            self._at[pod.key] = move.to_node
            self._displaced[pod.key] = pod
        self._movable[node] = []
        self._load[node] = 0

    def _repack(self, node: str) -> tuple[Move, ...] | None:
        """Place every displaced pod again, from scratch, with ``node`` gone; ``None`` (no change) if one
        does not fit. Assumes ``node`` is already marked dead."""
        if self._repacks_left <= 0 or len(self._at) > _REPACK_PODS:
            return None
        self._repacks_left -= 1
        placed = [self._displaced[key] for key, where in self._at.items() if where is not None]
        own = [pod for pod in self._movable[node] if pod.key not in self._at]
        pending = [pod for pod in own if self._allow_pending and not pod.is_critical(self._threshold)]
        todo = [*placed, *(pod for pod in own if pod not in pending)]
        homes = {pod.key: self._homes(pod) for pod in todo}
        # Critical and big pods first; failing that, the pods with the fewest possible homes first, the
        # biggest first by either measure or by memory or by CPU.
        for order in self._repack_orders(homes):
            todo.sort(key=order)
            packing = self._pack(todo)
            if packing is not None:
                break
        else:
            # Last resort, for a handful of pods only: an exhaustive search with a step budget.
            packing = self._pack_exhaustively(todo) if len(todo) <= _EXACT_PODS else None
            if packing is None:
                return None
        where, (self._free_cpu, self._free_mem, self._free_pods) = packing
        self._start = {}
        moves = [Move(pod.key, node, None) for pod in pending]
        for pod, i in zip(todo, where, strict=True):
            before = self._at.get(pod.key) or node
            after = self._order[i].name
            if before != after:
                moves.append(Move(pod.key, before, after))
        self._commit(node, moves, {pod.key: pod for pod in [*todo, *pending]})
        return tuple(moves)

    def _pack(self, pods: Sequence[Pod]) -> tuple[list[int], tuple[list[int], list[int], list[int]]] | None:
        """First-fit of ``pods`` in this order onto the live receivers, from their original free room."""
        free_cpu, free_mem, free_pods = (list(column) for column in self._base)
        where: list[int] = []
        for pod in pods:
            _, eligible = self._eligible_for(pod)
            for i in eligible:
                if (
                    self._alive[i]
                    and free_cpu[i] >= pod.cpu_request_m
                    and free_mem[i] >= pod.memory_request_b
                    and free_pods[i] >= 1
                ):
                    free_cpu[i] -= pod.cpu_request_m
                    free_mem[i] -= pod.memory_request_b
                    free_pods[i] -= 1
                    where.append(i)
                    break
            else:
                return None
        return where, (free_cpu, free_mem, free_pods)

    def _pack_exhaustively(
        self, pods: Sequence[Pod]
    ) -> tuple[list[int], tuple[list[int], list[int], list[int]]] | None:
        """Backtracking over every placement of ``pods``, biggest first, skipping receivers whose free room
        equals one already tried for the same pod; gives up (``None``) after ``_EXACT_STEPS`` steps."""
        free_cpu, free_mem, free_pods = (list(column) for column in self._base)
        todo = sorted(pods, key=lambda p: (-p.cpu_request_m, -p.memory_request_b, p.key))
        homes = [[i for i in self._eligible_for(p)[1] if self._alive[i]] for p in todo]
        where = [0] * len(todo)
        steps = 0

        def place(k: int) -> bool:
            nonlocal steps
            steps += 1
            if k == len(todo):
                return True
            if steps > _EXACT_STEPS:
                return False
            pod = todo[k]
            tried: set[tuple[int, int, int]] = set()
            for i in homes[k]:
                room = (free_cpu[i], free_mem[i], free_pods[i])
                if room in tried or room[0] < pod.cpu_request_m or room[1] < pod.memory_request_b or room[2] < 1:
                    continue
                tried.add(room)
                free_cpu[i] -= pod.cpu_request_m
                free_mem[i] -= pod.memory_request_b
                free_pods[i] -= 1
                where[k] = i
                if place(k + 1):
                    return True
                free_cpu[i] += pod.cpu_request_m
                free_mem[i] += pod.memory_request_b
                free_pods[i] += 1
            return False

        if not place(0):
            return None
        index = {pod.key: k for k, pod in enumerate(todo)}
        return [where[index[pod.key]] for pod in pods], (free_cpu, free_mem, free_pods)

    def _homes(self, pod: Pod) -> int:
        _, eligible = self._eligible_for(pod)
        return sum(self._alive[i] for i in eligible)

    def _repack_orders(self, homes: Mapping[str, int]) -> tuple[Callable[[Pod], tuple[Any, ...]], ...]:
        def scarce_big(pod: Pod) -> tuple[Any, ...]:
            return (homes[pod.key], -max(pod.cpu_request_m / 1000, pod.memory_request_b / _GIB), pod.key)

        def scarce_memory(pod: Pod) -> tuple[Any, ...]:
            return (homes[pod.key], -pod.memory_request_b, -pod.cpu_request_m, pod.key)

        def scarce_cpu(pod: Pod) -> tuple[Any, ...]:
            return (homes[pod.key], -pod.cpu_request_m, -pod.memory_request_b, pod.key)

        return (self._placement_order, scarce_big, scarce_memory, scarce_cpu)

    def _placement_order(self, pod: Pod) -> tuple[bool, float, str]:
        order = self._orders.get(pod.key)
        if order is None:
            size = max(pod.cpu_request_m / 1000, pod.memory_request_b / _GIB)
            order = (not pod.is_critical(self._threshold), -size, pod.key)
            self._orders[pod.key] = order
        return order

    def _exhausted(self, i: int) -> bool:
        return (
            not self._alive[i]
            or self._free_pods[i] < 1
            or self._free_cpu[i] < self._min_cpu
            or self._free_mem[i] < self._min_mem
        )

    def _eligible_for(self, pod: Pod) -> tuple[_Signature, list[int]]:
        signature = self._signatures.get(pod.key)
        if signature is None:
            signature = self._signatures[pod.key] = _signature(pod)
        eligible = self._eligible.get(signature)
        if eligible is None:
            eligible = [i for i, node in enumerate(self._order) if can_run_on(pod, node)]
            self._eligible[signature] = eligible
        return signature, eligible

    def _find(self, pod: Pod, undo: _Undo) -> int | None:
        signature, eligible = self._eligible_for(pod)
        start = first = self._start.get(signature, 0)
        while start < len(eligible) and self._exhausted(eligible[start]):
            start += 1
        if start != first:
            self._start[signature] = start
            undo.starts.append((signature, first))
        cpu, mem = pod.cpu_request_m, pod.memory_request_b
        alive, free_cpu, free_mem, free_pods = self._alive, self._free_cpu, self._free_mem, self._free_pods
        for j in range(start, len(eligible)):
            i = eligible[j]
            if alive[i] and free_cpu[i] >= cpu and free_mem[i] >= mem and free_pods[i] >= 1:
                return i
        return None

    def _take(self, target: int, pod: Pod, undo: _Undo) -> None:
        self._free_cpu[target] -= pod.cpu_request_m
        self._free_mem[target] -= pod.memory_request_b
        self._free_pods[target] -= 1
        undo.taken.append((target, pod.cpu_request_m, pod.memory_request_b))

    def _rollback(self, undo: _Undo) -> None:
        for target, cpu, mem in undo.taken:
            self._free_cpu[target] += cpu
            self._free_mem[target] += mem
            self._free_pods[target] += 1
        for signature, first in reversed(undo.starts):
            self._start[signature] = first

    def _why_not(self, node: str, pod: Pod, critical: bool) -> str:
        _, eligible = self._eligible_for(pod)
        matching = [i for i in eligible if self._alive[i]]
        what = "critical pod" if critical else "pod"
        if pod.node != node:
            what += f" {pod.key} (moved from {pod.node} to {node} by this plan)"
        else:
            what += f" {pod.key} on {node}"
        need = f"{pod.cpu_request_m}m CPU, {_mem(pod.memory_request_b)} memory"
        if not matching:
            return f"{what} ({need}) matches no node that stays on (nodeSelector, affinity, taints, cordons)"
        best = max(matching, key=lambda i: (self._free_cpu[i], self._free_mem[i]))
        return (
            f"{what} needs {need}; the roomiest of the {len(matching)} matching nodes "
            f"that stay on, {self._order[best].name}, has {self._free_cpu[best]}m and "
            f"{_mem(self._free_mem[best])} free"
        )


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
    first. Pods of nodes already being shed (and of ``off``) are placed before ``node``'s. Receivers are
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
        or check_pods_fit(
            view,
            node,
            off,
            priority_threshold=priority_threshold,
            allow_pending_noncritical=allow_pending_noncritical,
        )
    )
