"""Step 4b of the plan: nodes on their own battery. Work moves off those that die before the target. Pure.

**Per-node batteries** (``node_batteries``, step 4b, before the shared-battery steps): on a ``per-node`` or
``mixed`` cluster, a running node that lives on its own battery and would reach that battery's shutdown level
before the target has its work moved off (drain, then shed), soonest death first, while every safety rule
allows it; its pods go to the nodes whose own batteries last longest. A shed node keeps its charge: when a
low node cannot go (no room, ``min_nodes``) and a shed node kept ``ROTATION_MARGIN_PCT`` more charge, the
plan asks for that node back first (``Plan.power_on``) and sheds the low one in a later plan (rotation).
Unknown own-battery data is never acted on and is reported. On a mixed cluster with no node on its own
battery, the shared battery decides.

:func:`per_node_step` answers it for :func:`piclusterd.core.planner.plan`, which turns its
:class:`PerNodeOutcome` into the plan. It uses one packer for the plan, re-packing from scratch only for a
short node refused for lack of room (``benchmarks/bench_per_node.py``: 300 nodes, 100 of them short, in about
0.2 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from piclusterd.core.cluster_view import Node, ShedState
from piclusterd.core.durations import format_duration
from piclusterd.core.node_batteries import NodeBatteries, Topology
from piclusterd.core.plan_values import Placement, PlannerPolicy, PowerOnNode, RefusedNode, ShedNode
from piclusterd.core.pod_packing import Move, PodPacker
from piclusterd.core.power_draw import node_load_m
from piclusterd.core.refusal import Refusal, SafetyRule
from piclusterd.core.safety import check_control_plane_remains, check_etcd_quorum, check_min_nodes, headcount, is_up
from piclusterd.core.shed_search import PlanFacts
from piclusterd.core.work_budget import WorkBudget

__all__ = ["ROTATION_MARGIN_PCT", "PerNodeOutcome", "per_node_step"]

#: A shed node comes back to relieve a running node only with this many charge points more: a rotation
#: costs a boot and a drain, so two nodes at about the same charge must not swap back and forth.
ROTATION_MARGIN_PCT = 20.0


@dataclass(frozen=True, slots=True)
class PerNodeOutcome:
    """The per-node step's answer, which :func:`~piclusterd.core.planner.plan` turns into its plan."""

    actions: tuple[ShedNode, ...]
    power_on: tuple[PowerOnNode, ...]
    refused: tuple[RefusedNode, ...]
    placements: tuple[Placement, ...]
    dying: tuple[str, ...]  # nodes whose own battery dies before the target, soonest first
    runtime_before_s: float  # the shortest own runtime of a running node now
    runtime_after_s: float  # ... once the actions are done
    cut: bool = False  # the work budget ran out: the nodes not reached yet stay on (safe), said in the plan


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


def per_node_step(
    facts: PlanFacts, batteries: NodeBatteries, policy: PlannerPolicy, budget: WorkBudget | None = None
) -> PerNodeOutcome:
    """Move work off every running node whose own battery dies before the target, soonest first, while a
    safe move exists (every safety rule, as for shared shedding); a node refused gets a rotation instead
    if a shed node kept more charge (``ROTATION_MARGIN_PCT``). Pods go to the nodes whose own battery lasts
    longest.

    Every packer shares ``budget`` (the plan's work units): the re-pack from scratch is optional work, and
    once the whole budget is spent the nodes not reached yet stay on, which is safe (``cut`` says so)."""
    work = WorkBudget() if budget is None else budget
    view, spec, target = facts.view, batteries.spec, policy.target_runtime_s
    running = [n for n in view.nodes if is_up(n) and n.shed_state is ShedState.NONE]

    def own_runtime_s(node: Node, load_m: int) -> float:
        battery = batteries.of(node.name)
        if battery.charge_pct is None or not battery.on_battery:
            return math.inf  # not living on its own battery (or unknown: never acted on)
        allocatable = node.allocatable_cpu_m
        utilisation = min(1.0, load_m / allocatable) if allocatable > 0 else 1.0
        return spec.runtime_s(battery.charge_pct, facts.profiles[node.name].running_w(utilisation))

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
            allow_pending_noncritical=policy.may_give_up_noncritical,  # a dying node's pods go anyway
            budget=work,
        )
        for name in facts.leaving:
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
        if work.stop():
            break  # out of work units: the nodes not reached stay on, and the plan says its search was cut
        charge = batteries.of(node.name).charge_pct or 0.0
        runtime = format_duration(now_s[node.name])
        blocked = facts.blocked.get(node.name)
        refusal = (
            blocked
            or check_etcd_quorum(node, count)
            or check_control_plane_remains(node, count)
            or check_min_nodes(node, count, policy.min_nodes)
        )
        packed: tuple[PodPacker, list[Move]] | Refusal = refusal if refusal is not None else packer_moves(node.name)
        if isinstance(packed, Refusal) and packed.rule is SafetyRule.PODS_DO_NOT_FIT and not work.refuse():
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
    return PerNodeOutcome(
        actions=tuple(actions),
        power_on=tuple(power_on),
        refused=tuple(refused),
        placements=tuple(placements[k] for k in sorted(placements)),
        dying=tuple(n.name for n in dying),
        runtime_before_s=min(now_s.values(), default=math.inf),
        runtime_after_s=min(after, default=math.inf),
        cut=work.cut,
    )
