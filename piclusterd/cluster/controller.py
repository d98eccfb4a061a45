"""The cluster side of the daemon, run once per poll on every node: obey, elect, and (as leader) shed.

Every node: its :class:`~piclusterd.cluster.agent.NodeAgent` obeys a power-off request for itself, and it takes
part in the Lease election. The leader reads the cluster, asks the pure planner what to shed, and carries out
*one* step at a time, each resumable from the records on the Node objects:

1. nodes already in progress (a drain or power-off the previous leader started) are finished first, and a
   shed node that is Ready again is rejoined;
2. then the plan's first action whose drain has not failed recently: drain, then power off;
3. with nothing to shed, a rotation the plan asks for (``Plan.power_on``: on battery, a charged shed node
   comes back to relieve one whose own battery runs low; ``_rotate``), through the same power-on path;
4. with nothing to shed, the restore policy (:func:`~piclusterd.core.restore.decide_restore`) may power one shed
   node back on through its :class:`~piclusterd.cluster.power_on_backends.NodePower` backend (``_restore``).
   Nodes powered on less than ``restore_after`` ago are passed to the planner as *settling*: it does not shed
   them (anti-flap).

In ``dry-run`` the leader plans, logs ``plan.decided`` and emits Events, and changes nothing. ``fence`` (the
elector's ``ensure_leader``) runs before every destructive call, so a leader that lost its lease stops.
"""

from __future__ import annotations

import datetime
from dataclasses import replace

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import LeaseElector, Transition
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_coordinator import OutageCoordinator
from piclusterd.cluster.power_off_request import PeerPowerOff, PowerOffOutcome
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.power_on_backends import PowerOutcome, RtcWakePower
from piclusterd.config.settings import ShedSettings
from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.errors import ClusterError, NotLeader
from piclusterd.core.node_batteries import NodeBatteries, Topology, nodes_with_own_battery, read_node_batteries
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    InvalidRecord,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    render_shed_record,
    rfc3339,
)
from piclusterd.core.planner import Decision, Plan, plan
from piclusterd.core.ports import Clock
from piclusterd.core.power_draw import PowerSituation
from piclusterd.core.power_state import BATTERY_STATES, PowerMemory
from piclusterd.core.restore import (
    PowerOn,
    RestoreHold,
    RestoreInputs,
    RestoreMemory,
    decide_restore,
    decide_rotation,
)
from piclusterd.core.safety import SafetyRule
from piclusterd.node.audit import AuditLogger
from piclusterd.node.power_publisher import PowerPublisher
from piclusterd.node.source_alarm import SourceAlarm

__all__ = ["ClusterController"]

#: The tier given to the leader's own node: shed last among equally good plans.
LEADER_TIER = 1_000_000

#: Why shed nodes are not back yet, as said in the journal (on change): not the routine pacing (stagger,
#: anti-flap), which would say something every poll of a restore.
_HOLDS_WORTH_SAYING = frozenset(
    {
        RestoreHold.POWER_UNKNOWN,
        RestoreHold.ON_BATTERY,
        RestoreHold.MAINS_NOT_STABLE,
        RestoreHold.CHARGE_LOW,
        RestoreHold.CHARGE_UNKNOWN,
    }
)

#: A node asked to power on and not Ready this long after is said to be unanswered (once; never asked again
#: by itself: a second relay pulse or button press on a node that did boot could switch it off). rtc-wake
#: nodes get their recheck period on top.
POWER_ON_ANSWER_S = 600.0

#: A failed power-on is not tried again sooner than this, even with restore_stagger = 0 (one try per poll
#: would flood the journal and the Events).
MIN_POWER_ON_RETRY_S = 30.0

#: A shed record whose reason starts so was asked back on battery, to relieve a low node (rotation; the
#: planner's ``PowerOnNode.reason`` starts so): mains failing is not a reason to withdraw it.
ROTATION_REASON_PREFIX = "rotation:"

#: After a drain fails, the node is not tried again for this long (the planner goes on to the next one).
DRAIN_RETRY_AFTER_S = 600.0


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
        power_on: PowerOnBackends | None = None,
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
        self._power_on = power_on if power_on is not None else PowerOnBackends({})
        self._restore_memory = RestoreMemory()
        self._restore_hold_said: RestoreHold | None = None
        self._unanswered_said: dict[str, str] = {}  # node -> changed_at of the restoring record said
        self._unknown_battery_said: frozenset[str] = frozenset()  # nodes whose own battery was said unknown
        self._started_at = clock.monotonic()
        self._warned_node_capacity_unset = False
        self.last_plan: Plan | None = None
        self._source_alarm = SourceAlarm(identity, events, self._log)  # UPS data lost/back: a Node Event

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
        self._source_alarm.observe(power)  # once per loss and return; never raises an API error
        try:
            self._agent.check_in(power.state, now - self._started_at)  # rtc-wake only, once
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
            self._warn_node_capacity_unset(view)
            return None
        return read_node_batteries(
            view,
            self._clock.wall(),
            spec,
            max_age_s=self._settings.power_record_max_age_s,
            topology=self._settings.topology,
        )

    def _warn_node_capacity_unset(self, view: ClusterView) -> None:
        """Nodes publish HAT batteries but no ``node_capacity_wh`` is set: the plan ignores their own
        batteries. Said once (journal + Event), not every poll; a configured ``shared`` topology is a choice."""
        if self._warned_node_capacity_unset or self._settings.topology is Topology.SHARED:
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
            settling=self._settling(now),
        )
        self.last_plan = decided
        self._report(decided)
        self._say_unknown_batteries(view, decided)
        if self._settings.dry_run:
            return
        if self._withdraw_unsent_requests(view, power):
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
        if self._rotate(view, decided, now):
            return
        self._restore(view, power, now)

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
        verb = "would power on (dry-run)" if self._settings.dry_run else "powers on"
        for wanted in decided.power_on:
            self._events.emit(
                wanted.node, "PowerOnPlanned", f"piclusterd {verb} {wanted.node} on battery: {wanted.reason}"
            )

    def _say_unknown_batteries(self, view: ClusterView, decided: Plan) -> None:
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
                # An rtc-wake node that woke before the restore policy asked it back halts again by itself
                # (node_agent.decide_check_in): leave it; once asked (restoring), it rejoins.
                wakes_to_check_in = self._power_on.method_for(name) == "rtc-wake"
                if node.ready and not (record.phase is ShedPhase.POWERED_OFF and wakes_to_check_in):
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
        self._settle(name)

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

    def _settling(self, now: float) -> frozenset[str]:
        """Nodes this leader powered on or rejoined less than restore_after ago: not to be shed (anti-flap)."""
        policy = self._settings.restore
        memory = self._restore_memory
        return frozenset(name for name, at in memory.powered_on_at.items() if now - at < policy.restore_after_s)

    def _restore(self, view: ClusterView, power: PowerMemory, now: float) -> None:
        """Nothing else to do this poll: ask the restore policy whether a shed node comes back, and do it.

        At most one power-on per poll. The shed record turns ``restoring`` (fence first) before the backend is
        called, so a new leader knows; ``_resume`` rejoins the node once it is Ready. A backend that fails
        puts the record back to ``powered_off``, says so (journal + Warning Event), and is tried again
        ``2 x restore_stagger`` later: the next shed node goes first, one ``restore_stagger`` after the failure,
        so a node whose backend cannot work (its relay's ``via`` node is shed too) does not keep the others off.
        """
        reading = power.last_reading
        inputs = RestoreInputs(power.state, None if reading is None else reading.charge_pct)
        policy = replace(
            self._settings.restore,
            tiers=self._settings.policy.tiers,
            default_tier=self._settings.policy.default_tier,
        )
        self._say_unanswered(view)
        self._restore_memory, actions = decide_restore(view, inputs, policy, self._restore_memory, now)
        hold = self._restore_memory.hold
        if hold in _HOLDS_WORTH_SAYING and hold is not self._restore_hold_said and self._restore_memory.off_since:
            self._restore_hold_said = hold
            self._log.info("restore.waiting", why=hold.value, shed=sorted(self._restore_memory.off_since))
        for action in actions:
            self._power_on_node(view, action)

    def _rotate(self, view: ClusterView, decided: Plan, now: float) -> bool:
        """The plan asks a charged shed node back, on battery, to relieve a low one (rotation): power it on
        through the same path as a restore (``_power_on_node``), paced by the same anti-flap and stagger
        rules (:func:`~piclusterd.core.restore.decide_rotation`). True if a node was asked to power on. The low node
        is shed by a later plan, once the returning one is Ready and rejoined (``_resume``)."""
        if not decided.power_on:
            return False
        wanted = [(p.node, p.reason) for p in decided.power_on]
        self._restore_memory, actions = decide_rotation(view, wanted, self._settings.restore, self._restore_memory, now)
        for action in actions:
            self._power_on_node(view, action, rotation=True)
        return bool(actions)

    def _settle(self, name: str) -> None:
        """A shed node is back, however it came (restore, a button, the UPS power-cycling, its RTC alarm): it
        settles for ``restore_after`` from now, so the planner does not shed it again straight away."""
        memory, now = self._restore_memory, self._clock.monotonic()
        self._restore_memory = replace(memory, powered_on_at={**memory.powered_on_at, name: now})

    def _withdraw_unsent_requests(self, view: ClusterView, power: PowerMemory) -> bool:
        """Mains failed again before a node asked back came up, and nothing was sent to it (``manual``: nobody
        pressed the button yet; ``rtc-wake``: it wakes by itself): withdraw the request (record back to
        ``powered_off``), so nobody powers it on during an outage, an rtc-wake node halts again when it wakes,
        and the planner counts it as off. The other methods' requests stand: the node may be booting, and a
        second relay pulse could switch it off."""
        if power.state not in BATTERY_STATES:
            return False
        withdrawn = False
        for name, record in sorted(self._records(view).items()):
            method = self._power_on.method_for(name)
            if record.phase is not ShedPhase.RESTORING or method not in ("manual", "rtc-wake") or view.node(name).ready:
                continue
            if record.reason.startswith(ROTATION_REASON_PREFIX):
                continue  # asked back on battery on purpose (rotation): the outage is why, not a reason to withdraw
            self.fence()
            back = record.with_phase(ShedPhase.POWERED_OFF, rfc3339(self._clock.wall()))
            self._api.patch_node(name, {"metadata": {"annotations": {SHED_ANNOTATION: render_shed_record(back)}}})
            self._log.info("node.power_on_withdrawn", target=name, method=method, why="mains failed again")
            after = "do not power it on now; piclusterd will say when" if method == "manual" else "it stays shed"
            self._events.emit(name, "PowerOnWithdrawn", f"mains failed again: {name} {after}")
            withdrawn = True
        return withdrawn

    def _retry_later(self, name: str) -> None:
        """After a failed power-on: hold ``name`` for ``2 x restore_stagger`` (at least ``MIN_POWER_ON_RETRY_S``;
        not ``restore_after``, as after a power-on that worked), so the next shed node has its turn first and
        this one is tried again after it."""
        policy, memory = self._settings.restore, self._restore_memory
        now = self._clock.monotonic()
        hold = max(2 * policy.restore_stagger_s, MIN_POWER_ON_RETRY_S)
        held_from = now - policy.restore_after_s + hold  # held while now - at < restore_after
        self._restore_memory = replace(memory, powered_on_at={**memory.powered_on_at, name: held_from})

    def _say_unanswered(self, view: ClusterView) -> None:
        """A power-on long without an answer (still not Ready): say so once, loudly; do not power on again."""
        for name, record in self._records(view).items():
            if record.phase is not ShedPhase.RESTORING or view.node(name).ready:
                continue
            backend = self._power_on.backend_for(name)
            if backend.name == "manual" or self._unanswered_said.get(name) == record.changed_at:
                continue  # a person was already asked; or already said
            try:
                asked = datetime.datetime.strptime(record.changed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
            except ValueError:
                continue
            waited = self._clock.wall() - asked.timestamp()
            limit = POWER_ON_ANSWER_S + (backend.recheck_s if isinstance(backend, RtcWakePower) else 0)
            if waited < limit:
                continue
            self._unanswered_said[name] = record.changed_at
            self._log.warning("node.power_on_unanswered", target=name, method=backend.name, waited_s=round(waited))
            self._events.emit(
                name,
                "PowerOnUnanswered",
                f"{name} was asked to power on ({backend.name}) {round(waited / 60)} min ago and is not Ready: "
                "check its power and network; piclusterd does not ask again by itself",
                warning=True,
            )

    def _power_on_node(self, view: ClusterView, action: PowerOn, *, rotation: bool = False) -> None:
        """Power a shed node on: record ``restoring`` (fence first), call its backend, say so. ``rotation``: on
        battery, to relieve a low node (the plan's ``power_on``), not because mains is back: the record's reason
        says so (a new leader does not withdraw it as mains failing again) and so does the Event."""
        name = action.node
        record = self._records(view).get(name)
        if record is None or record.phase is not ShedPhase.POWERED_OFF:
            return  # the restore policy picks powered_off nodes only: the record changed under us
        backend = self._power_on.backend_for(name)
        self.fence()
        restoring = record.with_phase(ShedPhase.RESTORING, rfc3339(self._clock.wall()))
        reason = action.reason
        if rotation:
            reason = reason if reason.startswith(ROTATION_REASON_PREFIX) else f"{ROTATION_REASON_PREFIX} {reason}"
            restoring = replace(restoring, reason=reason)
        self._api.patch_node(name, {"metadata": {"annotations": {SHED_ANNOTATION: render_shed_record(restoring)}}})
        try:
            result = backend.power_on(name)
        except Exception as error:  # whatever a backend's library raises: said and retried, never the loop's end
            self._api.patch_node(name, {"metadata": {"annotations": {SHED_ANNOTATION: render_shed_record(record)}}})
            self._retry_later(name)
            self._log.warning("node.power_on_failed", target=name, method=backend.name, error=str(error))
            self._events.emit(
                name, "PowerOnFailed", f"{backend.name} could not power {name} on: {error}; will retry", warning=True
            )
            return
        self._log.info(
            "node.power_on_requested",
            target=name,
            method=backend.name,
            outcome=result.outcome.value,
            detail=result.detail,
            reason=reason,
        )
        why = "on battery, to relieve a node whose own battery runs low" if rotation else "mains is back"
        if result.outcome is PowerOutcome.WAITING_FOR_OPERATOR:
            self._events.emit(name, "PowerOnNeeded", f"{why}: {result.detail}", warning=True)
        else:
            self._events.emit(name, "PowerOnRequested", f"{backend.name}: {result.detail} ({reason})")
