"""The what-if plan as an operator reads it (``piclusterctl plan``): a change request, its assumptions stated. Pure.

:func:`question_snapshot` says what is wrong with a snapshot before anything is planned on it;
:func:`full_shutdown_view` is the answer when the charge is already at the shutdown level; :func:`plan_view`
turns a :class:`~piclusterd.core.plan_values.Plan` into one JSON-able dict (``--json`` prints it as is) and
:func:`render_text` prints that same dict for a person, so the text never says anything the JSON lacks.

For each node to shed: the pods that move, each critical or not and why, and where the planner placed it;
the pods given up; the DaemonSet pods that stop with the node and the host-port endpoints lost with them. For
each node kept on: the rule, in words. Then what the figures assumed: the charge and where it came from, the
battery, each node's board and the source of its figures, and what POWER_OFF_ON_HALT=1 would save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from piclusterd.core.cluster_view import ClusterView, Node, Pod, PodPhase
from piclusterd.core.durations import format_duration
from piclusterd.core.plan_values import Decision, Plan, PlannerPolicy
from piclusterd.core.power_draw import BatterySpec, NodeHardware, PowerConfig
from piclusterd.core.refusal import SafetyRule

__all__ = [
    "DECISION_MEANINGS",
    "FULL_SHUTDOWN",
    "RULE_MEANINGS",
    "PlanInputs",
    "SnapshotQuestions",
    "full_shutdown_view",
    "plan_view",
    "question_snapshot",
    "render_text",
]

#: The decision ``piclusterctl plan`` reports when the charge is at or below the shutdown level: not a
#: planner branch, the daemons' own orderly full shutdown (docs/full-shutdown.md).
FULL_SHUTDOWN = "full_shutdown"

#: One line per decision, as docs/plan.md explains them.
DECISION_MEANINGS: Mapping[str, str] = {
    Decision.HOLD_POWER_UNKNOWN: "power state unknown (start-up, a silent UPS): nothing is done until it is known",
    Decision.HOLD_ONLINE: "mains is present: nothing is shed (shed nodes come back through the restorer)",
    Decision.HOLD_GRACE: "on battery for less than the grace period: waiting, a short blip must not cost a drain",
    Decision.TARGET_MET: "the battery already lasts the target runtime: nothing more is shed",
    Decision.SHED_TO_TARGET: "the battery falls short of the target: shed the fewest nodes that reach it",
    Decision.ESCALATE: (
        "the target cannot be reached safely (or the battery is critical): shed as much as the safety rules "
        "allow, for the longest runtime"
    ),
    Decision.PER_NODE: (
        "a node's own battery runs out before the target: its work moves off, or a charged node relieves it"
    ),
    Decision.PER_NODE_OK: "per-node batteries: every running node's own battery lasts the target",
    Decision.KEEP_OFF_AFTER_FULL_SHUTDOWN: (
        "booted after a full shutdown with the charge under restore_min_charge: the nodes shed before it are "
        "shed again (drained, every safety rule) until it is reached"
    ),
    FULL_SHUTDOWN: (
        "the charge is at or below the shutdown level: every node shuts down in the orderly full-shutdown "
        "order (docs/full-shutdown.md); nothing is shed first"
    ),
}

#: Each safety rule in words, for the nodes a plan keeps on.
RULE_MEANINGS: Mapping[str, str] = {
    SafetyRule.POWER_UNKNOWN: "never act on unknown power",
    SafetyRule.SHED_IN_PROGRESS: "a node already being shed is not shed again",
    SafetyRule.NODE_NOT_READY: "only a Ready node can be drained and powered off reliably",
    SafetyRule.ETCD_QUORUM: "never break etcd quorum: floor(n/2)+1 of the n members stay up",
    SafetyRule.LAST_CONTROL_PLANE: "the last control-plane node (k3s server) that is up stays on: without it, no API",
    SafetyRule.MIN_NODES: "at least [cluster] min_nodes nodes stay up",
    SafetyRule.UNREPLICATED_POD: "a pod no controller recreates would be lost ([cluster] allow_unreplicated is off)",
    SafetyRule.EMPTYDIR_DATA: "pods would lose their emptyDir data ([cluster] delete_emptydir_data is off)",
    SafetyRule.PDB_BLOCKS: "a PodDisruptionBudget allows no disruption now",
    SafetyRule.PINNED_VOLUME: "a pod's volume can only be mounted on this node (local-path): it cannot move",
    SafetyRule.PODS_DO_NOT_FIT: "the pods it would evict have no room (or no node their scheduling rules allow) "
    "on the nodes that stay on",
    SafetyRule.SETTLING: "powered back on less than restore_after ago: kept on until it settles (anti-flap)",
}

_PHASES = frozenset(phase.value for phase in PodPhase)
_NAMES_SHOWN = 5


# --------------------------------------------------------------------------------------------------------
# Questioning the snapshot


@dataclass(frozen=True, slots=True)
class SnapshotQuestions:
    """What is wrong with a snapshot: ``fatal`` means no plan is possible; ``warnings`` are planned around."""

    fatal: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _raw_pods(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    default_kind = "Pod" if obj.get("kind") == "PodList" else None
    items = obj.get("items")
    return [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping) and item.get("kind", default_kind) == "Pod"
    ]


def question_snapshot(obj: object, view: ClusterView) -> SnapshotQuestions:
    """One line per problem a parsed snapshot still has: no nodes (fatal), pods bound to nodes that are not
    in it, pods in a phase Kubernetes does not define (Pending, Running, Succeeded, Failed, Unknown)."""
    fatal: list[str] = []
    warnings: list[str] = []
    if not view.nodes:
        fatal.append(
            f"the snapshot has no Node objects ({len(view.pods)} pods): a plan needs the nodes; "
            "take it with: kubectl get nodes,pods,pdb,pv,pvc -A -o json"
        )
    missing: dict[str, list[str]] = {}
    for pod in view.pods:
        if pod.node is not None and not view.has_node(pod.node):
            missing.setdefault(pod.node, []).append(pod.key)
    if view.nodes:
        for node, pods in sorted(missing.items()):
            warnings.append(
                f"{len(pods)} pod(s) bound to node {node!r}, which is not in the snapshot, are left out of the plan "
                f"({_names(pods)}): take nodes and pods in one kubectl get"
            )
    for item in _raw_pods(obj) if isinstance(obj, Mapping) else ():
        status = item.get("status")
        phase = status.get("phase") if isinstance(status, Mapping) else None
        if phase is not None and phase not in _PHASES:
            metadata = item.get("metadata")
            meta = metadata if isinstance(metadata, Mapping) else {}
            key = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
            warnings.append(
                f"pod {key}: phase {str(phase)[:40]!r} is not a Kubernetes pod phase (Pending, Running, Succeeded, "
                "Failed, Unknown): counted as Unknown, a pod that still needs a home"
            )
    if view.volumes_unchecked:
        claims = list(view.volumes_unchecked)
        warnings.append(
            f"volumes were not checked: {len(claims)} claim(s) ({_names(claims)}) have no PersistentVolumeClaim "
            "or bound PersistentVolume in the snapshot, so their pods count as pinned to their node; take it with: "
            "kubectl get nodes,pods,pdb,pv,pvc -A -o json"
        )
    return SnapshotQuestions(tuple(fatal), tuple(warnings))


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_NAMES_SHOWN])
    more = len(items) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


# --------------------------------------------------------------------------------------------------------
# The view


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the plan was asked, for the assumptions: the charge given (``None``: not given), whether mains
    had failed, the grace period assumed past, the battery and where its capacity came from."""

    charge_given: float | None
    on_battery: bool
    battery: BatterySpec
    capacity_source: str
    hardware: PowerConfig
    policy: PlannerPolicy


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


def _critical(pod: Pod, threshold: int) -> tuple[bool, str]:
    """Whether the planner counts ``pod`` critical, and why, in the words of the rule it applies."""
    reasons = []
    if pod.labels.get("picluster.io/critical") == "true":
        reasons.append("label picluster.io/critical=true")
    klass = f" (PriorityClass {pod.priority_class_name})" if pod.priority_class_name else ""
    if pod.priority >= threshold:
        reasons.append(f"priority {pod.priority}{klass} >= {threshold}")
    if reasons:
        return True, "; ".join(reasons)
    return False, f"priority {pod.priority}{klass} < {threshold}, no picluster.io/critical label"


def _role(node: Node) -> str:
    if node.is_etcd_member:
        return "server, etcd member"
    return "server (control plane)" if node.is_control_plane else "agent"


def _hardware(node: Node, described: NodeHardware) -> dict[str, Any]:
    profile = described.profile
    model = described.model.value
    notes = []
    if not described.is_pi and described.figures_source == described.model_source:
        notes.append(
            f"{node.name} is {described.arch}, not a Raspberry Pi: its figures are a {model}'s, an assumption; "
            "set its picluster.io/idle-w, picluster.io/full-w and picluster.io/halted-w labels"
        )
    elif not described.known_model and described.figures_source == "default":
        notes.append(
            f"{node.name}: no picluster.io/pi-model label: assumed a {model} ([cluster] pi_model); "
            "label the node if it is another board"
        )
    return {
        "node": node.name,
        "arch": described.arch,
        "raspberry_pi": described.is_pi,
        "model": model,
        "model_source": described.model_source,
        "figures_source": described.figures_source,
        "idle_w": profile.idle_w,
        "full_w": profile.full_w,
        "halted_w": profile.halted_w,
        "hat_overhead_w": profile.hat_overhead_w,
        "supply_switchable": profile.supply_switchable,
        "power_off_on_halt": described.power_off_on_halt,
        "notes": notes,
    }


def _charge(plan: Plan | None, inputs: PlanInputs) -> dict[str, Any]:
    if inputs.charge_given is not None:
        return {"pct": round(inputs.charge_given, 1), "source": "--charge"}
    if plan is None or plan.charge_pct is None:
        return {"pct": None, "source": "not used: the decision does not depend on it (--charge not given)"}
    how = (
        "assumed: --charge not given; estimated from a full battery at the start of the outage, "
        f"{format_duration(inputs.policy.on_battery_grace_s + 1)} ago (just past the grace period)"
        if inputs.on_battery
        else "assumed: --charge not given"
    )
    return {"pct": round(plan.charge_pct, 1), "source": how}


def _assumptions(view: ClusterView, plan: Plan | None, inputs: PlanInputs) -> dict[str, Any]:
    battery = inputs.battery
    grace = format_duration(inputs.policy.on_battery_grace_s)
    return {
        "charge": _charge(plan, inputs),
        "power": (
            f"on battery, past the {grace} grace period (--on-battery)"
            if inputs.on_battery
            else "on mains (no --on-battery)"
        ),
        "battery": {
            "capacity_wh": battery.capacity_wh,
            "capacity_source": inputs.capacity_source,
            "usable_fraction": battery.usable_fraction,
            "kind": battery.kind.value,
            "inverter_efficiency": battery.inverter_efficiency,
            "ups_overhead_w": battery.ups_overhead_w,
            "shutdown_charge_pct": battery.shutdown_charge_pct,
            "shutdown_runtime_s": battery.shutdown_runtime_s,
        },
        "fixed_loads_w": dict(inputs.hardware.fixed_loads_w),
        "target_runtime_s": round(inputs.policy.target_runtime_s),
        "critical_priority": inputs.policy.critical_priority_threshold,
        "nodes": [_hardware(node, inputs.hardware.describe(node)) for node in view.nodes],
    }


def _halt_saving(view: ClusterView, plan: Plan, inputs: PlanInputs) -> dict[str, Any] | None:
    """What POWER_OFF_ON_HALT=1 would save on the nodes this plan halts, and the runtime it would give."""
    shed = [view.node(name) for name in plan.nodes_to_shed] + [view.node(n) for n in plan.shed_in_progress]
    # The EEPROM setting is a Raspberry Pi's: another machine's halted draw is its own business.
    described = {node.name: inputs.hardware.describe(node) for node in shed}
    saving = {name: hw.halt_saving_w for name, hw in described.items() if hw.is_pi}
    saving = {name: watts for name, watts in saving.items() if watts > 0}
    if not saving:
        return None
    total = sum(saving.values())
    result: dict[str, Any] = {"nodes": sorted(saving), "saving_w": round(total, 2), "runtime_with_it_s": None}
    if plan.projected_load_w is not None and plan.charge_pct is not None:
        runtime = inputs.battery.runtime_s(plan.charge_pct, max(0.0, plan.projected_load_w - total))
        result["runtime_with_it_s"] = _seconds(runtime)
    return result


def _action(view: ClusterView, plan: Plan, index: int, inputs: PlanInputs) -> dict[str, Any]:
    action = plan.actions[index]
    node = view.node(action.node)
    threshold = inputs.policy.critical_priority_threshold
    placed = {p.pod: p.to_node for p in plan.placements}
    pods = {pod.key: pod for pod in view.pods_on(node.name)}
    address = node.address or node.name
    moves: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []
    stopped_by = {pod: stop for stop in plan.scale_down for pod in stop.pods}
    for key in action.evicts:
        pod = pods.get(key)
        critical, why = (False, "") if pod is None else _critical(pod, threshold)
        to = placed.get(key)
        entry: dict[str, Any] = {"pod": key, "critical": critical, "why": why, "to": to}
        scaled = stopped_by.get(key)
        if to is None and scaled is not None:
            done = "suspended" if scaled.owner_kind == "Job" else "scaled down by one"
            entry["stopped_by"] = f"{scaled.owner_kind} {scaled.namespace}/{scaled.owner_name} {done}"
        if pod is not None and pod.host_ports:
            # A host port is an endpoint on this node's address: it moves to the new node's, if any.
            entry["host_ports"] = list(pod.host_ports)
        (moves if to is not None else given_up).append(entry)
    stop = [p for p in view.pods_on(node.name) if (p.is_daemonset or p.is_mirror) and not p.is_finished]
    return {
        "node": node.name,
        "address": address,
        "role": _role(node),
        "tier": inputs.policy.tier(node),
        "reason": action.reason,
        "moves": moves,
        "given_up": given_up,
        "stop_with_node": [p.key for p in stop],
        "removed_finished": [p.key for p in view.pods_on(node.name) if p.is_finished],
        "lost_endpoints": [
            {"pod": p.key, "endpoints": [f"{address}:{port}" for port in p.host_ports]}
            for p in stop
            if p.is_daemonset and p.host_ports
        ],
    }


def plan_view(view: ClusterView, plan: Plan, inputs: PlanInputs, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Everything ``piclusterctl plan`` says about ``plan``, as one JSON-able dict."""
    optimum = plan.optimum
    return {
        "decision": plan.decision.value,
        "decision_means": DECISION_MEANINGS[plan.decision],
        "hint": "add --on-battery to see what the leader would do when mains fails"
        if plan.decision is Decision.HOLD_ONLINE and not inputs.on_battery
        else None,
        "reason": plan.reason,
        "search_cut": plan.search_cut,
        "shed": list(plan.nodes_to_shed),
        "shed_in_progress": list(plan.shed_in_progress),
        "projected_runtime_s": _seconds(plan.projected_runtime_s),
        "runtime_without_shedding_s": _seconds(plan.runtime_without_shedding_s),
        "projected_load_w": None if plan.projected_load_w is None else round(plan.projected_load_w, 2),
        "load_without_shedding_w": None
        if plan.load_without_shedding_w is None
        else round(plan.load_without_shedding_w, 2),
        "optimum": None
        if optimum is None
        else {
            "nodes_on": list(optimum.nodes_on),
            "nodes_shed": list(optimum.nodes_shed),
            "runtime_s": _seconds(optimum.runtime_s),
            "load_w": round(optimum.load_w, 2),
            "pending_pods": list(optimum.pending_pods),
            "search_cut": optimum.search_cut,
        },
        "actions": [_action(view, plan, i, inputs) for i in range(len(plan.actions))],
        "refused": [
            {"node": r.node, "rule": str(r.rule), "rule_means": RULE_MEANINGS.get(r.rule, ""), "detail": r.detail}
            for r in plan.refused
        ],
        "power_on": [{"node": p.node, "relieves": p.relieves, "reason": p.reason} for p in plan.power_on],
        "scale_down": [
            {"namespace": s.namespace, "kind": s.owner_kind, "name": s.owner_name, "pods": list(s.pods)}
            for s in plan.scale_down
        ],
        "topology": plan.topology,
        "roles": [{"node": n.name, "role": _role(n), "notes": list(n.role_notes)} for n in view.nodes],
        "assumptions": _assumptions(view, plan, inputs),
        "halt_saving": _halt_saving(view, plan, inputs),
        "warnings": list(warnings),
    }


def full_shutdown_view(
    view: ClusterView, charge_pct: float, inputs: PlanInputs, warnings: Sequence[str] = ()
) -> dict[str, Any]:
    """The answer at or below the shutdown level: no shedding plan, the orderly full shutdown."""
    return {
        "decision": FULL_SHUTDOWN,
        "decision_means": DECISION_MEANINGS[FULL_SHUTDOWN],
        "hint": None,
        "reason": (
            f"charge {charge_pct:g} % is at or below the shutdown level "
            f"{inputs.battery.shutdown_charge_pct:g} % ([battery] shutdown_charge)"
        ),
        "search_cut": False,
        "shed": [],
        "shed_in_progress": [],
        "projected_runtime_s": 0,
        "runtime_without_shedding_s": 0,
        "projected_load_w": None,
        "load_without_shedding_w": None,
        "optimum": None,
        "actions": [],
        "refused": [],
        "power_on": [],
        "topology": "shared",
        "roles": [{"node": n.name, "role": _role(n), "notes": list(n.role_notes)} for n in view.nodes],
        "assumptions": _assumptions(view, None, inputs),
        "halt_saving": None,
        "warnings": list(warnings),
    }


# --------------------------------------------------------------------------------------------------------
# Text


def _duration(seconds: object) -> str:
    return "unknown" if not isinstance(seconds, int | float) else format_duration(float(seconds))


def _node_line(hw: Mapping[str, Any]) -> str:
    source = {
        "config": "configuration",
        "label": "label picluster.io/pi-model",
        "default": "assumed: [cluster] pi_model, no picluster.io/pi-model label",
    }[hw["model_source"]]
    figures = "" if hw["figures_source"] == hw["model_source"] else f", figures from {hw['figures_source']}"
    halt = "POWER_OFF_ON_HALT=1" if hw["power_off_on_halt"] else "POWER_OFF_ON_HALT not set"
    kind = "Raspberry Pi" if hw["raspberry_pi"] else "NOT a Raspberry Pi"
    return (
        f"    {hw['node']:<14}{hw['arch'] or 'arch ?'} ({kind}), {hw['model']} ({source}{figures}): "
        f"idle {hw['idle_w']:g} W, full {hw['full_w']:g} W, halted {hw['halted_w']:g} W ({halt})"
    )


def render_text(report: Mapping[str, Any]) -> list[str]:
    """The report as lines for a terminal; every line comes from a field of ``report``."""
    lines = [
        f"decision:             {report['decision']} ({report['reason']})",
        f"                      {report['decision']} means: {report['decision_means']}",
        *([f"                      {report['hint']}"] if report.get("hint") else []),
        f"runtime, no shedding: {_duration(report['runtime_without_shedding_s'])}",
        f"runtime, with plan:   {_duration(report['projected_runtime_s'])}",
    ]
    optimum = report["optimum"]
    if optimum is not None:
        given_up = f"; gives up {_names(optimum['pending_pods'])}" if optimum["pending_pods"] else ""
        lines.append(
            f"physical optimum:     {_duration(optimum['runtime_s'])} (on: {', '.join(optimum['nodes_on'])}; "
            f"only critical pods need a home{given_up})"
        )
    if report["shed_in_progress"]:
        lines.append(f"already being shed:   {', '.join(report['shed_in_progress'])}")
    if report["actions"]:
        lines.append("\n  #  shed        what happens")
    for number, action in enumerate(report["actions"], 1):
        lines.append(f"{number:>3}  {action['node']}  ({action['role']}): {action['reason']}")
        for move in action["moves"]:
            critical = "critical" if move["critical"] else "not critical"
            lines.append(f"       moves    {move['pod']} -> {move['to']}  [{critical}: {move['why']}]")
            if move.get("host_ports"):
                lines.append(
                    f"                its host ports {', '.join(move['host_ports'])} move from {action['address']} "
                    f"to {move['to']}'s address: clients pointed at {action['address']} lose them"
                )
        for move in action["given_up"]:
            critical = "critical" if move["critical"] else "not critical"
            if move.get("stopped_by"):
                lines.append(
                    f"       stopped {move['pod']}: {move['stopped_by']} until the restore  [{critical}: {move['why']}]"
                )
            else:
                lines.append(f"       given up {move['pod']}: no home kept, left Pending  [{critical}: {move['why']}]")
            if move.get("host_ports"):
                lines.append(
                    f"                its host ports {', '.join(move['host_ports'])} on {action['address']} are lost"
                )
        if action["stop_with_node"]:
            lines.append(f"       stops with the node (DaemonSet/static): {', '.join(action['stop_with_node'])}")
        if action["removed_finished"]:
            lines.append(f"       removed (finished, nothing to move): {', '.join(action['removed_finished'])}")
        for lost in action["lost_endpoints"]:
            lines.append(
                f"       LOST ENDPOINTS {', '.join(lost['endpoints'])} ({lost['pod']}): clients pointed at this "
                "address lose the service"
            )
    for item in report["power_on"]:
        lines.append(f"\nbring back first: {item['node']} (relieves {item['relieves']}): {item['reason']}")
    if report["refused"]:
        lines.append("\nkept on (refused by a safety rule):")
        for item in report["refused"]:
            lines.append(f"  {item['node']:<12}{item['rule']}: {item['rule_means']}")
            lines.append(f"  {'':<12}{item['detail']}")
    notes = [(role["node"], note) for role in report["roles"] for note in role["notes"]]
    if notes:
        lines.append("\nroles (where the signals disagree, the safer reading):")
        lines.extend(f"  {node}: {note}" for node, note in notes)
    lines.extend(_assumption_lines(report))
    return lines


def _assumption_lines(report: Mapping[str, Any]) -> list[str]:
    assumed = report["assumptions"]
    charge = assumed["charge"]
    battery = assumed["battery"]
    charge_text = "not used" if charge["pct"] is None else f"{charge['pct']:g} %"
    lines = [
        "\nassumed:",
        f"  charge:   {charge_text} ({charge['source']})",
        f"  power:    {assumed['power']}",
        f"  battery:  {battery['capacity_wh']:g} Wh ({battery['capacity_source']}), "
        f"{battery['usable_fraction'] * 100:g} % usable, {battery['kind']} inverter "
        f"{battery['inverter_efficiency'] * 100:g} %, nodes shut down at {battery['shutdown_charge_pct']:g} % "
        f"charge or {_duration(battery['shutdown_runtime_s'])} runtime left",
        f"  target:   {_duration(assumed['target_runtime_s'])}; pods critical at priority >= "
        f"{assumed['critical_priority']} or label picluster.io/critical=true",
    ]
    if assumed["fixed_loads_w"]:
        fixed = ", ".join(f"{name} {watts:g} W" for name, watts in sorted(assumed["fixed_loads_w"].items()))
        lines.append(f"  fixed:    {fixed}")
    lines.append("  nodes:")
    lines.extend(_node_line(hw) for hw in assumed["nodes"])
    lines.extend(f"  NOTE: {note}" for hw in assumed["nodes"] for note in hw["notes"])
    saving = report["halt_saving"]
    if saving is not None:
        with_it = saving["runtime_with_it_s"]
        before = _duration(report["projected_runtime_s"])
        runtime = "" if with_it is None else f": runtime {_duration(with_it)} instead of {before}"
        lines.append(
            f"  halt:     {', '.join(saving['nodes'])} halt without POWER_OFF_ON_HALT=1 and keep drawing power; "
            f"setting it (sudo rpi-eeprom-config --edit) would save {saving['saving_w']:g} W{runtime}"
        )
    return lines
