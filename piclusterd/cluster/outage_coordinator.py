"""The leader's view of a whole outage: keep its record, run the orderly full shutdown, undo it after the boot.

:class:`OutageCoordinator` has one entry point for the leader, :meth:`OutageCoordinator.lead`, called by the
cluster controller every poll before it plans any shedding, and one for every node's daemon,
:meth:`OutageCoordinator.defer_local_shutdown` (the daemon's :class:`~piclusterd.node.daemon.LocalShutdownGate`).

As leader, each poll, in order:

- on battery with no record: start the outage record (ConfigMap ``piclusterd-outage``);
- fold the poll into it: energy drawn, nodes shed, critical-service downtime (written at least every minute);
- the cluster has booted again after a full shutdown (this Pi booted after the full shutdown began):
  uncordon what the full shutdown cordoned, clear our stale annotations, close the outage once mains is back;
- a full shutdown is under way, or this node is ``critical``: take its next step
  (:mod:`piclusterd.core.full_shutdown_order`).
  Like upsmon's forced shutdown it is never called off half-way, even if mains returns: the UPS's
  shutdown-return then power-cycles the Pis, which boot by themselves, instead of some staying halted;
- mains back and nothing of ours left on any node: log ``outage.summary`` once, delete the record.

Only the full-shutdown steps return True (the controller then sheds nothing this poll).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from piclusterd.cluster.agent import LocalShutdownTrigger
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.power_off_request import PeerPowerOff, PowerOffOutcome, node_is_ready
from piclusterd.cluster.power_on_backends import PowerOutcome, PowerResult
from piclusterd.config.settings import FullShutdownSettings
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.errors import ClusterError
from piclusterd.core.full_shutdown_order import (
    ClusterContact,
    Cordon,
    PowerOffLastMembers,
    PowerOffPeer,
    RequestUpsReturn,
    RunHook,
    Step,
    WaitFor,
    local_shutdown_deferral,
    next_step,
    planned_steps,
)
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    InvalidRecord,
    PowerOffRequest,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    render_poweroff_request,
    render_shed_record,
    rfc3339,
)
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OUTAGE_KEY,
    FullShutdownProgress,
    OutageRecord,
    account,
    critical_workloads_down,
    parse_outage_record,
    parse_rfc3339,
    render_outage_record,
    summary_fields,
)
from piclusterd.core.ports import Clock
from piclusterd.core.power_state import BATTERY_STATES, PowerMemory, PowerState
from piclusterd.node.audit import AuditLogger

__all__ = ["CommandRunner", "OutageCoordinator", "UpsShutdownReturn"]

#: The record is written when something in it changes, and at least this often for the energy figure.
SAVE_EVERY_S = 60.0

#: After mains returns, the summary waits this long at most for every critical workload to be Ready again.
SUMMARY_WAIT_S = 600.0

#: Mains must have held this long before an outage is over: a flapping mains (brownout) is one outage.
MAINS_SETTLE_S = 60.0

FULL_SHUTDOWN_REASON = "full shutdown: the battery is about to end"


def _going_dark(record: OutageRecord, now: float) -> OutageRecord:
    """The last nodes are going down: every critical service is down from now until the boot after it.

    Written while the API still answers; nobody observes the dark hours, but they are downtime all the same.
    """
    return record if record.critical_down_since else replace(record, critical_down_since=rfc3339(now))


class CommandRunner(Protocol):
    """Runs an argv without a shell and returns its exit status (``shutdown_command.CommandShutdown``)."""

    def run(self, argv: Sequence[str]) -> int: ...


class UpsShutdownReturn(Protocol):
    """Asks the UPS to cut its output after ``delay_s`` and restore it when mains returns
    (``node_power.request_ups_shutdown_return`` with this node's ``[ups]`` settings)."""

    def __call__(self, delay_s: float) -> PowerResult: ...


@dataclass(frozen=True, slots=True)
class _Stored:
    record: OutageRecord
    resource_version: str


class OutageCoordinator:
    def __init__(
        self,
        *,
        identity: str,
        api: KubeClusterApi,
        elector: LeaseElector,
        drainer: Drainer,
        power_off: PeerPowerOff,
        events: EventRecorder,
        local: LocalShutdownTrigger,
        hook_runner: CommandRunner,
        ups_return: UpsShutdownReturn | None,
        settings: FullShutdownSettings,
        clock: Clock,
        sleep: Callable[[float], None],
        log: AuditLogger,
        tick: Callable[[], None] = lambda: None,
        booted_wall: float | None = None,
    ) -> None:
        """``tick`` runs after each sleep of a long wait (an acknowledgement): cli.py's keep_alive, a power poll,
        the watchdog ping and the lease renewal, as for ``Drainer`` and ``PeerPowerOff``. ``booted_wall``: when
        this machine booted (``clock.boot_wall_time``); None: this daemon's start stands for it."""
        self._identity = identity
        self._api = api
        self._elector = elector
        self._drainer = drainer
        self._power_off = power_off
        self._events = events
        self._local = local
        self._hook_runner = hook_runner
        self._ups_return = ups_return
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._tick = tick
        self._log = log.bind(component="outage")
        self._mine: _Stored | None = None  # the record as this node last wrote it
        self._saved_at = float("-inf")
        self._invalid_reported: str | None = None
        self._last_step: Step | None = None
        self._dry_run_reported = False
        # This machine's boot: after a full shutdown began means the cluster went down and booted since. Not the
        # daemon's start: a watchdog or apt restart of the leader mid full shutdown must not undo it.
        self._started_wall = clock.wall() if booted_wall is None else booted_wall

    # --- every node: should a critical node wait for the leader? ------------------------------------

    def defer_local_shutdown(self, critical_for_s: float) -> str | None:
        """Why this critical node waits for the leader's request (None: power off now). Never raises."""
        if self._settings.dry_run:
            return None
        try:
            # Read without touching self._mine: the daemon asks from a thread of its own, and may leave it
            # behind, hung, while the leader's poll goes on with the record.
            found = self._api.read_configmap(self._settings.namespace, OUTAGE_CONFIGMAP)
            reachable = True
        except ClusterError:
            found, reachable = None, False
        parsed = None if found is None else parse_outage_record(str((found.get("data") or {}).get(OUTAGE_KEY, "")))
        contact = ClusterContact(
            identity=self._identity,
            api_reachable=reachable,
            live_leader=self._elector.live_holder(),
            full_shutdown=isinstance(parsed, OutageRecord) and parsed.full_shutdown is not None,
        )
        return local_shutdown_deferral(contact, critical_for_s)

    def report_self_protection(self, message: str) -> None:
        """A warning Event on this node: it stopped waiting for the leader and powers itself off."""
        self._events.emit(self._identity, "LocalShutdownAfterWait", message, warning=True)

    # --- the leader, every poll ------------------------------------------------------------------------

    def lead(self, view: ClusterView, power: PowerMemory, measured_load_w: float | None) -> bool:
        """Keep the outage record and run the full shutdown or the restart after it; True if it took a step."""
        if self._settings.dry_run:
            self._report_dry_run(view, power)
            return False
        try:
            stored = self._read()
        except ClusterError as error:
            # Shedding must not depend on the record (RBAC not updated for configmaps, say): go on without it.
            self._log.warning("cluster.api_failed", step="read the outage record", error=str(error))
            return False
        if isinstance(stored, InvalidRecord):
            return False  # reported; left alone (a person deletes it: kubectl -n <ns> delete cm piclusterd-outage)
        now = self._clock.wall()
        if stored is None:
            if power.state not in BATTERY_STATES:
                return False
            since = now if power.since is None else now - (self._clock.monotonic() - power.since)
            charge = None if power.last_reading is None else power.last_reading.charge_pct
            stored = _Stored(OutageRecord(rfc3339(since), self._identity, charge), "")
            self._log.warning("outage.started", started_at=stored.record.started_at, charge_pct=charge)
        progress = stored.record.full_shutdown
        booted_since = progress is not None and self._started_wall > parse_rfc3339(progress.started_at)
        booted_again = booted_since and power.state is PowerState.ONLINE
        # Mains back half-way through a full shutdown does not end the outage: the full shutdown goes on. This
        # Pi booted after the full shutdown began: the cluster went down and has booted since; whichever
        # node leads now (one shed hours before included) undoes it, and never goes on with it.
        mains_back = power.state is PowerState.ONLINE and (progress is None or booted_again)
        base = stored.record
        if booted_again and not base.mains_back_at and not base.critical_down_since and base.last_reading_at:
            # The first look after the boot. If the leader did not live to record the cluster going dark (nodes
            # protected themselves), every critical service was down from its last reading at the latest.
            base = replace(base, critical_down_since=base.last_reading_at)
        record = self._observe(base, view, power, measured_load_w, now, mains_back)
        if booted_again:
            self._save(stored, record)
            return self._restart(view, record)
        if booted_since and progress is not None:
            # Booted, and mains failed again before the full shutdown was undone: its steps are history. A new
            # one starts if critical, still owing the restart the cordons the first one made. Otherwise undo it
            # now, before any shedding: its power-off requests on the booted nodes must never be resumed (two
            # control-plane members at once, undrained). Shedding then starts afresh from a plan.
            if power.state is not PowerState.CRITICAL:
                self._save(stored, record)
                return self._restart(view, record, may_close=False)
            progress = None
        if progress is None and power.state is PowerState.CRITICAL:
            owed = () if record.full_shutdown is None else record.full_shutdown.cordoned
            progress = FullShutdownProgress(
                rfc3339(now), self._identity, tuple(sorted(n.name for n in view.nodes)), cordoned=owed
            )
            record = replace(record, full_shutdown=progress)
            self._elector.ensure_leader()
            self._save(stored, record, force=True)
            self._log.critical("shutdown.cluster_started", nodes=list(progress.nodes), reason=power.reason)
            self._events.emit(
                self._identity, "FullShutdown", f"battery critical: {self._identity} powers the cluster off in order"
            )
            stored = self._mine or stored
        if progress is not None:
            self._save(stored, record)
            self._full_shutdown_step(view, self._mine or stored, record, progress)
            return True
        try:
            self._save(stored, record)
            if power.state is PowerState.ONLINE and self._is_over(view, record, now):
                self._close(record, now)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="keep the outage record", error=str(error))
        return False

    def _report_dry_run(self, view: ClusterView, power: PowerMemory) -> None:
        """dry-run: say once per critical spell what the full shutdown would do, and do nothing."""
        if power.state is not PowerState.CRITICAL:
            self._dry_run_reported = False
            return
        if self._dry_run_reported:
            return
        self._dry_run_reported = True
        steps = planned_steps(view, self._identity)
        self._log.warning(
            "shutdown.cluster_planned",
            dry_run=True,
            steps=[
                f"{type(s).__name__} {' '.join(getattr(s, 'nodes', ()) or [getattr(s, 'node', '')])}".strip()
                for s in steps
            ],
        )

    def _observe(
        self,
        record: OutageRecord,
        view: ClusterView,
        power: PowerMemory,
        load_w: float | None,
        now: float,
        mains_back: bool,
    ) -> OutageRecord:
        on_battery = power.state in BATTERY_STATES
        draw = None
        if on_battery and load_w is not None:
            draw = load_w / self._settings.inverter_efficiency + self._settings.ups_overhead_w
        down = bool(critical_workloads_down(view, self._settings.critical_priority))
        record = account(record, now, draw, down)
        requested = () if record.full_shutdown is None else record.full_shutdown.requested
        shed = [n.name for n in view.nodes if SHED_ANNOTATION in n.annotations and n.name not in requested]
        record = replace(record.with_shed(shed), leader=self._identity)
        if mains_back and not record.mains_back_at:
            record = replace(record, mains_back_at=rfc3339(now))
        elif on_battery and record.mains_back_at:
            record = replace(record, mains_back_at="")  # failed again before the outage was over: it goes on
        return record

    # --- the full shutdown -----------------------------------------------------------------------------

    def _full_shutdown_step(
        self, view: ClusterView, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress
    ) -> None:
        step = next_step(view, self._identity, progress)
        if step != self._last_step:
            self._last_step = step
            self._log.warning(
                "shutdown.cluster_step",
                phase=step.phase.value,
                step=type(step).__name__,
                target=getattr(step, "node", None),
                targets=list(getattr(step, "nodes", ())),
            )
        if isinstance(step, Cordon):
            self._cordon(stored, record, progress, step.nodes)
        elif isinstance(step, PowerOffPeer):
            self._power_off_peer(view, stored, record, progress, step)
        elif isinstance(step, PowerOffLastMembers):
            self._power_off_last_members(view, stored, record, progress, step.nodes)
        elif isinstance(step, WaitFor):
            return  # one control-plane node at a time: the next poll looks again
        elif isinstance(step, RunHook):
            self._run_hook(stored, record, progress)
        elif isinstance(step, RequestUpsReturn):
            self._request_ups_return(stored, record, progress, fenced=True)
        else:
            self._save_quietly(stored, _going_dark(record, self._clock.wall()), fenced=True)
            self._shut_down_leader(stored, record, progress)

    def _progress(self, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress, *, fenced: bool) -> None:
        """Write the progress *before* the step it announces (a new leader then never repeats it)."""
        if fenced:
            self._elector.ensure_leader()
        self._save(stored, replace(record, full_shutdown=progress), force=True)

    def _cordon(
        self, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress, nodes: tuple[str, ...]
    ) -> None:
        cordoned = tuple(sorted(set(progress.cordoned) | set(nodes)))
        progress = replace(progress, cordoned=cordoned)
        self._progress(stored, record, progress, fenced=True)
        for name in nodes:
            self._api.patch_node(name, {"spec": {"unschedulable": True}})
        self._log.warning("shutdown.cluster_cordoned", nodes=list(nodes))
        self._progress(self._mine or stored, record, replace(progress, cordon_done=True), fenced=False)

    def _power_off_peer(
        self,
        view: ClusterView,
        stored: _Stored,
        record: OutageRecord,
        progress: FullShutdownProgress,
        step: PowerOffPeer,
    ) -> None:
        name = step.node
        progress = replace(progress, requested=(*progress.requested, name))
        self._progress(stored, record, progress, fenced=True)
        shed = self._shed_record(view, name, progress)
        if step.drain:
            result = self._drainer.drain(name, shed)
            if not result.ok:
                # Clean filesystems now matter more than availability: it goes down anyway, cordoned again.
                self._log.warning("shutdown.cluster_drain_incomplete", target=name, reason=result.reason)
                self._events.emit(
                    name, "FullShutdownDrainIncomplete", f"drain {result.reason}: powered off anyway", warning=True
                )
                self._drainer.cordon_with_record(name, shed)
        drained = shed.with_phase(ShedPhase.DRAINED, rfc3339(self._clock.wall()))
        if not step.watch:
            request_id = self._request(name, drained)
            if not self._wait_for_acks({name: request_id}):
                return  # it shuts itself down; nothing waits on it
            # Its daemon did not answer: PeerPowerOff resumes the same request (SSH), and watches it go.
            drained = drained.with_phase(ShedPhase.POWEROFF_REQUESTED, rfc3339(self._clock.wall()), request_id)
        outcome = self._power_off.power_off(name, drained)
        if outcome.outcome is not PowerOffOutcome.POWERED_OFF:
            self._log.warning("shutdown.cluster_peer_unconfirmed", target=name, outcome=outcome.outcome.value)

    def _shed_record(self, view: ClusterView, name: str, progress: FullShutdownProgress) -> ShedRecord:
        return ShedRecord(
            ShedPhase.DRAINING,
            self._identity,
            FULL_SHUTDOWN_REASON,
            rfc3339(self._clock.wall()),
            # Cordoned by someone else before the full shutdown: keep that cordon at the restart.
            was_unschedulable=view.node(name).unschedulable and name not in progress.cordoned,
        )

    def _power_off_last_members(
        self,
        view: ClusterView,
        stored: _Stored,
        record: OutageRecord,
        progress: FullShutdownProgress,
        names: tuple[str, ...],
    ) -> None:
        """Quorum goes with these: ask them all, wait for their acknowledgements only, then UPS and leader."""
        progress = replace(progress, requested=(*progress.requested, *names))
        record = _going_dark(record, self._clock.wall())
        self._progress(stored, record, progress, fenced=True)
        stored = self._mine or stored
        waiting: dict[str, str] = {}
        for name in names:
            drained = self._shed_record(view, name, progress).with_phase(ShedPhase.DRAINED, rfc3339(self._clock.wall()))
            waiting[name] = self._request(name, drained)
        with contextlib.suppress(ClusterError):  # the API server is going: they got it, or protect themselves
            self._wait_for_acks(waiting)
        # etcd loses quorum now and the API server with it: the last steps need neither.
        self._request_ups_return(stored, record, progress, fenced=False)
        self._shut_down_leader(self._mine or stored, record, progress)

    def _wait_for_acks(self, waiting: dict[str, str]) -> dict[str, str]:
        """Wait up to the ack timeout for each node (name -> request id) to acknowledge or go NotReady;
        returns those that did neither."""
        waiting = dict(waiting)
        deadline = self._clock.monotonic() + self._settings.ack_timeout_s
        while waiting:
            for name, request_id in list(waiting.items()):
                current = self._api.get_node(name)
                acked = (current["metadata"].get("annotations") or {}).get(ACK_ANNOTATION) == request_id
                if acked or not node_is_ready(current):
                    del waiting[name]
            if not waiting or self._clock.monotonic() >= deadline:
                break
            self._sleep(self._settings.poll_s)
            self._tick()  # up to ack_timeout (30 s): the lease (renew deadline 10 s) and the watchdog (30 s) with it
        return waiting

    def _request(self, name: str, drained: ShedRecord) -> str:
        """The power-off request, with the same records as ``PeerPowerOff``; returns its id."""
        request_id = uuid.uuid4().hex[:12]
        now_text = rfc3339(self._clock.wall())
        requested = drained.with_phase(ShedPhase.POWEROFF_REQUESTED, now_text, request_id)
        self._elector.ensure_leader()
        request = render_poweroff_request(PowerOffRequest(request_id, self._identity, now_text))
        annotations = {SHED_ANNOTATION: render_shed_record(requested), REQUEST_ANNOTATION: request}
        self._api.patch_node(name, {"metadata": {"annotations": annotations}})
        self._log.warning("node.poweroff_requested", target=name, request_id=request_id, reason=drained.reason)
        return request_id

    def _run_hook(self, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress) -> None:
        argv = self._settings.hook
        self._progress(stored, record, replace(progress, hook_done=True), fenced=True)
        if not argv:
            return
        code = self._hook_runner.run(argv)
        if code == 0:
            self._log.info("shutdown.hook_finished", command=list(argv))
        else:
            self._log.error("shutdown.hook_failed", command=list(argv), exit_status=code)
            self._events.emit(
                self._identity, "FullShutdownHookFailed", f"{' '.join(argv)} exited with {code}", warning=True
            )

    def _request_ups_return(
        self, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress, *, fenced: bool
    ) -> None:
        delay = self._settings.ups_off_delay_s
        if self._ups_return is None:
            ups = "disabled"
            self._log.warning("shutdown.ups_return", outcome=ups, delay_s=delay, detail="ups_shutdown_return is off")
        else:
            try:
                result = self._ups_return(delay)
                ok = result.outcome in (PowerOutcome.DONE, PowerOutcome.SENT, PowerOutcome.WAKES_ITSELF)
                detail = result.detail
            except Exception as error:  # any failure here must not stop this node's own clean shutdown
                ok, detail = False, str(error)
            ups = "requested" if ok else "failed"
            level = self._log.warning if ok else self._log.error
            level("shutdown.ups_return", outcome=ups, delay_s=delay, detail=detail)
        if ups != "requested":
            self._event_quietly(
                "UpsShutdownReturnNotRequested",
                f"UPS shutdown-return {ups}: the Pis will not boot by themselves when mains returns",
            )
        self._save_quietly(stored, replace(record, full_shutdown=replace(progress, ups=ups)), fenced=fenced)

    def _event_quietly(self, reason: str, message: str) -> None:
        """A warning Event on the leader's node, if the API server still answers: the last steps go on anyway."""
        try:
            self._events.emit(self._identity, reason, message, warning=True)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step=f"emit {reason}", error=str(error))

    def _shut_down_leader(self, stored: _Stored, record: OutageRecord, progress: FullShutdownProgress) -> None:
        self._log.critical("shutdown.leader_last", requested=list(progress.requested))
        self._local.request_local_shutdown(f"{FULL_SHUTDOWN_REASON}; every other node was asked first")

    def _save_quietly(self, stored: _Stored, record: OutageRecord, *, fenced: bool) -> None:
        """Best effort: after etcd's quorum is gone nothing can be written, and the node must go down anyway."""
        try:
            if fenced:
                self._elector.ensure_leader()
            self._save(stored, record, force=True)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="record the full shutdown's progress", error=str(error))

    # --- after the boot, and the end of every outage ---------------------------------------------------

    def _restart(self, view: ClusterView, record: OutageRecord, *, may_close: bool = True) -> bool:
        """Undo what the full shutdown did on every node that is back; close the outage once all are (on mains)."""
        progress = record.full_shutdown
        assert progress is not None
        acted = False
        for node in sorted(view.nodes, key=lambda n: n.name):
            if not node.ready:
                continue
            ours = [key for key in (SHED_ANNOTATION, REQUEST_ANNOTATION, ACK_ANNOTATION) if key in node.annotations]
            shed = parse_shed_record(node.annotations.get(SHED_ANNOTATION, ""))
            cordoned_by_shed = isinstance(shed, ShedRecord) and not shed.was_unschedulable
            uncordon = node.unschedulable and (node.name in progress.cordoned or cordoned_by_shed)
            if isinstance(shed, InvalidRecord) and SHED_ANNOTATION in node.annotations:
                uncordon = uncordon and node.name in progress.cordoned  # an unreadable record proves nothing
            if not ours and not uncordon:
                continue
            self._elector.ensure_leader()
            patch: dict[str, Any] = {"metadata": {"annotations": dict.fromkeys(ours)}}
            if uncordon:
                patch["spec"] = {"unschedulable": None}
            self._api.patch_node(node.name, patch)
            self._log.info("node.restored", target=node.name, uncordoned=uncordon, shed_at=progress.started_at)
            acted = True
        if not acted and may_close and self._is_over(view, record, self._clock.wall()):
            self._close(record, self._clock.wall())
        return acted

    def _is_over(self, view: ClusterView, record: OutageRecord, now: float) -> bool:
        """Mains back for MAINS_SETTLE_S, every node back and free of our records, critical workloads Ready; or
        mains back for SUMMARY_WAIT_S (a Pi that never comes back must not keep the outage open for ever)."""
        back_for = now - parse_rfc3339(record.mains_back_at) if record.mains_back_at else 0.0
        if back_for < MAINS_SETTLE_S:
            return False
        if back_for >= SUMMARY_WAIT_S:
            return True
        for node in view.nodes:
            if SHED_ANNOTATION in node.annotations or REQUEST_ANNOTATION in node.annotations:
                return False
            progress = record.full_shutdown
            if progress is not None and node.name in progress.nodes and not node.ready:
                return False
        return not critical_workloads_down(view, self._settings.critical_priority)

    def _close(self, record: OutageRecord, now: float) -> None:
        """Delete the record, then say so: deleted first, so the summary is logged once per outage."""
        self._elector.ensure_leader()
        fields = summary_fields(record, now)
        self._api.delete_configmap(self._settings.namespace, OUTAGE_CONFIGMAP)
        self._mine = None
        self._log.info("outage.summary", **fields)
        shed = ", ".join(record.shed) or "none"
        kind = "ended in a full shutdown" if record.full_shutdown is not None else "ended"
        self._events.emit(
            self._identity,
            "OutageSummary",
            f"outage {record.started_at} to {fields['ended_at']} {kind}: nodes shed {shed}, "
            f"{fields['energy_used_wh']} Wh from the battery, critical services down {fields['critical_downtime_s']} s",
        )

    # --- the record ------------------------------------------------------------------------------------

    def _read(self) -> _Stored | InvalidRecord | None:
        """The stored record (this node's own copy if nobody wrote since), None if none, or why unreadable."""
        found = self._api.read_configmap(self._settings.namespace, OUTAGE_CONFIGMAP)
        if found is None:
            self._mine = None
            return None
        version = str(found["metadata"].get("resourceVersion", ""))
        if self._mine is not None and self._mine.resource_version == version:
            return self._mine  # ours, with the energy counted since the last write
        raw = str((found.get("data") or {}).get(OUTAGE_KEY, ""))
        parsed = parse_outage_record(raw)
        if isinstance(parsed, InvalidRecord):
            if self._invalid_reported != raw:
                self._invalid_reported = raw
                self._log.error("outage.record_invalid", value=raw[:200], why=parsed.reason)
            return parsed
        self._mine = None
        return _Stored(parsed, version)

    def _save(self, stored: _Stored, record: OutageRecord, *, force: bool = False) -> None:
        """Write when something a new leader needs changed, and at least every minute for the energy."""
        now = self._clock.monotonic()
        changed = replace(record, energy_wh=0.0, last_reading_at="") != replace(
            stored.record, energy_wh=0.0, last_reading_at=""
        )
        if not (force or changed or not stored.resource_version or now - self._saved_at >= SAVE_EVERY_S):
            self._mine = _Stored(record, stored.resource_version)
            return
        written = self._api.write_configmap(
            self._settings.namespace,
            OUTAGE_CONFIGMAP,
            {OUTAGE_KEY: render_outage_record(record)},
            stored.resource_version,
        )
        self._mine = _Stored(record, str(written["metadata"]["resourceVersion"]))
        self._saved_at = now
