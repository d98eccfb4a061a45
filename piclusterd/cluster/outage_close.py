"""The end of an outage: the full shutdown undone after the boot, the outage judged over, its summary said once.

:class:`OutageCloser` is the outage coordinator's last part. After the cluster booted again from a full
shutdown, :meth:`OutageCloser.undo_full_shutdown` uncordons what it cordoned and clears the shed records it
left on every node that is back (never resuming it). :meth:`OutageCloser.is_over` says when mains held long
enough and everything is back; :meth:`OutageCloser.close` then deletes the outage record and logs
``outage.summary`` with its ``OutageSummary`` Event, once per outage.
"""

from __future__ import annotations

from typing import Any

from piclusterd.cluster.election import LeaseElector
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.outage_store import OutageStore
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    ShedRecord,
    parse_shed_record,
)
from piclusterd.core.outage_record import OutageRecord, critical_workloads_down, parse_rfc3339, summary_fields
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger

__all__ = ["MAINS_SETTLE_S", "SUMMARY_WAIT_S", "OutageCloser"]

#: After mains returns, the summary waits this long at most for every critical workload to be Ready again.
SUMMARY_WAIT_S = 600.0

#: Mains must have held this long before an outage is over: a flapping mains (brownout) is one outage.
MAINS_SETTLE_S = 60.0


class OutageCloser:
    """``critical_priority``: the priority from which a workload is critical (its downtime is counted)."""

    def __init__(
        self,
        *,
        identity: str,
        api: KubeClusterApi,
        elector: LeaseElector,
        events: EventRecorder,
        store: OutageStore,
        critical_priority: int,
        clock: Clock,
        log: AuditLogger,
    ) -> None:
        self._identity = identity
        self._api = api
        self._elector = elector
        self._events = events
        self._store = store
        self._critical_priority = critical_priority
        self._clock = clock
        self._log = log

    def undo_full_shutdown(
        self, view: ClusterView, record: OutageRecord, *, may_close: bool = True, done: set[str] | None = None
    ) -> bool:
        """Undo what the full shutdown did on every node that is back; close the outage once all are (on mains).
        ``done``: nodes already undone since the boot, skipped; each Ready node looked at is added."""
        progress = record.full_shutdown
        assert progress is not None
        acted = False
        for node in sorted(view.nodes, key=lambda n: n.name):
            if not node.ready or (done is not None and node.name in done):
                continue
            if done is not None:
                done.add(node.name)
            ours = [key for key in (SHED_ANNOTATION, REQUEST_ANNOTATION, ACK_ANNOTATION) if key in node.annotations]
            shed = parse_shed_record(node.annotations.get(SHED_ANNOTATION, ""))
            # A record that did not verify (the view marks it: ShedRecords.checked_view) proves nothing either.
            trusted = isinstance(shed, ShedRecord) and not node.shed_distrusted
            cordoned_by_shed = trusted and isinstance(shed, ShedRecord) and not shed.was_unschedulable
            uncordon = node.unschedulable and (node.name in progress.cordoned or cordoned_by_shed)
            if not trusted and SHED_ANNOTATION in node.annotations:
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
        if not acted and may_close and self.is_over(view, record, self._clock.wall()):
            self.close(record, self._clock.wall())
        return acted

    def is_over(self, view: ClusterView, record: OutageRecord, now: float) -> bool:
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
        return not critical_workloads_down(view, self._critical_priority)

    def close(self, record: OutageRecord, now: float) -> None:
        """Delete the record, then say so: deleted first, so the summary is logged once per outage."""
        self._elector.ensure_leader()
        fields = summary_fields(record, now)
        self._store.delete()
        self._log.info("outage.summary", **fields)
        shed = ", ".join(record.shed) or "none"
        kind = "ended in a full shutdown" if record.full_shutdown is not None else "ended"
        used = fields["energy_used_wh"]
        energy = "energy from the battery unknown (no load figure)" if used is None else f"{used} Wh from the battery"
        self._events.emit(
            self._identity,
            "OutageSummary",
            f"outage {record.started_at} to {fields['ended_at']} {kind}: nodes shed {shed}, "
            f"{energy}, critical services down {fields['critical_downtime_s']} s",
        )
