"""Field validation the fake API server copies from kube-apiserver, for the objects piclusterd writes.

Each rule names the upstream function it copies. A rule that fails becomes a 422 ``Invalid`` Status with
one cause per field, as ``apierrors.NewInvalid`` builds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldError", "validate_event", "validate_lease"]

_QUALIFIED_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REPORTING_INSTANCE_LIMIT = 128  # pkg/apis/core/validation/events.go
_ACTION_LIMIT = 128
_REASON_LIMIT = 128
_NOTE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class FieldError:
    """One ``field.Error``: ``kind`` is ``Invalid`` or ``Required`` (the cause reason is FieldValue<kind>)."""

    field: str
    kind: str
    value: str
    detail: str

    def message(self) -> str:
        if self.kind == "Required":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        return f"Invalid value: {self.value}: {self.detail}"


def validate_lease(lease: Mapping[str, Any]) -> list[FieldError]:
    """pkg/apis/coordination/validation/validation.go ValidateLeaseSpec: a duration, if given, is > 0;
    transitions, if given, are >= 0."""
    spec = lease.get("spec") or {}
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errors.append(FieldError("spec.leaseDurationSeconds", "Invalid", str(duration), "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        errors.append(
            FieldError("spec.leaseTransitions", "Invalid", str(transitions), "must be greater than or equal to 0")
        )
    return errors


def validate_event(event: Mapping[str, Any]) -> list[FieldError]:
    """pkg/apis/core/validation/events.go legacyValidateEvent, the only validation a core/v1 Event gets.

    An Event without ``eventTime`` (old style) about a cluster-scoped object (a Node) must live in the
    ``default`` namespace; with ``eventTime`` it may also live in ``kube-system``, and then it needs
    ``reportingComponent`` (a qualified name), ``reportingInstance``, ``action`` and ``reason``. So a Node's
    Events can never live in a project namespace such as ``piclusterd``.
    """
    errors: list[FieldError] = []
    namespace = str((event.get("metadata") or {}).get("namespace") or "")
    involved = event.get("involvedObject") or {}
    involved_namespace = str(involved.get("namespace") or "")
    mismatch = FieldError(
        "involvedObject.namespace", "Invalid", f'"{involved_namespace}"', "does not match event.namespace"
    )
    if not event.get("eventTime"):
        if not involved_namespace:
            if namespace not in ("", "default"):
                errors.append(mismatch)
        elif namespace != involved_namespace:
            errors.append(mismatch)
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            errors.append(mismatch)
        controller = str(event.get("reportingComponent") or "")
        if not controller:
            errors.append(FieldError("reportingComponent", "Required", "", ""))
        elif not _is_qualified_name(controller):
            errors.append(
                FieldError(
                    "reportingComponent",
                    "Invalid",
                    f'"{controller}"',
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
        errors.extend(_required_and_short(event, "reportingInstance", _REPORTING_INSTANCE_LIMIT))
        errors.extend(_required_and_short(event, "action", _ACTION_LIMIT))
        errors.extend(_required_and_short(event, "reason", _REASON_LIMIT))
        if len(str(event.get("message") or "")) > _NOTE_LIMIT:
            errors.append(FieldError("message", "Invalid", '""', f"can have at most {_NOTE_LIMIT} characters"))
    if namespace and not _DNS1123_SUBDOMAIN.match(namespace):
        errors.append(FieldError("namespace", "Invalid", f'"{namespace}"', "a lowercase RFC 1123 subdomain"))
    return errors


def _required_and_short(event: Mapping[str, Any], field: str, limit: int) -> list[FieldError]:
    value = str(event.get(field) or "")
    if not value:
        return [FieldError(field, "Required", "", "")]
    if len(value) > limit:
        return [FieldError(field, "Invalid", '""', f"can have at most {limit} characters")]
    return []


def _is_qualified_name(value: str) -> bool:
    """apimachinery's IsQualifiedName: an optional DNS-subdomain prefix and '/', then a name part of <= 63."""
    prefix, _, name = value.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME_PART.match(name))
