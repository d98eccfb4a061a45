"""The shared battery's search: which nodes to shed so the modelled load drops to a bound. Pure.

:func:`search` answers steps 5 to 8 of :func:`piclusterd.core.planner.plan` (the fewest nodes reaching the
target, or as much as is safe) and its physical optimum; :class:`PlanFacts` is what every search of one plan
shares, and the per-node step (:mod:`piclusterd.core.per_node_step`) reads it too.

**Algorithm.** A greedy pass over the candidate nodes with an exact look-ahead on the counting rules,
then a bounded improvement pass. Each node's *saving* is its draw with only the pods that stay (DaemonSet)
minus its shed draw (the evicted pods' CPU load moves with them, so it nets out). The counting rules (etcd
quorum, last control plane, ``min_nodes``) are nested caps on how many nodes of each class may go, which
makes "the fewest nodes reaching a saving" and "the largest saving" matroid problems that a greedy by
saving solves exactly; the look-ahead uses that to take a node, in preference order, only if an optimal
completion still exists with it. When the target is out of reach from the start, the pass goes by saving
instead (the bigger saving wins when two nodes' pods compete for the same room) and takes every node that
costs nothing of the best achievable saving. A node it takes is checked by the safety predicates
(:mod:`piclusterd.core.safety`) and its pods are placed on the nodes that stay on
(:class:`~piclusterd.core.pod_packing.PodPacker`: first fit, the nodes least likely to be shed first, with a full
re-pack before giving up); a refusal is recorded and the pass goes on, revisiting skipped nodes if
a refusal made them necessary. After every accepted node the exact projected draw (pods' load moved to
their new nodes, utilisation capped at 1) decides whether the target is met. The improvement pass then
re-runs the search keeping one or more (breadth first) of the nodes whose shedding took the room a refused
node's pods needed, and keeps the best result; its number of re-runs shrinks with the cluster's size (24
for small clusters, none from 8,000 nodes + pods). On random clusters of up to 6 nodes the result matches
an exhaustive search (``tests/planner/test_planner_properties.py``).

**Complexity.** One pass is O(N log N + N * d + P log P + placement scans) for N nodes, P pods and d
distinct savings (a handful: one per board model and halt setting): each look-ahead walks the d saving
groups, each placed pod scans the receivers that match its constraints, skipping for good those that can
no longer take any pod; re-packs are bounded in number and size. The plan runs the search twice (the plan
and the physical optimum), plus the improvement re-runs on small clusters. On top of that, each search
spends at most a fixed number of work units (:mod:`piclusterd.core.work_budget`, shared by its runs and
their packers): past it, the search keeps what it has, safe but maybe not best, and says ``cut``. Any
benchmark cluster up to 1,000 nodes and 30,000 pods, of any pod shape, plans in under a second of one
2026 x86_64 core (``benchmarks/bench_planner.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from piclusterd.core.cluster_view import ClusterView, Node, Pod, ShedState
from piclusterd.core.placement_constraints import may_give_up
from piclusterd.core.plan_values import Placement, PlannerPolicy, RefusedNode
from piclusterd.core.pod_packing import Move, PodPacker, can_run_on
from piclusterd.core.power_draw import NodePowerProfile, PowerConfig
from piclusterd.core.refusal import Refusal, SafetyRule
from piclusterd.core.safety import (
    Headcount,
    check_control_plane_remains,
    check_emptydir,
    check_etcd_quorum,
    check_min_nodes,
    check_not_settling,
    check_pdbs,
    check_pinned_volumes,
    check_unreplicated,
    headcount,
    is_up,
)
from piclusterd.core.work_budget import WorkBudget

__all__ = ["PlanFacts", "SearchOutcome", "ShedSearch", "search"]

_EPS_W = 1e-9


# --------------------------------------------------------------------------------------------------------
# Look-ahead on the counting rules

_AGENT, _CONTROL_PLANE, _ETCD = 0, 1, 2
_Caps = tuple[int, int, int]  # nodes that may still go: in total, control plane, etcd


def _node_class(node: Node) -> int:
    if node.is_etcd_member:
        return _ETCD
    return _CONTROL_PLANE if node.is_control_plane else _AGENT


def _caps(count: Headcount, min_nodes: int) -> _Caps:
    return (
        count.up - min_nodes,
        count.control_plane_up - 1,
        count.etcd_up - count.etcd_quorum if count.etcd_total else count.up,
    )


def _without(caps: _Caps, cls: int) -> _Caps:
    total, control_plane, etcd = caps
    return (total - 1, control_plane - (cls >= _CONTROL_PLANE), etcd - (cls == _ETCD))


class _Pool:
    """Undecided candidates grouped by (saving, class), to answer counting questions in O(distinct savings).

    The caps are nested (etcd within control plane within all), a laminar matroid: taking the biggest
    savings first, least-constrained class first among equals, is optimal both for "fewest nodes reaching a
    saving" and for "largest total saving".
    """

    def __init__(self, items: Sequence[tuple[float, int]]) -> None:
        self._counts: dict[tuple[float, int], int] = {}
        for key in items:
            self._counts[key] = self._counts.get(key, 0) + 1
        self._savings = sorted({saving for saving, _ in items if saving > _EPS_W}, reverse=True)

    def add(self, key: tuple[float, int]) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, key: tuple[float, int]) -> None:
        self._counts[key] -= 1

    def _walk(self, caps: _Caps) -> list[tuple[float, int]]:
        """(saving, how many) taken greedily within ``caps``, biggest saving first."""
        total, control_plane, etcd = caps
        taken = []
        for saving in self._savings:
            for cls in (_AGENT, _CONTROL_PLANE, _ETCD):
                n = self._counts.get((saving, cls), 0)
                limit = total
                if cls >= _CONTROL_PLANE:
                    limit = min(limit, control_plane)
                if cls == _ETCD:
                    limit = min(limit, etcd)
                k = min(n, limit)
                if k <= 0:
                    continue
                taken.append((saving, k))
                total -= k
                control_plane -= k if cls >= _CONTROL_PLANE else 0
                etcd -= k if cls == _ETCD else 0
        return taken

    def fewest_reaching(self, need: float, caps: _Caps) -> int | None:
        """Fewest nodes whose savings add up to ``need`` watts within ``caps``; ``None`` if impossible."""
        if need <= _EPS_W:
            return 0
        count, saved = 0, 0.0
        for saving, k in self._walk(caps):
            missing = math.ceil((need - saved) / saving - 1e-9)
            if missing <= k:
                return count + max(1, missing)
            count += k
            saved += saving * k
        return None

    def best_total(self, caps: _Caps) -> float:
        """The largest saving any set of nodes within ``caps`` can make."""
        return math.fsum(saving * k for saving, k in self._walk(caps))


# --------------------------------------------------------------------------------------------------------
# The search


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """One search's answer: the nodes to shed (execution order) with reasons and evictions, the refusals,
    the placements and the modelled load before and after."""

    shed: tuple[str, ...]
    reasons: tuple[str, ...]
    evicts: tuple[tuple[str, ...], ...]
    refused: tuple[RefusedNode, ...]
    placements: tuple[Placement, ...]
    in_progress: tuple[str, ...]
    load_before_w: float
    load_after_w: float
    target_met: bool
    stuck: tuple[tuple[str, tuple[Pod, ...]], ...] = ()  # nodes refused for lack of room, their pods
    cut: bool = False  # the work budget ran out: the best safe plan found within it, maybe not the best
    stops: bool = False  # found stopping non-critical work (given-up pods had room: their controllers scale)
    #: Each node's modelled draw (W at its input) once the shed is done: running with the pods it keeps and
    #: receives, or its shed draw. The physical optimum runs its nodes on their own batteries with it.
    node_draw_w: tuple[tuple[str, float], ...] = ()


class PlanFacts:
    """What every search of one plan shares: power profiles, savings, static refusals, preference order."""

    def __init__(
        self, view: ClusterView, hardware: PowerConfig, policy: PlannerPolicy, settling: Collection[str] = ()
    ) -> None:
        self.view = view
        self.policy = policy
        self.profiles: dict[str, NodePowerProfile] = {n.name: hardware.profile(n) for n in view.nodes}
        self.fixed_w = hardware.fixed_w
        self.in_progress = sorted(n.name for n in view.nodes if n.shed_state is not ShedState.NONE)
        self.leaving = sorted(n.name for n in view.nodes if n.shed_state.is_leaving)
        candidates = [n for n in view.nodes if is_up(n)]
        self.saving = {n.name: self._saving(n) for n in candidates}
        self.movable = {n.name: sum(p.must_move for p in view.pods_on(n.name)) for n in candidates}
        self._static: dict[str, Refusal] = {}
        for node in candidates:
            refusal = (
                check_not_settling(node, settling)
                or check_unreplicated(view, node, policy.allow_unreplicated)
                or check_emptydir(view, node, policy.evict_emptydir)
                or check_pdbs(view, node)
            )
            if refusal is not None:
                self._static[node.name] = refusal
        self._candidates = candidates
        self._blocked: dict[bool, dict[str, Refusal]] = {}
        #: Nodes no search may shed, with the refusal: the static rules, under the policy's give-up rule.
        self.blocked = self.blocked_for(policy.may_give_up_noncritical)
        self.ranked = sorted(candidates, key=self._preference)
        self.rank = {node.name: i for i, node in enumerate(self.ranked)}

    def blocked_for(self, allow_pending_noncritical: bool) -> dict[str, Refusal]:
        """The static refusals when non-critical pods may (not) be given up: the drain rules, then the
        ``pinned_volume`` rule, whose answer depends on which pods may be left Pending."""
        found = self._blocked.get(allow_pending_noncritical)
        if found is None:
            threshold = self.policy.critical_priority_threshold
            found = dict(self._static)
            for node in self._candidates:
                if node.name in found:
                    continue
                refusal = check_pinned_volumes(
                    self.view,
                    node,
                    lambda pod: may_give_up(
                        pod, priority_threshold=threshold, allow_pending_noncritical=allow_pending_noncritical
                    ),
                )
                if refusal is not None:
                    found[node.name] = refusal
            self._blocked[allow_pending_noncritical] = found
        return found

    def _saving(self, node: Node) -> float:
        """Watts saved by shedding ``node``: its draw with only the pods that stay (DaemonSet, mirror,
        terminating) minus its shed draw. The pods that move take their load with them, which nets out
        when the receivers are the same model; the exact draw is recomputed after each step anyway."""
        profile = self.profiles[node.name]
        pods = self.view.pods_on(node.name)
        staying_m = sum(pod.cpu_load_m for pod in pods if pod.holds_resources and not pod.must_move)
        utilisation = staying_m / node.allocatable_cpu_m if node.allocatable_cpu_m > 0 else 1.0
        return round(profile.running_w(utilisation) - profile.shed_w, 6)

    def _preference(self, node: Node) -> tuple[bool, int, float, int, int, int, str]:
        return (
            node.is_control_plane,
            self.policy.tier(node),
            -self.saving[node.name],
            node.allocatable_memory_b,  # small nodes first: big ones are the better homes for pods
            node.allocatable_cpu_m,
            self.movable[node.name],
            node.name,
        )


class ShedSearch:
    """One run of the greedy search. Local, mutable state; nothing escapes but the :class:`SearchOutcome`.

    ``keep`` names candidates this run must not shed (the improvement pass tries keeping a node that
    other nodes' pods need). ``budget`` is the work this run may do, shared with the other runs of the same
    search; when it runs out, the run stops taking nodes and keeps those it took (each checked by every
    safety rule, so the result is safe).
    """

    def __init__(
        self,
        facts: PlanFacts,
        *,
        allow_pending_noncritical: bool,
        give_up_all_noncritical: bool = False,
        stop_noncritical: bool = False,
        keep: frozenset[str] = frozenset(),
        budget: WorkBudget | None = None,
    ):
        self.facts = facts
        self.budget = WorkBudget() if budget is None else budget
        self.view = view = facts.view
        self.policy = facts.policy
        self.profiles = facts.profiles
        self.saving = facts.saving
        self.rank = facts.rank
        self.blocked = blocked = facts.blocked_for(allow_pending_noncritical)
        self.in_progress = facts.in_progress
        self.keep = keep
        self.allow_pending = allow_pending_noncritical
        self.give_up_all = give_up_all_noncritical
        self.stop = stop_noncritical
        self.order = [n for n in facts.ranked if n.name not in blocked and n.name not in keep]
        keepers = [n for n in facts.ranked if n.name in blocked or n.name in keep]
        keepers.sort(key=lambda n: (n.name not in keep, n.name))
        receivers = [n.name for n in keepers if not n.unschedulable] + [
            n.name for n in reversed(self.order) if not n.unschedulable
        ]
        self.packer = PodPacker(
            view,
            receivers,
            priority_threshold=self.policy.critical_priority_threshold,
            allow_pending_noncritical=allow_pending_noncritical,
            give_up_all_noncritical=give_up_all_noncritical,
            stop_noncritical=stop_noncritical,
            budget=self.budget,
        )
        self.placements: dict[str, Placement] = {}
        self.gone = set(facts.leaving)  # nodes shed or being shed: they draw their shed watts
        for name in facts.leaving:
            moves = self.packer.shed(name, force=True)
            assert not isinstance(moves, Refusal)  # force never refuses
            self._record(moves)
        self.count = headcount(view)
        self.draw: dict[str, float] = {n.name: self._node_draw(n) for n in view.nodes}
        self.load_w = math.fsum(self.draw.values()) + facts.fixed_w

    def _node_draw(self, node: Node) -> float:
        profile = self.profiles[node.name]
        if node.name in self.gone:
            return profile.shed_w
        if node.allocatable_cpu_m <= 0:
            return profile.running_w(1.0)
        return profile.running_w(self.packer.load_m(node.name) / node.allocatable_cpu_m)

    def _record(self, moves: Sequence[Move]) -> None:
        for move in moves:
            origin = self.placements.get(move.pod)
            from_node = move.from_node if origin is None else origin.from_node
            self.placements[move.pod] = Placement(move.pod, from_node, move.to_node)

    def _shed_now(self, node: Node, moves: Sequence[Move]) -> None:
        self._record(moves)
        self.count = self.count.with_shed(node)
        self.gone.add(node.name)
        touched = {node.name} | {m.from_node for m in moves} | {m.to_node for m in moves if m.to_node}
        for name in sorted(touched):
            old = self.draw[name]
            new = self._node_draw(self.view.node(name))
            self.draw[name] = new
            self.load_w += new - old

    def run(self, max_load_w: float) -> SearchOutcome:
        """Shed until the modelled load is at most ``max_load_w`` (``-inf``: as much as is safe)."""
        load_before = self.load_w
        shed: list[str] = []
        refused: list[RefusedNode] = []
        stuck: list[tuple[str, tuple[Pod, ...]]] = []
        min_nodes = self.policy.min_nodes
        remaining = list(self.order)
        need = self.load_w - max_load_w
        everyone = _Pool([(self.saving[n.name], _node_class(n)) for n in remaining])
        if math.isinf(need) or everyone.fewest_reaching(need, _caps(self.count, min_nodes)) is None:
            # Out of reach from the start: every node that saves power goes, so the order only decides
            # which node loses when two cannot both go (their pods need the same room): the bigger saving
            # wins, preferences break ties.
            remaining.sort(key=lambda n: (-self.saving[n.name], self.rank[n.name]))
        while remaining:
            pool = _Pool([(self.saving[n.name], _node_class(n)) for n in remaining])
            skipped: list[Node] = []
            rescan = False
            for node in remaining:
                if self.budget.stop():
                    break  # out of work: keep the nodes taken so far (each one checked, so safe)
                key = (self.saving[node.name], _node_class(node))
                pool.remove(key)
                need = self.load_w - max_load_w
                if need <= _EPS_W:
                    break
                caps = _caps(self.count, min_nodes)
                rest_caps = _without(caps, key[1])
                pool.add(key)
                fewest = None if math.isinf(need) else pool.fewest_reaching(need, caps)
                best = pool.best_total(caps) if fewest is None else 0.0
                pool.remove(key)
                if fewest is not None:
                    # Target reachable: take the node only if an optimal (fewest-nodes) plan includes it.
                    with_it = pool.fewest_reaching(need - key[0], rest_caps)
                    wanted = with_it is not None and 1 + with_it <= fewest
                else:
                    # Out of reach: take it if it saves power and costs nothing of the best total saving.
                    wanted = key[0] > _EPS_W and key[0] + pool.best_total(rest_caps) >= best - 1e-9
                if not wanted:
                    skipped.append(node)
                    continue
                refusal = (
                    check_etcd_quorum(node, self.count)
                    or check_control_plane_remains(node, self.count)
                    or check_min_nodes(node, self.count, min_nodes)
                )
                moves = self.packer.shed(node.name) if refusal is None else refusal
                if isinstance(moves, Refusal):
                    refused.append(RefusedNode(node.name, moves.rule, moves.detail))
                    if moves.rule is SafetyRule.PODS_DO_NOT_FIT:
                        stuck.append((node.name, self.packer.pods_to_move(node.name)))
                    rescan = rescan or fewest is not None
                    continue
                self._shed_now(node, moves)
                shed.append(node.name)
            if not rescan or not skipped or self.load_w - max_load_w <= _EPS_W or self.budget.exhausted:
                break
            remaining = skipped
        met = self.load_w - max_load_w <= _EPS_W
        last_rank = max((self.rank[name] for name in shed), default=-1)
        for name, refusal in sorted(self.blocked.items(), key=lambda item: self.rank[item[0]]):
            # Report a blocked node only if the plan would have shed it: it comes before a node the plan
            # sheds, or the target was missed.
            if not met or self.rank[name] < last_rank:
                refused.append(RefusedNode(name, refusal.rule, refusal.detail))
        # Execute in preference order (agents first, control plane last) whatever order the search took:
        # every prefix of a safe set is safe (its pods fit where the whole set's do).
        shed.sort(key=self.rank.__getitem__)
        evicts = [tuple(p.key for p in self.view.pods_on(name) if p.must_move) for name in shed]
        return SearchOutcome(
            shed=tuple(shed),
            reasons=tuple(self._reason(self.view.node(name), len(e)) for name, e in zip(shed, evicts, strict=True)),
            evicts=tuple(evicts),
            refused=tuple(refused),
            placements=tuple(self.placements[k] for k in sorted(self.placements)),
            in_progress=tuple(sorted(self.in_progress)),
            load_before_w=load_before,
            load_after_w=self.load_w,
            target_met=met,
            stuck=tuple(stuck),
            cut=self.budget.cut,
            stops=self.stop,
            node_draw_w=tuple(sorted(self.draw.items())),
        )

    def _reason(self, node: Node, evicted: int) -> str:
        role = "control-plane node" if node.is_control_plane else "node"
        return (
            f"{role} {node.name} (tier {self.policy.tier(node)}): shedding it saves about "
            f"{self.saving[node.name]:.2f} W and evicts {evicted} pod{'s' if evicted != 1 else ''}"
        )


# --------------------------------------------------------------------------------------------------------
# The improvement pass


def _better(challenger: SearchOutcome, incumbent: SearchOutcome) -> bool:
    """Reaching the target beats missing it; then fewer nodes; when missing, a lower load."""
    if challenger.target_met != incumbent.target_met:
        return challenger.target_met
    if challenger.target_met:
        return len(challenger.shed) < len(incumbent.shed)
    return challenger.load_after_w < incumbent.load_after_w - 1e-9


def search(
    facts: PlanFacts, max_load_w: float, *, allow_pending_noncritical: bool, first: ShedSearch | None = None
) -> SearchOutcome:
    """The greedy search, then a bounded improvement pass.

    A node refused because its pods had no home may have lost that home to a node shed before it. The
    improvement pass re-runs the search keeping such an earlier-shed node (one that could host a pod of
    the refused node), breadth first, so that keeping two or three nodes is tried as well, and returns
    the best result (:func:`_better`). Re-runs cost a whole search each, so their number shrinks with the
    cluster's size: 24 up to about 300 nodes + pods, 2 for 3,000, none from 8,000.

    Every run shares ``first``'s work budget (a fresh :class:`~piclusterd.core.work_budget.WorkBudget`
    without ``first``): once it is spent, no re-run starts and the best result so far is the answer, with
    ``cut`` set.
    """
    view = facts.view
    first = first or ShedSearch(facts, allow_pending_noncritical=allow_pending_noncritical)
    work = first.budget
    base = best = first.run(max_load_w)
    budget = min(24, 8_000 // (len(view.nodes) + len(view.pods) + 1))
    queue: list[tuple[frozenset[str], SearchOutcome]] = [(frozenset(), base)]
    tried: set[frozenset[str]] = {frozenset()}
    homes_of: dict[object, frozenset[str]] = {}
    while queue and budget > 0:
        keep, outcome = queue.pop(0)
        for candidate in _homes_lost(view, outcome, budget, work, homes_of):
            trial_keep = keep | {candidate}
            if trial_keep in tried or budget <= 0 or work.refuse():
                continue
            tried.add(trial_keep)
            budget -= 1
            trial = ShedSearch(
                facts,
                allow_pending_noncritical=first.allow_pending,
                give_up_all_noncritical=first.give_up_all,
                stop_noncritical=first.stop,
                keep=trial_keep,
                budget=work,
            )
            result = trial.run(max_load_w)
            queue.append((trial_keep, result))
            if _better(result, best):
                best = result
    return dataclasses.replace(best, cut=work.cut) if work.cut != best.cut else best


def _homes_lost(
    view: ClusterView, outcome: SearchOutcome, limit: int, work: WorkBudget, homes_of: dict[object, frozenset[str]]
) -> list[str]:
    """Up to ``limit`` shed nodes whose keeping might give a home to the pods of a node refused for lack
    of room: the pods' own node (kept, they would not move), a node that accepts them, or a node whose
    evicted pods took the room on a node that accepts them. ``homes_of`` remembers the possible homes of
    each kind of pod (same constraints, same homes) across the search's re-runs."""
    shed = {name: view.node(name) for name in outcome.shed}
    found: list[str] = []

    def add(name: str) -> None:
        if name in shed and name not in found and len(found) < limit:
            found.append(name)

    for _, pods in outcome.stuck:
        if len(found) >= limit:
            break
        homes: set[str] = set()
        for pod in pods:
            kind = (tuple(sorted(pod.node_selector.items())), pod.tolerations, pod.required_node_affinity)
            found_homes = homes_of.get(kind)
            if found_homes is None:
                work.spend(len(view.nodes))
                found_homes = homes_of[kind] = frozenset(n.name for n in view.nodes if can_run_on(pod, n))
            homes |= found_homes
        work.spend(len(outcome.shed) + len(outcome.placements))
        for pod in pods:
            add(pod.node or "")
        for name in outcome.shed:
            if name in homes:
                add(name)
        for placement in outcome.placements:
            if placement.to_node in homes:
                add(placement.from_node)
    return found
