"""The leader's shedding steps: finish a recorded shed, or start the plan's next one (drain, then power off).

Every step is resumable from the shed record on the Node (``picluster.io/shed``,
:mod:`piclusterd.core.node_records`). :meth:`Shedder.resume` finishes, undoes or closes what a previous leader
(or this one) started; :meth:`Shedder.shed` starts a new one: cordon and record, drain
(:class:`~piclusterd.cluster.drain.Drainer`), then the power-off request with its SSH fallback
(:class:`~piclusterd.cluster.power_off_request.PeerPowerOff`). A node whose drain failed is skipped by
:meth:`Shedder.next_action` for ``DRAIN_RETRY_AFTER_S``. :class:`ShedRecords` reads the records for these steps
and for the restoring ones (:mod:`piclusterd.cluster.restoring`), saying each unreadable one once.
"""

from __future__ import annotations

from collections.abc import Callable

from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.power_off_request import PeerPowerOff, PowerOffOutcome
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.core.authority import LeaseView
from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    InvalidRecord,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    rfc3339,
)
from piclusterd.core.planner import Decision, Plan, PlannerPolicy, ShedNode
from piclusterd.core.ports import Clock
from piclusterd.core.power_on_record import POWER_ON_ANNOTATION, PowerOnRecord, PowerOnStep, render_power_on_record
from piclusterd.core.safety import Refusal, check_resume
from piclusterd.node.audit import AuditLogger

__all__ = ["DRAIN_RETRY_AFTER_S", "ShedRecords", "Shedder"]

#: After a drain fails, the node is not tried again for this long (the planner goes on to the next one).
DRAIN_RETRY_AFTER_S = 600.0


class ShedRecords:
    """The shed records on the Nodes, read and written signed.

    One that cannot be read is said once (journal + Warning Event ``ShedRecordInvalid``) and left; one that does
    not verify (unsigned, another key, a term the Lease has not reached, the current term of another holder:
    :func:`~piclusterd.core.authority.check_record`) is said once (``cluster.record_refused``, Warning Event
    ``RecordRefused``) and left too: its node is never drained, powered off, powered on or uncordoned for it.
    """

    def __init__(
        self, events: EventRecorder, log: AuditLogger, *, signer: RequestSigner, verifier: RequestVerifier
    ) -> None:
        self._events = events
        self._log = log
        self._signer = signer
        self._verifier = verifier
        self._invalid_reported: dict[str, str] = {}

    def render(self, node: str, record: ShedRecord) -> str:
        """``record`` as ``node``'s annotation, signed by us in our term (NotLeader if we do not lead)."""
        return self._signer.shed_record(node, record)

    def checked_view(self, view: ClusterView) -> ClusterView:
        """``view`` with every record that does not verify read as unreadable (never acted on by the planner)."""
        refused = {node.name for node in view.nodes if SHED_ANNOTATION in node.annotations} - set(self.read(view))
        return view.with_shed_unreadable(refused) if refused else view

    def read(self, view: ClusterView) -> dict[str, ShedRecord]:
        found: dict[str, ShedRecord] = {}
        lease: LeaseView | None = None
        lease_read = False
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
            if not lease_read:  # once per read, fresh, and only when there is a record to check
                lease, lease_read = self._verifier.lease_view(), True
            if self._verifier.check_shed_record(node.name, parsed, lease) is not None:
                continue
            found[node.name] = parsed
        return found


class Shedder:
    """The leader's shedding: one step per call, each written on the Node before it is taken.

    ``rejoined`` is told the name of a shed node that came back and rejoined, so it settles (anti-flap).
    """

    def __init__(
        self,
        *,
        identity: str,
        api: KubeClusterApi,
        elector: LeaseElector,
        drainer: Drainer,
        power_off: PeerPowerOff,
        power_on: PowerOnBackends,
        records: ShedRecords,
        events: EventRecorder,
        clock: Clock,
        log: AuditLogger,
        rejoined: Callable[[str], None],
        policy: PlannerPolicy,
    ) -> None:
        """``policy`` holds the safety rules' settings, checked again before each destructive step."""
        self._identity = identity
        self._policy = policy
        self._ours: set[str] = set()  # nodes this leader cordoned and recorded itself, in this daemon's life
        self._refusal_said: dict[str, str] = {}
        self._api = api
        self._elector = elector
        self._drainer = drainer
        self._power_off = power_off
        self._power_on = power_on
        self._records = records
        self._events = events
        self._clock = clock
        self._log = log
        self._rejoined = rejoined
        self._drain_failed_at: dict[str, float] = {}

    def resume(self, view: ClusterView, decided: Plan) -> bool:
        """Finish, undo or close what a previous leader (or this one) started; True if a step was taken.

        Ordered early returns per recorded node:
        - shed and Ready again (someone powered it on, or the UPS restored power): rejoin it;
        - shed and still off: nothing to do here (restoring it is the restore policy's job);
        - mains is back: a drain or an un-acknowledged power-off is undone, never finished;
        - power unknown or a new outage still in its grace period: wait, do nothing;
        - otherwise (still shedding): finish the drain, or the power-off, with the recorded request id.
        """
        online = decided.decision is Decision.HOLD_ONLINE
        for name, record in sorted(self._records.read(view).items()):
            node = view.node(name)
            if record.phase in (ShedPhase.POWERED_OFF, ShedPhase.RESTORING):
                # An rtc-wake node that woke before the restore policy asked it back halts again by itself
                # (agent.decide_check_in): leave it; once asked (restoring), it rejoins.
                wakes_to_check_in = self._power_on.method_for(name) == "rtc-wake"
                if node.ready and not (record.phase is ShedPhase.POWERED_OFF and wakes_to_check_in):
                    self._rejoin(name, record)
                    return True
                continue
            if online:
                acked = node.annotations.get(ACK_ANNOTATION) == record.request_id and bool(record.request_id)
                if record.phase is ShedPhase.POWEROFF_REQUESTED and (acked or not node.ready):
                    continue  # already going down: it rejoins when it is back
                self._elector.ensure_leader()
                self._drainer.roll_back(name, record, clear=(REQUEST_ANNOTATION,))
                self._log.info("node.shed_cancelled", target=name, phase=record.phase.value, why="mains is back")
                self._events.emit(name, "PowerShedCancelled", f"mains is back: {name} stays on")
                return True
            if decided.decision.value.startswith("hold"):
                continue  # unknown power or a new outage's grace period: never act, never undo
            acked = node.annotations.get(ACK_ANNOTATION) == record.request_id and bool(record.request_id)
            going = record.phase is ShedPhase.POWEROFF_REQUESTED and (acked or not node.ready)
            # A drain or a power-off request still to be made: every safety rule again, on this poll's snapshot.
            refusal = None if going else self._recheck(view, name)
            if refusal is not None:
                self._refuse(name, record, refusal)
                continue
            if record.phase is ShedPhase.DRAINING:
                self._log.info("node.drain_resumed", target=name, leader_was=record.leader)
                self._drain_and_power_off(name, record)
                return True
            self._log.info("node.poweroff_resumed", target=name, phase=record.phase.value)
            self._power_off.power_off(name, record)
            return True
        return False

    def next_action(self, decided: Plan, now: float) -> ShedNode | None:
        """The plan's first action whose drain has not failed in the last ``DRAIN_RETRY_AFTER_S``."""
        for action in decided.actions:
            failed_at = self._drain_failed_at.get(action.node)
            if failed_at is not None and now - failed_at < DRAIN_RETRY_AFTER_S:
                continue
            return action
        return None

    def shed(self, view: ClusterView, action: ShedNode) -> None:
        """Start shedding ``action.node``: record and drain it, then ask it to power off."""
        name = action.node
        self._ours.add(name)
        record = ShedRecord(
            ShedPhase.DRAINING,
            self._identity,
            action.reason,
            rfc3339(self._clock.wall()),
            was_unschedulable=view.has_node(name) and view.node(name).unschedulable,
        )
        self._drain_and_power_off(name, record)

    def _recheck(self, view: ClusterView, name: str) -> Refusal | None:
        policy = self._policy
        return check_resume(
            view,
            name,
            min_nodes=policy.min_nodes,
            allow_unreplicated=policy.allow_unreplicated,
            evict_emptydir=policy.evict_emptydir,
            priority_threshold=policy.critical_priority_threshold,
            allow_pending_noncritical=policy.may_give_up_noncritical,
        )

    def _refuse(self, name: str, record: ShedRecord, refusal: Refusal) -> None:
        """A recorded shed a rule now forbids: said once (journal + Warning Event), and the node left alone.

        Only a node this leader cordoned itself is rolled back (uncordoned, record dropped): a record found on
        a Node cannot prove who cordoned it (it may be forged), so anything else stays as it is, for a person.
        """
        ours = name in self._ours
        said = f"{record.phase.value}:{refusal.rule.value}"
        if self._refusal_said.get(name) != said:
            self._refusal_said[name] = said
            self._log.error(
                "node.shed_refused_on_resume",
                target=name,
                phase=record.phase.value,
                leader_was=record.leader,
                rule=refusal.rule.value,
                why=refusal.detail,
                rolled_back=ours,
            )
            self._events.emit(
                name,
                "ShedRefused",
                f"recorded shed ({record.phase.value}, by {record.leader}) not finished: {refusal.detail}. "
                + ("Rolled back." if ours else "Node left as it is: check the picluster.io/shed record."),
                warning=True,
            )
        if ours:
            self._elector.ensure_leader()
            self._drainer.roll_back(name, record, clear=(REQUEST_ANNOTATION,))
            self._ours.discard(name)

    def _rejoin(self, name: str, record: ShedRecord) -> None:
        """A shed node is back and Ready: uncordon it (only if we cordoned it) and clear our records."""
        self._elector.ensure_leader()
        # The power-on record says it is back: whoever leads next lets it settle too (anti-flap).
        back = render_power_on_record(PowerOnRecord(PowerOnStep.BACK, rfc3339(self._clock.wall())))
        annotations = {SHED_ANNOTATION: None, REQUEST_ANNOTATION: None, ACK_ANNOTATION: None, POWER_ON_ANNOTATION: back}
        patch: dict[str, object] = {"metadata": {"annotations": annotations}}
        if not record.was_unschedulable:
            patch["spec"] = {"unschedulable": None}
        self._api.patch_node(name, patch)
        self._log.info("node.restored", target=name, uncordoned=not record.was_unschedulable, shed_at=record.started_at)
        self._events.emit(name, "PowerRestored", f"{name} is back and schedulable again")
        self._rejoined(name)

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
        # The drain took time, and the cluster changed meanwhile: the rules again, on a new snapshot, before
        # the power-off (the one step that cannot be taken back).
        refusal = self._recheck(parse_kubectl_list(self._api.snapshot()), name)
        if refusal is not None:
            self._refuse(name, drained, refusal)
            return
        outcome = self._power_off.power_off(name, drained)
        if outcome.outcome is not PowerOffOutcome.POWERED_OFF:
            self._log.warning("node.shed_incomplete", target=name, outcome=outcome.outcome.value)
