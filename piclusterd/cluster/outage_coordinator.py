"""The leader's view of a whole outage: keep its record, run the orderly full shutdown, undo it after the boot.

:class:`OutageCoordinator` has one entry point for the leader, :meth:`OutageCoordinator.lead`, called by the
cluster controller every poll before it plans any shedding, and one for every node's daemon,
:meth:`OutageCoordinator.defer_local_shutdown` (the daemon's :class:`~piclusterd.node.daemon.LocalShutdownGate`).

As leader, each poll, in order:

- on battery with no record: start the outage record (ConfigMap ``piclusterd-outage``, kept by
  :class:`~piclusterd.cluster.outage_store.OutageStore`);
- fold the poll into it: energy drawn, nodes shed, critical-service downtime (written at least every minute);
- the cluster has booted again after a full shutdown (a boot id other than the one recorded when the
  full shutdown began: :func:`~piclusterd.core.outage_record.booted_since`):
  uncordon what the full shutdown cordoned, clear our stale annotations, close the outage once mains is back
  (:class:`~piclusterd.cluster.outage_close.OutageCloser`);
- a full shutdown is under way, or this node is ``critical``: take its next step
  (:mod:`piclusterd.core.full_shutdown_order`, carried out by
  :class:`~piclusterd.cluster.full_shutdown_runner.FullShutdownRunner`).
  Like upsmon's forced shutdown it is never called off half-way, even if mains returns: the UPS's
  shutdown-return then power-cycles the Pis, which boot by themselves, instead of some staying halted;
- mains back and nothing of ours left on any node: log ``outage.summary`` once, delete the record
  (:class:`~piclusterd.cluster.outage_close.OutageCloser`).

Only the full-shutdown steps return True (the controller then sheds nothing this poll). This module decides
which of these a poll is; the parts named above carry them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from piclusterd.cluster.agent import LocalShutdownTrigger
from piclusterd.cluster.authority import RequestVerifier
from piclusterd.cluster.drain import Drainer
from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.full_shutdown_runner import CommandRunner, FullShutdownRunner, UpsShutdownReturn
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.notify_ledger import OutageLedger
from piclusterd.cluster.outage_close import OutageCloser
from piclusterd.cluster.outage_store import OutageStore, StoredOutage
from piclusterd.cluster.power_off_request import PeerPowerOff
from piclusterd.config.settings import FullShutdownSettings
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.errors import ClusterError
from piclusterd.core.full_shutdown_order import ClusterContact, local_shutdown_deferral, planned_steps
from piclusterd.core.node_records import SHED_ANNOTATION, InvalidRecord, rfc3339
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OUTAGE_KEY,
    FullShutdownProgress,
    OutageRecord,
    account,
    booted_since,
    critical_workloads_down,
    parse_outage_record,
    parse_rfc3339,
)
from piclusterd.core.ports import Clock
from piclusterd.core.power_state import BATTERY_STATES, PowerMemory, PowerState
from piclusterd.node.audit import AuditLogger

__all__ = ["CommandRunner", "OutageCoordinator", "UpsShutdownReturn"]


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
        verifier: RequestVerifier,
        tick: Callable[[], None] = lambda: None,
        boot_id: str | None = None,
        carrying_file: Path | None = None,
    ) -> None:
        """``tick`` runs after each sleep of a long wait (an acknowledgement): cli.py's keep_alive, a power poll,
        the watchdog ping and the lease renewal, as for ``Drainer`` and ``PeerPowerOff``. ``verifier`` checks an outage
        record another node wrote. ``boot_id``: this machine's boot id (``drivers.power_cut.read_boot_id``; None:
        unreadable), compared with the bootID its kubelet reported when a full shutdown began. ``carrying_file``:
        where the full shutdown this leader carries on is remembered across a daemon restart, on tmpfs (the
        runtime directory), so that a boot forgets it."""
        self._identity = identity
        self._api = api
        self._elector = elector
        self._events = events
        self._settings = settings
        self._clock = clock
        self._log = log.bind(component="outage")
        self._verifier = verifier
        self._store = OutageStore(api, settings.namespace, clock, self._log, signer=power_off.signer, verifier=verifier)
        self._runner = FullShutdownRunner(
            identity=identity,
            api=api,
            elector=elector,
            drainer=drainer,
            power_off=power_off,
            events=events,
            local=local,
            hook_runner=hook_runner,
            ups_return=ups_return,
            store=self._store,
            hook=settings.hook,
            ups_off_delay_s=settings.ups_off_delay_s,
            ack_timeout_s=settings.ack_timeout_s,
            poll_s=settings.poll_s,
            clock=clock,
            sleep=sleep,
            tick=tick,
            log=self._log,
        )
        self._closer = OutageCloser(
            identity=identity,
            api=api,
            elector=elector,
            events=events,
            store=self._store,
            critical_priority=settings.critical_priority,
            clock=clock,
            log=self._log,
        )
        self._dry_run_reported = False
        #: What cluster-wide messages this outage had (the record's ``notified``): the notifier claims from it.
        self.ledger = OutageLedger()
        # The startedAt of the full shutdown this leader is carrying on (started, or taken over on battery): only
        # that one goes on whatever the power does; any other recorded one needs this node on battery to resume.
        self._carrying_file = carrying_file
        self._carrying: str | None = self._read_carrying()
        self._refused_said: str | None = None
        # This machine's boot: another than when a full shutdown began means the cluster went down and booted
        # since. Not the daemon's start: a watchdog or apt restart of the leader mid full shutdown must not undo it.
        self._boot_id = boot_id
        # The startedAt of the full shutdown this leader undoes since the boot,
        # and the nodes it undid then (each once: later shed records on them are the smallest safe set's).
        self._undone: tuple[str, set[str]] = ("", set())
        #: The nodes the outage record says were shed before the full shutdown the cluster booted from, while
        #: that record is open (read each :meth:`lead`); ``()`` otherwise.
        self.shed_before_full_shutdown: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        """Where the outage record lives (and the stopped-work record beside it)."""
        return self._settings.namespace

    def apply_mode(self, *, dry_run: bool) -> None:
        """A reloaded ``mode``: dry-run takes no full-shutdown step and lets a critical node protect itself."""
        self._settings = replace(self._settings, dry_run=dry_run)
        self._dry_run_reported = False

    # --- every node: should a critical node wait for the leader? ------------------------------------

    def defer_local_shutdown(self, critical_for_s: float) -> str | None:
        """Why this critical node waits for the leader's request (None: power off now). Never raises."""
        if self._settings.dry_run:
            return None
        try:
            # Read directly, not through self._store: the daemon asks from a thread of its own, and may leave it
            # behind, hung, while the leader's poll goes on with the record.
            found = self._api.read_configmap(self._settings.namespace, OUTAGE_CONFIGMAP)
            reachable = True
        except ClusterError:
            found, reachable = None, False
        parsed = None if found is None else parse_outage_record(str((found.get("data") or {}).get(OUTAGE_KEY, "")))
        read_at = self._elector.lease_read_at
        contact = ClusterContact(
            identity=self._identity,
            api_reachable=reachable,
            live_leader=self._elector.live_holder(),
            lease_read_since_critical=read_at is not None and read_at >= self._clock.monotonic() - critical_for_s,
            full_shutdown=isinstance(parsed, OutageRecord)
            and parsed.full_shutdown is not None
            and self._verifier.check_outage_record(self._settings.namespace, parsed) is None,
        )
        return local_shutdown_deferral(contact, critical_for_s)

    def report_self_protection(self, message: str) -> None:
        """A warning Event on this node: it stopped waiting for the leader and powers itself off."""
        self._events.emit(self._identity, "LocalShutdownAfterWait", message, warning=True)

    # --- the leader, every poll ------------------------------------------------------------------------

    def lead(self, view: ClusterView, power: PowerMemory, measured_load_w: float | None) -> bool:
        """Keep the outage record and run the full shutdown or the restart after it; True if it took a step."""
        self.shed_before_full_shutdown = ()
        if self._settings.dry_run:
            self.ledger.load(None)  # no record in dry-run: each plan it would take is said
            self._report_dry_run(view, power)
            return False
        try:
            stored = self._store.read()
        except ClusterError as error:
            # Shedding must not depend on the record (RBAC not updated for configmaps, say): go on without it.
            self._log.warning("cluster.api_failed", step="read the outage record", error=str(error))
            return False
        if isinstance(stored, InvalidRecord):
            return False  # reported; left alone (a person deletes it: kubectl -n <ns> delete cm piclusterd-outage)
        now = self._clock.wall()
        self.ledger.load(None if stored is None else stored.record)
        if stored is None:
            if power.state not in BATTERY_STATES:
                return False
            since = now if power.since is None else now - (self._clock.monotonic() - power.since)
            charge = None if power.last_reading is None else power.last_reading.charge_pct
            stored = StoredOutage(OutageRecord(rfc3339(since), self._identity, charge), "")
            self._log.warning(
                "outage.started", started_at=stored.record.started_at, charge_pct=charge, runtime_s=power.last_runtime_s
            )
        progress = stored.record.full_shutdown
        booted = progress is not None and booted_since(
            progress, self._identity, self._boot_id, {n.name: n.boot_id for n in view.nodes if n.boot_id}
        )
        booted_again = booted and power.state is PowerState.ONLINE
        # Mains back half-way through a full shutdown does not end the outage: the full shutdown goes on. This
        # Pi booted since the full shutdown began: the cluster went down and has booted since; whichever
        # node leads now (one shed hours before included) undoes it, and never goes on with it.
        mains_back = power.state is PowerState.ONLINE and (progress is None or booted_again)
        base = stored.record
        if booted_again and not base.mains_back_at and not base.critical_down_since and base.last_reading_at:
            # The first look after the boot. If the leader did not live to record the cluster going dark (nodes
            # protected themselves), every critical service was down from its last reading at the latest.
            base = replace(base, critical_down_since=base.last_reading_at)
        record = self._observe(base, view, power, measured_load_w, now, mains_back)
        # Booted from this full shutdown: the planner keeps the nodes shed before it off while the charge is low.
        self.shed_before_full_shutdown = record.shed if booted else ()
        # Undo it before any shedding: its power-off requests on the booted nodes must never be resumed (two
        # control-plane members at once, undrained). Each node is undone once, when first seen Ready after the
        # boot, so that the shed records the smallest safe set makes next are not undone with it. On battery
        # (mains failed again before it was undone) and critical, a new one starts instead.
        undo = booted_again or power.state is not PowerState.CRITICAL
        if booted and progress is not None and undo:
            if self._undone[0] != progress.started_at:
                self._undone = (progress.started_at, set())
            self._store.save(stored, record)
            if self._closer.undo_full_shutdown(view, record, may_close=False, done=self._undone[1]):
                return True
        if booted:
            # Its steps are history. A new one starts if critical, still owing the restart the cordons the first
            # one made; otherwise shedding starts afresh from a plan, and the record closes once it is over.
            progress = None
        if progress is None and power.state is PowerState.CRITICAL:
            owed = () if record.full_shutdown is None else record.full_shutdown.cordoned
            progress = FullShutdownProgress(
                rfc3339(now),
                self._identity,
                tuple(sorted(n.name for n in view.nodes)),
                cordoned=owed,
                boot_ids=tuple(sorted((n.name, n.boot_id) for n in view.nodes if n.boot_id)),
            )
            record = replace(record, full_shutdown=progress)
            self._elector.ensure_leader()
            self._store.save(stored, record, force=True)
            self._log.critical("shutdown.cluster_started", nodes=list(progress.nodes), reason=power.reason)
            self._events.emit(
                self._identity, "FullShutdown", f"battery critical: {self._identity} powers the cluster off in order"
            )
            stored = self._store.mine or stored
        if progress is not None:
            if progress.started_at != self._carrying and power.state not in BATTERY_STATES:
                # A recorded full shutdown this leader did not start nor take over on battery, with this node on
                # mains: a forged record (a startedAt in the future defeats the boot test above), or one left
                # half-done by a leader that died after mains came back. Never power a cluster on mains off for
                # it: said once, left for a person.
                self._refuse_full_shutdown(progress, power)
                return False
            self._carry(progress.started_at)
            self._store.save(stored, record)
            self._runner.step(view, self._store.mine or stored, record, progress)
            return True
        try:
            self._store.save(stored, record)
            if power.state is PowerState.ONLINE and self._closer.is_over(view, record, now):
                self._closer.close(record, now)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="keep the outage record", error=str(error))
        return False

    def record_notified(self) -> None:
        """Write this leader's new notification claims into the outage record now, not at the next poll: a drain
        may keep this poll busy for minutes, and a leader dying in it must not leave the next to send them again."""
        mine = self._store.mine
        if mine is None:
            return
        record = self.ledger.fold(mine.record)
        if record is mine.record:
            return
        try:
            self._store.save(mine, record, force=True)
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="record the messages sent", error=str(error))

    def _read_carrying(self) -> str | None:
        if self._carrying_file is None:
            return None
        try:
            with open(self._carrying_file, "rb") as stream:
                return stream.read(64).decode("ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _carry(self, started_at: str) -> None:
        if self._carrying == started_at:
            return
        self._carrying = started_at
        if self._carrying_file is None:
            return
        try:
            self._carrying_file.parent.mkdir(parents=True, exist_ok=True)
            self._carrying_file.write_text(started_at + "\n", encoding="ascii")
        except OSError as error:  # then a restart of this daemon on mains would not resume it: said
            self._log.warning("outage.full_shutdown_unremembered", path=str(self._carrying_file), error=str(error))

    def _refuse_full_shutdown(self, progress: FullShutdownProgress, power: PowerMemory) -> None:
        if self._refused_said == progress.started_at:
            return
        self._refused_said = progress.started_at
        why = (
            f"a full shutdown recorded as started at {progress.started_at} by {progress.leader}, but this node "
            f"is {power.state.value} and this leader did not start it: not resumed"
        )
        self._log.error(
            "outage.full_shutdown_refused", started_at=progress.started_at, leader_was=progress.leader, why=why
        )
        self._events.emit(
            self._identity,
            "FullShutdownRefused",
            f"{why}. If nobody meant it: kubectl -n {self._settings.namespace} delete configmap {OUTAGE_CONFIGMAP}",
            warning=True,
        )

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
            away = round(max(0.0, now - parse_rfc3339(record.started_at)))
            self._log.info(
                "outage.mains_back",
                started_at=record.started_at,
                mains_back_at=record.mains_back_at,
                duration_s=away,
                nodes_shed=list(record.shed),
                full_shutdown=record.full_shutdown is not None,
            )
        elif on_battery and record.mains_back_at:
            record = replace(record, mains_back_at="")  # failed again before the outage was over: it goes on
        return self.ledger.fold(record)
