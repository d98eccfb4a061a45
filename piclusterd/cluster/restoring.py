"""The leader's power-on steps: bring shed nodes back through their backends, on mains or to rotate on battery.

:class:`Restorer` keeps the restore policy's memory (:class:`~piclusterd.core.restore.RestoreMemory`) and takes
at most one power-on per poll: :meth:`Restorer.rotate` when the plan asks a charged shed node back on battery to
relieve a low one (:func:`~piclusterd.core.restore.decide_rotation`), else :meth:`Restorer.restore` when the
restore policy says mains held long enough (:func:`~piclusterd.core.restore.decide_restore`). Either way the
shed record turns ``restoring`` (fence first) before the node's
:class:`~piclusterd.cluster.power_on_backends.NodePower` backend is called; the shedding steps rejoin the node
once it is Ready (:meth:`~piclusterd.cluster.shedding.Shedder.resume`) and it then settles (:meth:`Restorer.settle`):
:meth:`Restorer.settling` names the nodes the planner must not shed again yet (anti-flap). It also withdraws
requests nothing was sent for when mains fails again, and says once when a power-on goes unanswered.

The pacing is read back from the Nodes before each decision (:mod:`piclusterd.core.power_on_record`: each
power-on asked, failed or back leaves a record in the same patch), so a new leader paces as the old one would
have; the leader removes a record once it is ``restore_after`` old.
"""

from __future__ import annotations

import datetime
from dataclasses import replace

from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_close import SUMMARY_WAIT_S
from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.cluster.power_on_backends import PowerOutcome, RtcWakePower
from piclusterd.cluster.shedding import ShedRecords
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_records import SHED_ANNOTATION, ShedPhase, rfc3339
from piclusterd.core.planner import Plan
from piclusterd.core.ports import Clock
from piclusterd.core.power_on_record import (
    MIN_RETRY_S,
    POWER_ON_ANNOTATION,
    PowerOnRecord,
    PowerOnStep,
    is_spent,
    recall_power_ons,
    render_power_on_record,
    retry_hold_s,
)
from piclusterd.core.power_state import BATTERY_STATES, PowerMemory
from piclusterd.core.restore import (
    PowerOn,
    RestoreHold,
    RestoreInputs,
    RestoreMemory,
    RestorePolicy,
    decide_restore,
    decide_rotation,
)
from piclusterd.node.audit import AuditLogger

__all__ = ["MIN_POWER_ON_RETRY_S", "POWER_ON_ANSWER_S", "ROTATION_REASON_PREFIX", "Restorer"]

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

#: The restore policy's holds under which nothing comes back yet (the others are its pacing).
_NOT_YET_BACK = frozenset(
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
MIN_POWER_ON_RETRY_S = MIN_RETRY_S

#: A shed record whose reason starts so was asked back on battery, to relieve a low node (rotation; the
#: planner's ``PowerOnNode.reason`` starts so): mains failing is not a reason to withdraw it.
ROTATION_REASON_PREFIX = "rotation:"


class Restorer:
    """The leader's power-ons and their pacing. ``policy``: the restore policy, with the planner's tiers (a
    restore brings the highest tier back first)."""

    def __init__(
        self,
        *,
        api: KubeClusterApi,
        elector: LeaseElector,
        power_on: PowerOnBackends,
        records: ShedRecords,
        events: EventRecorder,
        policy: RestorePolicy,
        clock: Clock,
        log: AuditLogger,
    ) -> None:
        self._api = api
        self._elector = elector
        self._power_on = power_on
        self._records = records
        self._events = events
        self._policy = policy
        self._clock = clock
        self._log = log
        self._memory = RestoreMemory()
        self._hold_said: RestoreHold | None = None
        self._unanswered_said: dict[str, str] = {}  # node -> changed_at of the restoring record said

    def recall(self, view: ClusterView, now: float) -> None:
        """Fold the power-on records on the Nodes into the memory (what a previous leader did, too)."""
        self._memory = recall_power_ons(self._memory, view, now, self._clock.wall(), self._policy)

    def settling(self, view: ClusterView, now: float) -> frozenset[str]:
        """Nodes powered on or rejoined less than restore_after ago, by this leader or (from the records) by
        another: not to be shed (anti-flap)."""
        self.recall(view, now)
        memory = self._memory
        return frozenset(name for name, at in memory.powered_on_at.items() if now - at < self._policy.restore_after_s)

    def settle(self, name: str) -> None:
        """A shed node is back, however it came (restore, a button, the UPS power-cycling, its RTC alarm): it
        settles for ``restore_after`` from now, so the planner does not shed it again straight away."""
        memory, now = self._memory, self._clock.monotonic()
        self._memory = replace(memory, powered_on_at={**memory.powered_on_at, name: now})

    def work_may_come_back(self, now: float) -> bool:
        """Whether the non-critical work stopped during the outage comes back now (``cluster.scaler``): once
        the last :meth:`restore` found mains back long enough and the charge high enough to bring shed nodes
        back (whether or not any is left to), or mains has been back ``SUMMARY_WAIT_S``, when the outage ends
        at the latest (``cluster.outage_close``)."""
        memory = self._memory
        if memory.hold not in _NOT_YET_BACK:
            return True
        return memory.mains_back_since is not None and now - memory.mains_back_since >= SUMMARY_WAIT_S

    def withdraw_unsent_requests(self, view: ClusterView, power: PowerMemory) -> bool:
        """Mains failed again before a node asked back came up, and nothing was sent to it (``manual``: nobody
        pressed the button yet; ``rtc-wake``: it wakes by itself): withdraw the request (record back to
        ``powered_off``), so nobody powers it on during an outage, an rtc-wake node halts again when it wakes,
        and the planner counts it as off. The other methods' requests stand: the node may be booting, and a
        second relay pulse could switch it off."""
        if power.state not in BATTERY_STATES:
            return False
        withdrawn = False
        for name, record in sorted(self._records.read(view).items()):
            method = self._power_on.method_for(name)
            if record.phase is not ShedPhase.RESTORING or method not in ("manual", "rtc-wake") or view.node(name).ready:
                continue
            if record.reason.startswith(ROTATION_REASON_PREFIX):
                continue  # asked back on battery on purpose (rotation): the outage is why, not a reason to withdraw
            self._elector.ensure_leader()
            back = record.with_phase(ShedPhase.POWERED_OFF, rfc3339(self._clock.wall()))
            self._api.patch_node(
                name, {"metadata": {"annotations": {SHED_ANNOTATION: self._records.render(name, back)}}}
            )
            self._log.info("node.power_on_withdrawn", target=name, method=method, why="mains failed again")
            after = "do not power it on now; piclusterd will say when" if method == "manual" else "it stays shed"
            self._events.emit(name, "PowerOnWithdrawn", f"mains failed again: {name} {after}")
            withdrawn = True
        return withdrawn

    def rotate(self, view: ClusterView, decided: Plan, now: float) -> bool:
        """The plan asks a charged shed node back, on battery, to relieve a low one (rotation): power it on
        through the same path as a restore (``_power_on_node``), paced by the same anti-flap and stagger
        rules (:func:`~piclusterd.core.restore.decide_rotation`). True if a node was asked to power on. The low node
        is shed by a later plan, once the returning one is Ready and rejoined (``Shedder.resume``)."""
        if not decided.power_on:
            return False
        wanted = [(p.node, p.reason) for p in decided.power_on]
        self.recall(view, now)
        self._memory, actions = decide_rotation(view, wanted, self._policy, self._memory, now)
        for action in actions:
            self._power_on_node(view, action, rotation=True)
        return bool(actions)

    def restore(self, view: ClusterView, power: PowerMemory, now: float) -> None:
        """Nothing else to do this poll: ask the restore policy whether a shed node comes back, and do it.

        At most one power-on per poll. The shed record turns ``restoring`` (fence first) before the backend is
        called, so a new leader knows; ``Shedder.resume`` rejoins the node once it is Ready. A backend that fails
        puts the record back to ``powered_off``, says so (journal + Warning Event), and is tried again
        ``2 x restore_stagger`` later: the next shed node goes first, one ``restore_stagger`` after the failure,
        so a node whose backend cannot work (its relay's ``via`` node is shed too) does not keep the others off.
        """
        reading = power.last_reading
        inputs = RestoreInputs(power.state, None if reading is None else reading.charge_pct)
        self._say_unanswered(view)
        self._remove_spent_records(view)
        self.recall(view, now)
        self._memory, actions = decide_restore(view, inputs, self._policy, self._memory, now)
        hold = self._memory.hold
        if hold in _HOLDS_WORTH_SAYING and hold is not self._hold_said and self._memory.off_since:
            self._hold_said = hold
            self._log.info("restore.waiting", why=hold.value, shed=sorted(self._memory.off_since))
        for action in actions:
            self._power_on_node(view, action)

    def _retry_later(self, name: str) -> None:
        """After a failed power-on: hold ``name`` for ``2 x restore_stagger`` (at least ``MIN_POWER_ON_RETRY_S``;
        not ``restore_after``, as after a power-on that worked), so the next shed node has its turn first and
        this one is tried again after it."""
        policy, memory = self._policy, self._memory
        now = self._clock.monotonic()
        hold = retry_hold_s(policy)
        held_from = now - policy.restore_after_s + hold  # held while now - at < restore_after
        self._memory = replace(memory, powered_on_at={**memory.powered_on_at, name: held_from})

    def _remove_spent_records(self, view: ClusterView) -> None:
        """Power-on records ``restore_after`` old hold nothing any more: removed (on mains, nothing else to do)."""
        wall = self._clock.wall()
        for node in view.nodes:
            raw = node.annotations.get(POWER_ON_ANNOTATION)
            if raw is None or not is_spent(raw, wall, self._policy):
                continue
            self._elector.ensure_leader()
            self._api.patch_node(node.name, {"metadata": {"annotations": {POWER_ON_ANNOTATION: None}}})

    def _say_unanswered(self, view: ClusterView) -> None:
        """A power-on long without an answer (still not Ready): say so once, loudly; do not power on again."""
        for name, record in self._records.read(view).items():
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
        record = self._records.read(view).get(name)
        if record is None or record.phase is not ShedPhase.POWERED_OFF:
            return  # the restore policy picks powered_off nodes only: the record changed under us
        backend = self._power_on.backend_for(name)
        self._elector.ensure_leader()
        restoring = record.with_phase(ShedPhase.RESTORING, rfc3339(self._clock.wall()))
        reason = action.reason
        if rotation:
            reason = reason if reason.startswith(ROTATION_REASON_PREFIX) else f"{ROTATION_REASON_PREFIX} {reason}"
            restoring = replace(restoring, reason=reason)
        asked = render_power_on_record(PowerOnRecord(PowerOnStep.ASKED, restoring.changed_at))
        annotations = {SHED_ANNOTATION: self._records.render(name, restoring), POWER_ON_ANNOTATION: asked}
        self._api.patch_node(name, {"metadata": {"annotations": annotations}})
        try:
            result = backend.power_on(name)
        except Exception as error:  # whatever a backend's library raises: said and retried, never the loop's end
            failed = render_power_on_record(PowerOnRecord(PowerOnStep.FAILED, rfc3339(self._clock.wall())))
            back = {SHED_ANNOTATION: self._records.render(name, record), POWER_ON_ANNOTATION: failed}
            self._api.patch_node(name, {"metadata": {"annotations": back}})
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
