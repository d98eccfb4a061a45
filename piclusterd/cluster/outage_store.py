"""The outage record's store: the ConfigMap ``piclusterd-outage`` the leader reads and writes each poll.

:class:`OutageStore` keeps a copy of what this node last wrote, with the poll's figures folded in since, and
uses it while nobody else wrote (same ``resourceVersion``). Each record is written signed (the cluster key, our
Lease term) and one another node wrote is used only if it verifies. It writes when something a new leader needs changed,
and at least every ``SAVE_EVERY_S`` for the energy figure; a stored record it cannot read is said once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OUTAGE_KEY,
    OutageRecord,
    parse_outage_record,
    render_outage_record,
)
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger

__all__ = ["SAVE_EVERY_S", "OutageStore", "StoredOutage"]

#: The record is written when something in it changes, and at least this often for the energy figure.
SAVE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class StoredOutage:
    """A record and the ``resourceVersion`` it was read or written at (``""``: not stored yet)."""

    record: OutageRecord
    resource_version: str


class OutageStore:
    def __init__(
        self,
        api: KubeClusterApi,
        namespace: str,
        clock: Clock,
        log: AuditLogger,
        *,
        signer: RequestSigner,
        verifier: RequestVerifier,
    ) -> None:
        """``signer`` signs each record written; ``verifier`` checks each read that another node wrote."""
        self._api = api
        self._signer = signer
        self._verifier = verifier
        self._namespace = namespace
        self._clock = clock
        self._log = log
        self._mine: StoredOutage | None = None  # the record as this node last wrote it
        self._saved_at = float("-inf")
        self._invalid_reported: str | None = None

    @property
    def mine(self) -> StoredOutage | None:
        """The record as this node last saved it (None: not since the last read found another's, or none)."""
        return self._mine

    def read(self) -> StoredOutage | InvalidRecord | None:
        """The stored record (this node's own copy if nobody wrote since), None if none, or why unreadable."""
        found = self._api.read_configmap(self._namespace, OUTAGE_CONFIGMAP)
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
        refusal = self._verifier.check_outage_record(self._namespace, parsed)
        if refusal is not None:  # said once by the verifier (cluster.record_refused, Event RecordRefused)
            return InvalidRecord(raw, f"refused, check {refusal.check.value}: {refusal.detail}")
        self._mine = None
        return StoredOutage(parsed, version)

    def save(self, stored: StoredOutage, record: OutageRecord, *, force: bool = False) -> None:
        """Write when something a new leader needs changed, and at least every minute for the energy."""
        now = self._clock.monotonic()
        changed = replace(record, energy_wh=0.0, last_reading_at="") != replace(
            stored.record, energy_wh=0.0, last_reading_at=""
        )
        if not (force or changed or not stored.resource_version or now - self._saved_at >= SAVE_EVERY_S):
            self._mine = StoredOutage(record, stored.resource_version)
            return
        written = self._api.write_configmap(
            self._namespace,
            OUTAGE_CONFIGMAP,
            {OUTAGE_KEY: render_outage_record(self._signer.outage_record(self._namespace, record))},
            stored.resource_version,
        )
        self._mine = StoredOutage(record, str(written["metadata"]["resourceVersion"]))
        self._saved_at = now

    def delete(self) -> None:
        """The outage is over: delete the record, and this node's copy of it."""
        self._api.delete_configmap(self._namespace, OUTAGE_CONFIGMAP)
        self._mine = None
