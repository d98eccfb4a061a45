"""The full shutdown's steps, carried out: one per poll, by the leader, when the battery is about to end.

:class:`FullShutdownRunner` takes the next step of :func:`~piclusterd.core.full_shutdown_order.next_step` and
does it: cordon every node; drain and ask the workers to power off (the power-off request, its SSH fallback);
the pre-shutdown hook; the control plane one at a time; the last quorum members together; the UPS's
shutdown-return; this node last. Each step's progress is written in the outage record
(:class:`~piclusterd.cluster.outage_store.OutageStore`) *before* the step, so a new leader never repeats one.
Once quorum is going, the writes are best effort: this node goes down anyway.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from piclusterd.cluster.agent import LocalShutdownTrigger
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_store import OutageStore, StoredOutage
from piclusterd.cluster.power_off_request import PeerPowerOff, PowerOffOutcome, node_is_ready
from piclusterd.cluster.power_on_backends import PowerOutcome, PowerResult
from piclusterd.cluster.self_drain import self_drain_groups
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.errors import ClusterError
from piclusterd.core.full_shutdown_order import (
    Cordon,
    PowerOffLastMembers,
    PowerOffPeer,
    RequestUpsReturn,
    RunHook,
    Step,
    WaitFor,
    next_step,
)
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    ShedPhase,
    ShedRecord,
    rfc3339,
)
from piclusterd.core.outage_record import FullShutdownProgress, OutageRecord
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger

__all__ = ["FULL_SHUTDOWN_REASON", "CommandRunner", "FullShutdownRunner", "UpsShutdownReturn", "going_dark"]

FULL_SHUTDOWN_REASON = "full shutdown: the battery is about to end"


def going_dark(record: OutageRecord, now: float) -> OutageRecord:
    """The last nodes are going down: every critical service is down from now until the boot after it.

    Written while the API still answers; nobody observes the dark hours, but they are downtime all the same.
    """
    return record if record.critical_down_since else replace(record, critical_down_since=rfc3339(now))


class CommandRunner(Protocol):
    """Runs an argv without a shell and returns its exit status (``shutdown_command.CommandShutdown``)."""

    def run(self, argv: Sequence[str]) -> int: ...


class UpsShutdownReturn(Protocol):
    """Arms the UPS's cut, ``delay_s`` after this node's system-shutdown hook asks for it, restored with mains
    (``ups_kill.UpsKillFlag``). ``peers``: every other node, ``notready``, ``acked`` or ``unconfirmed``; the
    cut is armed only when none is unconfirmed (it would cut that node mid-run)."""

    def __call__(self, delay_s: float, peers: Mapping[str, str]) -> PowerResult: ...


class FullShutdownRunner:
    """The leader's full shutdown, one step per :meth:`step`. ``hook``: the pre-shutdown hook's argv (empty:
    none); a request is waited for up to ``ack_timeout_s``, looking every ``poll_s``, and ``tick`` runs after
    each sleep (the lease renewal and the watchdog, as for ``Drainer`` and ``PeerPowerOff``)."""

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
        store: OutageStore,
        hook: tuple[str, ...],
        ups_off_delay_s: float,
        ack_timeout_s: float,
        poll_s: float,
        clock: Clock,
        sleep: Callable[[float], None],
        tick: Callable[[], None],
        log: AuditLogger,
    ) -> None:
        self._identity = identity
        self._api = api
        self._elector = elector
        self._drainer = drainer
        self._power_off = power_off
        self._events = events
        self._local = local
        self._hook_runner = hook_runner
        self._ups_return = ups_return
        self._store = store
        self._hook = hook
        self._ups_off_delay_s = ups_off_delay_s
        self._ack_timeout_s = ack_timeout_s
        self._poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._tick = tick
        self._log = log
        self._last_step: Step | None = None
        self._going: dict[str, str] = {}  # node -> "acked" or "notready", as this leader saw it go

    def step(
        self, view: ClusterView, stored: StoredOutage, record: OutageRecord, progress: FullShutdownProgress
    ) -> None:
        """Take the full shutdown's next step (``WaitFor``: none this poll); ``record`` holds this poll's figures."""
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
            self._request_ups_return(stored, record, progress, self._peers(view), fenced=True)
        else:
            self._save_quietly(stored, going_dark(record, self._clock.wall()), fenced=True)
            self._shut_down_leader(stored, record, progress)

    def _progress(
        self, stored: StoredOutage, record: OutageRecord, progress: FullShutdownProgress, *, fenced: bool
    ) -> None:
        """Write the progress *before* the step it announces (a new leader then never repeats it)."""
        if fenced:
            self._elector.ensure_leader()
        self._store.save(stored, replace(record, full_shutdown=progress), force=True)

    def _cordon(
        self, stored: StoredOutage, record: OutageRecord, progress: FullShutdownProgress, nodes: tuple[str, ...]
    ) -> None:
        cordoned = tuple(sorted(set(progress.cordoned) | set(nodes)))
        progress = replace(progress, cordoned=cordoned)
        self._progress(stored, record, progress, fenced=True)
        for name in nodes:
            self._api.patch_node(name, {"spec": {"unschedulable": True}})
        self._log.warning("shutdown.cluster_cordoned", nodes=list(nodes))
        self._progress(self._store.mine or stored, record, replace(progress, cordon_done=True), fenced=False)

    def _power_off_peer(
        self,
        view: ClusterView,
        stored: StoredOutage,
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
        if outcome.outcome is PowerOffOutcome.POWERED_OFF:
            self._going[name] = "notready"
        else:
            self._log.warning("shutdown.cluster_peer_unconfirmed", target=name, outcome=outcome.outcome.value)

    def _peers(self, view: ClusterView) -> dict[str, str]:
        """Every other node and how this leader knows it is going: NotReady now, or seen acknowledging."""
        return {
            node.name: "notready" if not node.ready else self._going.get(node.name, "unconfirmed")
            for node in view.nodes
            if node.name != self._identity
        }

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
        stored: StoredOutage,
        record: OutageRecord,
        progress: FullShutdownProgress,
        names: tuple[str, ...],
    ) -> None:
        """Quorum goes with these: ask them all, wait for their acknowledgements only, then UPS and leader."""
        progress = replace(progress, requested=(*progress.requested, *names))
        record = going_dark(record, self._clock.wall())
        self._progress(stored, record, progress, fenced=True)
        stored = self._store.mine or stored
        waiting: dict[str, str] = {}
        for name in names:
            drained = self._shed_record(view, name, progress).with_phase(ShedPhase.DRAINED, rfc3339(self._clock.wall()))
            waiting[name] = self._request(name, drained)
        with contextlib.suppress(ClusterError):  # the API server is going: they got it, or protect themselves
            self._wait_for_acks(waiting)
            self._wait_for_self_drains(names)
        # etcd loses quorum now and the API server with it: the last steps need neither.
        self._request_ups_return(stored, record, progress, self._peers(view), fenced=False)
        self._shut_down_leader(self._store.mine or stored, record, progress)

    def _wait_for_self_drains(self, names: tuple[str, ...]) -> None:
        """Each last member ends its pods before its halt (their grace periods): the leader, which halts last,
        starts its own shutdown once each has no pod left to end or is NotReady, for up to the ack timeout.
        Without this wait a leader with nothing of its own to end halted before them (the netns long night, with
        a leader whose pods had all moved), and armed the UPS's cut while they were still draining."""
        left = set(names)
        deadline = self._clock.monotonic() + self._ack_timeout_s
        while left:
            for name in sorted(left):
                normal, critical, _alone = self_drain_groups(self._api.pods_on_node(name), critical_priority=0)
                if not (normal or critical) or not node_is_ready(self._api.get_node(name)):
                    left.discard(name)
            if not left or self._clock.monotonic() >= deadline:
                return
            self._sleep(self._poll_s)
            self._tick()

    def _wait_for_acks(self, waiting: dict[str, str]) -> dict[str, str]:
        """Wait up to the ack timeout for each node (name -> request id) to acknowledge or go NotReady;
        returns those that did neither."""
        waiting = dict(waiting)
        deadline = self._clock.monotonic() + self._ack_timeout_s
        while waiting:
            for name, request_id in list(waiting.items()):
                current = self._api.get_node(name)
                acked = (current["metadata"].get("annotations") or {}).get(ACK_ANNOTATION) == request_id
                if acked or not node_is_ready(current):
                    self._going[name] = "acked" if acked else "notready"
                    del waiting[name]
            if not waiting or self._clock.monotonic() >= deadline:
                break
            self._sleep(self._poll_s)
            self._tick()  # up to ack_timeout (30 s): the lease (renew deadline 10 s) and the watchdog (30 s) with it
        return waiting

    def _request(self, name: str, drained: ShedRecord) -> str:
        """The power-off request, with the same records as ``PeerPowerOff``; returns its id."""
        request_id = uuid.uuid4().hex[:12]
        now_text = rfc3339(self._clock.wall())
        requested = drained.with_phase(ShedPhase.POWEROFF_REQUESTED, now_text, request_id)
        self._elector.ensure_leader()
        request = self._power_off.signed_request(name, request_id, now_text)
        annotations = {
            SHED_ANNOTATION: self._power_off.signed_shed_record(name, requested),
            REQUEST_ANNOTATION: request,
        }
        self._api.patch_node(name, {"metadata": {"annotations": annotations}})
        self._log.warning("node.poweroff_requested", target=name, request_id=request_id, reason=drained.reason)
        return request_id

    def _run_hook(self, stored: StoredOutage, record: OutageRecord, progress: FullShutdownProgress) -> None:
        argv = self._hook
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
        self,
        stored: StoredOutage,
        record: OutageRecord,
        progress: FullShutdownProgress,
        peers: Mapping[str, str],
        *,
        fenced: bool,
    ) -> None:
        """Arm the UPS's cut for this node's system-shutdown hook (recorded as ``requested``), never send it now:
        the leader still has its own shutdown to do (issue 19)."""
        delay = self._ups_off_delay_s
        if self._ups_return is None:
            ups = "disabled"
            self._log.warning("shutdown.ups_return", outcome=ups, delay_s=delay, detail="ups_shutdown_return is off")
        else:
            try:
                result = self._ups_return(delay, peers)
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

    def _shut_down_leader(self, stored: StoredOutage, record: OutageRecord, progress: FullShutdownProgress) -> None:
        self._log.critical("shutdown.leader_last", requested=list(progress.requested))
        self._local.request_local_shutdown(f"{FULL_SHUTDOWN_REASON}; every other node was asked first")

    def _save_quietly(self, stored: StoredOutage, record: OutageRecord, *, fenced: bool) -> None:
        """Best effort: after etcd's quorum is gone nothing can be written, and the node must go down anyway."""
        try:
            if fenced:
                self._elector.ensure_leader()
            self._store.save(stored, record, force=True)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="record the full shutdown's progress", error=str(error))
