"""Which nodes to shed so the battery lasts: ``plan(view, power, battery, policy, now, hardware=...)``. Pure.

No side effects, no clock (``now`` is passed in), no Kubernetes: the result is a :class:`Plan` value that
an executor carries out (cordon, drain through the Eviction API, halt, cut supply) and that the journal and
Kubernetes Events report, refusals included.

**Decision** (ordered early returns in :func:`plan`): unknown power -> nothing; booted from a full shutdown
on a low battery (``kept_off``), on mains or within the grace period -> shed those nodes again, no other;
mains online -> nothing;
on battery for less than the grace period -> nothing; otherwise shed the *fewest* nodes that bring the
projected runtime up to ``target_runtime_s``; among plans with that many nodes, the one that follows the
preference order (agents before control plane, lower ``picluster.io/tier`` first, bigger saving first,
smaller nodes first, fewer pods to move first, then name); if no safe plan reaches the target (or the
state is ``critical``), shed as much as is safe, aiming for the longest projected runtime (escalation).
Actions come in preference order (agents first, control plane last), whatever order the search took.

**Giving up non-critical pods** (``policy.give_up_noncritical``): critical pods always need a home and are
placed first, higher priority before lower; with ``never`` every non-critical pod needs one too. With
``when-needed`` (the default) the plan first keeps every pod; only when that misses the target (or the
battery is critical) does it search again letting non-critical pods have just the room left, given up
(Pending) where there is none, and takes that plan if it reaches the target or lasts longer. ``always``
searches that way from the start. A pod is never given up where room is left for it: the scheduler would
bind it there anyway, unless the plan stops it: when even that misses the target, and whoever carries the
plan out can stop work (``policy.can_stop_work``: the leader's scaler and the simulator's world), a third
search stops the non-critical pods of the shed nodes whose controller can be scaled down or suspended
(:func:`~piclusterd.core.pod_packing.can_stop`), so they draw nothing though room is left, and takes that plan
if it reaches the target or lasts longer (:attr:`Plan.scale_down` names the controllers and the pods; never
under ``never``, never a critical pod). (The physical optimum gives up every non-critical pod of the shed
nodes: the bound, not a plan.) The plan names the pods it gives up (:attr:`Plan.given_up`).

**Per-node batteries** (``node_batteries``, step 4b, before the shared-battery steps): on a ``per-node`` or
``mixed`` cluster, a node whose own battery dies before the target has its work moved off, or a charged shed
node comes back to relieve it (rotation): :mod:`piclusterd.core.per_node_step`. On a mixed cluster with no
node on its own battery, the shared battery decides.

**Search** (steps 5 to 8, and the physical optimum): a greedy pass with an exact look-ahead on the counting
rules, then a bounded improvement pass, in :mod:`piclusterd.core.shed_search` (its algorithm and complexity).
Each of the two searches (the plan's, the physical optimum's) may do a fixed amount of work
(:mod:`piclusterd.core.work_budget`, counted, not timed); if that runs out, the plan is the best safe one found
within it and says so (``search_cut``, and its reason).
The policy and the plan's values are defined in :mod:`piclusterd.core.plan_values` and exported here.

**Projection.** Runtime = usable energy at the charge / battery draw of the modelled load
(:mod:`piclusterd.core.power_draw`). When the UPS measures its output load, every modelled load is scaled by
measured / modelled-now. An unknown charge is estimated from the time on battery assuming a full battery at
the start, or taken as ``unknown_charge_pct`` when that time is unknown too.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from piclusterd.core.cluster_view import ClusterView, ShedState
from piclusterd.core.durations import format_duration
from piclusterd.core.node_batteries import NodeBatteries, Topology, runtime_with_own_batteries_s
from piclusterd.core.per_node_step import per_node_step
from piclusterd.core.plan_values import (
    Decision,
    GiveUpNoncritical,
    Optimum,
    Placement,
    Plan,
    PlannerPolicy,
    PowerOnNode,
    RefusedNode,
    ScaleDown,
    ShedNode,
)
from piclusterd.core.pod_packing import can_stop
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation, cluster_load_w
from piclusterd.core.restore import KeptOff
from piclusterd.core.safety import check_power_known
from piclusterd.core.shed_search import PlanFacts, SearchOutcome, ShedSearch, search
from piclusterd.core.work_budget import PLAN_WORK_UNITS, WorkBudget

__all__ = [
    "Decision",
    "GiveUpNoncritical",
    "Optimum",
    "Placement",
    "Plan",
    "PlannerPolicy",
    "PowerOnNode",
    "RefusedNode",
    "ScaleDown",
    "ShedNode",
    "physical_optimum",
    "plan",
]

#: Added to a plan's reason when its search ran out of work units.
CUT_SHORT = "; the search was cut short by its work budget: the best safe plan found within it"


# --------------------------------------------------------------------------------------------------------
# Projection


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


def _optimum(
    facts: PlanFacts,
    battery: BatterySpec,
    charge: float,
    scale: float,
    work_units: int = PLAN_WORK_UNITS,
    node_batteries: NodeBatteries | None = None,
) -> Optimum:
    view = facts.view
    # Its own budget; every non-critical pod given up: the least load the safety rules allow.
    first = ShedSearch(
        facts, allow_pending_noncritical=True, give_up_all_noncritical=True, budget=WorkBudget(work_units)
    )
    outcome = search(facts, -math.inf, allow_pending_noncritical=True, first=first)
    off = set(outcome.shed) | set(outcome.in_progress) | {n.name for n in view.nodes if not n.ready}
    load = outcome.load_after_w * scale
    nodes_on = tuple(sorted(n.name for n in view.nodes if n.name not in off))
    runtime_s, own_s = battery.runtime_s(charge, load), 0.0
    if node_batteries is not None and node_batteries.topology is Topology.MIXED:
        # The nodes on carry on on their own batteries once the shared one gives out, as they would.
        draws = dict(outcome.node_draw_w)
        on_w = {name: draws[name] * scale for name in nodes_on if name in draws}
        shared_s, own_s = runtime_with_own_batteries_s(battery, charge, load, node_batteries, on_w)
        runtime_s = shared_s + own_s
    return Optimum(
        nodes_on=nodes_on,
        nodes_shed=tuple(sorted(set(outcome.shed) | set(outcome.in_progress))),
        runtime_s=runtime_s,
        load_w=load,
        pending_pods=tuple(p.pod for p in outcome.placements if p.to_node is None),
        search_cut=outcome.cut,
        own_runtime_s=own_s,
    )


def _keep_off(
    view: ClusterView,
    power: PowerSituation,
    battery: BatterySpec,
    policy: PlannerPolicy,
    now: float,
    hardware: PowerConfig,
    settling: Collection[str],
    work_units: int,
    kept_off: KeptOff,
    topology: str,
) -> Plan:
    """Step 2a: shed as many of ``kept_off.nodes`` as is safe, and no other node. The others are held out of
    the search as settling; their refusals are not reported (they were never candidates)."""
    others = {n.name for n in view.nodes if n.name not in kept_off.nodes}
    facts = PlanFacts(view, hardware, policy, set(settling) | others)
    allow_pending = policy.give_up_noncritical is GiveUpNoncritical.ALWAYS
    first = ShedSearch(facts, allow_pending_noncritical=allow_pending, budget=WorkBudget(work_units))
    outcome = search(facts, -math.inf, allow_pending_noncritical=allow_pending, first=first)
    scale, now_w = _scale(power, view, hardware)
    charge, estimated = _charge(power, battery, now_w, now, policy)
    load = outcome.load_after_w * scale
    return Plan(
        decision=Decision.KEEP_OFF_AFTER_FULL_SHUTDOWN,
        reason=kept_off.reason + (CUT_SHORT if outcome.cut else ""),
        target_runtime_s=policy.target_runtime_s,
        actions=tuple(
            ShedNode(node, f"kept off after a full shutdown (charge under restore_min_charge): {why}", moved)
            for node, why, moved in zip(outcome.shed, outcome.reasons, outcome.evicts, strict=True)
        ),
        refused=tuple(r for r in outcome.refused if r.node in kept_off.nodes),
        shed_in_progress=tuple(sorted(facts.in_progress)),
        placements=outcome.placements,
        projected_runtime_s=battery.runtime_s(charge, load),
        runtime_without_shedding_s=battery.runtime_s(charge, first.load_w * scale),
        projected_load_w=load,
        load_without_shedding_w=first.load_w * scale,
        charge_pct=charge,
        charge_estimated=estimated,
        topology=topology,
        search_cut=outcome.cut,
    )


# --------------------------------------------------------------------------------------------------------
# Public functions


def physical_optimum(
    view: ClusterView,
    battery: BatterySpec,
    policy: PlannerPolicy,
    *,
    hardware: PowerConfig,
    charge_pct: float = 100.0,
    node_batteries: NodeBatteries | None = None,
) -> Optimum:
    """Runtime with only the smallest safe node set on (scenarios.md's physical optimum), for reporting.

    Every safety rule holds (quorum, last control plane, ``min_nodes``, drain filters, PDBs) but only
    critical pods need a home: non-critical pods are given up. Found by the planner's own search with no
    runtime target, so it is the largest safe saving that search finds (exact on the counting rules, a
    first-fit witness for placement).

    ``node_batteries`` of a ``mixed`` cluster (solar-3) adds the energy in the nodes' own batteries: the
    set runs on the shared battery down to its low-voltage disconnect, then each of its nodes on its own
    battery at its charge there (:func:`~piclusterd.core.node_batteries.runtime_with_own_batteries_s`). The
    shed nodes' own batteries are not counted: the optimum keeps those nodes off.
    """
    return _optimum(PlanFacts(view, hardware, policy), battery, charge_pct, 1.0, node_batteries=node_batteries)


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
    work_units: int = PLAN_WORK_UNITS,
    kept_off: KeptOff | None = None,
) -> Plan:
    """Decide which nodes to shed now. Pure: same inputs, same plan; no clock, no I/O.

    ``node_batteries`` (:mod:`piclusterd.core.node_batteries`) adds each node's own battery: on a ``per-node``
    or ``mixed`` cluster a node whose own battery dies before the target has its work moved off first
    (step 4b); ``None`` or ``shared`` plans with the shared battery only.

    ``settling`` names nodes powered back on less than ``restore_after`` ago: they are kept on (refused with
    rule ``settling``), so a flapping mains cannot cycle them.

    ``kept_off`` (:func:`~piclusterd.core.restore.smallest_set_after_full_shutdown`): the cluster booted from a
    full shutdown on a low battery; on mains or within the grace period, those nodes are shed again (step 2a).

    ``work_units`` bounds each of the two searches (the plan's and the physical optimum's): past it, the
    plan is the best safe one found so far and says so (``search_cut``). Tests lower it; the default keeps
    a plan under a second on a 2026 x86_64 core at any shape up to 1,000 nodes and 30,000 pods.
    """
    target = policy.target_runtime_s
    # Every plan states the topology it was made for, holds included (plan.decided's TOPOLOGY).
    topology = Topology.SHARED.value if node_batteries is None else node_batteries.topology.value

    # 1. Unknown power: never act. A false "on battery" would power off healthy nodes for nothing.
    refusal = check_power_known(power.state)
    if refusal is not None:
        return Plan(Decision.HOLD_POWER_UNKNOWN, refusal.detail, target, topology=topology)

    # 2a. Booted from a full shutdown on a low battery: the nodes shed before it go off again, even on mains
    #     or within the grace period, each drained and checked by every safety rule (the smallest safe set).
    in_grace = power.state == "on_battery" and (
        power.on_battery_since is not None and now - power.on_battery_since < policy.on_battery_grace_s
    )
    if kept_off is not None and (power.state == "online" or in_grace):
        return _keep_off(view, power, battery, policy, now, hardware, settling, work_units, kept_off, topology)

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
    facts = PlanFacts(view, hardware, policy, settling)
    give_up = policy.give_up_noncritical
    allow_pending = give_up is GiveUpNoncritical.ALWAYS
    first = ShedSearch(facts, allow_pending_noncritical=allow_pending, budget=WorkBudget(work_units))
    scale, now_w = _scale(power, view, hardware)
    before_w = first.load_w * scale
    charge, estimated = _charge(power, battery, now_w, now, policy)
    without_s = battery.runtime_s(charge, before_w)
    optimum = _optimum(facts, battery, charge, scale, work_units)

    def giving_up(outcome: SearchOutcome, max_load_w: float) -> SearchOutcome:
        """``when-needed``: the keep-every-pod ``outcome`` missed. Search again giving up the non-critical pods
        no room is left for, taken if it reaches the target or lasts longer. Only those: a pod given up where
        room is left would not stay Pending, the scheduler binds it there (and the projection would be short
        of its load). It spends what is left of the plan's work budget: a plan still costs ``work_units``."""
        if give_up is not GiveUpNoncritical.WHEN_NEEDED or first.budget.refuse():
            return outcome
        again = ShedSearch(facts, allow_pending_noncritical=True, budget=first.budget)
        trial = search(facts, max_load_w, allow_pending_noncritical=True, first=again)
        if trial.target_met and not outcome.target_met:
            return trial
        return trial if trial.load_after_w < outcome.load_after_w - 1e-9 else outcome

    def stopping(outcome: SearchOutcome, max_load_w: float) -> SearchOutcome:
        """Still short of the target with every pod that has room kept: stop non-critical work. The pods of
        shed nodes whose controller can be scaled down (:func:`~piclusterd.core.pod_packing.can_stop`) are
        given up although room is left, so they draw nothing; taken only if that reaches the target or
        lasts longer. Not under ``never``, nor when the executor cannot stop work (``can_stop_work``);
        critical pods are never stopped."""
        if give_up is GiveUpNoncritical.NEVER or not policy.can_stop_work or first.budget.refuse():
            return outcome
        again = ShedSearch(facts, allow_pending_noncritical=True, stop_noncritical=True, budget=first.budget)
        trial = search(facts, max_load_w, allow_pending_noncritical=True, first=again)
        if trial.target_met and not outcome.target_met:
            return trial
        return trial if trial.load_after_w < outcome.load_after_w - 1e-9 else outcome

    def scale_downs(outcome: SearchOutcome) -> tuple[ScaleDown, ...]:
        """The controllers to scale down: the given-up pods that can be stopped, by controller."""
        pods = {p.key: p for p in view.pods}
        found: dict[tuple[str, str, str], list[str]] = {}
        for placement in outcome.placements:
            pod = pods.get(placement.pod)
            if placement.to_node is not None or pod is None or pod.owner_kind is None:
                continue
            if can_stop(pod, priority_threshold=policy.critical_priority_threshold):
                found.setdefault((pod.namespace, pod.owner_kind, pod.owner_name), []).append(pod.key)
        return tuple(ScaleDown(ns, kind, name, tuple(keys)) for (ns, kind, name), keys in sorted(found.items()))

    def finish(decision: Decision, reason: str, outcome: SearchOutcome | None) -> Plan:
        load = before_w if outcome is None else outcome.load_after_w * scale
        cut = outcome is not None and outcome.cut
        given_up = 0 if outcome is None else sum(p.to_node is None for p in outcome.placements)
        stops = () if outcome is None or not outcome.stops else scale_downs(outcome)
        if given_up:
            reason += f"; gives up {given_up} non-critical pod(s), Pending until their nodes are back"
        if stops:
            reason += f"; stops {sum(len(s.pods) for s in stops)} of them until the restore: " + ", ".join(
                f"suspends Job {s.namespace}/{s.owner_name}"
                if s.owner_kind == "Job"
                else f"scales {s.owner_kind} {s.namespace}/{s.owner_name} down by {len(s.pods)}"
                for s in stops
            )
        if cut:
            reason += CUT_SHORT
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
            shed_in_progress=tuple(sorted(facts.in_progress)),
            placements=() if outcome is None else outcome.placements,
            projected_runtime_s=battery.runtime_s(charge, load),
            runtime_without_shedding_s=without_s,
            projected_load_w=load,
            load_without_shedding_w=before_w,
            charge_pct=charge,
            charge_estimated=estimated,
            optimum=optimum,
            topology=topology,
            search_cut=cut,
            scale_down=stops,
        )

    # 4b. Per-node batteries: a node living on its own battery that dies before the target has its work
    #     moved off (drain, then shed) while a safe move exists, or a charged shed node comes back to
    #     relieve it (rotation). On a mixed cluster with no node short, the shared battery decides (5-8).
    if node_batteries is not None and node_batteries.topology is not Topology.SHARED:
        per_node = per_node_step(facts, node_batteries, policy, WorkBudget(work_units))
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
                )
                + (CUT_SHORT if per_node.cut else ""),
                target_runtime_s=target,
                actions=per_node.actions,
                refused=per_node.refused,
                shed_in_progress=tuple(sorted(facts.in_progress)),
                placements=per_node.placements,
                # No running node on a known own battery: no figure (never an infinite one).
                projected_runtime_s=None if math.isinf(per_node.runtime_after_s) else per_node.runtime_after_s,
                runtime_without_shedding_s=None if math.isinf(per_node.runtime_before_s) else per_node.runtime_before_s,
                power_on=per_node.power_on,
                topology=topology,
                search_cut=per_node.cut,
            )

    # 5. Critical battery: every minute counts, shed as much as is safe whatever the target.
    if power.state == "critical":
        outcome = search(facts, -math.inf, allow_pending_noncritical=allow_pending, first=first)
        outcome = stopping(giving_up(outcome, -math.inf), -math.inf)
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
    outcome = search(facts, max_load, allow_pending_noncritical=allow_pending, first=first)
    if not outcome.target_met:
        outcome = giving_up(outcome, max_load)
    if not outcome.target_met:
        outcome = stopping(outcome, max_load)
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
