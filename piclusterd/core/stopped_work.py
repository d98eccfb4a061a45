"""The stopped-work record: the non-critical workloads the leader scaled down (or suspended) to reach the target,
with the counts to put back. Pure: no clock, no I/O.

The leader writes it *before* each scale-down (write-ahead), signed like the outage record, under the key
``record`` of the ConfigMap ``<outage namespace>/piclusterd-stopped-work``, so whoever leads when the cluster
restores (this leader, or a new one after a leader change or a full shutdown) scales each workload back to
``replicas_before`` and resumes each Job, then drops its entry. A workload whose count someone changed since
(its replicas are no longer what piclusterd set) is left as it is: the user wins, as kured leaves a node an
operator cordoned. A record that cannot be parsed or does not verify is said, never acted on.

The Kubernetes objects read on the way (a ReplicaSet's controller, a Scale, a Job) are parsed here too, with
bounds: anything else refuses that one workload.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from piclusterd.core.bounded_json import JsonRefused, load_bounded_json
from piclusterd.core.node_records import RECORD_VERSION, InvalidRecord
from piclusterd.core.outage_record import render_whole_record, whole_record_fields

__all__ = [
    "MAX_ENTRIES",
    "MAX_REPLICAS",
    "STOPPED_WORK_CONFIGMAP",
    "STOPPED_WORK_KEY",
    "WORKLOAD_KINDS",
    "ScaleBack",
    "StoppedWork",
    "StoppedWorkload",
    "controlling_deployment",
    "decide_scale_back",
    "job_suspended",
    "parse_stopped_work",
    "render_stopped_work",
    "scale_replicas",
    "stopped_work_fields",
]

STOPPED_WORK_CONFIGMAP = "piclusterd-stopped-work"
STOPPED_WORK_KEY = "record"

#: The kinds piclusterd scales (a ReplicaSet owned by a Deployment is scaled through the Deployment: the
#: deployment controller would undo a change to its ReplicaSet) or suspends (a Job).
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "Job")

#: Far above any workload of a Pi cluster: a count beyond it is garbage, refused for that workload.
MAX_REPLICAS = 10_000
#: Far above the non-critical workloads of a Pi cluster: a record with more entries is refused whole.
MAX_ENTRIES = 256

#: A namespace or object name as the API server accepts it (RFC 1123 subdomain, at most 253 characters).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")

#: A Job's entry counts 1 for running and 0 for suspended, so every entry reads the same way.
JOB_RUNNING = 1
JOB_SUSPENDED = 0


def _valid_name(text: object) -> bool:
    return isinstance(text, str) and _NAME.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class StoppedWorkload:
    """One workload piclusterd stopped: the kind it actually scaled (the Deployment, not its ReplicaSet),
    the replicas before and the replicas it set (a Job: ``JOB_RUNNING`` before, ``JOB_SUSPENDED`` set)."""

    namespace: str
    kind: str
    name: str
    replicas_before: int
    replicas_set: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.kind, self.name)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class StoppedWork:
    """The record: its entries, and who signed it in which Lease term (unsigned: -1, "")."""

    entries: tuple[StoppedWorkload, ...] = ()
    leader: str = ""
    term: int = -1
    signature: str = ""

    def entry(self, namespace: str, kind: str, name: str) -> StoppedWorkload | None:
        return next((e for e in self.entries if e.key == (namespace, kind, name)), None)

    def with_entry(self, entry: StoppedWorkload) -> StoppedWork:
        """``entry`` added, or replacing the one of the same workload (a second scale-down keeps the first
        ``replicas_before``: the caller passes it on)."""
        kept = tuple(e for e in self.entries if e.key != entry.key)
        return replace(self, entries=tuple(sorted((*kept, entry), key=lambda e: e.key)))

    def without(self, key: tuple[str, str, str]) -> StoppedWork:
        return replace(self, entries=tuple(e for e in self.entries if e.key != key))


class ScaleBack(enum.StrEnum):
    """What the restore does with one entry (:func:`decide_scale_back`)."""

    RESTORE = "restore"  # put replicas_before back (resume the Job)
    USER_CHANGED = "user-changed"  # someone changed the count since: leave it, drop the entry
    GONE = "gone"  # the workload was deleted: nothing to put back, drop the entry
    ALREADY_BACK = "already-back"  # at its count before already (a leader died between the scale and the record)


def decide_scale_back(entry: StoppedWorkload, current: int | None) -> ScaleBack:
    """Pure: the restore's choice for ``entry`` given the workload's replicas now (``None``: it is gone; a
    Job: ``JOB_SUSPENDED`` or ``JOB_RUNNING``). Ordered early returns."""
    # 1. Deleted since: nothing to bring back.
    if current is None:
        return ScaleBack.GONE
    # 2. Back at its count before already: a leader put it back and died before clearing the entry.
    if current == entry.replicas_before:
        return ScaleBack.ALREADY_BACK
    # 3. Not what piclusterd set: a person (or their tooling) changed it since, and the person wins.
    if current != entry.replicas_set:
        return ScaleBack.USER_CHANGED
    # 4. As piclusterd left it: put the original count back.
    return ScaleBack.RESTORE


# --- Kubernetes objects read on the way ----------------------------------------------------------------


def _replicas(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REPLICAS:
        raise ValueError(f"{where} is {str(value)[:40]!r}, not a whole number from 0 to {MAX_REPLICAS}")
    return value


def scale_replicas(obj: Mapping[str, Any]) -> int:
    """``spec.replicas`` of an autoscaling/v1 Scale (the scale subresource's answer); raises ValueError on
    anything but a whole number from 0 to ``MAX_REPLICAS``. An absent ``spec.replicas`` reads 0, as the
    API server omits a zero in JSON (``omitempty``)."""
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ValueError("the Scale's spec is not an object")
    return _replicas(spec.get("replicas", 0), "the Scale's spec.replicas")


def controlling_deployment(replica_set: Mapping[str, Any]) -> str | None:
    """The name of the Deployment that controls ``replica_set`` (its ownerReference with ``controller: true``,
    kind Deployment, group apps), or None for a bare ReplicaSet; raises ValueError on an unreadable list."""
    metadata = replica_set.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError("the ReplicaSet has no metadata")
    owners = metadata.get("ownerReferences") or []
    if not isinstance(owners, list) or len(owners) > 64:
        raise ValueError("the ReplicaSet's ownerReferences are not a short list")
    for owner in owners:
        if not isinstance(owner, dict) or owner.get("controller") is not True:
            continue
        if owner.get("kind") != "Deployment" or not str(owner.get("apiVersion", "")).startswith("apps/"):
            return None  # controlled by something else (an operator's own kind): scale the ReplicaSet itself
        name = owner.get("name")
        if not _valid_name(name):
            raise ValueError(f"the ReplicaSet's controlling Deployment is named {str(name)[:60]!r}")
        return str(name)
    return None


def job_suspended(job: Mapping[str, Any]) -> bool:
    """Whether the Job's ``spec.suspend`` is true (absent: false); raises ValueError on anything but a bool."""
    spec = job.get("spec")
    if not isinstance(spec, dict):
        raise ValueError("the Job has no spec")
    value = spec.get("suspend", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"the Job's spec.suspend is {str(value)[:40]!r}, not true or false")
    return value


# --- the wire format ----------------------------------------------------------------------------------


def _unsigned_data(record: StoppedWork) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": RECORD_VERSION,
        "leader": record.leader,
        "entries": [
            {
                "namespace": e.namespace,
                "kind": e.kind,
                "name": e.name,
                "replicasBefore": e.replicas_before,
                "replicasSet": e.replicas_set,
            }
            for e in sorted(record.entries, key=lambda e: e.key)
        ],
    }
    if record.term != -1:
        data["term"] = record.term
    return data


def stopped_work_fields(record: StoppedWork) -> dict[str, str | int | bool]:
    return whole_record_fields(_unsigned_data(record))


def render_stopped_work(record: StoppedWork) -> str:
    return render_whole_record(_unsigned_data(record), record.signature)


def _entry(raw: object) -> StoppedWorkload:
    if not isinstance(raw, dict):
        raise ValueError("an entry is not an object")
    namespace, kind, name = raw.get("namespace"), raw.get("kind"), raw.get("name")
    if not _valid_name(namespace) or not _valid_name(name):
        raise ValueError(f"an entry's namespace/name {str(namespace)[:60]!r}/{str(name)[:60]!r} is not a name")
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"an entry's kind {str(kind)[:40]!r} is not one of {', '.join(WORKLOAD_KINDS)}")
    before = _replicas(raw.get("replicasBefore"), "'replicasBefore'")
    set_to = _replicas(raw.get("replicasSet"), "'replicasSet'")
    if kind == "Job" and (before, set_to) != (JOB_RUNNING, JOB_SUSPENDED):
        raise ValueError("a Job's entry must read replicasBefore 1 (running), replicasSet 0 (suspended)")
    if set_to >= before:
        raise ValueError(f"'replicasSet' {set_to} is not below 'replicasBefore' {before}: not a scale-down")
    return StoppedWorkload(str(namespace), str(kind), str(name), before, set_to)


def parse_stopped_work(raw: str) -> StoppedWork | InvalidRecord:
    """Parse the ConfigMap's ``record``. Never raises: nonsense becomes an InvalidRecord with the reason."""
    try:
        data = load_bounded_json(raw)
    except JsonRefused as error:
        return InvalidRecord(raw, str(error))
    if not isinstance(data, dict):
        return InvalidRecord(raw, "not a JSON object")
    if data.get("v") != RECORD_VERSION:
        return InvalidRecord(raw, f"record version {data.get('v')!r}, this piclusterd reads {RECORD_VERSION}")
    try:
        leader = data.get("leader")
        if not isinstance(leader, str) or len(leader) > 253:
            raise ValueError("'leader' must be a node name")
        raw_entries = data.get("entries")
        if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
            raise ValueError(f"'entries' must be a list of at most {MAX_ENTRIES}")
        entries = tuple(_entry(item) for item in raw_entries)
        if len({e.key for e in entries}) != len(entries):
            raise ValueError("a workload is listed twice")
        term = data.get("term", -1)
        if isinstance(term, bool) or not isinstance(term, int) or term < -1:
            raise ValueError("'term' must be a whole number")
        signature = data.get("sig", "")
        if not isinstance(signature, str):
            raise ValueError("'sig' must be a string")
    except ValueError as error:
        return InvalidRecord(raw, str(error))
    return StoppedWork(tuple(sorted(entries, key=lambda e: e.key)), leader, term, signature)
