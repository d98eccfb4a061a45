"""Which nodes to shed so the battery lasts: ``plan(view, power, battery, policy, now, hardware=...)``. Pure.

No side effects, no clock (``now`` is passed in), no Kubernetes: the result is a :class:`Plan` value that
an executor carries out (cordon, drain through the Eviction API, halt, cut supply) and that the journal and
Kubernetes Events report, refusals included.

**Decision** (ordered early returns in :func:`plan`): unknown power -> nothing; mains online -> nothing;
on battery for less than the grace period -> nothing; otherwise shed the *fewest* nodes that bring the
projected runtime up to ``target_runtime_s``; among plans with that many nodes, the one that follows the
preference order (agents before control plane, lower ``picluster.io/tier`` first, bigger saving first,
smaller nodes first, fewer pods to move first, then name); if no safe plan reaches the target (or the
state is ``critical``), shed as much as is safe, aiming for the longest projected runtime (escalation).
Actions come in preference order (agents first, control plane last), whatever order the search took.

**Per-node batteries** (``node_batteries``, step 4b, before the shared-battery steps): on a ``per-node`` or
``mixed`` cluster, a running node that lives on its own battery and would reach that battery's shutdown level
before the target has its work moved off (drain, then shed), soonest death first, while every safety rule
allows it; its pods go to the nodes whose own batteries last longest. A shed node keeps its charge: when a
low node cannot go (no room, ``min_nodes``) and a shed node kept ``ROTATION_MARGIN_PCT`` more charge, the
plan asks for that node back first (``Plan.power_on``) and sheds the low one in a later plan (rotation).
Unknown own-battery data is never acted on and is reported. On a mixed cluster with no node on its own
battery, the shared battery decides.

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
(:class:`~piclusterd.core.safety.PodPacker`: first fit, the nodes least likely to be shed first, with a full
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
and the physical optimum), plus the improvement re-runs on small clusters. 1,000 nodes and 30,000 pods plan
in about half a second on a laptop core (``benchmarks/bench_planner.py``).
The per-node step (below) uses one packer for the plan, re-packing from scratch only for a short node refused
for lack of room (``benchmarks/bench_per_node.py``: 300 nodes, 100 of them short, in about 0.2 s).

**Projection.** Runtime = usable energy at the charge / battery draw of the modelled load
(:mod:`piclusterd.core.power_draw`). When the UPS measures its output load, every modelled load is scaled by
measured / modelled-now. An unknown charge is estimated from the time on battery assuming a full battery at
the start, or taken as ``unknown_charge_pct`` when that time is unknown too.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from piclusterd.core.cluster_view import ClusterView, Node, Pod, ShedState, node_tier
from piclusterd.core.durations import format_duration
from piclusterd.core.errors import ConfigError
from piclusterd.core.node_batteries import NodeBatteries, Topology
from piclusterd.core.power_draw import (
    BatterySpec,
    NodePowerProfile,
    PowerConfig,
    PowerSituation,
    cluster_load_w,
    node_load_m,
)
from piclusterd.core.safety import (
    Headcount,
    Move,
    PodPacker,
    Refusal,
    SafetyRule,
    can_run_on,
    check_control_plane_remains,
    check_emptydir,
    check_etcd_quorum,
    check_min_nodes,
    check_not_settling,
    check_pdbs,
    check_power_known,
    check_unreplicated,
    headcount,
    is_up,
)

__all__ = [
    "Decision",
    "Optimum",
    "Placement",
    "Plan",
    "PlannerPolicy",
    "PowerOnNode",
    "RefusedNode",
    "ShedNode",
    "physical_optimum",
    "plan",
]

_EPS_W = 1e-9
#: A shed node comes back to relieve a running node only with this many charge points more: a rotation
#: costs a boot and a drain, so two nodes at about the same charge must not swap back and forth.
ROTATION_MARGIN_PCT = 20.0


class Decision(enum.StrEnum):
    """Which branch of :func:`plan` produced the plan."""

    HOLD_POWER_UNKNOWN = "hold_power_unknown"
    HOLD_ONLINE = "hold_online"
    HOLD_GRACE = "hold_grace"
    TARGET_MET = "target_met"
    SHED_TO_TARGET = "shed_to_target"
    ESCALATE = "escalate"
    PER_NODE = "per_node"  # a node's own battery runs out before the target: move its work off (rotate)
    PER_NODE_OK = "per_node_ok"  # per-node batteries, every one lasts the target


@dataclass(frozen=True, slots=True)
class PlannerPolicy:
    """How the planner trades service for runtime. Validated once, here.

    ``tiers`` maps node names to tiers and wins over the ``picluster.io/tier`` label; nodes with neither
    get ``default_tier``. ``allow_pending_noncritical`` lets non-critical pods be given up (left Pending)
    instead of requiring a home for them. ``unknown_charge_pct`` is assumed when the charge is unknown and
    so is the start of the outage.
    """

    target_runtime_s: float = 4 * 3600.0
    on_battery_grace_s: float = 60.0
    min_nodes: int = 1
    critical_priority_threshold: int = 1_000_000
    tiers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    default_tier: int = 0
    allow_unreplicated: bool = False
    evict_emptydir: bool = True
    allow_pending_noncritical: bool = False
    unknown_charge_pct: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))
        if not self.target_runtime_s > 0:
            raise ConfigError("policy", "target_runtime_s", f"{self.target_runtime_s!r} is not positive")
        if not self.on_battery_grace_s >= 0:
            raise ConfigError("policy", "on_battery_grace_s", f"{self.on_battery_grace_s!r} is negative")
        if self.min_nodes < 1:
            raise ConfigError("policy", "min_nodes", f"{self.min_nodes!r} is below 1")
        if not 0 <= self.unknown_charge_pct <= 100:
            raise ConfigError("policy", "unknown_charge_pct", f"{self.unknown_charge_pct!r} not in 0..100")

    def tier(self, node: Node) -> int:
        """The node's tier: configuration, then label, then ``default_tier``."""
        return node_tier(node, self.tiers, self.default_tier)


@dataclass(frozen=True, slots=True)
class ShedNode:
    """Drain ``node`` (cordon, evict ``evicts``), then halt it and cut its supply if possible."""

    node: str
    reason: str
    evicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PowerOnNode:
    """Rotation: bring the shed ``node`` back (its own battery kept its charge) to take over from
    ``relieves``, whose own battery runs low; ``relieves`` is shed by a later plan once ``node`` is Ready.
    The simulator carries it out at once; the leader powers the node on through its power-on backend, paced
    by :func:`~piclusterd.core.restore.decide_rotation` (``cluster.restoring.Restorer.rotate``)."""

    node: str
    relieves: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefusedNode:
    """A node the plan would have shed but a safety rule refused."""

    node: str
    rule: SafetyRule
    detail: str


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the plan found room for an evicted pod (``to_node`` ``None``: given up, left Pending)."""

    pod: str
    from_node: str
    to_node: str | None


@dataclass(frozen=True, slots=True)
class Optimum:
    """The physical optimum: as much shed as the safety rules allow when only critical pods need a home."""

    nodes_on: tuple[str, ...]
    nodes_shed: tuple[str, ...]
    runtime_s: float
    load_w: float
    pending_pods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer. ``actions`` are in execution order; runtimes are from ``now``.

    ``runtime_without_shedding_s`` is what the battery gives if no action here is taken (nodes already
    being shed count as shed); ``projected_runtime_s`` is with every action done.
    """

    decision: Decision
    reason: str
    target_runtime_s: float
    actions: tuple[ShedNode, ...] = ()
    refused: tuple[RefusedNode, ...] = ()
    shed_in_progress: tuple[str, ...] = ()
    placements: tuple[Placement, ...] = ()
    projected_runtime_s: float | None = None
    runtime_without_shedding_s: float | None = None
    projected_load_w: float | None = None
    load_without_shedding_w: float | None = None
    charge_pct: float | None = None
    charge_estimated: bool = False
    optimum: Optimum | None = None
    power_on: tuple[PowerOnNode, ...] = ()
    topology: str = Topology.SHARED.value

    @property
    def nodes_to_shed(self) -> tuple[str, ...]:
        """The nodes the actions shed, in order."""
        return tuple(action.node for action in self.actions)


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
class _Outcome:
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


class _Static:
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
        self.blocked: dict[str, Refusal] = {}
        for node in candidates:
            refusal = (
                check_not_settling(node, settling)
                or check_unreplicated(view, node, policy.allow_unreplicated)
                or check_emptydir(view, node, policy.evict_emptydir)
                or check_pdbs(view, node)
            )
            if refusal is not None:
                self.blocked[node.name] = refusal
        self.ranked = sorted(candidates, key=self._preference)
        self.rank = {node.name: i for i, node in enumerate(self.ranked)}

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


class _Search:
    """One run of the greedy search. Local, mutable state; nothing escapes but the :class:`_Outcome`.

    ``keep`` names candidates this run must not shed (the improvement pass tries keeping a node that
    other nodes' pods need).
    """

    def __init__(self, static: _Static, *, allow_pending_noncritical: bool, keep: frozenset[str] = frozenset()):
        self.static = static
        self.view = view = static.view
        self.policy = static.policy
        self.profiles = static.profiles
        self.saving = static.saving
        self.rank = static.rank
        self.blocked = static.blocked
        self.in_progress = static.in_progress
        self.keep = keep
        self.order = [n for n in static.ranked if n.name not in static.blocked and n.name not in keep]
        keepers = [n for n in static.ranked if n.name in static.blocked or n.name in keep]
        keepers.sort(key=lambda n: (n.name not in keep, n.name))
        receivers = [n.name for n in keepers if not n.unschedulable] + [
            n.name for n in reversed(self.order) if not n.unschedulable
        ]
        self.packer = PodPacker(
            view,
            receivers,
            priority_threshold=self.policy.critical_priority_threshold,
            allow_pending_noncritical=allow_pending_noncritical,
        )
        self.placements: dict[str, Placement] = {}
        self.gone = set(static.leaving)  # nodes shed or being shed: they draw their shed watts
        for name in static.leaving:
            moves = self.packer.shed(name, force=True)
            assert not isinstance(moves, Refusal)  # force never refuses
            self._record(moves)
        self.count = headcount(view)
        self.draw: dict[str, float] = {n.name: self._node_draw(n) for n in view.nodes}
        self.load_w = math.fsum(self.draw.values()) + static.fixed_w

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

    def run(self, max_load_w: float) -> _Outcome:
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
            if not rescan or not skipped or self.load_w - max_load_w <= _EPS_W:
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
        return _Outcome(
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
        )

    def _reason(self, node: Node, evicted: int) -> str:
        role = "control-plane node" if node.is_control_plane else "node"
        return (
            f"{role} {node.name} (tier {self.policy.tier(node)}): shedding it saves about "
            f"{self.saving[node.name]:.2f} W and evicts {evicted} pod{'s' if evicted != 1 else ''}"
        )


# --------------------------------------------------------------------------------------------------------
# Public functions


def _charge(
    power: PowerSituation, battery: BatterySpec, load_w: float, now: float, policy: PlannerPolicy
) -> tuple[float, bool]:
    """The charge to plan with and whether it is an estimate (missing data is replaced, never ignored).

    ``load_w`` is the load now; the estimate assumes it has been drawn since the outage began.
    """
    if power.charge_pct is not None:
        return min(100.0, max(0.0, power.charge_pct)), False
    if power.on_battery_since is None:
        return policy.unknown_charge_pct, True
    used_wh = battery.battery_draw_w(load_w) * max(0.0, now - power.on_battery_since) / 3600.0
    full_wh = battery.usable_energy_wh(100.0)
    return max(0.0, 100.0 * (1.0 - used_wh / full_wh)), True


def _scale(power: PowerSituation, view: ClusterView, hardware: PowerConfig) -> tuple[float, float]:
    """(measured / modelled load now, the load now): nodes still draining count as running. The scale is 1
    when nothing is measured."""
    running = [n.name for n in view.nodes if n.shed_state is not ShedState.POWERED_OFF]
    modelled = cluster_load_w(view, hardware, running)
    measured = power.measured_load_w
    if measured is None or measured <= 0 or modelled <= 0:
        return 1.0, modelled
    return measured / modelled, measured


def _better(challenger: _Outcome, incumbent: _Outcome) -> bool:
    """Reaching the target beats missing it; then fewer nodes; when missing, a lower load."""
    if challenger.target_met != incumbent.target_met:
        return challenger.target_met
    if challenger.target_met:
        return len(challenger.shed) < len(incumbent.shed)
    return challenger.load_after_w < incumbent.load_after_w - 1e-9


def _search(
    static: _Static, max_load_w: float, *, allow_pending_noncritical: bool, first: _Search | None = None
) -> _Outcome:
    """The greedy search, then a bounded improvement pass.

    A node refused because its pods had no home may have lost that home to a node shed before it. The
    improvement pass re-runs the search keeping such an earlier-shed node (one that could host a pod of
    the refused node), breadth first, so that keeping two or three nodes is tried as well, and returns
    the best result (:func:`_better`). Re-runs cost a whole search each, so their number shrinks with the
    cluster's size: 24 up to about 300 nodes + pods, 2 for 3,000, none from 8,000.
    """
    view = static.view
    first = first or _Search(static, allow_pending_noncritical=allow_pending_noncritical)
    base = best = first.run(max_load_w)
    budget = min(24, 8_000 // (len(view.nodes) + len(view.pods) + 1))
    queue: list[tuple[frozenset[str], _Outcome]] = [(frozenset(), base)]
    tried: set[frozenset[str]] = {frozenset()}
    while queue and budget > 0:
        keep, outcome = queue.pop(0)
        for candidate in _homes_lost(view, outcome, budget):
            trial_keep = keep | {candidate}
            if trial_keep in tried or budget <= 0:
                continue
            tried.add(trial_keep)
            budget -= 1
            trial = _Search(static, allow_pending_noncritical=allow_pending_noncritical, keep=trial_keep)
            result = trial.run(max_load_w)
            queue.append((trial_keep, result))
            if _better(result, best):
                best = result
    return best


def _homes_lost(view: ClusterView, outcome: _Outcome, limit: int) -> list[str]:
    """Up to ``limit`` shed nodes whose keeping might give a home to the pods of a node refused for lack
    of room: the pods' own node (kept, they would not move), a node that accepts them, or a node whose
    evicted pods took the room on a node that accepts them."""
    shed = {name: view.node(name) for name in outcome.shed}
    found: list[str] = []

    def add(name: str) -> None:
        if name in shed and name not in found and len(found) < limit:
            found.append(name)

    for _, pods in outcome.stuck:
        homes = {n.name for n in view.nodes if any(can_run_on(p, n) for p in pods)}
        for pod in pods:
            add(pod.node or "")
        for name in outcome.shed:
            if name in homes:
                add(name)
        for placement in outcome.placements:
            if placement.to_node in homes:
                add(placement.from_node)
    return found


def _optimum(
    static: _Static,
    battery: BatterySpec,
    charge: float,
    scale: float,
) -> Optimum:
    view = static.view
    outcome = _search(static, -math.inf, allow_pending_noncritical=True)
    off = set(outcome.shed) | set(outcome.in_progress) | {n.name for n in view.nodes if not n.ready}
    load = outcome.load_after_w * scale
    return Optimum(
        nodes_on=tuple(sorted(n.name for n in view.nodes if n.name not in off)),
        nodes_shed=tuple(sorted(set(outcome.shed) | set(outcome.in_progress))),
        runtime_s=battery.runtime_s(charge, load),
        load_w=load,
        pending_pods=tuple(p.pod for p in outcome.placements if p.to_node is None),
    )


@dataclass(frozen=True, slots=True)
class _PerNode:
    actions: tuple[ShedNode, ...]
    power_on: tuple[PowerOnNode, ...]
    refused: tuple[RefusedNode, ...]
    placements: tuple[Placement, ...]
    dying: tuple[str, ...]  # nodes whose own battery dies before the target, soonest first
    runtime_before_s: float  # the shortest own runtime of a running node now
    runtime_after_s: float  # ... once the actions are done


def _relieves(rule: SafetyRule, returning: Node) -> bool:
    """Whether bringing ``returning`` back can lift a refusal for ``rule``: it adds room and a head to the
    count, and an etcd vote or a control plane only if it is one."""
    if rule in (SafetyRule.PODS_DO_NOT_FIT, SafetyRule.MIN_NODES):
        return True
    if rule is SafetyRule.ETCD_QUORUM:
        return returning.is_etcd_member
    if rule is SafetyRule.LAST_CONTROL_PLANE:
        return returning.is_control_plane
    return False


def _per_node(static: _Static, batteries: NodeBatteries, policy: PlannerPolicy) -> _PerNode:
    """Move work off every running node whose own battery dies before the target, soonest first, while a
    safe move exists (every safety rule, as for shared shedding); a node refused gets a rotation instead
    if a shed node kept more charge (``ROTATION_MARGIN_PCT``). Pods go to the nodes whose own battery lasts
    longest."""
    view, spec, target = static.view, batteries.spec, policy.target_runtime_s
    running = [n for n in view.nodes if is_up(n) and n.shed_state is ShedState.NONE]

    def own_runtime_s(node: Node, load_m: int) -> float:
        battery = batteries.of(node.name)
        if battery.charge_pct is None or not battery.on_battery:
            return math.inf  # not living on its own battery (or unknown: never acted on)
        allocatable = node.allocatable_cpu_m
        utilisation = min(1.0, load_m / allocatable) if allocatable > 0 else 1.0
        return spec.runtime_s(battery.charge_pct, static.profiles[node.name].running_w(utilisation))

    now_s = {n.name: own_runtime_s(n, node_load_m(view, n.name)) for n in running}
    dying = sorted((n for n in running if now_s[n.name] < target), key=lambda n: (now_s[n.name], n.name))
    refused: list[RefusedNode] = []
    # On a mixed cluster a node's own battery matters once nodes live on it (some are short): then an unknown
    # one is as much a blind spot as on a per-node cluster, and is said.
    if batteries.topology is Topology.PER_NODE or dying:
        for node in running:
            battery = batteries.of(node.name)
            if not battery.known:
                why = f"{node.name}: own battery unknown ({battery.why}), not acted on"
                refused.append(RefusedNode(node.name, SafetyRule.POWER_UNKNOWN, why))
    dying_names = {n.name for n in dying}
    # Receivers: the nodes whose own battery lasts longest first (a node fed by the shared battery lasts as
    # long as it does); then nodes whose own battery is unknown; dying nodes only if nothing else fits.
    receivers = sorted(
        (n for n in running if not n.unschedulable),
        key=lambda n: (n.name in dying_names, not batteries.of(n.name).known, -min(now_s[n.name], 1e12), n.name),
    )

    def packer_for(names: Sequence[str]) -> PodPacker:
        """A packer onto ``names``, the pods of nodes already being shed placed first (forced, as the safety
        rules place them: they are evicted already)."""
        made = PodPacker(
            view,
            names,
            priority_threshold=policy.critical_priority_threshold,
            allow_pending_noncritical=policy.allow_pending_noncritical,
        )
        for name in static.leaving:
            made.shed(name, force=True)
        return made

    def packer_moves(node: str) -> tuple[PodPacker, list[Move]] | Refusal:
        result = packer.shed(node)
        return result if isinstance(result, Refusal) else (packer, list(result))

    def shed_all(node: str, shed: Sequence[str]) -> tuple[PodPacker, list[Move]] | Refusal:
        """Pack the pods of the nodes already chosen and then of ``node`` on the nodes that stay on (neither
        receives anything), after those of nodes being shed (already evicted: forced, as the safety rules
        place them). One packing for the whole plan, so its placements are consistent; a node chosen
        before whose pods no longer fit refuses ``node``."""
        packer = packer_for([n.name for n in receivers if n.name != node and n.name not in shed])
        moves: list[Move] = []
        for name in (*shed, node):
            result = packer.shed(name)
            if isinstance(result, Refusal):
                return result
            moves.extend(result)
        return packer, moves

    # One packer for the plan so far (receivers: every running node but those chosen); refusals leave it as
    # it was. Pods of nodes being shed may have landed on a short node and block it; then the exact check
    # (shed_all: those pods placed as the safety rules place them) decides, and its packing is kept.
    packer = packer_for([n.name for n in receivers])
    count = headcount(view)
    actions: list[ShedNode] = []
    power_on: list[PowerOnNode] = []
    placements: dict[str, Placement] = {}
    shed: list[str] = []
    spare = sorted(
        (
            (batteries.of(n.name).charge_pct or 0.0, n.name)
            for n in view.nodes
            if n.shed_state is ShedState.POWERED_OFF and batteries.of(n.name).known
        ),
        reverse=True,
    )
    for node in dying:
        charge = batteries.of(node.name).charge_pct or 0.0
        runtime = format_duration(now_s[node.name])
        blocked = static.blocked.get(node.name)
        refusal = (
            blocked
            or check_etcd_quorum(node, count)
            or check_control_plane_remains(node, count)
            or check_min_nodes(node, count, policy.min_nodes)
        )
        packed: tuple[PodPacker, list[Move]] | Refusal = refusal if refusal is not None else packer_moves(node.name)
        if isinstance(packed, Refusal) and packed.rule is SafetyRule.PODS_DO_NOT_FIT:
            exact = shed_all(node.name, shed)
            if not isinstance(exact, Refusal):
                placements.clear()
                packed = exact
        if isinstance(packed, Refusal):
            refusal_now = packed
            # Rotation, only when it makes a safe move exist: a charged shed node that lifts this very
            # refusal comes back first; this node goes in a later plan, once that one is Ready. Bringing one
            # back for a node that can go anyway, or that no returning node frees (its PDB, the last etcd
            # member), would only churn: the returning node, short of the target too, would be shed again.
            relief = next(
                (
                    (c, name)
                    for c, name in spare
                    if c >= charge + ROTATION_MARGIN_PCT and _relieves(refusal_now.rule, view.node(name))
                ),
                None,
            )
            detail = refusal_now.detail
            if relief is not None:
                spare.remove(relief)
                power_on.append(
                    PowerOnNode(
                        relief[1],
                        node.name,
                        f"rotation: {relief[1]} kept {relief[0]:.0f} % while shed; it comes back to relieve "
                        f"{node.name} ({charge:.0f} %, its own battery lasts {runtime})",
                    )
                )
                kept = f"{relief[0]:.0f} % kept while shed"
                detail += f"; rotation: power {relief[1]} on ({kept}), then {node.name} can go"
            refused.append(RefusedNode(node.name, refusal_now.rule, detail))
            continue
        packer, moves = packed
        for move in moves:
            origin = placements.get(move.pod)
            placements[move.pod] = Placement(
                move.pod, move.from_node if origin is None else origin.from_node, move.to_node
            )
        count = count.with_shed(node)
        shed.append(node.name)
        evicts = tuple(p.key for p in view.pods_on(node.name) if p.must_move)
        actions.append(
            ShedNode(
                node.name,
                f"node {node.name}: its own battery ({charge:.0f} %) lasts {runtime}, short of the target "
                f"{format_duration(target)}; its {len(evicts)} pod(s) move to nodes whose batteries last longer",
                evicts,
            )
        )
    after = [own_runtime_s(n, packer.load_m(n.name)) for n in running if n.name not in shed]
    return _PerNode(
        actions=tuple(actions),
        power_on=tuple(power_on),
        refused=tuple(refused),
        placements=tuple(placements[k] for k in sorted(placements)),
        dying=tuple(n.name for n in dying),
        runtime_before_s=min(now_s.values(), default=math.inf),
        runtime_after_s=min(after, default=math.inf),
    )


def physical_optimum(
    view: ClusterView,
    battery: BatterySpec,
    policy: PlannerPolicy,
    *,
    hardware: PowerConfig,
    charge_pct: float = 100.0,
) -> Optimum:
    """Runtime with only the smallest safe node set on (scenarios.md's physical optimum), for reporting.

    Every safety rule holds (quorum, last control plane, ``min_nodes``, drain filters, PDBs) but only
    critical pods need a home: non-critical pods are given up. Found by the planner's own search with no
    runtime target, so it is the largest safe saving that search finds (exact on the counting rules, a
    first-fit witness for placement).
    """
    return _optimum(_Static(view, hardware, policy), battery, charge_pct, 1.0)


def plan(
    view: ClusterView,
    power: PowerSituation,
    battery: BatterySpec,
    policy: PlannerPolicy,
    now: float,
    *,
    hardware: PowerConfig,
    node_batteries: NodeBatteries | None = None,
    settling: Collection[str] = (),
) -> Plan:
    """Decide which nodes to shed now. Pure: same inputs, same plan; no clock, no I/O.

    ``node_batteries`` (:mod:`piclusterd.core.node_batteries`) adds each node's own battery: on a ``per-node``
    or ``mixed`` cluster a node whose own battery dies before the target has its work moved off first
    (step 4b); ``None`` or ``shared`` plans with the shared battery only.

    ``settling`` names nodes powered back on less than ``restore_after`` ago: they are kept on (refused with
    rule ``settling``), so a flapping mains cannot cycle them.
    """
    target = policy.target_runtime_s
    # Every plan states the topology it was made for, holds included (plan.decided's TOPOLOGY).
    topology = Topology.SHARED.value if node_batteries is None else node_batteries.topology.value

    # 1. Unknown power: never act. A false "on battery" would power off healthy nodes for nothing.
    refusal = check_power_known(power.state)
    if refusal is not None:
        return Plan(Decision.HOLD_POWER_UNKNOWN, refusal.detail, target, topology=topology)

    # 2. Mains is present: nothing to shed. Bringing shed nodes back is the restorer's business.
    if power.state == "online":
        return Plan(Decision.HOLD_ONLINE, "mains is present", target, topology=topology)

    # 3. A short blip must not cost a drain: wait out the grace period (low/critical battery skip it).
    #    An unknown start of the outage counts as past the grace period (missing data fails safe).
    if power.state == "on_battery" and power.on_battery_since is not None:
        elapsed = now - power.on_battery_since
        if elapsed < policy.on_battery_grace_s:
            return Plan(
                Decision.HOLD_GRACE,
                f"on battery for {format_duration(max(0.0, elapsed))}, "
                f"grace period is {format_duration(policy.on_battery_grace_s)}",
                target,
                topology=topology,
            )

    # 4. Account the cluster as it stands: nodes being shed count as shed, their pods already moved.
    static = _Static(view, hardware, policy, settling)
    allow_pending = policy.allow_pending_noncritical
    first = _Search(static, allow_pending_noncritical=allow_pending)
    scale, now_w = _scale(power, view, hardware)
    before_w = first.load_w * scale
    charge, estimated = _charge(power, battery, now_w, now, policy)
    without_s = battery.runtime_s(charge, before_w)
    optimum = _optimum(static, battery, charge, scale)

    def finish(decision: Decision, reason: str, outcome: _Outcome | None) -> Plan:
        load = before_w if outcome is None else outcome.load_after_w * scale
        return Plan(
            decision=decision,
            reason=reason,
            target_runtime_s=target,
            actions=()
            if outcome is None
            else tuple(
                ShedNode(node, why, moved)
                for node, why, moved in zip(outcome.shed, outcome.reasons, outcome.evicts, strict=True)
            ),
            refused=() if outcome is None else outcome.refused,
            shed_in_progress=tuple(sorted(static.in_progress)),
            placements=() if outcome is None else outcome.placements,
            projected_runtime_s=battery.runtime_s(charge, load),
            runtime_without_shedding_s=without_s,
            projected_load_w=load,
            load_without_shedding_w=before_w,
            charge_pct=charge,
            charge_estimated=estimated,
            optimum=optimum,
            topology=topology,
        )

    # 4b. Per-node batteries: a node living on its own battery that dies before the target has its work
    #     moved off (drain, then shed) while a safe move exists, or a charged shed node comes back to
    #     relieve it (rotation). On a mixed cluster with no node short, the shared battery decides (5-8).
    if node_batteries is not None and node_batteries.topology is not Topology.SHARED:
        per_node = _per_node(static, node_batteries, policy)
        stated = node_batteries.stated or f"topology {node_batteries.topology.value}"
        if per_node.dying or node_batteries.topology is Topology.PER_NODE:
            short = ", ".join(per_node.dying)
            return Plan(
                decision=Decision.PER_NODE if per_node.dying else Decision.PER_NODE_OK,
                reason=(
                    f"{stated}: own battery short of the target {format_duration(target)} on {short}; "
                    f"shedding {len(per_node.actions)}, bringing back {len(per_node.power_on)}"
                    if per_node.dying
                    else f"{stated}: every running node's own battery lasts the target {format_duration(target)}"
                ),
                target_runtime_s=target,
                actions=per_node.actions,
                refused=per_node.refused,
                shed_in_progress=tuple(sorted(static.in_progress)),
                placements=per_node.placements,
                # No running node on a known own battery: no figure (never an infinite one).
                projected_runtime_s=None if math.isinf(per_node.runtime_after_s) else per_node.runtime_after_s,
                runtime_without_shedding_s=None if math.isinf(per_node.runtime_before_s) else per_node.runtime_before_s,
                power_on=per_node.power_on,
                topology=topology,
            )

    # 5. Critical battery: every minute counts, shed as much as is safe whatever the target.
    if power.state == "critical":
        outcome = _search(static, -math.inf, allow_pending_noncritical=allow_pending, first=first)
        return finish(Decision.ESCALATE, "battery critical: shedding as much as is safe", outcome)

    # 6. The battery already lasts the target without shedding anything more.
    if without_s >= target:
        return finish(
            Decision.TARGET_MET,
            f"projected runtime {format_duration(without_s)} meets the target {format_duration(target)}",
            None,
        )

    # 7. Shed the fewest nodes that reach the target, in preference order.
    max_load = battery.max_load_w(charge, target) / scale
    outcome = _search(static, max_load, allow_pending_noncritical=allow_pending, first=first)
    projected = battery.runtime_s(charge, outcome.load_after_w * scale)
    if outcome.target_met:
        return finish(
            Decision.SHED_TO_TARGET,
            f"runtime {format_duration(without_s)} is short of the target {format_duration(target)}; "
            f"shedding {len(outcome.shed)} node(s) gives {format_duration(projected)}",
            outcome,
        )

    # 8. The target is out of reach: the search already shed as much as is safe (longest runtime).
    return finish(
        Decision.ESCALATE,
        f"the target {format_duration(target)} cannot be reached safely; shedding "
        f"{len(outcome.shed)} node(s) gives {format_duration(projected)} "
        f"(without shedding {format_duration(without_s)})",
        outcome,
    )
