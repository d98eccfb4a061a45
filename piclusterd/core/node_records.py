"""The leader's intent and progress, recorded on Node objects as typed, versioned annotation records. Pure.

Everything the leader means to do to a node, and has done, is written on that node *before* the step is
taken, so a new leader (after the old one died mid-drain) finds it and finishes or rolls back each step
exactly once. Like kured's lock, a record is JSON in one annotation, with a version number; a record that
cannot be parsed (edited by hand into nonsense, or written by a newer piclusterd) is reported and never acted
on: :func:`parse_shed_record` returns an :class:`InvalidRecord` carrying the reason.

Annotations (all under ``picluster.io/``):

``shed``
    :class:`ShedRecord`: the node's phase in shedding (draining, drained, poweroff_requested, powered_off,
    restoring), who decided it and why, and whether the node was already cordoned before we touched it
    (we never uncordon a node an operator cordoned). Signed like a request by the leader that wrote it last
    (``signedBy``, its Lease ``term``, ``sig``: :func:`shed_record_fields`), so a record nobody with the
    cluster key wrote is never acted on.
``poweroff-request``
    :class:`PowerOffRequest`: the leader asks the node's own daemon to power off (id, leader, time, and the
    Lease term and signature the node checks before obeying: :mod:`piclusterd.core.authority`).
``poweroff-ack``
    written by the node's own daemon when it accepts a power-off request: the request id.
``poweron-request``
    :class:`PowerOnRequest`, on the node that drives another node's power relay (``gpio-relay`` with
    ``via``): pulse the relay of ``target`` once. That node's daemon removes it before pulsing, so it is
    obeyed at most once, and pulses only a line its own configuration gives for ``target``.
``power``
    each node's own power reading, written by its daemon: see :mod:`piclusterd.node.power_publisher`.
"""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass, replace
from typing import Any

from piclusterd.core.bounded_json import JsonRefused, load_bounded_json

__all__ = [
    "ACK_ANNOTATION",
    "POWER_ON_REQUEST_ANNOTATION",
    "PREFIX",
    "REQUEST_ANNOTATION",
    "SHED_ANNOTATION",
    "InvalidRecord",
    "PowerOffRequest",
    "PowerOnRequest",
    "ShedPhase",
    "ShedRecord",
    "parse_poweroff_request",
    "parse_poweron_request",
    "parse_shed_record",
    "poweroff_request_fields",
    "poweron_request_fields",
    "render_poweroff_request",
    "render_poweron_request",
    "render_shed_record",
    "rfc3339",
    "shed_record_fields",
]

PREFIX = "picluster.io/"
SHED_ANNOTATION = PREFIX + "shed"
ACK_ANNOTATION = PREFIX + "poweroff-ack"
REQUEST_ANNOTATION = PREFIX + "poweroff-request"
POWER_ON_REQUEST_ANNOTATION = PREFIX + "poweron-request"
RECORD_VERSION = 1


def rfc3339(wall: float) -> str:
    """UNIX time as RFC 3339 in UTC, to the second (``2026-11-25T02:00:00Z``): the records' time format."""
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ShedPhase(enum.Enum):
    DRAINING = "draining"  # cordoned by us (or already cordoned), evictions under way
    DRAINED = "drained"  # every pod that must move is gone
    POWEROFF_REQUESTED = "poweroff_requested"  # request id recorded, request sent
    POWERED_OFF = "powered_off"  # seen NotReady after the request: shed
    RESTORING = "restoring"  # power-on sent, waiting for Ready


@dataclass(frozen=True, slots=True)
class ShedRecord:
    phase: ShedPhase
    leader: str
    reason: str
    started_at: str  # RFC 3339, for people reading `kubectl describe node`
    was_unschedulable: bool
    request_id: str = ""
    changed_at: str = ""
    #: The leader that wrote (signed) it last, the Lease term it led in then, and the HMAC; unsigned: "", -1, "".
    signer: str = ""
    term: int = -1
    signature: str = ""

    def with_phase(self, phase: ShedPhase, changed_at: str, request_id: str | None = None) -> ShedRecord:
        return replace(
            self, phase=phase, changed_at=changed_at, request_id=self.request_id if request_id is None else request_id
        )


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """An annotation we cannot trust: say so loudly, leave the node alone."""

    raw: str
    reason: str


def shed_record_fields(record: ShedRecord) -> dict[str, str | int | bool]:
    """Every field of the record as written, the signature aside: what the signature covers."""
    fields: dict[str, str | int | bool] = {
        "v": RECORD_VERSION,
        "phase": record.phase.value,
        "leader": record.leader,
        "reason": record.reason,
        "startedAt": record.started_at,
        "wasUnschedulable": record.was_unschedulable,
        "requestId": record.request_id,
        "changedAt": record.changed_at,
    }
    if record.signer or record.term != -1:
        fields.update(signedBy=record.signer, term=record.term)
    return fields


def render_shed_record(record: ShedRecord) -> str:
    fields = shed_record_fields(record)
    return json.dumps(
        {**fields, "sig": record.signature} if record.signature else fields, separators=(",", ":"), sort_keys=True
    )


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key!r} is missing or not a {kind.__name__}")
    return value


def _versioned_object(raw: str) -> dict[str, Any] | InvalidRecord:
    """The JSON object of a record of this version, or why it is not one."""
    try:
        data = load_bounded_json(raw)
    except JsonRefused as error:
        return InvalidRecord(raw, str(error))
    if not isinstance(data, dict):
        return InvalidRecord(raw, "not a JSON object")
    try:
        version = _field(data, "v", int)
    except ValueError as error:
        return InvalidRecord(raw, str(error))
    if version != RECORD_VERSION:
        return InvalidRecord(raw, f"record version {version}, this piclusterd reads {RECORD_VERSION}")
    return data


def parse_shed_record(raw: str) -> ShedRecord | InvalidRecord:
    """Parse the ``picluster.io/shed`` annotation. Never raises: nonsense becomes an InvalidRecord."""
    data = _versioned_object(raw)
    if isinstance(data, InvalidRecord):
        return data
    try:
        phase_text = _field(data, "phase", str)
        try:
            phase = ShedPhase(phase_text)
        except ValueError:
            return InvalidRecord(raw, f"unknown phase {phase_text!r}")
        term, signature = _term_and_signature(data)
        return ShedRecord(
            phase=phase,
            leader=_field(data, "leader", str),
            reason=_field(data, "reason", str),
            started_at=_field(data, "startedAt", str),
            was_unschedulable=_field(data, "wasUnschedulable", bool),
            request_id=_field(data, "requestId", str),
            changed_at=_field(data, "changedAt", str),
            signer=_field(data, "signedBy", str) if "signedBy" in data else "",
            term=term,
            signature=signature,
        )
    except ValueError as error:
        return InvalidRecord(raw, str(error))


@dataclass(frozen=True, slots=True)
class PowerOffRequest:
    """The leader asks this node to power off. ``term`` and ``signature``: see :mod:`piclusterd.core.authority`
    (an unsigned request, term -1, is never obeyed)."""

    request_id: str
    leader: str
    requested_at: str
    term: int = -1
    signature: str = ""


def poweroff_request_fields(request: PowerOffRequest) -> dict[str, str | int | bool]:
    """Every field of the request as written, the signature aside: what the signature covers."""
    return {
        "v": RECORD_VERSION,
        "id": request.request_id,
        "leader": request.leader,
        "at": request.requested_at,
        "term": request.term,
    }


def render_poweroff_request(request: PowerOffRequest) -> str:
    fields = poweroff_request_fields(request)
    return json.dumps(
        {**fields, "sig": request.signature} if request.signature else fields, separators=(",", ":"), sort_keys=True
    )


def _term_and_signature(data: dict[str, Any]) -> tuple[int, str]:
    """The authority fields: absent in an unsigned request (term -1, no signature), typed when present."""
    term = _field(data, "term", int) if "term" in data else -1
    signature = _field(data, "sig", str) if "sig" in data else ""
    return term, signature


def parse_poweroff_request(raw: str) -> PowerOffRequest | InvalidRecord:
    """Parse ``picluster.io/poweroff-request``; nonsense becomes an InvalidRecord, never a power-off."""
    data = _versioned_object(raw)
    if isinstance(data, InvalidRecord):
        return data
    try:
        request = PowerOffRequest(_field(data, "id", str), _field(data, "leader", str), _field(data, "at", str))
        term, signature = _term_and_signature(data)
    except ValueError as error:
        return InvalidRecord(raw, str(error))
    if not request.request_id:
        return InvalidRecord(raw, "empty request id")
    return replace(request, term=term, signature=signature)


@dataclass(frozen=True, slots=True)
class PowerOnRequest:
    """The leader asks the node holding ``target``'s relay to pulse it (``gpio-relay`` with ``via``)."""

    request_id: str
    target: str
    leader: str
    requested_at: str
    term: int = -1
    signature: str = ""


def poweron_request_fields(request: PowerOnRequest) -> dict[str, str | int | bool]:
    """Every field of the request as written, the signature aside: what the signature covers."""
    return {
        "v": RECORD_VERSION,
        "id": request.request_id,
        "target": request.target,
        "leader": request.leader,
        "at": request.requested_at,
        "term": request.term,
    }


def render_poweron_request(request: PowerOnRequest) -> str:
    fields = poweron_request_fields(request)
    return json.dumps(
        {**fields, "sig": request.signature} if request.signature else fields, separators=(",", ":"), sort_keys=True
    )


def parse_poweron_request(raw: str) -> PowerOnRequest | InvalidRecord:
    """Parse ``picluster.io/poweron-request``; nonsense becomes an InvalidRecord, never a relay pulse."""
    data = _versioned_object(raw)
    if isinstance(data, InvalidRecord):
        return data
    try:
        request = PowerOnRequest(
            _field(data, "id", str), _field(data, "target", str), _field(data, "leader", str), _field(data, "at", str)
        )
        term, signature = _term_and_signature(data)
    except ValueError as error:
        return InvalidRecord(raw, str(error))
    if not request.request_id or not request.target:
        return InvalidRecord(raw, "empty request id or target")
    return replace(request, term=term, signature=signature)
