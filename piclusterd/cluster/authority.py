"""The leader signs the requests it writes; every node checks a request before obeying it.

The rules and the signature are pure (:mod:`piclusterd.core.authority`); this module adds what they need from
the outside: the leader's current Lease term (:meth:`~piclusterd.cluster.election.LeaseElector.term`) when
signing, and on the receiving side a fresh read of the Lease, the memory of ids already obeyed, and the
refusal said once, in the journal (``node.request_refused``) and as a Warning Event ``RequestRefused`` on this
node naming the check that failed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from piclusterd.core.authority import (
    ClusterKeys,
    LeaseView,
    RequestCheck,
    RequestRefusal,
    SignedFields,
    check_record,
    check_request,
    sign,
)
from piclusterd.core.errors import ClusterError
from piclusterd.core.node_records import (
    POWER_ON_REQUEST_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    PowerOffRequest,
    PowerOnRequest,
    ShedRecord,
    poweroff_request_fields,
    poweron_request_fields,
    render_shed_record,
    shed_record_fields,
)
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OutageRecord,
    outage_record_fields,
    parse_rfc3339,
)
from piclusterd.core.stopped_work import STOPPED_WORK_CONFIGMAP, StoppedWork, stopped_work_fields
from piclusterd.node.audit import AuditLogger

if TYPE_CHECKING:
    from piclusterd.cluster.election import LeaseStore
    from piclusterd.cluster.kube_api import EventRecorder

__all__ = ["DEFAULT_REQUEST_MAX_AGE_S", "LeaderTerm", "RequestSigner", "RequestVerifier"]

#: How long before the Lease's last renewal a request may have been written and still be obeyed. The leader
#: renews every poll and rewrites (re-signs) a request it still waits for on each resume, so a real request is
#: seconds old; one left from before a reboot is not.
DEFAULT_REQUEST_MAX_AGE_S = 120.0


#: A record checked while no Lease can be read: not acted on this time, and not said as a forgery.
_NO_LEASE = RequestRefusal(RequestCheck.LEADER, "the Lease cannot be read to check who signed it")


class LeaderTerm(Protocol):
    """Who signs, and the Lease term it leads in now: a :class:`~piclusterd.cluster.election.LeaseElector`."""

    @property
    def identity(self) -> str: ...

    def term(self) -> int:
        """The term (``leaseTransitions``) it leads in; NotLeader if it does not lead now."""
        ...


class RequestSigner:
    """The leader's side: a request signed with the cluster key, in the Lease term it leads in now."""

    def __init__(self, keys: ClusterKeys, elector: LeaderTerm) -> None:
        self._keys = keys
        self._elector = elector

    @property
    def identity(self) -> str:
        return self._elector.identity

    def poweroff(self, node: str, request_id: str, at: str) -> PowerOffRequest:
        """A power-off request for ``node``; NotLeader if this node does not lead now."""
        unsigned = PowerOffRequest(request_id, self._elector.identity, at, self._elector.term())
        fields = poweroff_request_fields(unsigned)
        return PowerOffRequest(
            request_id, unsigned.leader, at, unsigned.term, sign(self._keys.current, REQUEST_ANNOTATION, node, fields)
        )

    def poweron(self, via: str, request_id: str, target: str, at: str) -> PowerOnRequest:
        """A relay-pulse request written on ``via`` for ``target``; NotLeader if this node does not lead now."""
        unsigned = PowerOnRequest(request_id, target, self._elector.identity, at, self._elector.term())
        fields = poweron_request_fields(unsigned)
        signature = sign(self._keys.current, POWER_ON_REQUEST_ANNOTATION, via, fields)
        return PowerOnRequest(request_id, target, unsigned.leader, at, unsigned.term, signature)

    def shed_record(self, node: str, record: ShedRecord) -> str:
        """``record`` as the ``picluster.io/shed`` annotation of ``node``, signed by us in our term (NotLeader if we
        do not lead). ``record.leader`` stays who decided the shed; ``signedBy`` is who wrote it last."""
        unsigned = replace(record, signer=self._elector.identity, term=self._elector.term(), signature="")
        signature = sign(self._keys.current, SHED_ANNOTATION, node, shed_record_fields(unsigned))
        return render_shed_record(replace(unsigned, signature=signature))

    def outage_record(self, namespace: str, record: OutageRecord) -> OutageRecord:
        """``record`` written by us (its ``leader``), signed in our term (NotLeader if we do not lead)."""
        unsigned = replace(record, leader=self._elector.identity, term=self._elector.term(), signature="")
        signature = sign(self._keys.current, OUTAGE_CONFIGMAP, namespace, outage_record_fields(unsigned))
        return replace(unsigned, signature=signature)

    def stopped_work(self, namespace: str, record: StoppedWork) -> StoppedWork:
        """The stopped-work record written by us (its ``leader``), signed in our term (NotLeader if we do not
        lead)."""
        unsigned = replace(record, leader=self._elector.identity, term=self._elector.term(), signature="")
        signature = sign(self._keys.current, STOPPED_WORK_CONFIGMAP, namespace, stopped_work_fields(unsigned))
        return replace(unsigned, signature=signature)


class RequestVerifier:
    """A node's side: obey only a request that passes :func:`~piclusterd.core.authority.check_request`."""

    def __init__(
        self,
        keys: ClusterKeys,
        lease: LeaseStore,
        node: str,
        *,
        log: AuditLogger,
        events: EventRecorder | None = None,
        max_age_s: float = DEFAULT_REQUEST_MAX_AGE_S,
    ) -> None:
        self._keys = keys
        self._lease = lease
        self._node = node
        self._log = log
        self._events = events
        self._max_age_s = max_age_s
        self._obeyed: set[str] = set()
        self._said: set[tuple[str, str, str]] = set()

    def remember(self, request_id: str) -> None:
        """An id obeyed or acknowledged: never obeyed again by this daemon."""
        self._obeyed.add(request_id)

    def check_poweroff(self, request: PowerOffRequest, situation: str | None) -> RequestRefusal | None:
        return self._check(
            REQUEST_ANNOTATION,
            poweroff_request_fields(request),
            request.signature,
            request.request_id,
            request.leader,
            request.term,
            request.requested_at,
            situation,
        )

    def check_poweron(self, request: PowerOnRequest) -> RequestRefusal | None:
        return self._check(
            POWER_ON_REQUEST_ANNOTATION,
            poweron_request_fields(request),
            request.signature,
            request.request_id,
            request.leader,
            request.term,
            request.requested_at,
            None,
        )

    def lease_view(self) -> LeaseView | None:
        """The Lease as just read (None: none, or it cannot be read, which is said)."""
        try:
            record = self._lease.get()  # fresh: never a copy from an earlier poll
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="read the Lease to check a request", error=str(error))
            return None
        if record is None:
            return None
        return LeaseView(record.holder, record.transitions, record.renew_time, record.lease_duration_s)

    def check_shed_record(self, node: str, record: ShedRecord, lease: LeaseView | None) -> RequestRefusal | None:
        """A shed record on ``node`` (``lease``: :meth:`lease_view`, read once for all records of a poll).

        Without a Lease to check against (unreadable now: said as ``cluster.api_failed``), it is refused for this
        poll, quietly: a hiccup of the API server is not a forged record."""
        if lease is None:
            return _NO_LEASE
        refusal = check_record(
            keys=self._keys,
            kind=SHED_ANNOTATION,
            node=node,
            fields=shed_record_fields(record),
            signature=record.signature,
            signer=record.signer,
            term=record.term,
            lease=lease,
        )
        if refusal is not None:
            self._say_record(SHED_ANNOTATION, node, record.signer or record.leader, record.signature, refusal)
        return refusal

    def check_outage_record(self, namespace: str, record: OutageRecord) -> RequestRefusal | None:
        """The outage record (the ConfigMap in ``namespace``), against the Lease read now (none: refused, quietly,
        as for :meth:`check_shed_record`)."""
        fields = outage_record_fields(record)
        return self._check_configmap(namespace, OUTAGE_CONFIGMAP, fields, record.signature, record.leader, record.term)

    def check_stopped_work(self, namespace: str, record: StoppedWork) -> RequestRefusal | None:
        """The stopped-work record (the ConfigMap in ``namespace``), as :meth:`check_outage_record`."""
        fields = stopped_work_fields(record)
        return self._check_configmap(
            namespace, STOPPED_WORK_CONFIGMAP, fields, record.signature, record.leader, record.term
        )

    def _check_configmap(
        self, namespace: str, name: str, fields: SignedFields, signature: str, leader: str, term: int
    ) -> RequestRefusal | None:
        """A record kept in the ConfigMap ``namespace``/``name``, signed by ``leader`` in ``term``: said on this
        node when refused."""
        lease = self.lease_view()
        if lease is None:
            return _NO_LEASE
        refusal = check_record(
            keys=self._keys,
            kind=name,
            node=namespace,
            fields=fields,
            signature=signature,
            signer=leader,
            term=term,
            lease=lease,
        )
        if refusal is not None:
            self._say_record(f"configmap {namespace}/{name}", self._node, leader, signature, refusal)
        return refusal

    def _say_record(self, kind: str, node: str, signer: str, signature: str, refusal: RequestRefusal) -> None:
        """Once per record (its signature, or its absence) and failed check: journal and a Warning Event on
        ``node`` (the Node it is written on; this node for the outage record). The record is never acted on."""
        key = (f"{kind}@{node}", signature, refusal.check.value)
        if key in self._said:
            return
        self._said.add(key)
        self._log.error(
            "cluster.record_refused",
            kind=kind,
            target=node,
            signer=signer[:64],
            check=refusal.check.value,
            why=refusal.detail,
        )
        if self._events is None:
            return
        try:
            self._events.emit(
                node,
                "RecordRefused",
                f"{kind} (written by {signer[:64]!r}) refused, check {refusal.check.value}: {refusal.detail}. "
                "Not acted on, and left as it is for a person to check (kubectl describe, then delete it if forged).",
                warning=True,
            )
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="emit RecordRefused", error=str(error))

    def _check(
        self,
        kind: str,
        fields: SignedFields,
        signature: str,
        request_id: str,
        leader: str,
        term: int,
        at: str,
        situation: str | None,
    ) -> RequestRefusal | None:
        lease = self.lease_view()
        try:
            written_at: float | None = parse_rfc3339(at)
        except ValueError:
            written_at = None
        refusal = check_request(
            keys=self._keys,
            kind=kind,
            node=self._node,
            fields=fields,
            signature=signature,
            request_id=request_id,
            leader=leader,
            term=term,
            written_at=written_at,
            lease=lease,
            obeyed=self._obeyed,
            max_age_s=self._max_age_s,
            situation=situation,
        )
        if refusal is not None:
            self._say(kind, request_id, leader, refusal)
        return refusal

    def _say(self, kind: str, request_id: str, leader: str, refusal: RequestRefusal) -> None:
        """Once per request and failed check: a forged request left in place is not a log line per poll."""
        key = (kind, request_id, refusal.check.value)
        if key in self._said:
            return
        self._said.add(key)
        self._log.error(
            "node.request_refused",
            kind=kind,
            request_id=request_id[:64],
            leader=leader[:64],
            check=refusal.check.value,
            why=refusal.detail,
        )
        if self._events is None:
            return
        try:
            self._events.emit(
                self._node,
                "RequestRefused",
                f"{kind} {request_id[:64]!r} (leader {leader[:64]!r}) refused, check {refusal.check.value}: "
                f"{refusal.detail}. Not obeyed.",
                warning=True,
            )
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step="emit RequestRefused", error=str(error))
