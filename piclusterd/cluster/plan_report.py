"""What the leader says about its plan, once per change: the journal's ``plan.decided`` and the Nodes' Events.

:class:`PlanReporter` never acts. It logs ``plan.decided`` when the decision changes (not every poll) with the
planned Events (``PowerShedPlanned``, ``PowerOnPlanned``, ``PodsGivenUp``, also in dry-run), and says loudly,
once, what makes the plan blind to a node's own battery: a battery turned unknown (``battery.node_unknown``), or
HAT batteries published while ``[battery] node_capacity_wh`` is not set (``battery.node_capacity_unset``); and a
node whose role signals disagree, read the safer way (``cluster.roles_disagree``).
"""

from __future__ import annotations

from piclusterd.cluster.kube_api import EventRecorder
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_batteries import Topology, nodes_with_own_battery
from piclusterd.core.planner import Decision, Plan
from piclusterd.core.safety import SafetyRule
from piclusterd.node.audit import AuditLogger

__all__ = ["PlanReporter"]


class PlanReporter:
    """The leader's words on its plan. ``topology``: the configured one (None: inferred from the records)."""

    def __init__(
        self, *, identity: str, events: EventRecorder, log: AuditLogger, dry_run: bool, topology: Topology | None
    ) -> None:
        self._identity = identity
        self._events = events
        self._log = log
        self._dry_run = dry_run
        self._topology = topology
        self._last_plan_key: tuple[object, ...] | None = None
        self._unknown_battery_said: frozenset[str] = frozenset()  # nodes whose own battery was said unknown
        self._warned_node_capacity_unset = False
        self._roles_said: dict[str, tuple[str, ...]] = {}  # node -> the role notes already said

    def apply_mode(self, *, dry_run: bool) -> None:
        """A reloaded ``mode``: the next plan is said again, with the words of the new mode."""
        self._dry_run = dry_run
        self._last_plan_key = None

    def report(self, decided: Plan) -> None:
        """plan.decided when the decision changes (not every poll), with the refusals and their rules."""
        key = (
            decided.decision,
            decided.nodes_to_shed,
            tuple((r.node, r.rule) for r in decided.refused),
            tuple((p.node, p.relieves) for p in decided.power_on),
            tuple(p.pod for p in decided.given_up),
        )
        if key == self._last_plan_key:
            return
        self._last_plan_key = key
        self._log.info(
            "plan.decided",
            decision=decided.decision.value,
            reason=decided.reason,
            shed=list(decided.nodes_to_shed),
            in_progress=list(decided.shed_in_progress),
            projected_runtime_s=None if decided.projected_runtime_s is None else round(decided.projected_runtime_s),
            runtime_without_shedding_s=None
            if decided.runtime_without_shedding_s is None
            else round(decided.runtime_without_shedding_s),
            refused=[{"node": r.node, "rule": str(r.rule), "detail": r.detail} for r in decided.refused],
            power_on=[{"node": p.node, "relieves": p.relieves, "reason": p.reason} for p in decided.power_on],
            given_up=[{"pod": p.pod, "node": p.from_node} for p in decided.given_up],
            topology=decided.topology,
            search_cut=decided.search_cut,
            dry_run=self._dry_run,
        )
        verb = "would shed (dry-run)" if self._dry_run else "sheds"
        for action in decided.actions:
            self._events.emit(action.node, "PowerShedPlanned", f"piclusterd {verb} {action.node}: {action.reason}")
        given_up: dict[str, list[str]] = {}
        for placement in decided.given_up:
            given_up.setdefault(placement.from_node, []).append(placement.pod)
        verb = "would give up (dry-run)" if self._dry_run else "gives up"
        for name, pods in sorted(given_up.items()):
            self._events.emit(
                name,
                "PodsGivenUp",
                f"piclusterd {verb} {len(pods)} non-critical pod(s) from {name} to reach the target runtime "
                f"([cluster] give_up_noncritical): {', '.join(pods)}; Pending until the nodes are back",
            )
        verb = "would power on (dry-run)" if self._dry_run else "powers on"
        for wanted in decided.power_on:
            self._events.emit(
                wanted.node, "PowerOnPlanned", f"piclusterd {verb} {wanted.node} on battery: {wanted.reason}"
            )

    def say_unknown_batteries(self, view: ClusterView, decided: Plan) -> None:
        """A node's own battery unknown (per-node / mixed): the plan leaves that node alone, which on a node
        living on its own battery may mean it dies unseen. Said loudly (journal warning + Warning Event on the
        Node) when a node turns unknown, not every poll; said again if it turns unknown again after being known.
        Only plans made on the nodes' own batteries (per-node, or mixed with a node short) look at them: the
        others (holds, the shared battery deciding) change nothing here."""
        if decided.decision not in (Decision.PER_NODE, Decision.PER_NODE_OK):
            return
        unknown = {r.node: r.detail for r in decided.refused if r.rule is SafetyRule.POWER_UNKNOWN}
        for name in sorted(unknown.keys() - self._unknown_battery_said):
            self._log.warning("battery.node_unknown", target=name, detail=unknown[name], topology=decided.topology)
            self._events.emit(
                name,
                "NodeBatteryUnknown",
                f"{unknown[name]}: piclusterd cannot tell how long {name} lasts and will not shed or rotate it. "
                f"Check that piclusterd runs on {name} and reads its battery HAT (piclusterctl status there)",
                warning=True,
            )
        for name in sorted(self._unknown_battery_said - unknown.keys()):
            if view.has_node(name):
                self._log.info("battery.node_known", target=name)
        self._unknown_battery_said = frozenset(unknown)

    def warn_node_capacity_unset(self, view: ClusterView) -> None:
        """Nodes publish HAT batteries but no ``node_capacity_wh`` is set: the plan ignores their own
        batteries. Said once (journal + Event), not every poll; a configured ``shared`` topology is a choice."""
        if self._warned_node_capacity_unset or self._topology is Topology.SHARED:
            return
        hats = nodes_with_own_battery(view)
        if not hats:
            return
        self._warned_node_capacity_unset = True
        fix = (
            "set [battery] node_capacity_wh to one node's HAT battery in Wh (2 x 18650 3.6 V 3.0 Ah = 21.6 Wh), "
            'or topology = "shared" to plan with the shared battery only on purpose'
        )
        self._log.warning("battery.node_capacity_unset", nodes=list(hats), fix=fix)
        self._events.emit(
            self._identity,
            "NodeCapacityUnset",
            f"{', '.join(hats)} publish a battery of their own (HAT), but [battery] node_capacity_wh is not set: "
            f"the leader plans with the shared battery only. Fix: {fix}",
            warning=True,
        )

    def say_role_disagreements(self, view: ClusterView) -> None:
        """A node whose role signals disagree (labels, ``k3s.io/node-args``, etcd annotation): the plan takes
        the safer reading (:func:`~piclusterd.core.cluster_view.read_roles`) and says so, once per node and
        wording, not every poll (journal warning + Warning Event ``NodeRolesDisagree`` on the node)."""
        notes = {node.name: node.role_notes for node in view.nodes if node.role_notes}
        for name in sorted(notes):
            if self._roles_said.get(name) == notes[name]:
                continue
            self._log.warning("cluster.roles_disagree", target=name, notes=list(notes[name]))
            self._events.emit(
                name,
                "NodeRolesDisagree",
                f"{name}: {'; '.join(notes[name])}. Fix the node's node-role.kubernetes.io labels "
                "(or picluster.io/etcd-member) so they say what the node is",
                warning=True,
            )
        self._roles_said = notes
