"""The cluster side of the daemon, run once per poll on every node: obey, elect, and (as leader) shed.

Every node: its :class:`~piclusterd.node_agent.NodeAgent` obeys a power-off request for itself, and it takes
part in the Lease election. The leader reads the cluster, asks the pure planner what to shed, and carries out
*one* step at a time, each resumable from the records on the Node objects:

1. nodes already in progress (a drain or power-off the previous leader started) are finished first;
2. then the plan's first action whose drain has not failed recently: drain, then power off.

In ``dry-run`` the leader plans, logs ``plan.decided`` and emits Events, and changes nothing. ``fence`` (the
elector's ``ensure_leader``) runs before every destructive call, so a leader that lost its lease stops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from piclusterd.annotations import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    InvalidRecord,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    rfc3339,
)
from piclusterd.audit import AuditLogger
from piclusterd.cluster import ClusterView, parse_kubectl_list
from piclusterd.config import Config, Mode
from piclusterd.drain import Drainer
from piclusterd.errors import ClusterError, ConfigError, NotLeader
from piclusterd.kube_api import EventRecorder, KubeClusterApi
from piclusterd.leader import LeaseElector, Transition
from piclusterd.node_agent import NodeAgent
from piclusterd.node_batteries import NodeBatteries, Topology, read_node_batteries
from piclusterd.outage_coordinator import OutageCoordinator
from piclusterd.peer_power import PeerPowerOff, PowerOffOutcome
from piclusterd.planner import Decision, Plan, PlannerPolicy, plan
from piclusterd.ports import Clock
from piclusterd.power_model import BatterySpec, PiModel, PowerConfig, PowerSituation, SupplyKind
from piclusterd.power_publisher import PowerPublisher
from piclusterd.power_state import BATTERY_STATES, PowerMemory

__all__ = ["ClusterController", "ShedSettings", "settings_from_config"]

#: The tier given to the leader's own node: shed last among equally good plans.
LEADER_TIER = 1_000_000

#: After a drain fails, the node is not tried again for this long (the planner goes on to the next one).
DRAIN_RETRY_AFTER_S = 600.0


@dataclass(frozen=True, slots=True)
class ShedSettings:
    policy: PlannerPolicy
    battery: BatterySpec
    hardware: PowerConfig
    dry_run: bool
    # Each node's own battery (per-node / mixed topologies): its spec, the topology (None: inferred from the
    # published records) and the age after which a record is unknown.
    node_battery: BatterySpec | None = None
    topology: Topology | None = None
    power_record_max_age_s: float = 180.0


def settings_from_config(config: Config, capacity_wh: float | None = None) -> ShedSettings:
    """The planner's inputs from ``[cluster]`` and ``[battery]``; ``capacity_wh`` overrides the file's."""
    cluster, battery = config.cluster, config.battery
    capacity = capacity_wh if capacity_wh is not None else battery.capacity_wh
    if capacity is None or capacity <= 0:
        raise ConfigError(
            config.path, "battery.capacity_wh", "is not set", "the battery's capacity in Wh (12 V 7 Ah = 84 Wh)"
        )
    return ShedSettings(
        policy=PlannerPolicy(
            target_runtime_s=cluster.target_runtime_s,
            on_battery_grace_s=cluster.on_battery_grace_s,
            min_nodes=cluster.min_nodes,
            critical_priority_threshold=cluster.critical_priority,
            allow_unreplicated=cluster.allow_unreplicated,
            evict_emptydir=cluster.delete_emptydir_data,
        ),
        battery=BatterySpec(
            capacity_wh=capacity,
            usable_fraction=battery.usable_fraction,
            inverter_efficiency=battery.inverter_efficiency,
            ups_overhead_w=battery.overhead_w,
            shutdown_charge_pct=battery.shutdown_charge_pct,
            shutdown_runtime_s=config.policy.critical_runtime_s,
        ),
        hardware=PowerConfig(
            default_model=PiModel(cluster.pi_model),
            fixed_loads_w={"switch": cluster.switch_w},
            default_power_off_on_halt=cluster.power_off_on_halt,
        ),
        dry_run=config.mode is Mode.DRY_RUN,
        node_battery=None
        if not battery.node_capacity_wh
        else BatterySpec(
            capacity_wh=battery.node_capacity_wh,
            kind=SupplyKind.DC,
            shutdown_charge_pct=battery.shutdown_charge_pct,
            shutdown_runtime_s=config.policy.critical_runtime_s,
        ),
        topology=None if battery.topology == "auto" else Topology(battery.topology),
        power_record_max_age_s=cluster.power_record_max_age_s,
    )


class ClusterController:
    def __init__(
        self,
        *,
        identity: str,
        api: KubeClusterApi,
        elector: LeaseElector,
        agent: NodeAgent,
        drainer: Drainer,
        power_off: PeerPowerOff,
        events: EventRecorder,
        settings: ShedSettings,
        clock: Clock,
        log: AuditLogger,
        publisher: PowerPublisher | None = None,
        outage: OutageCoordinator | None = None,
    ) -> None:
        self._identity = identity
        self._api = api
        self._elector = elector
        self._agent = agent
        self._drainer = drainer
        self._power_off = power_off
        self._events = events
        self._settings = settings
        self._publisher = publisher
        self._outage = outage
        self._elector_lease_s = float(elector.timings.lease_duration_s)
        self._clock = clock
        self._log = log.bind(component="cluster")
        self._on_battery_since: float | None = None
        self._stand_down_until = float("-inf")
        self._last_plan_key: tuple[object, ...] | None = None
        self._drain_failed_at: dict[str, float] = {}
        self._invalid_reported: dict[str, str] = {}
        self.last_plan: Plan | None = None

    @property
    def is_leader(self) -> bool:
        return self._elector.is_leader()

    def release(self) -> None:
        """On a clean stop: give the lease up so another node leads at once, not after it expires."""
        try:
            if self._elector.release():
                self._log.info("leader.released")
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="release the lease", error=str(error))

    def fence(self) -> None:
        """Raise NotLeader unless our lease is fresh: called right before every destructive step."""
        self._elector.ensure_leader()

    def tick(self, power: PowerMemory, measured_load_w: float | None) -> None:
        """One round: obey requests for this node, renew or seek the lease, and lead if we hold it."""
        now = self._clock.monotonic()
        if power.state in BATTERY_STATES:
            if self._on_battery_since is None:
                self._on_battery_since = power.since if power.since is not None else now
        else:
            self._on_battery_since = None
        if self._publisher is not None and power.last_reading is not None:
            self._publisher.publish(power, power.last_reading.source)  # rate-limited; never raises
        try:
            self._agent.tick()
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="check own power-off requests", error=str(error))
        if now < self._stand_down_until:
            return  # we handed the lease over so another node can shed this one: let it take over
        attempt = self._elector.try_acquire_or_renew()
        if attempt.transition is Transition.ACQUIRED:
            self._log.info("leader.acquired", holder=attempt.holder)
        elif attempt.transition is Transition.LOST:
            self._log.warning("leader.lost", holder=attempt.holder, why=attempt.error or "lease not renewed in time")
        if not attempt.leader:
            return
        try:
            self._lead(power, measured_load_w, now)
        except NotLeader as error:
            self._log.warning("leader.lost", holder=None, why=str(error))
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="lead", error=str(error))

    def _situation(self, power: PowerMemory, measured_load_w: float | None) -> PowerSituation:
        reading = power.last_reading
        return PowerSituation(
            state=power.state.value,
            on_battery_since=self._on_battery_since,
            charge_pct=None if reading is None else reading.charge_pct,
            measured_load_w=measured_load_w,
        )

    def _node_batteries(self, view: ClusterView) -> NodeBatteries | None:
        """Every node's own battery from its published record, when a per-node battery is configured."""
        spec = self._settings.node_battery
        if spec is None:
            return None
        return read_node_batteries(
            view,
            self._clock.wall(),
            spec,
            max_age_s=self._settings.power_record_max_age_s,
            topology=self._settings.topology,
        )

    def _lead(self, power: PowerMemory, measured_load_w: float | None, now: float) -> None:
        view = parse_kubectl_list(self._api.snapshot())
        if self._outage is not None and self._outage.lead(view, power, measured_load_w):
            return  # a full shutdown (or the restart after one) is under way: no shedding now
        # Between equally good plans, keep the leader's own node on: a hand-over costs a lease duration.
        policy = replace(self._settings.policy, tiers={**self._settings.policy.tiers, self._identity: LEADER_TIER})
        decided = plan(
            view,
            self._situation(power, measured_load_w),
            self._settings.battery,
            policy,
            now,
            hardware=self._settings.hardware,
            node_batteries=self._node_batteries(view),
        )
        self.last_plan = decided
        self._report(decided)
        if self._settings.dry_run:
            return
        if self._resume(view, decided):
            return
        for action in decided.actions:
            failed_at = self._drain_failed_at.get(action.node)
            if failed_at is not None and now - failed_at < DRAIN_RETRY_AFTER_S:
                continue
            if action.node == self._identity:
                # A leader never powers itself off mid-plan: it hands the lease over and another node sheds it.
                self._log.info("leader.stepping_down", why="the plan sheds this node; another node will do it")
                self._elector.release()
                self._stand_down_until = now + self._elector_lease_s
                return
            self._shed(view, action.node, action.reason)
            return

    def _report(self, decided: Plan) -> None:
        """plan.decided when the decision changes (not every poll), with the refusals and their rules."""
        key = (
            decided.decision,
            decided.nodes_to_shed,
            tuple((r.node, r.rule) for r in decided.refused),
            tuple((p.node, p.relieves) for p in decided.power_on),
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
            topology=decided.topology,
            dry_run=self._settings.dry_run,
        )
        verb = "would shed (dry-run)" if self._settings.dry_run else "sheds"
        for action in decided.actions:
            self._events.emit(action.node, "PowerShedPlanned", f"piclusterd {verb} {action.node}: {action.reason}")

    def _records(self, view: ClusterView) -> dict[str, ShedRecord]:
        found: dict[str, ShedRecord] = {}
        for node in view.nodes:
            raw = node.annotations.get(SHED_ANNOTATION)
            if raw is None:
                continue
            parsed = parse_shed_record(raw)
            if isinstance(parsed, InvalidRecord):
                if self._invalid_reported.get(node.name) != raw:
                    self._invalid_reported[node.name] = raw
                    self._log.error("node.record_invalid", target=node.name, value=raw[:200], why=parsed.reason)
                    self._events.emit(
                        node.name,
                        "ShedRecordInvalid",
                        f"{SHED_ANNOTATION} cannot be read: {parsed.reason}",
                        warning=True,
                    )
                continue
            found[node.name] = parsed
        return found

    def _resume(self, view: ClusterView, decided: Plan) -> bool:
        """Finish, undo or close what a previous leader (or this one) started; True if a step was taken.

        Ordered early returns per recorded node:
        - shed and Ready again (someone powered it on, or the UPS restored power): rejoin it;
        - shed and still off: nothing to do here (restoring it is the restore policy's job);
        - mains is back: a drain or an un-acknowledged power-off is undone, never finished;
        - power unknown or a new outage still in its grace period: wait, do nothing;
        - otherwise (still shedding): finish the drain, or the power-off, with the recorded request id.
        """
        online = decided.decision is Decision.HOLD_ONLINE
        for name, record in sorted(self._records(view).items()):
            node = view.node(name)
            if record.phase in (ShedPhase.POWERED_OFF, ShedPhase.RESTORING):
                if node.ready:
                    self._rejoin(name, record)
                    return True
                continue
            if online:
                acked = node.annotations.get(ACK_ANNOTATION) == record.request_id and bool(record.request_id)
                if record.phase is ShedPhase.POWEROFF_REQUESTED and (acked or not node.ready):
                    continue  # already going down: it rejoins when it is back
                self.fence()
                self._drainer.roll_back(name, record, clear=(REQUEST_ANNOTATION,))
                self._log.info("node.shed_cancelled", target=name, phase=record.phase.value, why="mains is back")
                self._events.emit(name, "PowerShedCancelled", f"mains is back: {name} stays on")
                return True
            if decided.decision.value.startswith("hold"):
                continue  # unknown power or a new outage's grace period: never act, never undo
            if record.phase is ShedPhase.DRAINING:
                self._log.info("node.drain_resumed", target=name, leader_was=record.leader)
                self._drain_and_power_off(name, record)
                return True
            self._log.info("node.poweroff_resumed", target=name, phase=record.phase.value)
            self._power_off.power_off(name, record)
            return True
        return False

    def _rejoin(self, name: str, record: ShedRecord) -> None:
        """A shed node is back and Ready: uncordon it (only if we cordoned it) and clear our records."""
        self.fence()
        patch: dict[str, object] = {
            "metadata": {"annotations": {SHED_ANNOTATION: None, REQUEST_ANNOTATION: None, ACK_ANNOTATION: None}}
        }
        if not record.was_unschedulable:
            patch["spec"] = {"unschedulable": None}
        self._api.patch_node(name, patch)
        self._log.info("node.restored", target=name, uncordoned=not record.was_unschedulable, shed_at=record.started_at)
        self._events.emit(name, "PowerRestored", f"{name} is back and schedulable again")

    def _shed(self, view: ClusterView, name: str, reason: str) -> None:
        record = ShedRecord(
            ShedPhase.DRAINING,
            self._identity,
            reason,
            rfc3339(self._clock.wall()),
            was_unschedulable=view.has_node(name) and view.node(name).unschedulable,
        )
        self._drain_and_power_off(name, record)

    def _drain_and_power_off(self, name: str, record: ShedRecord) -> None:
        result = self._drainer.drain(name, record)
        if not result.ok:
            self._drain_failed_at[name] = self._clock.monotonic()
            blockers = "; ".join(f"{pod}: {why}" for pod, why in result.blocked[:5])
            budgets = " ".join(result.budgets)
            self._events.emit(
                name, "DrainBlocked", f"drain {result.reason}, node left on. {blockers} {budgets}".strip(), warning=True
            )
            return
        self._events.emit(name, "Drained", f"{len(result.evicted)} pods moved off {name}")
        drained = record.with_phase(ShedPhase.DRAINED, rfc3339(self._clock.wall()))
        outcome = self._power_off.power_off(name, drained)
        if outcome.outcome is not PowerOffOutcome.POWERED_OFF:
            self._log.warning("node.shed_incomplete", target=name, outcome=outcome.outcome.value)
