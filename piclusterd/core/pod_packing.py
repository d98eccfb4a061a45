"""Where would evicted pods go? :class:`PodPacker` places them on the nodes that stay on. Pure.

A first-fit placement, one shed node at a time, that can take a placement back and re-packs every displaced
pod from scratch before giving up; its answer is the :class:`Move` list or a :class:`~piclusterd.core.refusal.Refusal`
(rule ``pods_do_not_fit``) saying which pod found no home and why. :func:`can_run_on` is the scheduling
constraints other than resources (nodeSelector, required node affinity, taints).

The safety rule :func:`~piclusterd.core.safety.check_pods_fit` asks it a one-off question; the planner
(:mod:`piclusterd.core.shed_search`, :mod:`piclusterd.core.per_node_step`) keeps one packer for a whole plan.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from piclusterd.core.cluster_view import ClusterView, Node, Pod
from piclusterd.core.exact_packing import pack_exactly
from piclusterd.core.placement_constraints import PodsInPlace, volumes_allow
from piclusterd.core.refusal import Refusal, SafetyRule
from piclusterd.core.work_budget import WorkBudget

__all__ = ["STOPPABLE_OWNERS", "Move", "PodPacker", "can_run_on", "can_stop", "may_give_up"]

_GIB = 1024**3
_REPACK_PODS = 400  # no re-pack once more pods than this have been displaced (costly, rarely useful)
_EXACT_PODS = 40  # re-packs of at most this many pods may fall back to an exact search...
_EXACT_UNITS = 100_000  # ...of at most this many work units (receivers looked at) each


def _mem(memory_b: int) -> str:
    return f"{memory_b / _GIB:.2f}Gi"


def can_run_on(pod: Pod, node: Node) -> bool:
    """Scheduling constraints other than resources and other pods: nodeSelector, required node affinity,
    taints (NoSchedule and NoExecute taints must be tolerated), the node pins of the pod's volumes.
    Those between pods are :class:`~piclusterd.core.placement_constraints.PodsInPlace`'s."""
    if pod.volume_pins and not volumes_allow(pod, node):
        return False
    labels = node.labels
    if any(labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    terms = pod.required_node_affinity
    if terms is not None and not any(term.matches(node) for term in terms):
        return False
    return all(
        not taint.repels or any(toleration.tolerates(taint) for toleration in pod.tolerations) for taint in node.taints
    )


def may_give_up(pod: Pod, *, priority_threshold: int, allow_pending_noncritical: bool) -> bool:
    """May a plan leave ``pod`` Pending, with no home, so that its node can be shed? Only a non-critical pod,
    and only when the plan allows it (``[policy] give_up_noncritical``): a critical pod always needs a home.
    The one rule every placement constraint asks before it gives a pod up."""
    return allow_pending_noncritical and not pod.is_critical(priority_threshold)


#: Controllers a plan can stop work of: those the scale subresource sizes (``kubectl scale``: a Deployment
#: through the ReplicaSet that owns its pods, a bare ReplicaSet, a StatefulSet) and a Job, which is
#: suspended (``spec.suspend``, GA since Kubernetes 1.24, KEP-2232: "the Job controller will delete all
#: active Pods"; resumed, it creates them again). A DaemonSet's or a bare pod's work is never stopped.
STOPPABLE_OWNERS = frozenset({"ReplicaSet", "StatefulSet", "Job"})


def can_stop(pod: Pod, *, priority_threshold: int) -> bool:
    """May a plan stop ``pod`` (scale its controller down by one, or suspend its Job) so that it draws
    nothing, though room is left for it? Only a non-critical pod of a :data:`STOPPABLE_OWNERS` controller;
    the work comes back with the restore. A critical pod is never stopped.

    The controller, not the plan, picks which replica goes (a ReplicaSet by its ranking, a StatefulSet the
    highest ordinal), so the plan counts replicas: one pod of a template stands for another. A StatefulSet
    pod whose volume is pinned to its node is not interchangeable and is never stopped."""
    if pod.is_critical(priority_threshold):
        return False
    if pod.owner_kind == "StatefulSet":
        return not pod.volume_pins
    return pod.owner_kind in STOPPABLE_OWNERS


@dataclass(frozen=True, slots=True)
class Move:
    """One evicted pod and where the placement put it (``to_node`` ``None``: left Pending, allowed)."""

    pod: str
    from_node: str
    to_node: str | None


_Signature = tuple[tuple[tuple[str, str], ...], object, object, object]


@dataclass(slots=True)
class _Undo:
    """What one :meth:`PodPacker.shed` changed, to take it back if a pod does not fit."""

    taken: list[tuple[int, int, int]] = field(default_factory=list)
    starts: list[tuple[_Signature, int]] = field(default_factory=list)
    node: int | None = None  # the shed node's own index, if it is a receiver (alive again after a rollback)
    mark: int = 0  # where PodsInPlace's journal stood before


_ANYWHERE: _Signature = ((), (), None, ())


def _signature(pod: Pod) -> _Signature:
    if not pod.node_selector and not pod.tolerations and pod.required_node_affinity is None and not pod.volume_pins:
        return _ANYWHERE
    return (tuple(sorted(pod.node_selector.items())), pod.tolerations, pod.required_node_affinity, pod.volume_pins)


class PodPacker:
    """Where would evicted pods go? A first-fit placement of pods onto the nodes that stay on, one shed
    node at a time, with a full re-pack when that fails.

    ``receivers`` are the nodes that may take pods, in order of preference (the nodes least likely to be
    shed first, so that pods move once). :meth:`shed` takes one more node out: its pods that must move
    (including pods moved onto it before) are placed critical first, then by priority (highest first, as the
    scheduler's preemption would rank them), then largest first, each on the first
    receiver that satisfies its constraints (:func:`can_run_on`) and has the CPU, memory and pod slots its
    requests need. If one does not fit, every pod displaced so far is placed again from scratch in the same
    order (first-fit decreasing over the whole set, which packs better than node by node, tried in four
    orders; for a few dozen pods at most, then an exact search, :mod:`piclusterd.core.exact_packing`); if
    that fails too, nothing changes and a refusal says which pod did not fit and why. Re-packs are limited
    to ``max_repacks`` per packer, and all the work to ``budget`` (:mod:`piclusterd.core.work_budget`,
    shared by every packer of one search), so that a plan on a cluster near capacity stays fast: once it is
    spent, no re-pack is tried (a refusal, which is safe).

    With ``allow_pending_noncritical``, non-critical pods get only the room the critical ones leave: each is
    placed if a home is left for it, else given up and left Pending (:func:`may_give_up`), so they never hold
    back shedding; a re-pack places every critical pod first and then fills the room left. Critical pods must
    always fit. With ``give_up_all_noncritical`` too (the physical optimum), non-critical pods are not placed
    at all: the least load there can be.

    Constraints between pods (pod affinity and anti-affinity, topology spread, host ports) are asked of
    :class:`~piclusterd.core.placement_constraints.PodsInPlace` for each receiver a pod would take, on
    clusters that have any; the exact search does not model them and is skipped there.

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
        give_up_all_noncritical: bool = False,
        stop_noncritical: bool = False,
        max_repacks: int = 8,
        budget: WorkBudget | None = None,
    ) -> None:
        self._view = view
        self._budget = WorkBudget() if budget is None else budget
        self._threshold = priority_threshold
        self._allow_pending = allow_pending_noncritical or give_up_all_noncritical or stop_noncritical
        self._drop_all = give_up_all_noncritical
        self._stop = stop_noncritical
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
        self._orders: dict[str, tuple[bool, int, float, str]] = {}
        self._signatures: dict[str, _Signature] = {}
        self._at: dict[str, str | None] = {}  # displaced pod -> where it is now (None: Pending)
        self._displaced: dict[str, Pod] = {}
        self._inter = PodsInPlace(view) if PodsInPlace.needed(view) else None
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
        With ``force`` (a node already going away), pods that fit nowhere, not even after a re-pack, are left
        Pending instead. The re-pack comes first: a pod given up while a home exists would free room that
        a later shed is then allowed to fill, leaving that pod Pending for good.
        """
        i = self._index.get(node)
        undo = _Undo(node=i)
        if i is not None:
            self._alive[i] = False
        if self._inter is not None:
            undo.mark = self._inter.mark()
            self._inter.leave(node)
        pods = sorted(self._movable[node], key=self._placement_order)
        moves: list[Move] = []
        for pod in pods:
            critical = not self._placement_order(pod)[0]
            if self._dropped(pod, critical):
                moves.append(Move(pod.key, node, None))
                continue
            target = self._find(pod, undo)
            if target is None and self._gives_up(pod):
                moves.append(Move(pod.key, node, None))  # no room left for it: given up
                continue
            if target is None:
                why = self._why_not(node, pod, critical)
                self._budget.spend(len(self._eligible_for(pod)[1]) // 4)  # a scan at C speed
                self._rollback(undo)
                repacked = self._repack(node)
                if repacked is not None:
                    return repacked
                if force:
                    return self._shed_leaving_pending(node, pods)
                if i is not None:
                    self._alive[i] = True
                return Refusal(SafetyRule.PODS_DO_NOT_FIT, why)
            self._take(target, pod, undo)
            moves.append(Move(pod.key, node, self._order[target].name))
        self._commit(node, moves, {pod.key: pod for pod in pods})
        return tuple(moves)

    def _shed_leaving_pending(self, node: str, pods: Sequence[Pod]) -> tuple[Move, ...]:
        """First-fit of ``pods`` (in placement order) for a node that goes anyway, leaving Pending those that
        fit nowhere; only once no re-pack homes them all."""
        undo = _Undo()
        if self._inter is not None:
            self._inter.leave(node)
        moves: list[Move] = []
        for pod in pods:
            critical = not self._placement_order(pod)[0]
            target = None if self._dropped(pod, critical) else self._find(pod, undo)
            if target is not None:
                self._take(target, pod, undo)
            moves.append(Move(pod.key, node, None if target is None else self._order[target].name))
        self._commit(node, moves, {pod.key: pod for pod in pods})
        return tuple(moves)

    def _commit(self, node: str, moves: Sequence[Move], pods: Mapping[str, Pod]) -> None:
        if self._inter is not None:
            self._inter.leave(node)
        for move in moves:
            pod = pods[move.pod]
            if self._inter is not None:
                self._inter.move(pod, move.to_node)
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
        if self._repacks_left <= 0 or len(self._at) > _REPACK_PODS or self._budget.refuse():
            return None
        self._repacks_left -= 1
        placed = [self._displaced[key] for key, where in self._at.items() if where is not None]
        own = [pod for pod in self._movable[node] if pod.key not in self._at]
        # Pods that may be given up get only the room the others leave: they are placed after them, below.
        optional = [pod for pod in [*placed, *own] if self._gives_up(pod)]
        # Membership by key: a list's ``in`` compares whole pods field by field, quadratic in the pods moved
        # (it made a plan of 10 nodes / 1,000 pods take 0.8 s instead of 0.1 s).
        optional_keys = {pod.key for pod in optional}
        pending = [pod for pod in own if pod.key in optional_keys and self._dropped(pod, False)]
        pending_keys = {pod.key for pod in pending}
        todo = [pod for pod in [*placed, *own] if pod.key not in optional_keys]
        homes = {pod.key: self._homes(pod) for pod in todo}
        mark = 0
        if self._inter is not None:
            mark = self._inter.mark()
            self._inter.leave(node)
        # Critical and big pods first; failing that, the pods with the fewest possible homes first, the
        # biggest first by either measure or by memory or by CPU.
        for order in self._repack_orders(homes):
            todo.sort(key=order)
            packing = self._pack(todo)
            if packing is not None:
                break
        else:
            # Last resort, for a handful of pods only: an exact search within the budget (which knows
            # nothing of the constraints between pods).
            packing = self._pack_exactly(todo) if len(todo) <= _EXACT_PODS and self._inter is None else None
            if packing is None:
                if self._inter is not None:
                    self._inter.undo(mark)
                return None
        where, (self._free_cpu, self._free_mem, self._free_pods) = packing
        self._start = {}
        moves = [Move(pod.key, node, None) for pod in pending]
        filling = sorted((pod for pod in optional if pod.key not in pending_keys), key=self._placement_order)
        placed_at: list[int | None] = [*where, *self._fill(filling)]
        for pod, i in zip([*todo, *filling], placed_at, strict=True):
            before = self._at.get(pod.key) or node
            after = None if i is None else self._order[i].name
            if before != after:
                moves.append(Move(pod.key, before, after))
        self._commit(node, moves, {pod.key: pod for pod in [*todo, *filling, *pending]})
        return tuple(moves)

    def _gives_up(self, pod: Pod) -> bool:
        return may_give_up(pod, priority_threshold=self._threshold, allow_pending_noncritical=self._allow_pending)

    def _fill(self, pods: Sequence[Pod]) -> list[int | None]:
        """First-fit of ``pods`` into the room left on the live receivers (taken from it); None: no room."""
        where: list[int | None] = []
        units = 0
        for pod in pods:
            _, eligible = self._eligible_for(pod)
            found = None
            for looked, i in enumerate(eligible, 1):
                if (
                    self._alive[i]
                    and self._free_cpu[i] >= pod.cpu_request_m
                    and self._free_mem[i] >= pod.memory_request_b
                    and self._free_pods[i] >= 1
                ):
                    self._free_cpu[i] -= pod.cpu_request_m
                    self._free_mem[i] -= pod.memory_request_b
                    self._free_pods[i] -= 1
                    found = i
                    units += looked
                    break
            else:
                units += len(eligible)
            where.append(found)
        self._budget.spend(units)
        return where

    def _pack(self, pods: Sequence[Pod]) -> tuple[list[int], tuple[list[int], list[int], list[int]]] | None:
        """First-fit of ``pods`` in this order onto the live receivers, from their original free room;
        ``None`` if one does not fit or the budget for optional work runs out on the way."""
        free_cpu, free_mem, free_pods = (list(column) for column in self._base)
        where: list[int] = []
        units = 0
        limit = self._budget.optional_left
        inter = self._inter
        mark = 0
        if inter is not None:
            mark = inter.mark()
            for pod in pods:
                inter.move(pod, None)
        try:
            for pod in pods:
                if units > limit:
                    self._budget.cut = True
                    self._unpacked(mark)
                    return None
                _, eligible = self._eligible_for(pod)
                for looked, i in enumerate(eligible, 1):
                    if (
                        self._alive[i]
                        and free_cpu[i] >= pod.cpu_request_m
                        and free_mem[i] >= pod.memory_request_b
                        and free_pods[i] >= 1
                        and (inter is None or inter.allows(pod, self._order[i]))
                    ):
                        free_cpu[i] -= pod.cpu_request_m
                        free_mem[i] -= pod.memory_request_b
                        free_pods[i] -= 1
                        if inter is not None:
                            inter.move(pod, self._order[i].name)
                        where.append(i)
                        units += looked
                        break
                else:
                    units += len(eligible)
                    self._unpacked(mark)
                    return None
            return where, (free_cpu, free_mem, free_pods)
        finally:
            self._budget.spend(units)

    def _unpacked(self, mark: int) -> None:
        if self._inter is not None:
            self._inter.undo(mark)

    def _pack_exactly(self, pods: Sequence[Pod]) -> tuple[list[int], tuple[list[int], list[int], list[int]]] | None:
        """An exact search (:func:`~piclusterd.core.exact_packing.pack_exactly`) for a home for each of
        ``pods`` on the live receivers, from their original free room; ``None`` if none or it gave up."""
        kinds: dict[_Signature, int] = {}
        homes: dict[int, list[int]] = {}
        demands: list[tuple[int, int, int]] = []
        for pod in pods:
            signature, eligible = self._eligible_for(pod)
            kind = kinds.setdefault(signature, len(kinds))
            if kind not in homes:
                homes[kind] = [i for i in eligible if self._alive[i]]
            demands.append((pod.cpu_request_m, pod.memory_request_b, kind))
        free_cpu, free_mem, free_pods = (list(column) for column in self._base)
        # The same question, whatever the receivers' order or names: the pods' sizes and constraints, and
        # each receiver's free room and the constraints it meets. Re-runs of a search ask it again.
        signatures = list(kinds)
        accepts: dict[int, set[_Signature]] = {}
        for kind, receivers in homes.items():
            for i in receivers:
                accepts.setdefault(i, set()).add(signatures[kind])
        question = (
            frozenset(Counter((cpu, mem, signatures[kind]) for cpu, mem, kind in demands).items()),
            frozenset(
                Counter(
                    (free_cpu[i], free_mem[i], free_pods[i], frozenset(taken)) for i, taken in accepts.items()
                ).items()
            ),
        )
        if question in self._budget.unpackable:
            return None
        where, proven = pack_exactly(demands, homes, (free_cpu, free_mem, free_pods), self._budget, _EXACT_UNITS)
        if where is None:
            if proven:
                self._budget.unpackable.add(question)
            return None
        return where, (free_cpu, free_mem, free_pods)

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

        def bound_first(pod: Pod) -> tuple[Any, ...]:
            # ``homes`` counts nodes by the pod's own constraints only: a pod the pods that stay repel (host
            # ports, anti-affinity, spread) has fewer, and a big pod placed first may take the one it has left.
            bound = pod.host_ports or pod.pod_anti_affinity or pod.pod_affinity or pod.topology_spread
            return (not bound, *scarce_big(pod))

        orders = (self._placement_order, scarce_big, scarce_memory, scarce_cpu)
        return orders if self._inter is None else (*orders, bound_first)

    def _dropped(self, pod: Pod, critical: bool) -> bool:
        """Not placed at all, room or not: every non-critical pod for the physical optimum; a stoppable one
        (:func:`can_stop`) when the plan stops non-critical work."""
        if critical:
            return False
        return self._drop_all or (self._stop and can_stop(pod, priority_threshold=self._threshold))

    def _placement_order(self, pod: Pod) -> tuple[bool, int, float, str]:
        """Critical first, then the higher priority (PriorityClass), then the bigger pod: a pod never takes
        the room a pod the scheduler would rank above it needs."""
        order = self._orders.get(pod.key)
        if order is None:
            size = max(pod.cpu_request_m / 1000, pod.memory_request_b / _GIB)
            order = (not pod.is_critical(self._threshold), -pod.priority, -size, pod.key)
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
        self._budget.spend(start - first)
        if start != first:
            self._start[signature] = start
            undo.starts.append((signature, first))
        cpu, mem = pod.cpu_request_m, pod.memory_request_b
        alive, free_cpu, free_mem, free_pods = self._alive, self._free_cpu, self._free_mem, self._free_pods
        inter = self._inter
        for j in range(start, len(eligible)):
            i = eligible[j]
            if (
                alive[i]
                and free_cpu[i] >= cpu
                and free_mem[i] >= mem
                and free_pods[i] >= 1
                and (inter is None or inter.allows(pod, self._order[i]))
            ):
                self._budget.spend(j - start + 1)
                return i
        self._budget.spend(len(eligible) - start + 1)
        return None

    def _take(self, target: int, pod: Pod, undo: _Undo) -> None:
        self._free_cpu[target] -= pod.cpu_request_m
        self._free_mem[target] -= pod.memory_request_b
        self._free_pods[target] -= 1
        undo.taken.append((target, pod.cpu_request_m, pod.memory_request_b))
        if self._inter is not None:
            self._inter.move(pod, self._order[target].name)

    def _rollback(self, undo: _Undo) -> None:
        if self._inter is not None:
            self._inter.undo(undo.mark)
        for target, cpu, mem in undo.taken:
            self._free_cpu[target] += cpu
            self._free_mem[target] += mem
            self._free_pods[target] += 1
        # Receivers skipped for good stay skipped unless this attempt changed them (a take given back, the
        # shed node alive again): restarting from the attempt's first receiver instead made every refused
        # node scan every full receiver again, O(nodes x receivers) on a full cluster.
        changed = {target for target, _, _ in undo.taken}
        if undo.node is not None:
            changed.add(undo.node)
        firsts: dict[_Signature, int] = {}
        for signature, first in undo.starts:
            firsts.setdefault(signature, first)
        for signature, first in firsts.items():
            eligible = self._eligible[signature]
            start = self._start[signature]
            for i in changed:
                position = bisect_left(eligible, i)
                if first <= position < start and eligible[position] == i:
                    start = position
            self._start[signature] = start

    def _why_not(self, node: str, pod: Pod, critical: bool) -> str:
        _, eligible = self._eligible_for(pod)
        matching = list(compress(eligible, map(self._alive.__getitem__, eligible)))
        what = "critical pod" if critical else "pod"
        if pod.node != node:
            what += f" {pod.key} (moved from {pod.node} to {node} by this plan)"
        else:
            what += f" {pod.key} on {node}"
        need = f"{pod.cpu_request_m}m CPU, {_mem(pod.memory_request_b)} memory"
        if not matching:
            return f"{what} ({need}) matches no node that stays on (nodeSelector, affinity, taints, cordons)"
        # The first of the roomiest (most CPU, then memory), in one pass at C speed: every refusal asks.
        _, _, first = max(
            zip(
                map(self._free_cpu.__getitem__, matching),
                map(self._free_mem.__getitem__, matching),
                (-i for i in matching),
                strict=True,
            )
        )
        best = -first
        between = ""
        if self._inter is not None and (
            pod.pod_affinity or pod.pod_anti_affinity or pod.topology_spread or pod.host_ports
        ):
            between = " (or its pod affinity, anti-affinity, topology spread or host ports rule out those with room)"
        return (
            f"{what} needs {need}; the roomiest of the {len(matching)} matching nodes "
            f"that stay on, {self._order[best].name}, has {self._free_cpu[best]}m and "
            f"{_mem(self._free_mem[best])} free{between}"
        )
