"""The leader's scaler: stops the non-critical work a plan gives up (:attr:`~piclusterd.core.planner.Plan.scale_down`)
and puts it back with the restore, across a leader change.

Stopping: each workload is resolved to what is actually scaled (a ReplicaSet that a Deployment controls is
scaled through the Deployment: the deployment controller would undo a change to its ReplicaSet), its count is
read from the scale subresource (a Job: ``spec.suspend``), the signed record
(:mod:`piclusterd.core.stopped_work`, ConfigMap ``piclusterd-stopped-work``) is written with the count before
and the count piclusterd sets, and only then the workload is scaled (write-ahead: a leader that dies right
after leaves a record whoever leads next can undo). A Job a person suspended is not recorded, never resumed.

Putting back (:meth:`WorkScaler.bring_back`), once the restore policy lets shed nodes come back, or at the
latest when the outage ends: each recorded workload still at the count piclusterd set goes back to its
count before (a Job is resumed); one someone changed since is left as it is and said (the user wins). The
entry is cleared either way. An unreadable or unverified record is said once and never acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.core.errors import ClusterError
from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.planner import ScaleDown
from piclusterd.core.ports import Clock
from piclusterd.core.stopped_work import (
    JOB_RUNNING,
    JOB_SUSPENDED,
    STOPPED_WORK_CONFIGMAP,
    STOPPED_WORK_KEY,
    ScaleBack,
    StoppedWork,
    StoppedWorkload,
    controlling_deployment,
    decide_scale_back,
    job_suspended,
    parse_stopped_work,
    render_stopped_work,
    scale_replicas,
)
from piclusterd.node.audit import AuditLogger

__all__ = ["STOP_SETTLE_S", "StoppedWorkStore", "WorkScaler"]

#: A workload this leader scaled is not scaled again for this long: its controller deletes the pods within
#: seconds, and a plan made before they are Terminating would count them again.
STOP_SETTLE_S = 60.0

_API_VERSION = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}


@dataclass(frozen=True, slots=True)
class _Stored:
    record: StoppedWork
    resource_version: str  # "": no ConfigMap yet


class StoppedWorkStore:
    """The record's ConfigMap: read and verified, written signed; deleted once it has no entry left."""

    def __init__(
        self,
        api: KubeClusterApi,
        namespace: str,
        log: AuditLogger,
        *,
        signer: RequestSigner,
        verifier: RequestVerifier,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._log = log
        self._signer = signer
        self._verifier = verifier
        self._invalid_said: str | None = None

    def read(self) -> _Stored | InvalidRecord:
        """The record (empty if there is none), or why it is not acted on (said once per value)."""
        found = self._api.read_configmap(self._namespace, STOPPED_WORK_CONFIGMAP)
        if found is None:
            return _Stored(StoppedWork(), "")
        metadata = found.get("metadata")
        version = str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""
        data = found.get("data")
        raw = str(data.get(STOPPED_WORK_KEY, "")) if isinstance(data, dict) else ""
        parsed = parse_stopped_work(raw)
        if isinstance(parsed, InvalidRecord):
            if self._invalid_said != raw:
                self._invalid_said = raw
                self._log.error("work.record_invalid", value=raw[:200], why=parsed.reason)
            return parsed
        refusal = self._verifier.check_stopped_work(self._namespace, parsed)
        if refusal is not None:  # said once by the verifier (cluster.record_refused, Event RecordRefused)
            return InvalidRecord(raw, f"refused, check {refusal.check.value}: {refusal.detail}")
        return _Stored(parsed, version or "")

    def write(self, stored: _Stored, record: StoppedWork) -> _Stored:
        """Write ``record`` over the version read (409 if someone wrote since); none left: delete it."""
        if not record.entries:
            if stored.resource_version:
                self._api.delete_configmap(self._namespace, STOPPED_WORK_CONFIGMAP)
            return _Stored(record, "")
        signed = self._signer.stopped_work(self._namespace, record)
        written = self._api.write_configmap(
            self._namespace,
            STOPPED_WORK_CONFIGMAP,
            {STOPPED_WORK_KEY: render_stopped_work(signed)},
            stored.resource_version,
        )
        return _Stored(signed, str(written["metadata"]["resourceVersion"]))


class WorkScaler:
    """The leader's stops and their undoing; one instance per daemon (it remembers what it scaled when)."""

    def __init__(
        self,
        *,
        api: KubeClusterApi,
        store: StoppedWorkStore,
        elector: LeaseElector,
        events: EventRecorder,
        clock: Clock,
        log: AuditLogger,
    ) -> None:
        self._api = api
        self._store = store
        self._elector = elector
        self._events = events
        self._clock = clock
        self._log = log
        self._scaled_at: dict[tuple[str, str, str], float] = {}
        self._planned_said: set[tuple[str, str, str, int, int]] = set()
        self._refused_said: set[tuple[str, str]] = set()
        self._failed_said: set[tuple[str, str]] = set()
        #: Whether the record held entries when last read or written (the leader keeps leading on mains until
        #: the work is back).
        self.pending = False

    # --- stopping ----------------------------------------------------------------------------------------

    def stop(self, scale_downs: Sequence[ScaleDown], *, dry_run: bool) -> bool:
        """Carry out the plan's stops (``dry_run``: say what would be done, write nothing). True if any
        workload was scaled or suspended."""
        wanted = self._resolve(scale_downs)
        if not wanted:
            return False
        if dry_run:
            for (namespace, kind, name), (count, _) in sorted(wanted.items()):
                self._say_planned(namespace, kind, name, count)
            return False
        try:
            stored = self._store.read()
        except ClusterError as error:
            self._api_failed("read the stopped-work record", error)
            return False
        if isinstance(stored, InvalidRecord):
            self._refuse_once("record", f"the record cannot be used ({stored.reason}): nothing is stopped")
            return False
        acted = False
        for key, (count, why) in sorted(wanted.items()):
            stored, done = self._stop_one(stored, key, count, why)
            acted = acted or done
        self.pending = bool(stored.record.entries)
        return acted

    def _resolve(self, scale_downs: Sequence[ScaleDown]) -> dict[tuple[str, str, str], tuple[int, str]]:
        """What to scale, by the workload actually scaled: (pods to stop, the pods' names for the Event)."""
        wanted: dict[tuple[str, str, str], tuple[int, str]] = {}
        for stop in scale_downs:
            kind, name = stop.owner_kind, stop.owner_name
            if kind == "ReplicaSet":
                try:
                    found = self._api.read_replica_set(stop.namespace, name)
                    if found is None:
                        continue  # gone since the snapshot: nothing to stop
                    deployment = controlling_deployment(found)
                except ValueError as error:
                    self._refuse_once(f"ReplicaSet {stop.namespace}/{name}", str(error))
                    continue
                except ClusterError as error:
                    self._api_failed(f"read ReplicaSet {stop.namespace}/{name}", error)
                    continue
                if deployment is not None:
                    kind, name = "Deployment", deployment
            elif kind not in ("StatefulSet", "Job"):
                continue  # the planner names no other kind (core.pod_packing.STOPPABLE_OWNERS)
            key = (stop.namespace, kind, name)
            count, pods = wanted.get(key, (0, ""))
            wanted[key] = (count + len(stop.pods), ", ".join(p for p in (pods, *stop.pods) if p))
        return wanted

    def _current(self, namespace: str, kind: str, name: str) -> int | None:
        """The workload's replicas now (a Job: 1 running, 0 suspended); None if it is gone. Raises ValueError
        on an answer that cannot be read, ClusterError on a failed call."""
        if kind == "Job":
            job = self._api.read_job(namespace, name)
            return None if job is None else (JOB_SUSPENDED if job_suspended(job) else JOB_RUNNING)
        scale = self._api.read_scale(kind, namespace, name)
        return None if scale is None else scale_replicas(scale)

    def _set(self, namespace: str, kind: str, name: str, count: int) -> None:
        self._elector.ensure_leader()
        if kind == "Job":
            self._api.patch_job_suspend(namespace, name, suspend=count == JOB_SUSPENDED)
        else:
            self._api.patch_scale(kind, namespace, name, count)

    def _stop_one(self, stored: _Stored, key: tuple[str, str, str], count: int, pods: str) -> tuple[_Stored, bool]:
        namespace, kind, name = key
        label = f"{kind} {namespace}/{name}"
        now = self._clock.monotonic()
        if now - self._scaled_at.get(key, float("-inf")) < STOP_SETTLE_S:
            return stored, False  # just scaled: its pods are being deleted, a plan may not show it yet
        try:
            current = self._current(namespace, kind, name)
        except ValueError as error:
            self._refuse_once(label, str(error))
            return stored, False
        except ClusterError as error:
            self._api_failed(f"read {label}", error)
            return stored, False
        if current is None:
            return stored, False
        entry = stored.record.entry(namespace, kind, name)
        if kind == "Job":
            if current == JOB_SUSPENDED:
                return stored, False  # suspended by us already, or by a person: not ours to record or resume
            before, target = JOB_RUNNING, JOB_SUSPENDED
        else:
            target = max(0, current - count)
            if target == current:
                return stored, False
            # Scaled down again in the same outage: the count to put back is still the first one.
            before = entry.replicas_before if entry is not None and entry.replicas_set == current else current
        new = StoppedWorkload(namespace, kind, name, before, target)
        try:
            self._elector.ensure_leader()
            stored = self._store.write(stored, stored.record.with_entry(new))  # write-ahead
        except ClusterError as error:
            self._api_failed(f"record the stop of {label}", error)
            return stored, False
        try:
            self._set(namespace, kind, name, target)
        except ClusterError as error:
            self._api_failed(f"stop {label}", error)
            try:  # not stopped: the record must not say it was
                undone = stored.record.without(key) if entry is None else stored.record.with_entry(entry)
                stored = self._store.write(stored, undone)
            except ClusterError as again:
                self._api_failed(f"unrecord the stop of {label}", again)
            return stored, False
        self._scaled_at[key] = now
        what = f"suspended Job {namespace}/{name}" if kind == "Job" else f"scaled {label} from {current} to {target}"
        self._log.info("work.stopped", workload=label, replicas_from=current, replicas_to=target, pods=pods[:500])
        self._event(kind, namespace, name, "WorkStopped", f"{what} to reach the target runtime; back with the restore")
        return stored, True

    def _say_planned(self, namespace: str, kind: str, name: str, count: int) -> None:
        """Dry-run: what would be stopped, said once per workload and count (reads only)."""
        label = f"{kind} {namespace}/{name}"
        try:
            current = self._current(namespace, kind, name)
        except (ValueError, ClusterError) as error:
            self._refuse_once(label, str(error))
            return
        if current is None:
            return
        target = JOB_SUSPENDED if kind == "Job" else max(0, current - count)
        said = (namespace, kind, name, current, target)
        if target == current or said in self._planned_said:
            return
        self._planned_said.add(said)
        self._log.info("work.stop_planned", workload=label, replicas_from=current, replicas_to=target, dry_run=True)

    # --- putting back --------------------------------------------------------------------------------------

    def bring_back(self, *, now_allowed: bool) -> bool:
        """Read the record (so :attr:`pending` is current) and, when ``now_allowed`` (the restore policy lets
        shed nodes back, or the outage is over), put every recorded workload back. True if any was scaled."""
        try:
            stored = self._store.read()
        except ClusterError as error:
            self._api_failed("read the stopped-work record", error)
            return False
        if isinstance(stored, InvalidRecord):
            self.pending = False  # said once; a person reads and deletes it (nothing is scaled for it)
            return False
        self.pending = bool(stored.record.entries)
        if not now_allowed or not stored.record.entries:
            return False
        acted = False
        for entry in stored.record.entries:
            try:
                stored, done = self._back_one(stored, entry)
            except ClusterError as error:
                self._api_failed(f"put back {entry.label}", error)
                continue
            acted = acted or done
        self.pending = bool(stored.record.entries)
        return acted

    def _back_one(self, stored: _Stored, entry: StoppedWorkload) -> tuple[_Stored, bool]:
        """One entry: scaled back (or resumed), or left as someone set it; the entry cleared after."""
        try:
            current = self._current(entry.namespace, entry.kind, entry.name)
        except ValueError as error:
            self._refuse_once(entry.label, str(error))
            return stored, False
        choice = decide_scale_back(entry, current)
        acted = False
        if choice is ScaleBack.RESTORE:
            self._set(entry.namespace, entry.kind, entry.name, entry.replicas_before)
            acted = True
            self._log.info(
                "work.restored", workload=entry.label, replicas_from=current, replicas_to=entry.replicas_before
            )
            what = (
                f"resumed Job {entry.namespace}/{entry.name}"
                if entry.kind == "Job"
                else f"scaled {entry.label} back from {current} to {entry.replicas_before}"
            )
            self._event(entry.kind, entry.namespace, entry.name, "WorkRestored", f"{what}: the cluster restores")
        elif choice is ScaleBack.USER_CHANGED:
            self._log.warning(
                "work.left_changed",
                workload=entry.label,
                replicas_set=entry.replicas_set,
                replicas_now=current,
                replicas_before=entry.replicas_before,
            )
            self._event(
                entry.kind,
                entry.namespace,
                entry.name,
                "WorkLeftAsChanged",
                f"piclusterd set {entry.replicas_set} during the outage and finds {current}: someone changed it, "
                f"so it is left as it is (was {entry.replicas_before} before the outage)",
            )
        elif choice is ScaleBack.GONE:
            self._log.info("work.gone", workload=entry.label)
        else:
            self._log.info("work.already_back", workload=entry.label, replicas_now=current)
        self._elector.ensure_leader()
        return self._store.write(stored, stored.record.without(entry.key)), acted

    # --- saying ----------------------------------------------------------------------------------------------

    def _event(self, kind: str, namespace: str, name: str, reason: str, message: str) -> None:
        try:
            self._events.emit_on(kind, _API_VERSION[kind], namespace, name, reason, message)
        except ClusterError as error:
            self._api_failed(f"emit {reason}", error)

    def _api_failed(self, step: str, error: ClusterError) -> None:
        """A failed call, said once per step and error: a missing RBAC rule must not log every poll."""
        said = (step, str(error))
        if said in self._failed_said:
            return
        self._failed_said.add(said)
        self._log.warning("cluster.api_failed", step=step, error=str(error))

    def _refuse_once(self, what: str, why: str) -> None:
        if (what, why) in self._refused_said:
            return
        self._refused_said.add((what, why))
        self._log.warning("work.stop_refused", workload=what, why=why[:300])
