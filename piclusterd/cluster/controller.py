"""The cluster side of the daemon, run once per poll on every node: obey, elect, and (as leader) shed.

Every node: its :class:`~piclusterd.cluster.agent.NodeAgent` obeys a power-off request for itself, and it takes
part in the Lease election. The leader reads the cluster, asks the pure planner what to shed, and carries out
*one* step at a time, each resumable from the records on the Node objects. :class:`ClusterController` is the
per-poll order; the steps live with their state:

1. nodes already in progress (a drain or power-off the previous leader started) are finished first, and a
   shed node that is Ready again is rejoined (:meth:`~piclusterd.cluster.shedding.Shedder.resume`);
2. then the plan's first action whose drain has not failed recently: drain, then power off
   (:meth:`~piclusterd.cluster.shedding.Shedder.shed`); the leader's own node is handed over instead;
3. with nothing to shed, a rotation the plan asks for (``Plan.power_on``: on battery, a charged shed node
   comes back to relieve one whose own battery runs low; :meth:`~piclusterd.cluster.restoring.Restorer.rotate`),
   through the same power-on path;
4. with nothing to shed, the restore policy (:func:`~piclusterd.core.restore.decide_restore`) may power one shed
   node back on through its :class:`~piclusterd.cluster.power_on_backends.NodePower` backend
   (:meth:`~piclusterd.cluster.restoring.Restorer.restore`). Nodes powered on less than ``restore_after`` ago
   are passed to the planner as *settling*: it does not shed them (anti-flap).

What the leader says about its plan (``plan.decided`` on change, the planned Events, a node's own battery
unknown) is :class:`~piclusterd.cluster.plan_report.PlanReporter`'s. In ``dry-run`` the leader plans, logs
``plan.decided`` and emits Events, and changes nothing. ``fence`` (the elector's ``ensure_leader``) runs before
every destructive call, so a leader that lost its lease stops.

Whatever goes wrong in the cluster side is contained in :meth:`ClusterController.tick`: an unexpected exception
is logged once with its traceback (``cluster.tick_failed``) and counted, the daemon's power loop and local
protection go on, and ``TICK_FAILURES_WARNED`` failures in a row raise a Warning Event (``ClusterTickFailing``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import replace

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import Attempt, LeaseElector, Transition
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_coordinator import OutageCoordinator
from piclusterd.cluster.plan_report import PlanReporter
from piclusterd.cluster.power_off_request import PeerPowerOff
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.restoring import Restorer
from piclusterd.cluster.scaler import StoppedWorkStore, WorkScaler
from piclusterd.cluster.shedding import Shedder, ShedRecords
from piclusterd.config.settings import ShedSettings
from piclusterd.core.cluster_view import ClusterView, ShedState, ValueRefused, parse_kubectl_list
from piclusterd.core.errors import ClusterError, DaemonStopping, NotLeader
from piclusterd.core.node_batteries import NodeBatteries, read_node_batteries
from piclusterd.core.planner import Plan, plan
from piclusterd.core.ports import Clock
from piclusterd.core.power_draw import PowerSituation
from piclusterd.core.power_on_record import POWER_ON_ANNOTATION
from piclusterd.core.power_state import BATTERY_STATES, PowerMemory, PowerState
from piclusterd.core.restore import KeptOff, RestoreInputs, smallest_set_after_full_shutdown
from piclusterd.node.audit import AuditLogger
from piclusterd.node.power_publisher import PowerPublisher
from piclusterd.node.source_alarm import SourceAlarm

__all__ = ["ClusterController"]

#: The tier given to the leader's own node: shed last among equally good plans.
LEADER_TIER = 1_000_000

#: Unexpected failures of the cluster side in a row that raise a Warning Event (one, until a tick succeeds).
TICK_FAILURES_WARNED = 3

#: Plan on change: on battery with no input changed, the leader plans again after this long (the grace period
#: and the projected runtime move with time); a charge step of this many points counts as a change.
BATTERY_REPLAN_S = 5.0
CHARGE_STEP_PCT = 1.0


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
        planned: Callable[[float], None] | None = None,
    ) -> None:
        self._identity = identity
        self._on_planned = planned  # told how long each plan took (the metrics' planner duration)
        self._api = api
        self._elector = elector
        self._agent = agent
        if outage is None and settings.policy.can_stop_work:
            # The stopped-work record lives beside the outage record: without it, no plan counts on a stop.
            settings = replace(settings, policy=replace(settings.policy, can_stop_work=False))
        self._settings = settings
        self._publisher = publisher
        self._outage = outage
        self._elector_lease_s = float(elector.timings.lease_duration_s)
        self._clock = clock
        self._log = log.bind(component="cluster")
        self._on_battery_since: float | None = None
        self._stand_down_until = float("-inf")
        self._started_at = clock.monotonic()
        self._elected_at = float("-inf")  # the last Lease read or write (one per retry period)
        self._planned: tuple[object, ...] | None = None  # the inputs of the last leader round (plan on change)
        self._planned_at = float("-inf")
        self._busy = True  # something shed, being shed, coming back, or an outage under way: lead every round
        self._events = events
        self._failures_in_a_row = 0
        self._tracebacks_logged: set[str] = set()
        self._refused_reported: dict[tuple[str, str], str] = {}
        self._kept_off_said: tuple[str, ...] = ()
        self._lease_causes_reported: set[tuple[str, int | None]] = set()
        self._lease_distrust_reported: str | None = None
        #: Unexpected exceptions contained by :meth:`tick` since this controller started.
        self.tick_failures = 0
        self.last_plan: Plan | None = None
        self._source_alarm = SourceAlarm(identity, events, self._log)  # UPS data lost/back: a Node Event
        self._reporter = PlanReporter(
            identity=identity, events=events, log=self._log, dry_run=settings.dry_run, topology=settings.topology
        )
        backends = power_on if power_on is not None else PowerOnBackends({})
        # One, so an unreadable or forged record is said once; records are signed as our requests are.
        records = ShedRecords(events, self._log, signer=power_off.signer, verifier=agent.verifier)
        self._records = records
        self._restoring = Restorer(
            api=api,
            elector=elector,
            power_on=backends,
            records=records,
            events=events,
            policy=replace(settings.restore, tiers=settings.policy.tiers, default_tier=settings.policy.default_tier),
            clock=clock,
            log=self._log,
        )
        self._scaler = WorkScaler(
            api=api,
            store=StoppedWorkStore(
                api,
                outage.namespace if outage is not None else "",
                self._log,
                signer=power_off.signer,
                verifier=agent.verifier,
            ),
            elector=elector,
            events=events,
            clock=clock,
            log=self._log,
        )
        self._shedding = Shedder(
            identity=identity,
            api=api,
            elector=elector,
            drainer=drainer,
            power_off=power_off,
            power_on=backends,
            records=records,
            events=events,
            clock=clock,
            log=self._log,
            rejoined=self._restoring.settle,
            policy=settings.policy,
        )

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

    def apply_mode(self, *, dry_run: bool) -> None:
        """``mode`` from a reload, from the next tick on: dry-run plans and reports, and takes no step (a drain
        or power-off under way is not resumed; its record stays on the Node for a later enforce leader)."""
        if dry_run == self._settings.dry_run:
            return
        self._settings = replace(self._settings, dry_run=dry_run)
        self._reporter.apply_mode(dry_run=dry_run)
        if self._outage is not None:
            self._outage.apply_mode(dry_run=dry_run)
        self._log.warning("cluster.mode_changed", mode="dry-run" if dry_run else "enforce", leader=self.is_leader)

    def fence(self) -> None:
        """Raise NotLeader unless our lease is fresh: called right before every destructive step."""
        self._elector.ensure_leader()

    def tick(self, power: PowerMemory, measured_load_w: float | None) -> None:
        """One round: obey requests for this node, renew or seek the lease, and lead if we hold it.

        Never raises but :class:`~piclusterd.core.errors.DaemonStopping` (the daemon is asked to stop) and
        ``BaseException``s that are not errors: the cluster side must never take this node's protection down.
        """
        try:
            self._tick(power, measured_load_w)
        except DaemonStopping:
            raise
        except Exception as error:
            self._contain(error)
            return
        self._failures_in_a_row = 0

    def _contain(self, error: Exception) -> None:
        """An unexpected exception: its traceback once per place and kind, a count, and a Warning Event at
        ``TICK_FAILURES_WARNED`` in a row."""
        self.tick_failures += 1
        self._failures_in_a_row += 1
        frames = traceback.extract_tb(error.__traceback__)
        kind = type(error).__name__
        where = f"{kind} at {frames[-1].filename}:{frames[-1].lineno}" if frames else kind
        if where not in self._tracebacks_logged:
            self._tracebacks_logged.add(where)
            self._log.error(
                "cluster.tick_failed",
                error=repr(error)[:500],
                failures=self.tick_failures,
                traceback="".join(traceback.format_exception(error))[-4000:],
            )
        if self._failures_in_a_row == TICK_FAILURES_WARNED:
            try:
                self._events.emit(
                    self._identity,
                    "ClusterTickFailing",
                    f"piclusterd's cluster side failed {self._failures_in_a_row} polls in a row ({repr(error)[:200]}); "
                    "this node's own power protection keeps running. See journalctl -u piclusterd.",
                    warning=True,
                )
            except Exception as event_error:  # the API may be what fails: the journal has it anyway
                self._log.warning("cluster.api_failed", step="report failing polls", error=repr(event_error)[:200])

    def _tick(self, power: PowerMemory, measured_load_w: float | None) -> None:
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
            self._agent.tick(power.state)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="check own power-off requests", error=str(error))
        if now < self._stand_down_until:
            return  # we handed the lease over so another node can shed this one: let it take over
        if now - self._elected_at >= self._elector.timings.retry_period_s:
            # client-go's pace: the Lease is read (and renewed) once per retry period, not once per poll.
            self._elected_at = now
            attempt = self._elector.try_acquire_or_renew()
            self._report_lease(attempt)
            if attempt.transition is Transition.ACQUIRED:
                self._log.info("leader.acquired", holder=attempt.holder)
                self._planned = None  # a new leader plans at once
            elif attempt.transition is Transition.LOST:
                why = attempt.error or "lease not renewed in time"
                self._log.warning("leader.lost", holder=attempt.holder, why=why)
            if not attempt.leader:
                return
        elif not self._elector.is_leader(now):
            return
        if not self._worth_leading(power, now):
            return
        try:
            self._lead(power, measured_load_w, now)
        except NotLeader as error:
            self._log.warning("leader.lost", holder=None, why=str(error))
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="lead", error=str(error))

    def _worth_leading(self, power: PowerMemory, now: float) -> bool:
        """Plan on change (issue 17): lead when an input changed (the power state, a charge step, an object the
        watches brought: a Node, its records, a pod, a PDB, the outage record), or the mode; on battery at least
        every ``BATTERY_REPLAN_S`` besides (the grace period and the runtime move with time); on mains only
        while something is shed, being shed or coming back (the restore pacing runs on time). Without watches
        (the simulator), every round."""
        changes = self._api.changes
        if changes is None:
            return True
        reading = power.last_reading
        charge = None if reading is None or reading.charge_pct is None else reading.charge_pct // CHARGE_STEP_PCT
        inputs = (power.state, charge, changes, self._settings.dry_run)
        if inputs != self._planned:
            return True
        if power.state in BATTERY_STATES:
            return now - self._planned_at >= BATTERY_REPLAN_S
        return self._busy

    def _lead(self, power: PowerMemory, measured_load_w: float | None, now: float) -> None:
        """One leader step, in order; the first that acts ends the poll."""
        changes = self._api.changes
        view = self._records.checked_view(parse_kubectl_list(self._api.snapshot()))
        reading = power.last_reading
        charge = None if reading is None or reading.charge_pct is None else reading.charge_pct // CHARGE_STEP_PCT
        self._planned, self._planned_at = (power.state, charge, changes, self._settings.dry_run), now
        self._busy = any(n.shed_state is not ShedState.NONE or POWER_ON_ANNOTATION in n.annotations for n in view.nodes)
        self._report_refused(view)
        if self._outage is not None and self._outage.lead(view, power, measured_load_w):
            self._busy = True
            return  # a full shutdown (or the restart after one) is under way: no shedding now
        decided = self._plan(view, power, measured_load_w, now)
        self._busy = self._busy or bool(decided.actions or decided.power_on) or self._scaler.pending
        self.last_plan = decided
        self._reporter.report(decided)
        if self._outage is not None:
            self._outage.record_notified()  # the plan's message is claimed in the record before any long step
        self._reporter.say_unknown_batteries(view, decided)
        self._reporter.say_role_disagreements(view)
        if self._settings.dry_run:
            self._scaler.stop(decided.scale_down, dry_run=True)  # says what it would stop; writes nothing
            return
        if self._restoring.withdraw_unsent_requests(view, power):
            return
        if self._shedding.resume(view, decided):
            return
        # The plan's stops before its drains: the drained pods then find no replica to replace.
        if decided.scale_down and self._scaler.stop(decided.scale_down, dry_run=False):
            self._busy = True
            return
        action = self._shedding.next_action(decided, now)
        if action is not None and action.node == self._identity:
            self._step_down(now)
            return
        if action is not None:
            self._shedding.shed(view, action)
            return
        if self._restoring.rotate(view, decided, now):
            return
        self._restoring.restore(view, power, now)
        if power.state is PowerState.ONLINE and self._settings.policy.can_stop_work:
            # Stopped work comes back with the restore (or when the outage is over at the latest).
            self._scaler.bring_back(now_allowed=self._restoring.work_may_come_back(now))
            self._busy = self._busy or self._scaler.pending

    def _report_lease(self, attempt: Attempt) -> None:
        """A Lease that cannot be read or written, once per cause (what failed, HTTP status) until it works
        again; a lease whose holder or duration is not believed, once per record."""
        if attempt.unavailable is None:
            self._lease_causes_reported.clear()
        elif attempt.unavailable not in self._lease_causes_reported:
            self._lease_causes_reported.add(attempt.unavailable)
            doing, status = attempt.unavailable
            self._log.error("leader.unavailable", doing=doing, http_status=status, error=attempt.error)
        distrust = None if attempt.decision is None else attempt.decision.distrust
        if distrust is not None and distrust != self._lease_distrust_reported:
            self._log.warning(
                "leader.lease_distrusted",
                holder=attempt.holder,
                why=distrust,
                counted_s=self._elector.timings.lease_duration_s,
            )
        if attempt.decision is not None:
            self._lease_distrust_reported = distrust

    def _report_refused(self, view: ClusterView) -> None:
        """Pod values the snapshot could not read (kept at the pod's defaults): each said once per value."""
        current = {(refused.where, refused.key): refused for refused in view.refused}
        if view.volumes_unchecked:
            # Claims followed to no volume (PVs/PVCs not readable: check the RBAC): where those pods may go
            # is not known, said once per change.
            unchecked = ValueRefused(
                "volumes",
                "persistentvolumeclaims",
                ", ".join(view.volumes_unchecked)[:200],
                "no PersistentVolumeClaim or bound PersistentVolume read for these claims: whether their pods "
                "are pinned to their node (local-path) was not checked; grant list on persistentvolumes and "
                "persistentvolumeclaims (deploy/rbac.yaml)",
            )
            current[(unchecked.where, unchecked.key)] = unchecked
        for key, refused in sorted(current.items()):
            if self._refused_reported.get(key) != refused.value:
                self._log.warning(
                    "cluster.value_refused", object=refused.where, key=refused.key, value=refused.value, why=refused.why
                )
        self._refused_reported = {key: refused.value for key, refused in current.items()}

    def _plan(self, view: ClusterView, power: PowerMemory, measured_load_w: float | None, now: float) -> Plan:
        # Between equally good plans, keep the leader's own node on: a hand-over costs a lease duration.
        policy = replace(self._settings.policy, tiers={**self._settings.policy.tiers, self._identity: LEADER_TIER})
        started = time.perf_counter()  # a duration of our own work, not a decision input: not the injected clock
        decided = plan(
            view,
            self._situation(power, measured_load_w),
            self._settings.battery,
            policy,
            now,
            hardware=self._settings.hardware,
            node_batteries=self._node_batteries(view),
            settling=self._restoring.settling(view, now),
            kept_off=self._kept_off(power),
        )
        if self._on_planned is not None:
            self._on_planned(time.perf_counter() - started)
        return decided

    def _kept_off(self, power: PowerMemory) -> KeptOff | None:
        """The nodes shed before a full shutdown the cluster booted from, kept off while the charge is low
        (:func:`~piclusterd.core.restore.smallest_set_after_full_shutdown`); said once per change."""
        shed = () if self._outage is None else self._outage.shed_before_full_shutdown
        reading = power.last_reading
        kept = smallest_set_after_full_shutdown(
            shed,
            RestoreInputs(power.state, None if reading is None else reading.charge_pct),
            self._settings.restore,
        )
        names = () if kept is None else tuple(sorted(kept.nodes))
        if names != self._kept_off_said:
            self._kept_off_said = names
            why = (
                "no longer kept off: the charge reached restore_min_charge, the outage record closed, or the "
                "battery is critical"
                if kept is None
                else kept.reason
            )
            self._log.warning("restore.kept_off", nodes=list(names), why=why)
            if kept is not None:
                self._events.emit(self._identity, "KeptOffAfterFullShutdown", kept.reason, warning=True)
        return kept

    def _step_down(self, now: float) -> None:
        """A leader never powers itself off mid-plan: it hands the lease over and another node sheds it."""
        self._log.info("leader.stepping_down", why="the plan sheds this node; another node will do it")
        self._elector.release()
        self._stand_down_until = now + self._elector_lease_s

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
            self._reporter.warn_node_capacity_unset(view)
            return None
        return read_node_batteries(
            view,
            self._clock.wall(),
            spec,
            max_age_s=self._settings.power_record_max_age_s,
            topology=self._settings.topology,
        )
