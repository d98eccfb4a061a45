"""A fake Kubernetes API server: real HTTP on loopback, the real REST wire format, a tiny controller.

Every Kubernetes-facing test of piclusterd talks to this server through the unmodified ``kubernetes``
client, so what passes here behaves the same against k3s. It reproduces, for the few resources piclusterd
uses, what kube-apiserver does on the wire:

- objects carry ``kind``, ``apiVersion``, ``metadata.uid``, ``metadata.resourceVersion`` (one counter for
  all objects, as etcd's revision) and ``metadata.creationTimestamp``; list items carry neither kind nor
  apiVersion, lists carry ``metadata.resourceVersion``;
- errors are ``Status`` objects with the real HTTP codes, reasons and messages;
- nodes (get, list, create, replace, patch: strategic-merge, merge and JSON patch, delete, ``/status``),
  pods (the same, listed per namespace or across all, ``fieldSelector``, ``labelSelector``,
  ``limit``/``continue`` paging, delete with grace period, ``/eviction`` with the PodDisruptionBudget
  rules of ``pkg/registry/core/pod/storage/eviction.go``), core/v1 events, policy/v1
  poddisruptionbudgets (status kept by a built-in disruption controller), coordination.k8s.io/v1 leases
  (409 on a stale resourceVersion, 422 without one, MicroTime fields with exactly 6 fractional digits),
  core/v1 configmaps (create, get, replace, patch, delete: piclusterd's outage record);
- discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>[/<version>]``, ``/version``) listing exactly
  what is served, so kubectl can talk to it;
- workloads (``sim/fake_workloads.py``): apps/v1 deployments, replicasets and statefulsets and batch/v1 jobs
  (get, list, create, replace, patch, delete, ``/status``), and the ``/scale`` subresource (autoscaling/v1
  Scale: get, replace, patch; 422 from ValidateScale on negative replicas, 409 on a stale resourceVersion or
  uid) of the three apps kinds. A loaded pod's owner exists as its controller made it: a ReplicaSet,
  StatefulSet or Job per controller reference, replicas (parallelism) = its live pods, the template from one of
  them; a ReplicaSet ``<d>-<pod-template-hash>`` belongs to the Deployment ``<d>``;
- for kubectl: the ``Table`` that ``kubectl get`` asks for (``sim/kubectl_tables.py``), watches
  (``?watch=true``: chunked JSON events from a resourceVersion, as tables too), apps/v1 daemonsets,
  which ``kubectl drain`` reads to check a DaemonSet pod's owner (a DaemonSet named by a pod's controller
  reference exists, as its controller would have made it), an empty ``/openapi/v2`` (kubectl then
  skips client-side validation, so ``create -f`` and ``apply -f`` work), and ``/openapi/v3`` with the schemas
  of the kinds piclusterd touches (``sim/fake_openapi.py``: ``kubectl explain`` on kubectl 1.27+). Tested with
  Debian's kubectl;
- authentication and RBAC (``sim/fake_rbac.py``): bearer tokens map to identities, deploy/rbac.yaml as shipped
  is evaluated for every request (403 with the real Status), and authorization.k8s.io/v1
  SelfSubjectAccessReview answers ``kubectl auth can-i``;
- dry run (``?dryRun=All``, and ``deleteOptions.dryRun`` in an Eviction): every check, nothing persisted;
- the validation upstream applies to Leases and Events (``sim/fake_validation.py``: 422 Invalid), and to the
  workloads' counts (negative replicas, parallelism: 422), Lease create-on-update, and PodDisruptionBudget
  status exactly as pkg/controller/disruption computes it (getExpectedScale reads a Deployment's replicas).

What it is not: there is no admission webhook, no server-side apply, no full OpenAPI document, no garbage
collector (deleting an owner leaves its pods), no rollout of a changed template, and only the validation the
tests of piclusterd need. A request for any of these gets an error, never a silent success.

The controller (off by default) stands in for the Deployment, ReplicaSet, StatefulSet and Job controllers, the
scheduler and the kubelets. A Deployment's replicas flow to its ReplicaSet (sync.go scale); a ReplicaSet
creates pods from its template (``<rs>-<5 chars>``) up to replicas or deletes the surplus in getPodsToDelete's
order (unscheduled, Pending, not Ready first); a StatefulSet (OrderedReady) creates the lowest missing ordinal
once the one below is Running and Ready and deletes the highest first, one at a time once it is gone; a
suspended Job's active pods are deleted and its ``Suspended`` condition set, a resumed one runs parallelism
pods again (KEP-2232). Every deletion is graceful; a deleted pod whose owner still wants it gets a replacement
(a copy of it; as before for an owner the fake holds no object of). Pending pods are bound to a Ready,
schedulable node whose free allocatable fits their requests, whose labels match their ``nodeSelector``
and whose NoSchedule/NoExecute taints they tolerate, and bound pods turn Running and Ready after
``ready_delay_s`` on the injected clock. It acts only inside :meth:`FakeKubeServer.run_controller_once`,
which runs by itself around every request when ``controller_enabled`` is true; nothing depends on a
background thread's timing.

Test hooks: :meth:`FakeKubeServer.fail_next` (the next N matching requests fail with a given status),
:meth:`~FakeKubeServer.pause` / :meth:`~FakeKubeServer.resume` (requests hang), :meth:`~FakeKubeServer.stop`
and :meth:`~FakeKubeServer.start` (the API goes away and comes back on the same port),
:meth:`~FakeKubeServer.power_off_node` / :meth:`~FakeKubeServer.power_on_node`, and
:attr:`~FakeKubeServer.requests`, the log of every request with its status.

Standalone: ``python -m piclusterd.sim.fake_api_server --port 0 --load cluster.json --kubeconfig kc.json``
prints the URL and serves until interrupted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import dataclasses
import datetime as _dt
import decimal
import http.server
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from piclusterd.sim import (
    fake_node_lifecycle,
    fake_openapi,
    fake_rbac,
    fake_storage,
    fake_validation,
    fake_watch,
    fake_workloads,
    kubectl_tables,
)
from piclusterd.sim.fake_rbac import ADMIN_TOKEN, DAEMON_TOKEN, RbacAuthorizer

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from piclusterd.core.ports import Clock

__all__ = [
    "ADMIN_TOKEN",
    "DAEMON_TOKEN",
    "FakeKubeServer",
    "HttpReply",
    "RequestRecord",
    "SystemClock",
    "format_micro_time",
    "format_time",
    "main",
    "make_node",
    "make_pdb",
    "make_pod",
]

JsonObj = dict[str, Any]
"""A Kubernetes object as decoded JSON."""

_DISRUPTED_POD_TIMEOUT_S = 120.0  # the disruption controller's DeletionTimeout
_DEFAULT_GRACE_S = 30
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
# Controllers the disruption controller can size: its finders (ReplicationController, Deployment through its
# ReplicaSet, ReplicaSet, StatefulSet) and the scale subresource; a DaemonSet or a Job has none.
_SCALE_KINDS = frozenset({"ReplicaSet", "ReplicationController", "Deployment", "StatefulSet"})


class _SyncFailed(Exception):
    """The disruption controller could not compute a budget's status."""


# --------------------------------------------------------------------------------------------- time


class SystemClock:
    """The real clock, for standalone use; tests inject a fake one with the same two methods."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


def format_time(wall: float) -> str:
    """A metav1.Time: RFC 3339 in UTC with whole seconds (``2026-11-24T02:00:00Z``)."""
    moment = _dt.datetime.fromtimestamp(wall, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(wall: float) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    moment = _dt.datetime.fromtimestamp(wall, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_RFC3339_MICRO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")


def _parse_rfc3339(text: str) -> _dt.datetime | None:
    if not _RFC3339.match(text):
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None


# ------------------------------------------------------------------------------------ resources


@dataclass(frozen=True, slots=True)
class _Resource:
    plural: str
    singular: str
    kind: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    # Whether PUT without metadata.resourceVersion is allowed (rest strategy AllowUnconditionalUpdate).
    unconditional_update: bool = True
    field_labels: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    time_fields: tuple[tuple[str, ...], ...] = ()
    micro_time_fields: tuple[tuple[str, ...], ...] = ()
    # Strategic-merge list semantics: path (list indices skipped) -> merge key, or "" for a set of scalars.
    merge_keys: tuple[tuple[tuple[str, ...], str], ...] = ()
    categories: tuple[str, ...] = ()  # discovery's categories: "all" makes kubectl get all list it

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``pods`` or ``leases.coordination.k8s.io``, as kube-apiserver writes it in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_COMMON_MERGE_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("metadata", "ownerReferences"), "uid"),
    (("metadata", "finalizers"), ""),
)

_NODES = _Resource(
    "nodes",
    "node",
    "Node",
    "",
    "v1",
    namespaced=False,
    short_names=("no",),
    has_status=True,
    field_labels=("metadata.name", "spec.unschedulable"),
    merge_keys=(
        *_COMMON_MERGE_KEYS,
        (("status", "conditions"), "type"),
        (("status", "addresses"), "type"),
        (("spec", "podCIDRs"), ""),
    ),
)
_PODS = _Resource(
    "pods",
    "pod",
    "Pod",
    "",
    "v1",
    namespaced=True,
    short_names=("po",),
    has_status=True,
    categories=("all",),
    field_labels=(
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    merge_keys=(
        *_COMMON_MERGE_KEYS,
        (("spec", "containers"), "name"),
        (("spec", "initContainers"), "name"),
        (("spec", "containers", "env"), "name"),
        (("spec", "containers", "ports"), "containerPort"),
        (("spec", "containers", "volumeMounts"), "mountPath"),
        (("spec", "volumes"), "name"),
        (("spec", "imagePullSecrets"), "name"),
        (("status", "conditions"), "type"),
        (("status", "podIPs"), "ip"),
    ),
)
_EVENTS = _Resource(
    "events",
    "event",
    "Event",
    "",
    "v1",
    namespaced=True,
    short_names=("ev",),
    field_labels=(
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    time_fields=(("firstTimestamp",), ("lastTimestamp",)),
    micro_time_fields=(("eventTime",), ("series", "lastObservedTime")),
    merge_keys=_COMMON_MERGE_KEYS,
)
_PDBS = _Resource(
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    "policy",
    "v1",
    namespaced=True,
    short_names=("pdb",),
    has_status=True,
    merge_keys=(*_COMMON_MERGE_KEYS, (("status", "conditions"), "type")),
)
_LEASES = _Resource(
    "leases",
    "lease",
    "Lease",
    "coordination.k8s.io",
    "v1",
    namespaced=True,
    unconditional_update=False,
    micro_time_fields=(("spec", "acquireTime"), ("spec", "renewTime")),
    merge_keys=_COMMON_MERGE_KEYS,
)
_DAEMONSETS = _Resource(
    "daemonsets",
    "daemonset",
    "DaemonSet",
    "apps",
    "v1",
    namespaced=True,
    short_names=("ds",),
    has_status=True,
    merge_keys=_COMMON_MERGE_KEYS,
    categories=("all",),
)
_CONFIGMAPS = _Resource(
    "configmaps",
    "configmap",
    "ConfigMap",
    "",
    "v1",
    namespaced=True,
    short_names=("cm",),
    merge_keys=_COMMON_MERGE_KEYS,
)
_PVS = _Resource(
    "persistentvolumes",
    "persistentvolume",
    "PersistentVolume",
    "",
    "v1",
    namespaced=False,
    short_names=("pv",),
    has_status=True,
    merge_keys=_COMMON_MERGE_KEYS,
)
_PVCS = _Resource(
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    "",
    "v1",
    namespaced=True,
    short_names=("pvc",),
    has_status=True,
    merge_keys=_COMMON_MERGE_KEYS,
)
_STORAGECLASSES = _Resource(
    "storageclasses",
    "storageclass",
    "StorageClass",
    "storage.k8s.io",
    "v1",
    namespaced=False,
    short_names=("sc",),
    merge_keys=_COMMON_MERGE_KEYS,
)
_TEMPLATE_MERGE_KEYS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (("spec", "template", *path), key) for path, key in _PODS.merge_keys if path[0] == "spec"
)
_WORKLOAD_MERGE_KEYS = (*_COMMON_MERGE_KEYS, *_TEMPLATE_MERGE_KEYS, (("status", "conditions"), "type"))
_DEPLOYMENTS = _Resource(
    "deployments",
    "deployment",
    "Deployment",
    "apps",
    "v1",
    namespaced=True,
    short_names=("deploy",),
    has_status=True,
    merge_keys=_WORKLOAD_MERGE_KEYS,
    categories=("all",),
)
_REPLICASETS = _Resource(
    "replicasets",
    "replicaset",
    "ReplicaSet",
    "apps",
    "v1",
    namespaced=True,
    short_names=("rs",),
    has_status=True,
    merge_keys=_WORKLOAD_MERGE_KEYS,
    categories=("all",),
)
_STATEFULSETS = _Resource(
    "statefulsets",
    "statefulset",
    "StatefulSet",
    "apps",
    "v1",
    namespaced=True,
    short_names=("sts",),
    has_status=True,
    merge_keys=(*_WORKLOAD_MERGE_KEYS, (("spec", "volumeClaimTemplates"), "")),
    categories=("all",),
)
_JOBS = _Resource(
    "jobs",
    "job",
    "Job",
    "batch",
    "v1",
    namespaced=True,
    has_status=True,
    merge_keys=_WORKLOAD_MERGE_KEYS,
    categories=("all",),
)
# The kinds whose controllers the fake runs (a pod's owner of one of these kinds is made when the pod is loaded),
# and those of them with a scale subresource (pkg/registry/apps/*/storage/storage.go ScaleREST).
_WORKLOADS: dict[str, _Resource] = {"ReplicaSet": _REPLICASETS, "StatefulSet": _STATEFULSETS, "Job": _JOBS}
_SCALABLE = frozenset({"deployments", "replicasets", "statefulsets"})
_RESOURCES: tuple[_Resource, ...] = (
    _NODES,
    _PODS,
    _EVENTS,
    _PDBS,
    _LEASES,
    _DAEMONSETS,
    _CONFIGMAPS,
    _PVS,
    _PVCS,
    _STORAGECLASSES,
    _DEPLOYMENTS,
    _REPLICASETS,
    _STATEFULSETS,
    _JOBS,
)
_GROUPS: tuple[tuple[str, str], ...] = (
    ("policy", "v1"),
    ("coordination.k8s.io", "v1"),
    ("apps", "v1"),
    ("storage.k8s.io", "v1"),
    ("batch", "v1"),
)
# authorization.k8s.io serves only reviews (create, never stored): answered outside the generic verbs.
_SSAR = _Resource(
    "selfsubjectaccessreviews",
    "",
    "SelfSubjectAccessReview",
    "authorization.k8s.io",
    "v1",
    namespaced=False,
)
_SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_OPENAPI_V2_PROTOBUF = "application/octet-stream"  # what kube-apiserver labels its protobuf schema
_EMPTY_OPENAPI_V2 = b"\x0a\x032.0"  # gnostic openapi_v2.Document{swagger: "2.0"}, protobuf-encoded
_WATCH_HISTORY = 5000  # changes kept for watches that start from an older resourceVersion
_WATCH_TIMEOUT_S = 1800.0  # kube-apiserver's --min-request-timeout: it ends a watch after about this long


def _resource_for(kind: str) -> _Resource:
    """Accepts ``Pod``, ``pod``, ``pods`` or ``po``."""
    wanted = kind.lower()
    for resource in _RESOURCES:
        if wanted in (resource.kind.lower(), resource.plural, resource.singular, *resource.short_names):
            return resource
    raise ValueError(f"the fake API server does not serve {kind!r}")


# --------------------------------------------------------------------------------------- errors


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _status_body(code: int, message: str, reason: str | None, details: JsonObj | None) -> JsonObj:
    body: JsonObj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


class _ApiError(Exception):
    """An error response; raised inside request handling, turned into a Status by the dispatcher."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: JsonObj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = _status_body(code, message, reason, details)
        self.headers: dict[str, str] = {}
        retry = (details or {}).get("retryAfterSeconds", 0)
        if retry:
            self.headers["Retry-After"] = str(retry)


def _details(resource: _Resource, name: str) -> JsonObj:
    details: JsonObj = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    return details


def _not_found(resource: _Resource, name: str) -> _ApiError:
    return _ApiError(404, f'{resource.group_resource} "{name}" not found', "NotFound", _details(resource, name))


def _already_exists(resource: _Resource, name: str) -> _ApiError:
    return _ApiError(
        409, f'{resource.group_resource} "{name}" already exists', "AlreadyExists", _details(resource, name)
    )


def _conflict(resource: _Resource, name: str, why: str) -> _ApiError:
    return _ApiError(
        409,
        f'Operation cannot be fulfilled on {resource.group_resource} "{name}": {why}',
        "Conflict",
        _details(resource, name),
    )


_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def _invalid(resource: _Resource, name: str, field: str, value: str, problem: str) -> _ApiError:
    cause_message = f"Invalid value: {value}: {problem}"
    details = _details(resource, name)
    details["causes"] = [{"reason": "FieldValueInvalid", "message": cause_message, "field": field}]
    return _ApiError(
        422, f'{resource.group_resource} "{name}" is invalid: {field}: {cause_message}', "Invalid", details
    )


def _invalid_fields(resource: _Resource, name: str, errors: Sequence[fake_validation.FieldError]) -> _ApiError:
    """apierrors.NewInvalid: one cause per field, the message joining them all."""
    details = _details(resource, name)
    details["causes"] = [
        {"reason": f"FieldValue{error.kind}", "message": error.message(), "field": error.field} for error in errors
    ]
    joined = ", ".join(f"{error.field}: {error.message()}" for error in errors)
    shown = f"[{joined}]" if len(errors) > 1 else joined
    return _ApiError(422, f'{resource.group_resource} "{name}" is invalid: {shown}', "Invalid", details)


def _invalid_kind(group: str, kind: str, name: str, errors: Sequence[fake_validation.FieldError]) -> _ApiError:
    """apierrors.NewInvalid(schema.GroupKind{group, kind}, name, errs), as the registry's validation and the
    scale subresource raise it: ``Scale.autoscaling "web" is invalid: spec.replicas: ...``."""
    details: JsonObj = {"name": name, "group": group, "kind": kind} if group else {"name": name, "kind": kind}
    details["causes"] = [
        {"reason": f"FieldValue{error.kind}", "message": error.message(), "field": error.field} for error in errors
    ]
    joined = ", ".join(f"{error.field}: {error.message()}" for error in errors)
    shown = f"[{joined}]" if len(errors) > 1 else joined
    qualified = f"{kind}.{group}" if group else kind
    return _ApiError(422, f'{qualified} "{name}" is invalid: {shown}', "Invalid", details)


def _negative(field: str, value: object) -> fake_validation.FieldError:
    """apimachinery ValidateNonnegativeField: ``must be greater than or equal to 0``."""
    return fake_validation.FieldError(field, "Invalid", str(value), "must be greater than or equal to 0")


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, message, "BadRequest")


def _name_mismatch(body_name: object, url_name: str) -> _ApiError:
    return _bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({url_name})")


# ------------------------------------------------------------------------------------ selectors

_KEY = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
_VALUE = r"[A-Za-z0-9._-]*"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_CMP_RE = re.compile(rf"^({_KEY})\s*(<|>)\s*(-?\d+)$")
_NOT_EXISTS_RE = re.compile(rf"^!\s*({_KEY})$")
_EXISTS_RE = re.compile(rf"^({_KEY})$")

LabelMatcher = Callable[[Mapping[str, str]], bool]
"""Says whether a set of labels is selected."""


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _requirement(op: str, key: str, values: Sequence[str]) -> LabelMatcher:
    wanted = frozenset(values)
    if op in ("=", "==", "In"):
        return lambda labels: key in labels and labels[key] in wanted
    if op in ("!=", "NotIn"):
        return lambda labels: key not in labels or labels[key] not in wanted
    if op == "Exists":
        return lambda labels: key in labels
    if op == "DoesNotExist":
        return lambda labels: key not in labels
    bound = int(values[0])
    if op == "Gt":
        return lambda labels: key in labels and labels[key].lstrip("-").isdigit() and int(labels[key]) > bound
    return lambda labels: key in labels and labels[key].lstrip("-").isdigit() and int(labels[key]) < bound


def parse_label_selector(text: str) -> LabelMatcher:
    """A ``labelSelector`` query parameter (equality- and set-based) as a matcher; 400 if malformed."""
    requirements: list[LabelMatcher] = []
    for part in _split_top_level(text):
        if match := _SET_RE.match(part):
            values = [value.strip() for value in match.group(3).split(",") if value.strip()]
            op = "In" if match.group(2) == "in" else "NotIn"
            requirements.append(_requirement(op, match.group(1), values))
        elif match := _EQ_RE.match(part):
            requirements.append(_requirement(match.group(2), match.group(1), [match.group(3)]))
        elif match := _CMP_RE.match(part):
            op = "Gt" if match.group(2) == ">" else "Lt"
            requirements.append(_requirement(op, match.group(1), [match.group(3)]))
        elif match := _NOT_EXISTS_RE.match(part):
            requirements.append(_requirement("DoesNotExist", match.group(1), []))
        elif match := _EXISTS_RE.match(part):
            requirements.append(_requirement("Exists", match.group(1), []))
        else:
            raise _bad_request(f"unable to parse requirement: {part!r}")
    return lambda labels: all(requirement(labels) for requirement in requirements)


def label_selector_matcher(selector: Mapping[str, Any] | None) -> LabelMatcher:
    """A metav1.LabelSelector object as a matcher: ``None`` selects nothing, ``{}`` selects everything."""
    if selector is None:
        return lambda labels: False
    requirements: list[LabelMatcher] = [
        _requirement("=", key, [value]) for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        operator = expression.get("operator", "")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return lambda labels: False  # an invalid selector matches nothing
        requirements.append(_requirement(operator, expression["key"], expression.get("values") or []))
    return lambda labels: all(requirement(labels) for requirement in requirements)


def _field_value(obj: JsonObj, path: str) -> str:
    if path == "source":
        path = "source.component"
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return "false" if path in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_field_selector(text: str, resource: _Resource) -> Callable[[JsonObj], bool]:
    checks: list[Callable[[JsonObj], bool]] = []
    for part in _split_top_level(text):
        match = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise _bad_request(f"invalid field selector: {part!r}")
        field, op, wanted = match.group(1), match.group(2), match.group(3)
        if field not in resource.field_labels:
            raise _bad_request(f"field label not supported: {field}")
        checks.append(_field_check(field, wanted, negate=op == "!="))
    return lambda obj: all(check(obj) for check in checks)


def _field_check(field: str, wanted: str, *, negate: bool) -> Callable[[JsonObj], bool]:
    return lambda obj: (_field_value(obj, field) == wanted) != negate


# ------------------------------------------------------------------------------------- patching


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _merge_keys(resource: _Resource) -> dict[tuple[str, ...], str]:
    return dict(resource.merge_keys)


def strategic_merge_patch(
    target: Any, patch: Any, merge_keys: Mapping[tuple[str, ...], str], path: tuple[str, ...] = ()
) -> Any:
    """Kubernetes' strategic merge patch for the built-in types served here.

    Maps merge as in a merge patch (``null`` deletes). Lists named in ``merge_keys`` merge element by
    element on their merge key (``"$patch": "delete"`` in an element removes it), or as a set of scalars
    for key ``""``; every other list is replaced whole. Directives understood: ``$patch``
    (``replace``/``delete``/``merge``), ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and
    ``$setElementOrder/<field>`` (ordering only, ignored).
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: JsonObj = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child_path = (*path, key)
        current = result.get(key)
        if isinstance(value, list) and child_path in merge_keys:
            result[key] = _merge_list(current, value, merge_keys, child_path)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(current, value, merge_keys, child_path)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(
    current: Any, patch: list[Any], merge_keys: Mapping[tuple[str, ...], str], path: tuple[str, ...]
) -> list[Any]:
    key = merge_keys[path]
    existing: list[Any] = copy.deepcopy(current) if isinstance(current, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if key == "":
        for item in patch:
            if item not in existing:
                existing.append(copy.deepcopy(item))
        return existing
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise _bad_request(f"map in list {'.'.join(path)} has no merge key {key!r}")
        index = next((i for i, old in enumerate(existing) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del existing[index]
        elif index is None:
            existing.append(strategic_merge_patch({}, item, merge_keys, path))
        else:
            existing[index] = strategic_merge_patch(existing[index], item, merge_keys, path)
    return existing


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _ApiError(422, f"json patch: path {path!r} does not start with /", "Invalid")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], op: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _ApiError(
                422,
                f"json patch {op} operation does not apply: doc is missing path: {'/' + '/'.join(parts)}",
                "Invalid",
            )
    return node, parts[-1]


def _get_pointer(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _ApiError(422, f"json patch: missing path /{'/'.join(parts)}", "Invalid")
    return node


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise _bad_request("json patch must be a list of operations")
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise _bad_request(f"invalid json patch operation: {operation!r}")
        op = operation["op"]
        parts = _pointer(operation["path"])
        if op in ("add", "replace", "test") and "value" not in operation:
            raise _bad_request(f"json patch {op} operation needs a value")
        if op == "test":
            if _get_pointer(result, parts) != operation["value"]:
                raise _ApiError(422, f"json patch test operation failed at {operation['path']}", "Invalid")
            continue
        if op in ("move", "copy"):
            value = copy.deepcopy(_get_pointer(result, _pointer(operation.get("from", ""))))
            if op == "move":
                result = _remove(result, _pointer(operation["from"]))
            result = _add(result, parts, value)
            continue
        if op == "add":
            result = _add(result, parts, copy.deepcopy(operation["value"]))
        elif op == "remove":
            result = _remove(result, parts)
        elif op == "replace":
            _get_pointer(result, parts)
            result = _remove(result, parts)
            result = _add(result, parts, copy.deepcopy(operation["value"]))
        else:
            raise _bad_request(f"unknown json patch operation {op!r}")
    return result


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _walk(doc, parts, "add")
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _ApiError(422, f"json patch add: index {last} out of range", "Invalid")
    else:
        raise _ApiError(422, "json patch add: parent is not a container", "Invalid")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _walk(doc, parts, "remove")
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _ApiError(
            422,
            f"json patch remove operation does not apply: doc is missing path: /{'/'.join(parts)}",
            "Invalid",
        )
    return doc


# ----------------------------------------------------------------------------------- quantities

_SUFFIXES: dict[str, decimal.Decimal] = {
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "": decimal.Decimal(1),
    "k": decimal.Decimal(10) ** 3,
    "M": decimal.Decimal(10) ** 6,
    "G": decimal.Decimal(10) ** 9,
    "T": decimal.Decimal(10) ** 12,
    "P": decimal.Decimal(10) ** 15,
    "E": decimal.Decimal(10) ** 18,
    "Ki": decimal.Decimal(2) ** 10,
    "Mi": decimal.Decimal(2) ** 20,
    "Gi": decimal.Decimal(2) ** 30,
    "Ti": decimal.Decimal(2) ** 40,
    "Pi": decimal.Decimal(2) ** 50,
    "Ei": decimal.Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)(?:[eE]([+-]?\d+))?([a-zA-Z]*)$")


def parse_quantity(value: Any) -> decimal.Decimal:
    """A resource.Quantity (``"250m"``, ``"1Gi"``, ``2``) as an exact number of base units."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(3) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    number = decimal.Decimal(match.group(1))
    if match.group(2):
        number *= decimal.Decimal(10) ** int(match.group(2))
    return number * _SUFFIXES[match.group(3)]


def _pod_requests(pod: JsonObj) -> dict[str, decimal.Decimal]:
    """What the scheduler reserves for a pod: sum over containers, at least the largest init container."""

    def requests_of(container: JsonObj) -> dict[str, decimal.Decimal]:
        resources = container.get("resources") or {}
        wanted = dict(resources.get("limits") or {})  # requests default to limits
        wanted.update(resources.get("requests") or {})
        return {name: parse_quantity(quantity) for name, quantity in wanted.items()}

    spec = pod.get("spec") or {}
    total: dict[str, decimal.Decimal] = {}
    for container in spec.get("containers") or []:
        for name, amount in requests_of(container).items():
            total[name] = total.get(name, decimal.Decimal(0)) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in requests_of(container).items():
            total[name] = max(total.get(name, decimal.Decimal(0)), amount)
    return total


# ------------------------------------------------------------------------------------ pod facts


def _conditions(obj: JsonObj) -> list[JsonObj]:
    return list(((obj.get("status") or {}).get("conditions")) or [])


def _condition_status(obj: JsonObj, kind: str) -> str | None:
    for condition in _conditions(obj):
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _set_condition(obj: JsonObj, condition: JsonObj, wall: float) -> None:
    """Add or update a status condition; lastTransitionTime moves only when the status changes."""
    status = obj.setdefault("status", {})
    conditions: list[JsonObj] = status.setdefault("conditions", [])
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            if existing.get("status") != condition["status"]:
                existing["lastTransitionTime"] = format_time(wall)
            existing.update({k: v for k, v in condition.items() if k != "lastTransitionTime"})
            return
    conditions.append({**condition, "lastTransitionTime": format_time(wall)})


def _is_pod_ready(pod: JsonObj) -> bool:
    return _condition_status(pod, "Ready") == "True"


def _is_node_ready(node: JsonObj) -> bool:
    return _condition_status(node, "Ready") == "True"


def _phase(pod: JsonObj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _is_terminating(obj: JsonObj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _controller_ref(pod: JsonObj) -> JsonObj | None:
    for reference in pod["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return dict(reference)
    return None


def _labels(obj: JsonObj) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def _tolerates(tolerations: Iterable[JsonObj], taint: JsonObj) -> bool:
    return fake_node_lifecycle.tolerates(tolerations, taint) is not None


# ---------------------------------------------------------------------------------- object makers


def _owner_uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-kube/{kind}/{namespace}/{name}"))


def make_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    taints: Sequence[Mapping[str, str]] = (),
    address: str | None = None,
) -> JsonObj:
    """A Node as a kubelet registers it: capacity = allocatable, Ready condition, hostname label."""
    node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
    node_labels.update(labels or {})
    spec: JsonObj = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(taint) for taint in taints]
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    addresses = [{"type": "Hostname", "address": name}]
    if address:
        addresses.insert(0, {"type": "InternalIP", "address": address})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": node_labels},
        "spec": spec,
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status" if ready else "container runtime is down",
                }
            ],
            "addresses": addresses,
        },
    }


def make_pod(
    name: str,
    namespace: str = "default",
    *,
    node: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: tuple[str, str] | None = None,
    cpu: str | None = "100m",
    memory: str | None = "64Mi",
    phase: str | None = None,
    ready: bool | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    volumes: Sequence[Mapping[str, Any]] = (),
    annotations: Mapping[str, str] | None = None,
    grace_period_s: int | None = None,
) -> JsonObj:
    """A Pod with one container. ``owner`` is ``(kind, name)`` of its controller, e.g.
    ``("ReplicaSet", "web-5d8f")``. A pod with a node defaults to Running and Ready, without one to Pending.
    """
    if phase is None:
        phase = "Running" if node else "Pending"
    if ready is None:
        ready = phase == "Running"
    requests = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value is not None}
    container: JsonObj = {"name": "main", "image": "registry.local/app:1"}
    if requests:
        container["resources"] = {"requests": requests}
    spec: JsonObj = {"containers": [container]}
    if node:
        spec["nodeName"] = node
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in tolerations]
    if volumes:
        spec["volumes"] = [dict(volume) for volume in volumes]
    if grace_period_s is not None:
        spec["terminationGracePeriodSeconds"] = grace_period_s
    metadata: JsonObj = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner is not None:
        kind, owner_name = owner
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": _owner_uid(kind, namespace, owner_name),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        if kind != "StatefulSet":
            metadata["generateName"] = f"{owner_name}-"
    conditions: list[JsonObj] = []
    if node:
        conditions.append({"type": "PodScheduled", "status": "True"})
    if phase == "Running":
        conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    status: JsonObj = {"phase": phase}
    if conditions:
        status["conditions"] = conditions
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": status}


def make_pdb(
    name: str,
    namespace: str = "default",
    *,
    match_labels: Mapping[str, str] | None = None,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    unhealthy_pod_eviction_policy: str | None = None,
) -> JsonObj:
    """A policy/v1 PodDisruptionBudget selecting ``match_labels`` (``None``: the empty selector)."""
    spec: JsonObj = {"selector": {"matchLabels": dict(match_labels)} if match_labels is not None else {}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    if unhealthy_pod_eviction_policy is not None:
        spec["unhealthyPodEvictionPolicy"] = unhealthy_pod_eviction_policy
    return {
        "kind": "PodDisruptionBudget",
        "apiVersion": "policy/v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# ------------------------------------------------------------------------------------ the server


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it. ``body`` is the decoded JSON body, or ``None``; ``user`` the
    authenticated user name ("" when the token was unknown)."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int
    content_type: str
    body: Any
    user: str = ""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What :meth:`FakeKubeServer.call` got back: status, headers and the decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    method: str | None
    path: re.Pattern[str] | None
    message: str
    retry_after_s: int | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or bool(self.path.search(path))


@dataclass(frozen=True, slots=True)
class _Route:
    resource: _Resource
    namespace: str
    name: str
    subresource: str


@dataclass(frozen=True, slots=True)
class _Response:
    code: int
    body: Any
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # A watch: called with a function that sends one chunk; returns when the watch ends.
    stream: Callable[[Callable[[bytes], None]], None] | None = None


@dataclass(frozen=True, slots=True)
class _Change:
    """One entry of the watch history: an object as it was stored (JSON text) at ``revision``."""

    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    plural: str
    namespace: str
    text: str
    #: The object before a MODIFIED (JSON text), for selector transitions (see ``FakeKubeServer._watch``).
    previous: str | None = None


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeKubeServer) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a killed daemon, a cut link) is what the fault tests do on
        # purpose; socketserver would print a traceback for each. Anything else is still printed.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    timeout = 300

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle's algorithm and the client's delayed ACK each
        # keep-alive request would wait about 40 ms. The real apiserver (Go) sets TCP_NODELAY too.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, _HTTPServer)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        response = server.fake._handle_http(
            self.command,
            self.path,
            self.headers.get("Content-Type", ""),
            raw,
            accept=self.headers.get("Accept", ""),
            authorization=self.headers.get("Authorization", ""),
        )
        if response is None:  # the server stopped while this request hung: drop the connection
            self.close_connection = True
            return
        if response.stream is not None:
            self._send_stream(response)
            return
        as_is = isinstance(response.body, bytes)
        payload = response.body if as_is else json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.code)
        if not as_is:  # bytes carry their own Content-Type in the headers
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for header, value in response.headers.items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, response: _Response) -> None:
        """A watch: chunked transfer encoding, one JSON event per chunk, until the watch ends."""
        assert response.stream is not None
        self.send_response(response.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            response.stream(send)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (kubectl interrupted): nothing more to say
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class FakeKubeServer:
    """A fake kube-apiserver on loopback. Use as a context manager, or call start() and stop().

    ``clock`` (monotonic + wall) drives timestamps, grace periods and the controller's delays; inject a
    fake one in tests. ``controller`` switches the controller on (also settable later through
    ``controller_enabled``); ``ready_delay_s`` is how long a bound pod takes to turn Ready;
    ``graceful_deletion`` (on, as in Kubernetes) keeps deleted and evicted pods Terminating for their grace
    period (finished by the controller, and never while their node is down: a StatefulSet's same-name
    replacement waits for that); a test that needs pods gone at once turns it off and says why. ``seed`` makes
    generated names and uids reproducible. ``node_monitor_grace_s`` is how long a powered-off node still
    looks Ready (kube-controller-manager's node-monitor grace period, 40 s). ``rbac`` authenticates bearer
    tokens and authorizes every request (default: deploy/rbac.yaml as shipped, :data:`ADMIN_TOKEN` for set-up,
    :data:`DAEMON_TOKEN` for the daemons).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        controller: bool = False,
        ready_delay_s: float = 0.0,
        graceful_deletion: bool = True,
        seed: int = 0,
        rbac: RbacAuthorizer | None = None,
        node_monitor_grace_s: float = fake_node_lifecycle.DEFAULT_NODE_MONITOR_GRACE_S,
    ) -> None:
        if ready_delay_s < 0:
            raise ValueError("ready_delay_s must not be negative")
        if not node_monitor_grace_s > 0:
            raise ValueError("node_monitor_grace_s must be positive: the delay can be shortened, never skipped")
        self._host = host
        self._port = port
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.controller_enabled = controller
        self.ready_delay_s = ready_delay_s
        self.graceful_deletion = graceful_deletion
        self.node_monitor_grace_s = node_monitor_grace_s
        self._kubelet_stopped: dict[str, float] = {}  # node -> monotonic time its kubelet stopped posting
        self.rbac = rbac if rbac is not None else RbacAuthorizer(fake_rbac.shipped_rbac())
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], JsonObj] = {}
        self._revision = 0
        self._continues: dict[str, list[JsonObj]] = {}
        self._owed: list[JsonObj] = []  # deleted workload pods the controller must replace
        self._scale: dict[str, int] = {}  # controller uid -> replicas it keeps (kinds the fake holds no object of)
        # Owners made from loaded pods whose replicas still follow their pods (until a write changes their spec).
        self._seeded: set[tuple[str, str, str]] = set()
        self._starting_since: dict[str, float] = {}  # pod uid -> monotonic time it was bound
        self._disruption_paused = False
        self._faults: list[_Fault] = []
        self._requests: list[RequestRecord] = []
        self._running = threading.Event()
        self._running.set()
        self._stopping = False
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._changes: list[_Change] = []  # the watch history, oldest first
        self._changed = threading.Condition()
        self._compacted = 0  # watches from an older resourceVersion get 410 Gone (fake_watch.compact)
        #: How often a watch that asked for bookmarks gets one (upstream: a minute); tests shorten it.
        self.bookmark_frequency_s = fake_watch.BOOKMARK_FREQUENCY_S

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeKubeServer:
        """Listen (again, on the same port after a stop) and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping = False
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-kube:{self._port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, hung requests included. Objects are kept."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping = True
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def clock(self) -> Clock:
        """The clock the server stamps objects with (the world's fake clock in the demo and the tests)."""
        return self._clock

    def api_client(self, *, retries: int | bool | None = None, token: str = ADMIN_TOKEN) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` pointed at this server (close it when done), authenticated
        with ``token`` (the admin's by default; the daemons use :data:`DAEMON_TOKEN`).

        ``retries`` is urllib3's retry setting; ``None`` keeps the client's default (urllib3 retries
        idempotent requests on connection errors and read timeouts), ``False`` disables retrying.
        """
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        if retries is not None:
            configuration.retries = retries
        return client.ApiClient(configuration)

    def kubeconfig(self, *, token: str = ADMIN_TOKEN) -> JsonObj:
        """A kubeconfig for this server (JSON is valid YAML, so kubectl and the client read it), for the
        admin by default; a daemon's uses :data:`DAEMON_TOKEN`."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-kube", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-kube", "user": {"token": token}}],
            "contexts": [{"name": "fake-kube", "context": {"cluster": "fake-kube", "user": "fake-kube"}}],
            "current-context": "fake-kube",
            "preferences": {},
        }

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = ADMIN_TOKEN,
    ) -> HttpReply:
        """One HTTP request to this server without the kubernetes client, to check the wire format."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        try:
            with opener.open(request, timeout=30) as response:
                return HttpReply(response.status, dict(response.headers), json.loads(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return HttpReply(error.code, dict(error.headers), json.loads(error.read()))

    def write_kubeconfig(self, path: str | Path, *, token: str = ADMIN_TOKEN) -> Path:
        target = Path(path)
        target.write_text(json.dumps(self.kubeconfig(token=token), indent=2) + "\n")
        return target

    # ------------------------------------------------------------------------------ fault hooks

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        path: str | None = None,
        method: str | None = None,
        message: str = "injected by the fake API server",
        retry_after_s: int | None = None,
    ) -> None:
        """Make the next ``count`` requests whose path matches the regex ``path`` (and ``method``, if
        given) fail with ``status`` and a Status body, before they touch any object. Note that urllib3
        retries idempotent requests answered with 413/429/503 *and* a Retry-After header.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = _Fault(
            count,
            status,
            method.upper() if method else None,
            re.compile(path) if path else None,
            message,
            retry_after_s,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def compact(self) -> None:
        """etcd compaction: every resourceVersion before now expires; a watch from one gets 410 Gone."""
        with self._lock:
            fake_watch.compact(self._changes, self._revision)
            self._compacted = self._revision

    def pause(self) -> None:
        """Hang every request from now on (the server accepts connections but does not answer)."""
        self._running.clear()

    def resume(self) -> None:
        """Answer again, hung requests included."""
        self._running.set()

    @property
    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return tuple(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --------------------------------------------------------------------------- object access

    def load_objects(self, data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | Path) -> int:
        """Seed objects from a ``kubectl get nodes,pods,pdb -A -o json`` style List (a mapping, a JSON
        string, or a file path), a typed list (``PodList``), a single object, or a sequence of objects.
        Status is kept as given. Returns how many objects were stored; an unserved kind raises ValueError.
        """
        decoded: Any = data
        if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith(("{", "["))):
            decoded = json.loads(Path(data).read_text())
        elif isinstance(data, str):
            decoded = json.loads(data)
        items: list[JsonObj]
        if isinstance(decoded, Mapping):
            data = decoded
            kind = str(data.get("kind", ""))
            if kind == "List" or kind.endswith("List"):
                default_kind = kind[: -len("List")] if kind != "List" else ""
                items = [
                    {"kind": default_kind, **dict(item)} if "kind" not in item else dict(item)
                    for item in data.get("items") or []
                ]
            else:
                items = [dict(data)]
        else:
            items = [dict(item) for item in decoded]
        for item in items:
            if not item.get("kind"):
                raise ValueError(f"object without kind: {item.get('metadata', {}).get('name')!r}")
            _resource_for(str(item["kind"]))
        for item in items:
            self.put_object(item)
        return len(items)

    def put_object(self, obj: Mapping[str, Any]) -> JsonObj:
        """Store an object as given (status included), creating or replacing it without API checks."""
        with self._lock:
            resource = _resource_for(str(obj.get("kind", "")))
            stored = copy.deepcopy(dict(obj))
            stored["kind"], stored["apiVersion"] = resource.kind, resource.api_version
            metadata = stored.setdefault("metadata", {})
            if not metadata.get("name"):
                raise ValueError("object without metadata.name")
            namespace = (metadata.get("namespace") or "default") if resource.namespaced else ""
            if resource.namespaced:
                metadata["namespace"] = namespace
            else:
                metadata.pop("namespace", None)
            key = (resource.plural, namespace, metadata["name"])
            old = self._objects.get(key)
            metadata.setdefault("uid", old["metadata"]["uid"] if old else self._new_uid())
            metadata.setdefault(
                "creationTimestamp",
                old["metadata"]["creationTimestamp"] if old else format_time(self._clock.wall()),
            )
            if resource is _PDBS:
                metadata.setdefault("generation", 1)
            if resource is _PODS:
                self._default_pod(stored)
            metadata.pop("resourceVersion", None)
            self._store(resource, stored)
            if resource is _PODS:
                self._learn_scale(stored)
                self._adopt_owner(stored)
            self._after_write()
            return self._output(resource, self._objects[key])

    def get_object(self, kind: str, namespace: str | None, name: str) -> JsonObj | None:
        """The stored object (a copy, with kind and apiVersion), or None."""
        resource = _resource_for(kind)
        with self._lock:
            obj = self._objects.get(self._key(resource, namespace, name))
            return self._output(resource, obj) if obj is not None else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[JsonObj]:
        """Stored objects of a kind (copies), sorted by namespace and name; all namespaces for None."""
        resource = _resource_for(kind)
        with self._lock:
            return [self._output(resource, obj) for obj in self._select(resource, namespace)]

    def update_object(self, kind: str, namespace: str | None, name: str, change: Callable[[JsonObj], None]) -> JsonObj:
        """Change a stored object in place through ``change`` (status included); bumps its resourceVersion."""
        resource = _resource_for(kind)
        with self._lock:
            key = self._key(resource, namespace, name)
            if key not in self._objects:
                raise KeyError(f"{resource.plural} {namespace}/{name} not found")
            obj = copy.deepcopy(self._objects[key])
            change(obj)
            self._store(resource, obj)
            self._after_write()
            return self._output(resource, self._objects[key])

    def delete_object(self, kind: str, namespace: str | None, name: str) -> None:
        """Delete as ``kubectl delete --grace-period=0`` would; the controller replaces workload pods."""
        resource = _resource_for(kind)
        with self._lock:
            key = self._key(resource, namespace, name)
            if key not in self._objects:
                raise KeyError(f"{resource.plural} {namespace}/{name} not found")
            self._remove(resource, key)
            self._after_write()

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> JsonObj:
        """Mark a pod Running and Ready (or Running and not Ready), as its kubelet would."""

        def change(pod: JsonObj) -> None:
            wall = self._clock.wall()
            pod.setdefault("status", {})["phase"] = "Running"
            value = "True" if ready else "False"
            _set_condition(pod, {"type": "ContainersReady", "status": value}, wall)
            _set_condition(pod, {"type": "Ready", "status": value}, wall)

        return self.update_object("pods", namespace, name, change)

    def power_off_node(self, name: str) -> None:
        """The node loses power: its kubelet stops posting status. Nothing shows at once: after
        ``node_monitor_grace_s`` the node lifecycle controller turns Ready Unknown, taints the node
        unreachable and marks its pods not Ready; 300 s later (their DefaultTolerationSeconds) the taint
        manager deletes its pods, which stay Terminating while the node is down (``sim/fake_node_lifecycle.py``).
        """
        with self._lock:
            if self._key(_NODES, None, name) not in self._objects:
                raise KeyError(f"nodes {name} not found")
            self._kubelet_stopped.setdefault(name, self._clock.monotonic())
            self._after_write()

    def power_on_node(self, name: str) -> None:
        """The node is back: its kubelet posts Ready, the lifecycle taints go, its running pods are Ready again."""
        with self._lock:
            self._kubelet_stopped.pop(name, None)
            wall = self._clock.wall()

            def change(node: JsonObj) -> None:
                _set_condition(
                    node,
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                    },
                    wall,
                )
                fake_node_lifecycle.reconcile_taints(node, format_time(wall))

            self.update_object("nodes", None, name, change)
            for pod in self._pods_on(name):
                if _phase(pod) == "Running" and not _is_terminating(pod):
                    self.set_pod_ready(pod["metadata"]["namespace"], pod["metadata"]["name"], True)

    @property
    def disruption_controller_paused(self) -> bool:
        """While True, PodDisruptionBudget status is not recomputed (observedGeneration lags, as right
        after a PDB is created or changed). Setting it back to False recomputes at once.
        """
        return self._disruption_paused

    @disruption_controller_paused.setter
    def disruption_controller_paused(self, paused: bool) -> None:
        with self._lock:
            self._disruption_paused = paused
            if not paused:
                self._sync_pdbs()

    # ------------------------------------------------------------------------------ controller

    def run_controller_once(self) -> None:
        """One pass of the controllers, at the clock's current time: finish expired graceful deletions,
        create replacements for deleted workload pods, bind Pending pods to nodes that fit, turn bound
        pods Ready after ``ready_delay_s``, and recompute PodDisruptionBudget status.
        """
        with self._lock:
            self._node_lifecycle()
            self._finish_deletions()
            self._replace_owed()
            self._sync_workloads()
            self._schedule_pending()
            self._start_bound()
            self._sync_workload_statuses()
            self._sync_pdbs()

    def _node_lifecycle(self) -> None:
        """The node lifecycle and taint-eviction controllers, at the clock's current time."""
        now = self._clock.monotonic()
        wall = self._clock.wall()
        for key, node in list(self._objects.items()):
            if key[0] != "nodes":
                continue
            name = key[2]
            updated = copy.deepcopy(node)
            stopped = self._kubelet_stopped.get(name)
            went_unknown = False
            if stopped is not None and now - stopped >= self.node_monitor_grace_s and _is_node_ready(node):
                _set_condition(
                    updated,
                    {
                        "type": "Ready",
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                    },
                    wall,
                )
                went_unknown = True
            changed = fake_node_lifecycle.reconcile_taints(updated, format_time(wall))
            if went_unknown or changed:
                self._store(_NODES, updated)
            if went_unknown:
                for pod in self._pods_on(name):  # MarkPodsNotReady
                    marked = copy.deepcopy(pod)
                    _set_condition(marked, {"type": "Ready", "status": "False"}, wall)
                    self._store(_PODS, marked)
            self._evict_by_taints(self._objects[key], wall)

    def _evict_by_taints(self, node: JsonObj, wall: float) -> None:
        """pkg/controller/tainteviction: delete the pods that do not tolerate the node's NoExecute taints, or
        whose tolerationSeconds (counted from the taint's timeAdded) have run out."""
        taints = [t for t in node["spec"].get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            return
        added = [_parse_rfc3339(str(t.get("timeAdded") or "")) for t in taints]
        since = max((moment.timestamp() for moment in added if moment is not None), default=wall)
        for pod in self._pods_on(node["metadata"]["name"]):
            if _is_terminating(pod) or _phase(pod) in ("Succeeded", "Failed"):
                continue
            delay = fake_node_lifecycle.eviction_delay_s(pod["spec"].get("tolerations") or [], taints)
            if delay is None or since + delay > wall:
                continue
            marked = copy.deepcopy(pod)
            _set_condition(
                marked,
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                },
                wall,
            )
            self._store(_PODS, marked)
            self._delete_pod(marked, None)

    def _finish_deletions(self) -> None:
        wall = self._clock.wall()
        for key, pod in list(self._objects.items()):
            if key[0] != "pods" or not _is_terminating(pod):
                continue
            node_name = pod["spec"].get("nodeName") or ""
            node = self._objects.get(("nodes", "", node_name))
            kubelet_alive = node_name not in self._kubelet_stopped and (node is None or _is_node_ready(node))
            deadline = _parse_rfc3339(pod["metadata"]["deletionTimestamp"])
            if kubelet_alive and deadline is not None and deadline.timestamp() <= wall:
                self._remove(_PODS, key)

    def _replace_owed(self) -> None:
        """A deleted pod's replacement, copied from it (a test's pods of one owner may differ, which a real
        controller's never do). Only while its owner still wants it: fewer live pods than replicas, the
        ordinal below replicas, a Job not suspended. A pod whose owner the fake holds no object of is replaced
        as before owners were modelled."""
        owed, self._owed = self._owed, []
        for old in owed:
            reference = _controller_ref(old)
            assert reference is not None
            metadata = old["metadata"]
            if not self._owner_wants_back(old, reference):
                continue
            if reference.get("kind") == "StatefulSet":
                name = metadata["name"]
                if self._objects.get(("pods", metadata["namespace"], name)) is not None:
                    self._owed.append(old)  # the old one is still terminating
                    continue
            else:
                prefix = metadata.get("generateName") or f"{reference.get('name')}-"
                name = prefix + "".join(self._random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            new_metadata: JsonObj = {
                "name": name,
                "namespace": metadata["namespace"],
                "labels": dict(metadata.get("labels") or {}),
                "ownerReferences": copy.deepcopy(metadata.get("ownerReferences")),
                "uid": self._new_uid(),
                "creationTimestamp": format_time(self._clock.wall()),
            }
            for field in ("generateName", "annotations"):
                if field in metadata:
                    new_metadata[field] = copy.deepcopy(metadata[field])
            spec = copy.deepcopy(old["spec"])
            spec.pop("nodeName", None)
            pod = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": new_metadata,
                "spec": spec,
                "status": {"phase": "Pending"},
            }
            self._default_pod(pod)
            self._store(_PODS, pod)

    def _owner_wants_back(self, old: JsonObj, reference: Mapping[str, Any]) -> bool:
        resource = _WORKLOADS.get(str(reference.get("kind")))
        if resource is None:
            return True
        owner = self._objects.get(self._key(resource, old["metadata"]["namespace"], str(reference.get("name"))))
        if owner is None or owner["metadata"]["uid"] != reference.get("uid", owner["metadata"]["uid"]):
            return True
        spec = owner["spec"]
        if resource is _STATEFULSETS:
            ordinal = fake_workloads.stateful_ordinal(owner["metadata"]["name"], old["metadata"]["name"])
            return ordinal is None or ordinal < int(spec.get("replicas", 0))
        active = [p for p in self._pods_of_owner(owner) if fake_workloads.is_active(p)]
        if resource is _JOBS:
            return not spec.get("suspend") and len(active) < self._job_wants_active(owner)
        return len(active) < int(spec.get("replicas", 0))

    # ------------------------------------------------------------------------ workload controllers

    def _pods_of_owner(self, owner: JsonObj) -> list[JsonObj]:
        """The pods whose controller reference is ``owner`` (by uid), in no particular order."""
        uid, namespace = owner["metadata"]["uid"], owner["metadata"]["namespace"]
        return [
            pod
            for key, pod in self._objects.items()
            if key[0] == "pods"
            and key[1] == namespace
            and (ref := _controller_ref(pod)) is not None
            and ref.get("uid") == uid
        ]

    def _sync_workloads(self) -> None:
        """The Deployment, ReplicaSet, StatefulSet and Job controllers, one pass each."""
        for deployment in self._select(_DEPLOYMENTS, None):
            self._sync_deployment(deployment)
        for replica_set in self._select(_REPLICASETS, None):
            self._sync_replica_set(replica_set)
        for stateful_set in self._select(_STATEFULSETS, None):
            self._sync_stateful_set(stateful_set)
        for job in self._select(_JOBS, None):
            self._sync_job(job)

    def _sync_workload_statuses(self) -> None:
        for resource in (_REPLICASETS, _STATEFULSETS, _JOBS):
            for owner in self._select(resource, None):
                metadata = owner["metadata"]
                self._refresh_status(resource, self._key(resource, metadata["namespace"], metadata["name"]))

    def _sync_deployment(self, deployment: JsonObj) -> None:
        """pkg/controller/deployment/sync.go scale: with one active ReplicaSet (or none: the newest), that one
        takes the Deployment's replicas; with several, each gets its proportion of them (getReplicaSetFraction),
        the rest going to the newest. A Deployment without a ReplicaSet gets one, ``<name>-<hash>``."""
        desired = int(deployment["spec"].get("replicas", 1))
        replica_sets = self._replica_sets_of(deployment)
        if not replica_sets:
            self._store(_REPLICASETS, self._new_replica_set(deployment, desired))
            return
        newest_first = sorted(
            replica_sets, key=lambda rs: (str(rs["metadata"].get("creationTimestamp", "")), rs["metadata"]["name"])
        )[::-1]
        current = {rs["metadata"]["name"]: int(rs["spec"].get("replicas", 0)) for rs in replica_sets}
        if sum(current.values()) == desired:
            return
        active = [rs for rs in newest_first if current[rs["metadata"]["name"]] > 0]
        wanted: dict[str, int] = {}
        if len(active) <= 1:
            target = active[0] if active else newest_first[0]
            wanted[target["metadata"]["name"]] = desired
        else:
            total = sum(current.values())
            for rs in active:
                wanted[rs["metadata"]["name"]] = current[rs["metadata"]["name"]] * desired // total
            wanted[active[0]["metadata"]["name"]] += desired - sum(wanted.values())
        for rs in replica_sets:
            name = rs["metadata"]["name"]
            if name in wanted and wanted[name] != current[name]:
                updated = copy.deepcopy(rs)
                updated["spec"]["replicas"] = wanted[name]
                updated["metadata"]["generation"] = int(rs["metadata"].get("generation", 1)) + 1
                self._seeded.discard(self._key(_REPLICASETS, rs["metadata"]["namespace"], name))
                self._store(_REPLICASETS, updated)

    def _new_replica_set(self, deployment: JsonObj, replicas: int) -> JsonObj:
        """getNewReplicaSet: ``<deployment>-<template hash>``, the hash also labelling its selector and pods.
        (The hash here is a digest of the template, not upstream's fnv32a: only its role matters.)"""
        import hashlib

        template = copy.deepcopy(deployment["spec"].get("template") or {"metadata": {}, "spec": {}})
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
        template_hash = "".join(_NAME_SUFFIX_ALPHABET[b % len(_NAME_SUFFIX_ALPHABET)] for b in digest[:10])
        template.setdefault("metadata", {}).setdefault("labels", {})[fake_workloads.POD_TEMPLATE_HASH] = template_hash
        selector = copy.deepcopy(deployment["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[fake_workloads.POD_TEMPLATE_HASH] = template_hash
        metadata = deployment["metadata"]
        replica_set: JsonObj = {
            "metadata": {
                "name": f"{metadata['name']}-{template_hash}",
                "namespace": metadata["namespace"],
                "uid": self._new_uid(),
                "generation": 1,
                "creationTimestamp": format_time(self._clock.wall()),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {fake_workloads.DEPLOYMENT_REVISION: "1"},
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        return fake_workloads.owned_by(replica_set, deployment)

    def _create_owned_pod(self, pod: JsonObj, *, generated: bool) -> None:
        """Create a pod a controller asked for: a generated name (``<generateName><5 chars>``) if asked."""
        metadata = pod["metadata"]
        if generated:
            while True:
                name = str(metadata["generateName"]) + "".join(
                    self._random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5)
                )
                if self._key(_PODS, metadata["namespace"], name) not in self._objects:
                    break
            metadata["name"] = name
        metadata["uid"] = self._new_uid()
        metadata["creationTimestamp"] = format_time(self._clock.wall())
        pod["spec"].pop("nodeName", None)
        pod["status"] = {"phase": "Pending"}
        self._default_pod(pod)
        self._store(_PODS, pod)

    def _delete_surplus(self, pods: Sequence[JsonObj], count: int, related: Sequence[JsonObj]) -> None:
        """getPodsToDelete: the ``count`` pods that rank first in ActivePodsWithRanks, deleted gracefully."""
        for pod in fake_workloads.deletion_order(pods, related)[:count]:
            current = self._objects.get(self._key(_PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]))
            if current is not None:
                self._delete_pod(current, None)

    def _sync_replica_set(self, replica_set: JsonObj) -> None:
        """pkg/controller/replicaset/replica_set.go manageReplicas: create from the template up to replicas
        (names ``<rs>-<5 chars>``), or delete the surplus in getPodsToDelete's order. Pods being deleted do not
        count (FilterActivePods)."""
        active = [p for p in self._pods_of_owner(replica_set) if fake_workloads.is_active(p)]
        diff = len(active) - int(replica_set["spec"].get("replicas", 1))
        if diff < 0:
            for _ in range(-diff):
                pod = fake_workloads.pod_from_template(replica_set, "", f"{replica_set['metadata']['name']}-")
                self._create_owned_pod(pod, generated=True)
        elif diff > 0:
            related = active
            deployment = self._deployment_of(replica_set)
            if deployment is not None:  # the ranking counts the pods of all the Deployment's ReplicaSets
                related = [
                    p
                    for rs in self._replica_sets_of(deployment)
                    for p in self._pods_of_owner(rs)
                    if fake_workloads.is_active(p)
                ]
            self._delete_surplus(active, diff, related)

    def _sync_stateful_set(self, stateful_set: JsonObj) -> None:
        """pkg/controller/statefulset/stateful_set_control.go updateStatefulSet. OrderedReady (the default): the
        lowest missing ordinal is created, and the next only once every lower one is Running and Ready; above
        replicas, the highest ordinal is deleted first, one at a time, the next only once it is gone and only
        while every pod below replicas is Running and Ready. Parallel: all at once."""
        name = stateful_set["metadata"]["name"]
        replicas = int(stateful_set["spec"].get("replicas", 1))
        monotonic = stateful_set["spec"].get("podManagementPolicy", "OrderedReady") != "Parallel"
        by_ordinal: dict[int, JsonObj] = {}
        for pod in self._pods_of_owner(stateful_set):
            ordinal = fake_workloads.stateful_ordinal(name, pod["metadata"]["name"])
            if ordinal is not None and _phase(pod) not in ("Succeeded", "Failed"):
                by_ordinal[ordinal] = pod
        for ordinal in range(replicas):
            member = by_ordinal.get(ordinal)
            if member is None:
                if self._key(_PODS, stateful_set["metadata"]["namespace"], f"{name}-{ordinal}") in self._objects:
                    if monotonic:
                        return  # a pod of that name but not this set's (or finished): wait, as isMemberOf does
                    continue
                self._create_stateful_pod(stateful_set, ordinal)
                if monotonic:
                    return
                continue
            if monotonic and (_is_terminating(member) or not self._running_and_ready(member)):
                return
        condemned = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
        first_unhealthy = next((o for o in sorted(condemned) if not self._running_and_ready(by_ordinal[o])), None)
        for ordinal in condemned:
            pod = by_ordinal[ordinal]
            if _is_terminating(pod):
                if monotonic:
                    return
                continue
            if monotonic and not self._running_and_ready(pod) and ordinal != first_unhealthy:
                return
            self._delete_pod(pod, None)
            if monotonic:
                return

    @staticmethod
    def _running_and_ready(pod: JsonObj) -> bool:
        return _phase(pod) == "Running" and _is_pod_ready(pod)

    def _create_stateful_pod(self, stateful_set: JsonObj, ordinal: int) -> None:
        """createPersistentVolumeClaims then the pod: each claim template's claim is made if missing."""
        namespace = stateful_set["metadata"]["namespace"]
        for claim_template in stateful_set["spec"].get("volumeClaimTemplates") or []:
            claim = fake_workloads.stateful_claim(stateful_set, claim_template, ordinal)
            if self._key(_PVCS, namespace, claim["metadata"]["name"]) not in self._objects:
                claim["metadata"]["uid"] = self._new_uid()
                claim["metadata"]["creationTimestamp"] = format_time(self._clock.wall())
                self._store(_PVCS, claim)
        self._create_owned_pod(fake_workloads.stateful_pod(stateful_set, ordinal), generated=False)

    @staticmethod
    def _job_wants_active(job: JsonObj) -> int:
        """manageJob's wantActive: parallelism, but no more than the completions still to do."""
        spec, status = job["spec"], job.get("status") or {}
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
        completions = spec.get("completions")
        if completions is None:
            return parallelism
        return max(0, min(parallelism, int(completions) - int(status.get("succeeded", 0))))

    def _sync_job(self, job: JsonObj) -> None:
        """pkg/controller/job/job_controller.go syncJob + manageJob, with suspend (KEP-2232): a suspended Job's
        active pods are deleted and its condition Suspended is True (reason JobSuspended); resumed, the
        condition turns False (JobResumed), startTime restarts, and pods are created up to parallelism."""
        suspended = bool(job["spec"].get("suspend"))
        active = [p for p in self._pods_of_owner(job) if fake_workloads.is_active(p)]
        want = 0 if suspended else self._job_wants_active(job)
        if len(active) > want:
            self._delete_surplus(active, len(active) - want, active)
        elif len(active) < want:
            for _ in range(want - len(active)):
                pod = fake_workloads.pod_from_template(job, "", f"{job['metadata']['name']}-")
                self._create_owned_pod(pod, generated=True)
        self._job_condition(job, suspended)

    def _job_condition(self, job: JsonObj, suspended: bool) -> None:
        if suspended == (_condition_status(job, "Suspended") == "True"):
            return
        wall = self._clock.wall()
        updated = copy.deepcopy(job)
        _set_condition(updated, fake_workloads.suspended_condition(suspended), wall)
        status = updated.setdefault("status", {})
        if suspended:
            status.pop("startTime", None)
        else:
            status["startTime"] = format_time(wall)  # a resumed Job's activeDeadlineSeconds counts from now
        self._store(_JOBS, updated)

    def _schedule_pending(self) -> None:
        wall = self._clock.wall()
        for key, pod in sorted(self._objects.items()):
            if key[0] != "pods" or pod["spec"].get("nodeName") or _is_terminating(pod):
                continue
            if _phase(pod) != "Pending":
                continue
            node_name, message = self._pick_node(pod)
            updated = copy.deepcopy(pod)
            if node_name is None:
                if _condition_status(pod, "PodScheduled") == "False" and any(
                    c.get("message") == message for c in _conditions(pod)
                ):
                    continue
                _set_condition(
                    updated,
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    },
                    wall,
                )
                self._scheduler_event(pod, message, wall)
            else:
                self._bind_volumes(pod, node_name)
                updated["spec"]["nodeName"] = node_name
                _set_condition(updated, {"type": "PodScheduled", "status": "True"}, wall)
                for condition in updated["status"]["conditions"]:
                    if condition["type"] == "PodScheduled":
                        condition.pop("reason", None)
                        condition.pop("message", None)
            self._store(_PODS, updated)

    def _lookup(self, plural: str, namespace: str, name: str) -> JsonObj | None:
        return self._objects.get((plural, namespace, name))

    def _scheduler_event(self, pod: JsonObj, message: str, wall: float) -> None:
        """The Warning Event ``FailedScheduling`` the scheduler records on a pod it cannot place
        (pkg/scheduler/schedule_one.go handleSchedulingFailure)."""
        metadata = pod["metadata"]
        name = f"{metadata['name']}.{self._random.getrandbits(64):016x}"
        event: JsonObj = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": metadata["namespace"],
                "uid": self._new_uid(),
                "creationTimestamp": format_time(wall),
            },
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": metadata["namespace"],
                "name": metadata["name"],
                "uid": metadata.get("uid", ""),
            },
            "reason": "FailedScheduling",
            "message": message,
            "type": "Warning",
            "source": {},
            "eventTime": format_micro_time(wall),
            "action": "Scheduling",
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-fake",
        }
        self._store(_EVENTS, event)

    def _bind_volumes(self, pod: JsonObj, node_name: str) -> None:
        """The volume binder and local-path-provisioner, as the pod is bound: each unbound
        WaitForFirstConsumer claim gets a volume on ``node_name`` (k3s local-path) and is bound to it."""
        for claim in fake_storage.unbound_claims(pod, self._lookup):
            class_name = str(claim["spec"].get("storageClassName") or "")
            storage_class = self._lookup("storageclasses", "", class_name)
            if storage_class is None:
                continue
            volume = fake_storage.provisioned_pv(claim, node_name, storage_class)
            if volume is None:
                continue
            volume["metadata"]["uid"] = self._new_uid()
            volume["metadata"]["creationTimestamp"] = format_time(self._clock.wall())
            self._store(_PVS, volume)
            bound = copy.deepcopy(claim)
            bound["spec"]["volumeName"] = volume["metadata"]["name"]
            bound["status"] = {
                "phase": "Bound",
                "accessModes": list(bound["spec"].get("accessModes") or []),
                "capacity": dict(volume["spec"]["capacity"]),
            }
            bound["metadata"].setdefault("annotations", {})["volume.kubernetes.io/selected-node"] = node_name
            self._store(_PVCS, bound)

    def _pick_node(self, pod: JsonObj) -> tuple[str | None, str]:
        """The node the fake scheduler binds ``pod`` to (least allocated, then by name), or None and
        the scheduler's explanation.
        """
        wanted = _pod_requests(pod)
        selector = (pod["spec"].get("nodeSelector")) or {}
        tolerations = pod["spec"].get("tolerations") or []
        reasons: dict[str, int] = {}
        candidates: list[tuple[decimal.Decimal, str]] = []
        nodes = [obj for key, obj in sorted(self._objects.items()) if key[0] == "nodes"]
        for node in nodes:
            name = node["metadata"]["name"]
            reason = self._unfit_reason(node, wanted, selector, tolerations)
            if reason is None:
                reason = fake_storage.volume_unfit_reason(pod, node, self._lookup)
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1
                continue
            allocatable = self._allocatable(node)
            used = self._used_on(name)
            score = decimal.Decimal(0)
            for resource in ("cpu", "memory"):
                total = allocatable.get(resource, decimal.Decimal(0))
                if total > 0:
                    score += (total - used.get(resource, decimal.Decimal(0)) - wanted.get(resource, 0)) / total
            candidates.append((-score, name))
        if candidates:
            return min(candidates)[1], ""
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        return (
            None,
            f"0/{len(nodes)} nodes are available: {detail}." if nodes else "no nodes available to schedule pods",
        )

    def _unfit_reason(
        self,
        node: JsonObj,
        wanted: Mapping[str, decimal.Decimal],
        selector: Mapping[str, str],
        tolerations: Sequence[JsonObj],
    ) -> str | None:
        if not _is_node_ready(node):
            return "node(s) were not ready"
        if node["spec"].get("unschedulable"):
            return "node(s) were unschedulable"
        labels = _labels(node)
        if any(labels.get(key) != value for key, value in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
        allocatable = self._allocatable(node)
        used = self._used_on(node["metadata"]["name"])
        for resource, amount in sorted(wanted.items()):
            if used.get(resource, decimal.Decimal(0)) + amount > allocatable.get(resource, decimal.Decimal(0)):
                return f"Insufficient {resource}"
        if used["pods"] + 1 > allocatable.get("pods", decimal.Decimal(110)):
            return "Too many pods"
        return None

    @staticmethod
    def _allocatable(node: JsonObj) -> dict[str, decimal.Decimal]:
        status = node.get("status") or {}
        raw = status.get("allocatable") or status.get("capacity") or {}
        return {name: parse_quantity(value) for name, value in raw.items()}

    def _used_on(self, node_name: str) -> dict[str, decimal.Decimal]:
        used: dict[str, decimal.Decimal] = {"pods": decimal.Decimal(0)}
        for pod in self._pods_on(node_name):
            if _phase(pod) in ("Succeeded", "Failed"):
                continue
            used["pods"] += 1
            for resource, amount in _pod_requests(pod).items():
                used[resource] = used.get(resource, decimal.Decimal(0)) + amount
        return used

    def _start_bound(self) -> None:
        now = self._clock.monotonic()
        for key, pod in list(self._objects.items()):
            if key[0] != "pods" or _phase(pod) != "Pending" or _is_terminating(pod):
                continue
            node = self._objects.get(("nodes", "", pod["spec"].get("nodeName") or ""))
            if node is None or not _is_node_ready(node) or node["metadata"]["name"] in self._kubelet_stopped:
                continue
            uid = pod["metadata"]["uid"]
            since = self._starting_since.setdefault(uid, now)
            if now - since >= self.ready_delay_s:
                self._starting_since.pop(uid, None)
                wall = self._clock.wall()
                updated = copy.deepcopy(pod)
                updated["status"]["phase"] = "Running"
                updated["status"]["startTime"] = format_time(wall)
                self._assign_ips(updated, node)
                for condition in ("Initialized", "ContainersReady", "Ready"):
                    _set_condition(updated, {"type": condition, "status": "True"}, wall)
                self._store(_PODS, updated)

    def _assign_ips(self, pod: JsonObj, node: JsonObj) -> None:
        """The pod's IP from its node's podCIDR (as flannel in k3s), and its host's, when the node has them."""
        status = pod["status"]
        addresses = {a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or []}
        if addresses.get("InternalIP"):
            status.setdefault("hostIP", addresses["InternalIP"])
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if status.get("podIP") or not re.fullmatch(r"\d+\.\d+\.\d+\.0/24", cidr):
            return
        used = {p.get("status", {}).get("podIP") for p in self._select(_PODS, None)}
        prefix = cidr.rsplit(".", 1)[0]
        free = next((f"{prefix}.{host}" for host in range(100, 255) if f"{prefix}.{host}" not in used), None)
        if free is not None:
            status["podIP"] = free
            status["podIPs"] = [{"ip": free}]

    # --------------------------------------------------------------------- disruption controller

    def _sync_pdbs(self) -> None:
        if self._disruption_paused:
            return
        for key, pdb in list(self._objects.items()):
            if key[0] != "poddisruptionbudgets":
                continue
            status = self._pdb_status(pdb)
            if status != pdb.get("status"):
                updated = copy.deepcopy(pdb)
                updated["status"] = status
                self._store(_PDBS, updated)

    def _pdb_pods(self, pdb: JsonObj) -> list[JsonObj]:
        matcher = label_selector_matcher(pdb["spec"].get("selector"))
        return [pod for pod in self._select(_PODS, pdb["metadata"]["namespace"]) if matcher(_labels(pod))]

    def _pdb_status(self, pdb: JsonObj) -> JsonObj:
        """What pkg/controller/disruption computes for one budget."""
        spec = pdb["spec"]
        wall = self._clock.wall()
        pods = self._pdb_pods(pdb)
        old_status = pdb.get("status") or {}
        disrupted: dict[str, str] = {}
        live = {pod["metadata"]["name"]: pod for pod in pods}
        for pod_name, when in (old_status.get("disruptedPods") or {}).items():
            pod = live.get(pod_name)
            moment = _parse_rfc3339(when)
            if pod is None or _is_terminating(pod) or moment is None:
                continue
            if moment.timestamp() + _DISRUPTED_POD_TIMEOUT_S > wall:
                disrupted[pod_name] = when
        healthy = sum(
            1
            for pod in pods
            if not _is_terminating(pod) and pod["metadata"]["name"] not in disrupted and _is_pod_ready(pod)
        )
        try:
            expected, desired = self._expected_pod_count(spec, pods)
        except _SyncFailed as failure:
            return self._pdb_fail_safe(pdb, str(failure), wall)
        # "We require expectedCount to be > 0 so that PDBs which currently match no pods are in a safe
        # state" (updatePdbStatus): no expected pods, or none to spare, allows nothing.
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        status: JsonObj = {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        condition = {
            "type": "DisruptionAllowed",
            "status": "True" if allowed > 0 else "False",
            "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
            "message": "",
            "observedGeneration": status["observedGeneration"],
        }
        holder = {"status": {"conditions": copy.deepcopy(old_status.get("conditions") or [])}}
        _set_condition(holder, condition, wall)
        status["conditions"] = holder["status"]["conditions"]
        return status

    def _expected_pod_count(self, spec: JsonObj, pods: Sequence[JsonObj]) -> tuple[int, int]:
        """getExpectedPodCount (pkg/controller/disruption/disruption.go): (expectedCount, desiredHealthy).
        An integer minAvailable counts the selected pods; a percentage or maxUnavailable counts the scale of
        their controllers. A budget with neither field expects nothing (and so allows nothing)."""
        if spec.get("maxUnavailable") is not None:
            expected = self._expected_scale(pods)
            return expected, max(0, expected - _scaled(spec["maxUnavailable"], expected))
        minimum = spec.get("minAvailable")
        if minimum is None:
            return 0, 0
        if isinstance(minimum, int):
            return len(pods), minimum
        expected = self._expected_scale(pods)
        return expected, _scaled(minimum, expected)

    def _expected_scale(self, pods: Sequence[JsonObj]) -> int:
        """getExpectedScale: the sum of the scale of the controllers of ``pods``. A pod without a controller
        is unmanaged and ignored; a pod whose controller has no scale subresource (a DaemonSet, a Job) fails
        the sync: "found no controllers for pod"."""
        owners: dict[str, int] = {}
        for pod in pods:
            reference = _controller_ref(pod)
            if reference is None:
                continue
            if reference.get("kind") not in _SCALE_KINDS:
                raise _SyncFailed(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            uid, replicas = str(reference.get("uid")), self._scale.get(str(reference.get("uid")), 0)
            resource = _WORKLOADS.get(str(reference.get("kind")))
            owner = None
            if resource is not None:
                owner = self._objects.get(self._key(resource, pod["metadata"]["namespace"], str(reference.get("name"))))
            if (
                resource is not None
                and owner is not None
                and owner["metadata"]["uid"] == reference.get("uid", owner["metadata"]["uid"])
            ):
                # getPodDeployment before getPodReplicaSet: a Deployment's pods count its replicas. An owner
                # made from the pods and never scaled counts its pods as before (the same number, unless a test's
                # pods are not named as the controller names them).
                scaled = self._deployment_of(owner) if resource is _REPLICASETS else None
                scaled = scaled if scaled is not None else owner
                scaled_resource = _DEPLOYMENTS if scaled is not owner else resource
                if self._key(scaled_resource, scaled["metadata"]["namespace"], scaled["metadata"]["name"]) not in (
                    self._seeded
                ):
                    uid, replicas = scaled["metadata"]["uid"], int(scaled["spec"].get("replicas", 0))
            owners[uid] = replicas
        return sum(owners.values())

    def _pdb_fail_safe(self, pdb: JsonObj, message: str, wall: float) -> JsonObj:
        """failSafe: when the status cannot be computed, disruptionsAllowed is 0 and the DisruptionAllowed
        condition is False with reason SyncFailed; the rest of the old status stays."""
        status = copy.deepcopy(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        holder = {"status": {"conditions": status.get("conditions") or []}}
        condition = {
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "SyncFailed",
            "message": message,
            "observedGeneration": status.get("observedGeneration", 0),
        }
        _set_condition(holder, condition, wall)
        status["conditions"] = holder["status"]["conditions"]
        return status

    def _learn_scale(self, pod: JsonObj) -> None:
        """A workload's replicas are as many pods as it has ever had at once (no scaling is modelled)."""
        reference = _controller_ref(pod)
        if reference is None or "uid" not in reference:
            return
        uid = reference["uid"]
        count = sum(
            1
            for key, other in self._objects.items()
            if key[0] == "pods"
            and not _is_terminating(other)
            and (other_ref := _controller_ref(other)) is not None
            and other_ref.get("uid") == uid
        )
        self._scale[uid] = max(self._scale.get(uid, 0), count)

    # ------------------------------------------------------------------------------ storage core

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    @staticmethod
    def _key(resource: _Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (resource.plural, (namespace or "default") if resource.namespaced else "", name)

    def _store(self, resource: _Resource, obj: JsonObj) -> None:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        metadata = obj["metadata"]
        key = self._key(resource, metadata.get("namespace"), metadata["name"])
        self._record_change("MODIFIED" if key in self._objects else "ADDED", resource, obj, self._objects.get(key))
        self._objects[key] = obj

    def _select(self, resource: _Resource, namespace: str | None) -> list[JsonObj]:
        return [
            obj
            for key, obj in sorted(self._objects.items())
            if key[0] == resource.plural and (namespace is None or key[1] == namespace)
        ]

    def _pods_on(self, node_name: str) -> list[JsonObj]:
        return [pod for pod in self._select(_PODS, None) if pod["spec"].get("nodeName") == node_name]

    @staticmethod
    def _output(resource: _Resource, obj: JsonObj) -> JsonObj:
        out = copy.deepcopy(obj)
        return {"kind": resource.kind, "apiVersion": resource.api_version, **out}

    def _remove(self, resource: _Resource, key: tuple[str, str, str]) -> JsonObj:
        """Remove an object for good; a workload pod is owed a replacement if it was not already."""
        obj = self._objects.pop(key)
        self._revision += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._revision)
        self._record_change("DELETED", resource, gone)
        if resource is _PODS:
            self._starting_since.pop(obj["metadata"]["uid"], None)
            reference = _controller_ref(obj)
            if reference is not None and (reference.get("kind") == "StatefulSet" or not _is_terminating(obj)):
                self._owed.append(obj)
        return obj

    def _after_write(self) -> None:
        self._node_lifecycle()
        self._sync_pdbs()
        if self.controller_enabled:
            self.run_controller_once()

    @staticmethod
    def _default_pod(pod: JsonObj) -> None:
        """The defaults kube-apiserver's defaulting and admission plugins add to a pod."""
        spec = pod.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", _DEFAULT_GRACE_S)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        for taint_key in (fake_node_lifecycle.NOT_READY_TAINT, fake_node_lifecycle.UNREACHABLE_TAINT):
            if not any(t.get("key") == taint_key and t.get("effect") in ("NoExecute", None) for t in tolerations):
                tolerations.append(
                    {"key": taint_key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                )
        pod.setdefault("status", {}).setdefault("phase", "Pending")

    # ------------------------------------------------------------------------------ HTTP entry

    def _handle_http(
        self,
        method: str,
        raw_path: str,
        content_type: str,
        raw_body: bytes,
        *,
        accept: str = "",
        authorization: str = "",
    ) -> _Response | None:
        """Answer one HTTP request (called by the handler threads). None: drop the connection."""
        while not self._running.wait(0.05):
            if self._stopping:
                return None
        if self._stopping:
            return None
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path.rstrip("/") or "/"
        query = {key: values[-1] for key, values in urllib.parse.parse_qs(parsed.query).items()}
        body: Any = None
        body_error: str | None = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError as error:
                body_error = str(error)
        with self._lock:
            response = self._answer(method, path, query, content_type, body, body_error, accept, authorization)
            identity = self.rbac.authenticate(authorization)
            self._requests.append(
                RequestRecord(
                    method,
                    path,
                    dict(query),
                    response.code,
                    content_type.split(";")[0].strip(),
                    body,
                    identity.user if identity is not None else "",
                )
            )
        return response

    def _answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        content_type: str,
        body: Any,
        body_error: str | None,
        accept: str = "",
        authorization: str = "",
    ) -> _Response:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                details: JsonObj = {}
                if fault.retry_after_s:
                    details["retryAfterSeconds"] = fault.retry_after_s
                error = _ApiError(fault.status, fault.message, _REASONS.get(fault.status), details or None)
                return _Response(fault.status, error.body, error.headers)
        try:
            identity = self._authorize(method, path, query, authorization)
            if body_error is not None:
                raise _bad_request(f"the body of the request could not be decoded as JSON: {body_error}")
            if path == _SSAR_PATH and method == "POST":
                return self._self_subject_access_review(identity, body)
            if self.controller_enabled:
                self.run_controller_once()
            else:
                self._node_lifecycle()  # kube-controller-manager runs whether or not the fake's kubelets do
            if method != "GET" and self._is_dry_run(path, query, body):
                return self._dry_run(method, path, query, content_type, body, accept)
            response = self._dispatch(method, path, query, content_type, body, accept)
            if method != "GET":
                self._after_write()
            return response
        except _ApiError as error:
            return _Response(error.code, error.body, error.headers)
        except Exception as error:  # a bug in the fake: answer as kube-apiserver would, with a 500
            message = f"Internal error occurred: {type(error).__name__}: {error}"
            return _Response(500, _status_body(500, message, "InternalError", {"causes": [{"message": str(error)}]}))

    def _authorize(self, method: str, path: str, query: Mapping[str, str], authorization: str) -> fake_rbac.Identity:
        """Authentication (401) and RBAC authorization (403), before any handler runs, as kube-apiserver's
        filter chain does."""
        identity = self.rbac.authenticate(authorization)
        if identity is None:
            raise _ApiError(401, "Unauthorized", "Unauthorized")
        parts = [urllib.parse.unquote(part) for part in path.split("/") if part]
        request = fake_rbac.request_attributes(method, parts, query)
        allowed, _ = self.rbac.decide(identity, request)
        if not allowed:
            details: JsonObj = {"kind": request.resource} if request.resource_request else {}
            if request.name:
                details["name"] = request.name
            if request.api_group:
                details["group"] = request.api_group
            raise _ApiError(403, fake_rbac.forbidden_message(identity, request), "Forbidden", details or None)
        return identity

    def _self_subject_access_review(self, identity: fake_rbac.Identity, body: Any) -> _Response:
        """authorization.k8s.io/v1 SelfSubjectAccessReview (what ``kubectl auth can-i`` sends): the
        review comes back with ``status.allowed`` for the caller's own identity."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise _bad_request("the body of the request must be a SelfSubjectAccessReview object")
        spec = body["spec"]
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if isinstance(resource, dict) == isinstance(non_resource, dict):
            raise _invalid_fields(
                _SSAR,
                "",
                [
                    fake_validation.FieldError(
                        "spec.resourceAttributes",
                        "Invalid",
                        '""',
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )
                ],
            )
        if isinstance(resource, dict):
            request = fake_rbac.RequestAttributes(
                str(resource.get("verb") or ""),
                True,
                "",
                str(resource.get("group") or ""),
                str(resource.get("resource") or ""),
                str(resource.get("subresource") or ""),
                str(resource.get("namespace") or ""),
                str(resource.get("name") or ""),
            )
        else:
            assert isinstance(non_resource, dict)
            request = fake_rbac.RequestAttributes(
                str(non_resource.get("verb") or ""), False, str(non_resource.get("path") or "")
            )
        allowed, reason = self.rbac.decide(identity, request)
        status: JsonObj = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        review = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": copy.deepcopy(spec),
            "status": status,
        }
        return _Response(201, review)

    @staticmethod
    def _is_dry_run(path: str, query: Mapping[str, str], body: Any) -> bool:
        """``?dryRun=All`` on any write, or ``deleteOptions.dryRun: ["All"]`` in an Eviction's body
        (pkg/registry/core/pod/storage/eviction.go propagates one into the other)."""
        values: list[Any] = [query["dryRun"]] if query.get("dryRun") else []
        if path.endswith("/eviction") and isinstance(body, dict):
            options = body.get("deleteOptions")
            requested = options.get("dryRun") if isinstance(options, dict) else None
            if isinstance(requested, list):
                values.extend(requested)
        return _dry_run_values(values)

    def _dry_run(
        self, method: str, path: str, query: Mapping[str, str], content_type: str, body: Any, accept: str
    ) -> _Response:
        """Run the request with every check (admission, validation, PDBs) and answer as it would be
        answered, then put every object back: a dry run persists nothing (KEP-576)."""
        saved = (
            copy.deepcopy(self._objects),
            self._revision,
            list(self._changes),
            list(self._owed),
            dict(self._scale),
            dict(self._starting_since),
            set(self._seeded),
        )
        try:
            return self._dispatch(method, path, query, content_type, body, accept)
        finally:
            objects, self._revision, self._changes, self._owed, self._scale, self._starting_since, seeded = saved
            self._objects = objects
            self._seeded = seeded

    def _dispatch(
        self, method: str, path: str, query: Mapping[str, str], content_type: str, body: Any, accept: str = ""
    ) -> _Response:
        parts = [urllib.parse.unquote(part) for part in path.split("/") if part]
        if parts == ["openapi", "v2"] and method == "GET":
            # kubectl validates what it sends against this schema. An empty one (no definitions) makes it
            # skip validation, as for a resource the server does not describe; without one, create -f fails.
            return _Response(200, _EMPTY_OPENAPI_V2, {"Content-Type": _OPENAPI_V2_PROTOBUF})
        if parts[:2] == ["openapi", "v3"] and method == "GET":
            return self._openapi_v3("/".join(parts[2:]))
        discovery = self._discovery(parts)
        if discovery is not None:
            if method != "GET":
                raise _ApiError(
                    405,
                    "the server does not allow this method on the requested resource",
                    "MethodNotAllowed",
                )
            return _Response(200, discovery)
        route = self._route(parts)
        resource = route.resource
        if resource is _DAEMONSETS:
            self._adopt_daemonsets()
        table = method == "GET" and kubectl_tables.wants_table(accept)
        if fake_watch.is_watch(query):
            if method != "GET" or route.name:
                raise _ApiError(
                    405, "the server does not allow this method on the requested resource", "MethodNotAllowed"
                )
            return self._watch(resource, route.namespace or None, query, table)
        if not route.name:
            if method == "GET":
                listed = self._list(resource, route.namespace or None, query)
                return self._as_table(resource, listed, query) if table else listed
            if method == "POST" and (route.namespace or not resource.namespaced):
                return self._create(resource, route.namespace, body)
            raise _ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")
        if route.subresource == "eviction":
            if method != "POST":
                raise _ApiError(
                    405, "the server does not allow this method on the requested resource", "MethodNotAllowed"
                )
            return self._evict(route.namespace, route.name, body)
        if route.subresource == "scale":
            return self._scale_subresource(route, method, content_type, body)
        if method == "GET":
            found = _Response(200, self._output(resource, self._get(resource, route.namespace, route.name)))
            return self._as_table(resource, found, query) if table and not route.subresource else found
        if method == "PUT":
            return self._replace(route, body)
        if method == "PATCH":
            return self._patch(route, content_type, body)
        if method == "DELETE" and not route.subresource:
            return self._delete(resource, route.namespace, route.name, query, body)
        raise _ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")

    @staticmethod
    def _openapi_v3(group_version: str) -> _Response:
        """k8s.io/kube-openapi pkg/handler3: the discovery document at ``/openapi/v3``, each group-version's
        document under it with its hash as ETag, cacheable for a year when asked for by that hash."""
        if not group_version:
            return _Response(200, dict(fake_openapi.discovery()))
        found = fake_openapi.document(group_version)
        if found is None:
            raise _ApiError(404, "the server could not find the requested resource", "NotFound", {})
        body, etag = found
        return _Response(
            200,
            body,
            {"Content-Type": "application/json", "ETag": f'"{etag}"', "Cache-Control": "public, immutable"},
        )

    def _route(self, parts: list[str]) -> _Route:
        not_found = _ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, rest = parts[1], parts[3:]
            if (group, parts[2]) not in _GROUPS:
                raise not_found
        else:
            raise not_found
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        resource = next((r for r in _RESOURCES if r.group == group and r.plural == rest[0]), None)
        if resource is None or (namespace and not resource.namespaced):
            raise not_found
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if name and resource.namespaced and not namespace:
            raise not_found
        if subresource and not (
            (subresource == "status" and resource.has_status)
            or (subresource == "eviction" and resource is _PODS)
            or (subresource == "scale" and resource.plural in _SCALABLE)
        ):
            raise not_found
        return _Route(resource, namespace, name, subresource)

    # ----------------------------------------------------------------------------- discovery

    def _discovery(self, parts: list[str]) -> JsonObj | None:
        host = f"{self._host}:{self._port}"
        if parts == ["version"]:
            return {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.4+k3s1",
                "gitCommit": "fake",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.22.9",
                "compiler": "gc",
                "platform": "linux/arm64",
            }
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g, v) for g, v in (*_GROUPS, (_SSAR.group, _SSAR.version))],
            }
        if len(parts) == 2 and parts[0] == "apis":
            for group, version in (*_GROUPS, (_SSAR.group, _SSAR.version)):
                if parts[1] == group:
                    return {"kind": "APIGroup", "apiVersion": "v1", **self._group(group, version)}
            return None
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in _GROUPS:
            return self._resource_list(parts[1], parts[2])
        if parts == ["apis", _SSAR.group, _SSAR.version]:
            review = {"name": _SSAR.plural, "singularName": "", "namespaced": False, "kind": _SSAR.kind}
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": _SSAR.api_version,
                "resources": [{**review, "verbs": ["create"]}],
            }
        return None

    @staticmethod
    def _group(group: str, version: str) -> JsonObj:
        entry = {"groupVersion": f"{group}/{version}", "version": version}
        return {"name": group, "versions": [entry], "preferredVersion": entry}

    @staticmethod
    def _resource_list(group: str, version: str) -> JsonObj:
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources: list[JsonObj] = []
        for resource in _RESOURCES:
            if resource.group != group or resource.version != version:
                continue
            entry: JsonObj = {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": verbs,
            }
            if resource.short_names:
                entry["shortNames"] = list(resource.short_names)
            if resource.categories:
                entry["categories"] = list(resource.categories)
            resources.append(entry)
            if resource.has_status:
                resources.append(
                    {
                        "name": f"{resource.plural}/status",
                        "singularName": "",
                        "namespaced": resource.namespaced,
                        "kind": resource.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if resource.plural in _SCALABLE:
                resources.append(
                    {
                        "name": f"{resource.plural}/scale",
                        "singularName": "",
                        "namespaced": True,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if resource is _PODS:
                resources.append(
                    {
                        "name": "pods/eviction",
                        "singularName": "",
                        "namespaced": True,
                        "group": "policy",
                        "version": "v1",
                        "kind": "Eviction",
                        "verbs": ["create"],
                    }
                )
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    # ------------------------------------------------------------------------------------ verbs

    def _get(self, resource: _Resource, namespace: str, name: str) -> JsonObj:
        obj = self._objects.get(self._key(resource, namespace, name))
        if obj is None:
            raise _not_found(resource, name)
        return obj

    def _list(self, resource: _Resource, namespace: str | None, query: Mapping[str, str]) -> _Response:
        revision = str(self._revision)
        token = query.get("continue")
        if token:
            remaining = self._continues.pop(token, None)
            if remaining is None:
                raise _ApiError(
                    410,
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                    "Expired",
                )
            items = remaining
        else:
            labels = parse_label_selector(query["labelSelector"]) if query.get("labelSelector") else None
            fields = _parse_field_selector(query["fieldSelector"], resource) if query.get("fieldSelector") else None
            items = [
                {k: v for k, v in copy.deepcopy(obj).items() if k not in ("kind", "apiVersion")}
                for obj in self._select(resource, namespace)
                if (labels is None or labels(_labels(obj))) and (fields is None or fields(obj))
            ]
        metadata: JsonObj = {"resourceVersion": revision}
        limit = int(query.get("limit") or 0)
        if limit < 0:
            raise _bad_request("limit must not be negative")
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            last = items[-1]["metadata"]
            start = f"{last.get('namespace', '')}/{last['name']}\x00"
            raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(revision), "start": start}).encode()
            next_token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            next_token += "." + str(self._random.getrandbits(32))
            self._continues[next_token] = rest
            metadata["continue"] = next_token
            metadata["remainingItemCount"] = len(rest)
        body = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }
        return _Response(200, body)

    def _check_body(self, resource: _Resource, body: Any) -> JsonObj:
        if not isinstance(body, dict):
            raise _bad_request(f"the body of the request must be a {resource.kind} object")
        kind = body.get("kind")
        if kind is not None and kind != resource.kind:
            raise _bad_request(f"the object provided is unrecognized (must be of type {resource.kind}): {kind}")
        api_version = body.get("apiVersion")
        if api_version is not None and api_version != resource.api_version:
            raise _bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})"
            )
        obj = copy.deepcopy(body)
        metadata = obj.get("metadata")
        if metadata is None:
            obj["metadata"] = {}
        elif not isinstance(metadata, dict):
            raise _bad_request("metadata must be an object")
        self._normalise_times(resource, obj)
        return obj

    @staticmethod
    def _normalise_times(resource: _Resource, obj: JsonObj) -> None:
        """Parse and re-render Time and MicroTime fields as kube-apiserver's decoder and encoder do.

        MicroTime is parsed with layout ``2006-01-02T15:04:05.000000Z07:00``, so exactly six fractional
        digits are required (Python's ``isoformat()`` drops them when microseconds are zero: that is a 400).
        """
        for fields, micro in ((resource.time_fields, False), (resource.micro_time_fields, True)):
            for field in fields:
                parent: Any = obj
                for part in field[:-1]:
                    parent = parent.get(part) if isinstance(parent, dict) else None
                if not isinstance(parent, dict) or parent.get(field[-1]) is None:
                    continue
                text = parent[field[-1]]
                layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
                moment = _parse_rfc3339(text) if isinstance(text, str) else None
                if moment is None or (micro and not _RFC3339_MICRO.match(text)):
                    raise _bad_request(
                        f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                        f'{resource.kind}: parsing time "{text}" as "{layout}": cannot parse it as "{layout}"'
                    )
                wall = moment.timestamp()
                if micro:
                    parent[field[-1]] = format_micro_time(wall)
                else:
                    parent[field[-1]] = format_time(wall)

    def _create(self, resource: _Resource, namespace: str, body: Any) -> _Response:
        obj = self._check_body(resource, body)
        metadata = obj["metadata"]
        if resource.namespaced:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if metadata.get("resourceVersion"):
            raise _bad_request("resourceVersion should not be set on objects to be created")
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise _invalid(resource, "", "metadata.name", '""', "name or generateName is required")
            metadata["name"] = metadata["generateName"] + "".join(
                self._random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5)
            )
        key = self._key(resource, namespace, metadata["name"])
        if key in self._objects:
            raise _already_exists(resource, metadata["name"])
        metadata["uid"] = self._new_uid()
        metadata["creationTimestamp"] = format_time(self._clock.wall())
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(field, None)
        if resource is _PODS:
            self._default_pod(obj)
            obj["status"] = {"phase": "Pending"}
        if resource is _PDBS or resource in _WORKLOADS.values() or resource is _DEPLOYMENTS:
            metadata["generation"] = 1
            obj.pop("status", None)
        _validate(resource, obj)
        self._store(resource, obj)
        if resource is _PODS:
            self._learn_scale(obj)
            self._adopt_owner(obj)
        return _Response(201, self._output(resource, self._objects[key]))

    def _merge_update(self, route: _Route, old: JsonObj, new: JsonObj) -> JsonObj:
        """Apply what an update may change: status for ``/status``, everything else otherwise."""
        resource = route.resource
        if route.subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            return merged
        merged = new
        metadata = merged["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if field in old["metadata"]:
                metadata[field] = old["metadata"][field]
            else:
                metadata.pop(field, None)
        if resource.has_status:
            if "status" in old:
                merged["status"] = copy.deepcopy(old["status"])
            else:
                merged.pop("status", None)
        if (resource is _PDBS or resource in _WORKLOADS.values() or resource is _DEPLOYMENTS) and merged.get(
            "spec"
        ) != old.get("spec"):
            # The strategies' PrepareForUpdate: a change of spec is a new generation (metadata.generation).
            metadata["generation"] = int(old["metadata"].get("generation", 1)) + 1
            self._seeded.discard(self._key(resource, metadata.get("namespace"), metadata["name"]))
        return merged

    def _replace(self, route: _Route, body: Any) -> _Response:
        resource = route.resource
        obj = self._check_body(resource, body)
        metadata = obj["metadata"]
        if metadata.get("name") and metadata["name"] != route.name:
            raise _name_mismatch(metadata["name"], route.name)
        if resource.namespaced and metadata.get("namespace") and metadata["namespace"] != route.namespace:
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        metadata["name"] = route.name
        if resource.namespaced:
            metadata["namespace"] = route.namespace
        if resource is _LEASES and self._key(resource, route.namespace, route.name) not in self._objects:
            # pkg/registry/coordination/lease/strategy.go: AllowCreateOnUpdate() is true, so a PUT to a
            # missing Lease creates it (client-go's leader election relies on it after a Lease is deleted).
            metadata.pop("resourceVersion", None)
            return self._create(resource, route.namespace, obj)
        old = self._get(resource, route.namespace, route.name)
        version = metadata.get("resourceVersion")
        if not version and not resource.unconditional_update:
            raise _invalid(resource, route.name, "metadata.resourceVersion", "0", "must be specified for an update")
        if version and version != old["metadata"]["resourceVersion"]:
            raise _conflict(resource, route.name, _MODIFIED)
        merged = self._merge_update(route, old, obj)
        _validate(resource, merged)
        self._store(resource, merged)
        return _Response(200, self._output(resource, merged))

    def _patch(self, route: _Route, content_type: str, body: Any) -> _Response:
        resource = route.resource
        old = self._get(resource, route.namespace, route.name)
        media = content_type.split(";")[0].strip()
        current = self._output(resource, old)
        if media == "application/json-patch+json":
            patched = json_patch(current, body)
        elif media == "application/merge-patch+json":
            patched = json_merge_patch(current, body)
        elif media == "application/strategic-merge-patch+json":
            if not isinstance(body, dict):
                raise _bad_request("a strategic merge patch must be a JSON object")
            patched = strategic_merge_patch(current, body, _merge_keys(resource))
        else:
            raise _ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json",
                "UnsupportedMediaType",
            )
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise _bad_request("the patch leaves no object")
        metadata = patched["metadata"]
        if metadata.get("name") != route.name:
            raise _name_mismatch(metadata.get("name"), route.name)
        version = metadata.get("resourceVersion")
        if version and version != old["metadata"]["resourceVersion"]:
            raise _conflict(resource, route.name, _MODIFIED)
        patched["kind"], patched["apiVersion"] = resource.kind, resource.api_version
        self._normalise_times(resource, patched)
        merged = self._merge_update(route, old, patched)
        _validate(resource, merged)
        if merged == old:
            return _Response(200, self._output(resource, old))  # a no-op patch keeps the resourceVersion
        self._store(resource, merged)
        return _Response(200, self._output(resource, merged))

    def _delete(self, resource: _Resource, namespace: str, name: str, query: Mapping[str, str], body: Any) -> _Response:
        options = body if isinstance(body, dict) else {}
        obj = self._get(resource, namespace, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != obj["metadata"]["uid"]:
            raise _conflict(
                resource,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {obj['metadata']['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != obj["metadata"]["resourceVersion"]
        ):
            raise _conflict(
                resource,
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                f"ResourceVersion in object meta: {obj['metadata']['resourceVersion']}",
            )
        grace: int | None = None
        if options.get("gracePeriodSeconds") is not None:
            grace = int(options["gracePeriodSeconds"])
        elif query.get("gracePeriodSeconds"):
            grace = int(query["gracePeriodSeconds"])
        if resource is not _PODS:
            self._remove(resource, self._key(resource, namespace, name))
            details = _details(resource, name)
            details["uid"] = obj["metadata"]["uid"]
            return _Response(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                },
            )
        return _Response(200, self._output(_PODS, self._delete_pod(obj, grace)))

    def _delete_pod(self, pod: JsonObj, grace: int | None) -> JsonObj:
        """Delete a pod, gracefully if modelled; returns the pod as the DELETE response shows it."""
        key = self._key(_PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", _DEFAULT_GRACE_S))
        if not pod["spec"].get("nodeName") or _phase(pod) in ("Succeeded", "Failed"):
            grace = 0
        if not self.graceful_deletion or grace <= 0:
            return self._remove(_PODS, key)
        if _is_terminating(pod):
            current = _parse_rfc3339(pod["metadata"]["deletionTimestamp"])
            if current is not None and current.timestamp() <= self._clock.wall() + grace:
                return pod  # a shorter grace period may only shorten a deletion already under way
        updated = copy.deepcopy(pod)
        updated["metadata"]["deletionTimestamp"] = format_time(self._clock.wall() + grace)
        updated["metadata"]["deletionGracePeriodSeconds"] = grace
        was_terminating = _is_terminating(pod)
        self._store(_PODS, updated)
        reference = _controller_ref(updated)
        if not was_terminating and reference is not None and reference.get("kind") != "StatefulSet":
            self._owed.append(copy.deepcopy(updated))  # a ReplicaSet replaces terminating pods at once
        return updated

    def _evict(self, namespace: str, name: str, body: Any) -> _Response:
        """The pods/eviction subresource, following pkg/registry/core/pod/storage/eviction.go."""
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise _bad_request("not a Eviction object")
        if body.get("apiVersion") not in (None, "policy/v1", "policy/v1beta1"):
            raise _bad_request(f"the API version in the data ({body.get('apiVersion')}) is not policy/v1")
        if (body.get("metadata") or {}).get("name") != name:
            raise _bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        grace = options.get("gracePeriodSeconds")
        pod = self._get(_PODS, namespace, name)
        success = _Response(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )
        # Terminal, pending or already terminating pods: no PDB check.
        if _phase(pod) in ("Succeeded", "Failed", "Pending") or _is_terminating(pod):
            self._delete_pod(pod, grace)
            return success
        labels = _labels(pod)
        pdbs = [
            pdb for pdb in self._select(_PDBS, namespace) if label_selector_matcher(pdb["spec"].get("selector"))(labels)
        ]
        if len(pdbs) > 1:
            message = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            return _Response(500, _status_body(500, message, None, None))
        if pdbs:
            pdb = pdbs[0]
            status = pdb.get("status") or {}
            # A pod that is not Ready may go without spending budget if the policy says AlwaysAllow, or
            # (IfHealthyBudget, the default) if the budget is healthy without it.
            free = not _is_pod_ready(pod) and (
                pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0
            )
            if not free:
                self._spend_budget(pdb, name)
        self._disruption_target(pod)
        self._delete_pod(self._get(_PODS, namespace, name), grace)
        return success

    def _spend_budget(self, pdb: JsonObj, pod_name: str) -> None:
        name = pdb["metadata"]["name"]
        status = pdb.get("status") or {}
        message = "Cannot evict pod as it would violate the pod's disruption budget."
        if int(status.get("observedGeneration", 0)) < int(pdb["metadata"].get("generation", 1)):
            raise _ApiError(
                429,
                message,
                "TooManyRequests",
                {
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {name} is still being processed by the server.",
                        }
                    ],
                    "retryAfterSeconds": 10,
                },
            )
        allowed = int(status.get("disruptionsAllowed", 0))
        if allowed < 0:
            raise _ApiError(
                403,
                f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed is negative',
                "Forbidden",
                {"name": name, "group": "policy", "kind": "poddisruptionbudget"},
            )
        if allowed == 0:
            raise _ApiError(
                429,
                message,
                "TooManyRequests",
                {
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {name} needs "
                            f"{status.get('desiredHealthy', 0)} healthy pods and has "
                            f"{status.get('currentHealthy', 0)} currently",
                        }
                    ],
                },
            )
        updated = copy.deepcopy(pdb)
        updated_status = updated.setdefault("status", {})
        updated_status["disruptionsAllowed"] = allowed - 1
        updated_status.setdefault("disruptedPods", {})[pod_name] = format_time(self._clock.wall())
        if allowed - 1 == 0:
            _set_condition(
                updated,
                {"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": ""},
                self._clock.wall(),
            )
        self._store(_PDBS, updated)

    def _disruption_target(self, pod: JsonObj) -> None:
        updated = copy.deepcopy(pod)
        _set_condition(
            updated,
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            },
            self._clock.wall(),
        )
        self._store(_PODS, updated)

    # ------------------------------------------------------------------------- kubectl: tables, watch

    def _as_table(self, resource: _Resource, response: _Response, query: Mapping[str, str]) -> _Response:
        """A list or one object as the ``Table`` kubectl get asks for."""
        body = response.body
        if body.get("kind", "").endswith("List"):
            objects = [{"kind": resource.kind, "apiVersion": resource.api_version, **item} for item in body["items"]]
            metadata = body.get("metadata") or {}
        else:
            objects, metadata = [body], {"resourceVersion": body["metadata"].get("resourceVersion", "")}
        table = kubectl_tables.render_table(
            resource.plural,
            objects,
            self._clock.wall(),
            metadata=metadata,
            include_object=query.get("includeObject") or "Metadata",
        )
        return _Response(response.code, table, response.headers)

    def _record_change(self, kind: str, resource: _Resource, obj: JsonObj, previous: JsonObj | None = None) -> None:
        """Keep the change for watches (as JSON text: stored objects are replaced, never changed in place,
        but a copy is cheap insurance) and wake them."""
        namespace = obj["metadata"].get("namespace", "") if resource.namespaced else ""
        text = json.dumps(obj, separators=(",", ":"))
        before = None if previous is None else json.dumps(previous, separators=(",", ":"))
        self._changes.append(_Change(self._revision, kind, resource.plural, namespace, text, before))
        if len(self._changes) > _WATCH_HISTORY:
            del self._changes[: len(self._changes) - _WATCH_HISTORY]
        with self._changed:
            self._changed.notify_all()

    def _watch(self, resource: _Resource, namespace: str | None, query: Mapping[str, str], table: bool) -> _Response:
        """``?watch=true``: ADDED/MODIFIED/DELETED events after ``resourceVersion`` (none or "0": every
        current object as ADDED first, as kube-apiserver does), filtered by the selectors, as tables if asked.
        Ends after ``timeoutSeconds`` (real time: it bounds the connection) or when the server stops."""
        labels = parse_label_selector(query["labelSelector"]) if query.get("labelSelector") else None
        fields = _parse_field_selector(query["fieldSelector"], resource) if query.get("fieldSelector") else None
        include = query.get("includeObject") or "Metadata"
        timeout_s = float(query.get("timeoutSeconds") or _WATCH_TIMEOUT_S)
        since = query.get("resourceVersion") or "0"
        if not since.isdigit():
            raise _bad_request(f"invalid resourceVersion {since!r}")
        start = int(since)
        initial: list[tuple[str, JsonObj]] = []
        if start == 0:
            initial = [("ADDED", self._output(resource, obj)) for obj in self._select(resource, namespace)]
            start = self._revision
        too_old = start < self._compacted or (
            bool(self._changes) and start < self._changes[0].revision - 1 and start < self._revision
        )
        bookmarks = fake_watch.wants_bookmarks(query)

        def matches(obj: JsonObj) -> bool:
            return (labels is None or labels(_labels(obj))) and (fields is None or fields(obj))

        def selected(change: _Change) -> tuple[str, JsonObj] | None:
            """The event a selecting watch sees (cacher ``cache_watcher.go`` ``convertToWatchEvent``): an object
            that comes into the selection is ADDED, one that leaves it is DELETED (as it was, at the new
            resourceVersion), one in it before and after is MODIFIED; None if it is in neither."""
            obj = json.loads(change.text)
            if change.type == "DELETED":
                return (change.type, obj) if matches(obj) else None
            before = None if change.previous is None else json.loads(change.previous)
            now_in, was_in = matches(obj), before is not None and matches(before)
            if now_in:
                return ("MODIFIED" if was_in else "ADDED"), obj
            if was_in and before is not None:
                before["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion", "")
                return "DELETED", before
            return None

        def event(kind: str, obj: JsonObj, first: bool) -> bytes:
            shown: JsonObj = obj
            if table:
                shown = kubectl_tables.render_table(
                    resource.plural,
                    [obj],
                    self._clock.wall(),
                    metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                    include_object=include,
                    with_columns=first,
                )
            return json.dumps({"type": kind, "object": shown}, separators=(",", ":")).encode() + b"\n"

        def stream(send: Callable[[bytes], None]) -> None:
            if too_old:
                status = _status_body(410, f"too old resource version: {start}", "Expired", None)
                send(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                return
            first = True
            for kind, obj in initial:
                if matches(obj):
                    send(event(kind, obj, first))
                    first = False
            position = start
            deadline = time.monotonic() + timeout_s
            bookmark_at = fake_watch.next_bookmark_at(time.monotonic(), deadline, self.bookmark_frequency_s)
            while not self._stopping and time.monotonic() < deadline:
                with self._lock:
                    fresh = [c for c in self._changes if c.revision > position]
                # A bookmark once every change so far is sent: the version this watch has reached.
                due = bookmark_at is not None and time.monotonic() >= bookmark_at
                if bookmarks and due and not fresh and not table:
                    mark = fake_watch.bookmark_event(resource.kind, resource.api_version, position)
                    send(json.dumps(mark, separators=(",", ":")).encode() + b"\n")
                    bookmark_at = fake_watch.next_bookmark_at(time.monotonic(), deadline, self.bookmark_frequency_s)
                if not fresh:
                    with self._changed:
                        self._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
                position = fresh[-1].revision
                for change in fresh:
                    if change.plural != resource.plural or (namespace is not None and change.namespace != namespace):
                        continue
                    shown = selected(change)
                    if shown is not None:
                        send(event(*shown, first))
                        first = False

        return _Response(200, None, stream=stream)

    # ------------------------------------------------------------------------- workloads: objects, scale

    def _scale_subresource(self, route: _Route, method: str, content_type: str, body: Any) -> _Response:
        """The scale subresource (pkg/registry/apps/*/storage/storage.go ScaleREST): get, update, patch."""
        owner = self._get(route.resource, route.namespace, route.name)
        current = fake_workloads.scale_of(self._output(route.resource, owner))
        if method == "GET":
            return _Response(200, current)
        if method == "PUT":
            return self._update_scale(route, owner, body)
        if method == "PATCH":
            media = content_type.split(";")[0].strip()
            if media == "application/json-patch+json":
                patched = json_patch(current, body)
            elif media in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(body, dict):
                    raise _bad_request("a merge patch must be a JSON object")
                patched = json_merge_patch(current, body)  # a Scale has no lists: strategic = merge
            else:
                raise _ApiError(
                    415,
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, "
                    "application/strategic-merge-patch+json",
                    "UnsupportedMediaType",
                )
            return self._update_scale(route, owner, patched)
        raise _ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")

    def _update_scale(self, route: _Route, owner: JsonObj, body: Any) -> _Response:
        """scaleUpdatedObjectInfo.UpdatedObject, then the store's update: ValidateScale (422), the uid
        precondition (409), the resourceVersion the Scale carries (409), the replicas moved to the owner."""
        resource = route.resource
        if not isinstance(body, dict) or body.get("kind") not in (None, "Scale"):
            raise _bad_request(f"expected input object type to be Scale, but {type(body).__name__}")
        if body.get("apiVersion") not in (None, "autoscaling/v1"):
            raise _bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version "
                "(autoscaling/v1)"
            )
        raw_metadata, raw_spec = body.get("metadata"), body.get("spec")
        metadata: JsonObj = raw_metadata if isinstance(raw_metadata, dict) else {}
        if metadata.get("name") and metadata["name"] != route.name:
            raise _name_mismatch(metadata["name"], route.name)
        spec: JsonObj = raw_spec if isinstance(raw_spec, dict) else {}
        replicas = spec.get("replicas", 0)
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise _bad_request(
                'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                f"{type(replicas).__name__} into Go struct field ScaleSpec.spec.replicas of type int32"
            )
        if replicas < 0:
            raise _invalid_kind("autoscaling", "Scale", route.name, [_negative("spec.replicas", replicas)])
        uid = metadata.get("uid")
        if uid and uid != owner["metadata"]["uid"]:
            raise _ApiError(
                409,
                f'Operation cannot be fulfilled on {resource.plural}/scale.{resource.group} "{route.name}": '
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {owner['metadata']['uid']}",
                "Conflict",
                {"name": route.name, "group": resource.group, "kind": f"{resource.plural}/scale"},
            )
        version = metadata.get("resourceVersion")
        if version and version != owner["metadata"]["resourceVersion"]:
            raise _conflict(resource, route.name, _MODIFIED)
        if int(owner["spec"].get("replicas", 0)) != replicas:
            updated = copy.deepcopy(owner)
            updated["spec"]["replicas"] = replicas
            updated["metadata"]["generation"] = int(owner["metadata"].get("generation", 1)) + 1
            self._seeded.discard(self._key(resource, route.namespace, route.name))
            self._store(resource, updated)
            owner = updated
        return _Response(200, fake_workloads.scale_of(self._output(resource, owner)))

    def _adopt_owner(self, pod: JsonObj) -> None:
        """The owner a loaded pod names, as its controller would have made it (``sim/fake_workloads.py``):
        made from this pod if missing; while its spec was never written, its replicas follow its pods (as
        many as it has had at once). A ReplicaSet named ``<d>-<pod-template-hash>`` gets its Deployment."""
        reference = _controller_ref(pod)
        if reference is None or _is_terminating(pod):
            return
        resource = _WORKLOADS.get(str(reference.get("kind")))
        owner_name = reference.get("name")
        if resource is None or not isinstance(owner_name, str) or not owner_name:
            return
        namespace = pod["metadata"]["namespace"]
        key = self._key(resource, namespace, owner_name)
        owner = self._objects.get(key)
        if owner is not None and str(reference.get("uid") or owner["metadata"]["uid"]) != owner["metadata"]["uid"]:
            return  # a pod of another owner of that name: not this one's
        pods = [p for p in self._owned_pods(owner_name, resource.kind, namespace, reference)]
        if owner is None:
            claims = {c["metadata"]["name"]: c for c in self._select(_PVCS, namespace)}
            uid = str(reference.get("uid") or _owner_uid(resource.kind, namespace, owner_name))
            created = min(str(p["metadata"].get("creationTimestamp", "")) for p in pods) or format_time(
                self._clock.wall()
            )
            owner = fake_workloads.owner_from_pods(resource.kind, namespace, owner_name, uid, pods, created, claims)
            self._seeded.add(key)
            owner["status"] = self._workload_status(resource, owner)
            if resource is _REPLICASETS:
                owner = self._adopt_deployment(owner, _labels(pod))
            self._store(resource, owner)
            self._refresh_status(resource, key)
            return
        if key in self._seeded:
            count = self._desired_from_pods(resource, owner, pods)
            field = "parallelism" if resource is _JOBS else "replicas"
            if count > int(owner["spec"].get(field, 0)):
                updated = copy.deepcopy(owner)
                updated["spec"][field] = count
                if resource is _JOBS:
                    updated["spec"]["completions"] = max(int(updated["spec"].get("completions") or 0), count)
                self._store(resource, updated)
                deployment = self._deployment_of(updated)
                if deployment is not None and self._key(_DEPLOYMENTS, namespace, deployment["metadata"]["name"]) in (
                    self._seeded
                ):
                    grown = copy.deepcopy(deployment)
                    grown["spec"]["replicas"] = sum(
                        int(rs["spec"].get("replicas", 0)) for rs in self._replica_sets_of(grown)
                    )
                    self._store(_DEPLOYMENTS, grown)
        self._refresh_status(resource, key)

    def _refresh_status(self, resource: _Resource, key: tuple[str, str, str]) -> None:
        """Recompute a workload's status (and its Deployment's), stored only when it changed."""
        owner = self._objects.get(key)
        if owner is None:
            return
        status = self._workload_status(resource, owner)
        if status != owner.get("status"):
            updated = copy.deepcopy(owner)
            updated["status"] = status
            self._store(resource, updated)
            owner = updated
        deployment = self._deployment_of(owner) if resource is _REPLICASETS else None
        if deployment is not None:
            status = self._deployment_status(deployment, self._replica_sets_of(deployment))
            if status != deployment.get("status"):
                updated = copy.deepcopy(deployment)
                updated["status"] = status
                self._store(_DEPLOYMENTS, updated)

    @staticmethod
    def _desired_from_pods(resource: _Resource, owner: JsonObj, pods: Sequence[JsonObj]) -> int:
        active = [p for p in pods if fake_workloads.is_active(p)]
        if resource is _STATEFULSETS:
            name = owner["metadata"]["name"]
            return sum(1 for p in active if fake_workloads.stateful_ordinal(name, p["metadata"]["name"]) is not None)
        return len(active)

    def _owned_pods(
        self, name: str, kind: str, namespace: str, reference: Mapping[str, Any] | None = None
    ) -> list[JsonObj]:
        """The pods whose controller reference names this owner (by uid when the reference has one)."""
        uid = (reference or {}).get("uid")
        found = []
        for key, pod in self._objects.items():
            if key[0] != "pods" or key[1] != namespace:
                continue
            ref = _controller_ref(pod)
            if ref is None or ref.get("kind") != kind or ref.get("name") != name:
                continue
            if uid and ref.get("uid") and ref.get("uid") != uid:
                continue
            found.append(pod)
        return found

    def _adopt_deployment(self, replica_set: JsonObj, pod_labels: Mapping[str, str]) -> JsonObj:
        """A ReplicaSet made by a Deployment gets a controller reference to it; the Deployment is made if
        missing (replicas: the sum of its ReplicaSets')."""
        namespace = replica_set["metadata"]["namespace"]
        name = fake_workloads.deployment_name(replica_set["metadata"]["name"], pod_labels)
        if name is None:
            return replica_set
        key = self._key(_DEPLOYMENTS, namespace, name)
        deployment = self._objects.get(key)
        if deployment is None:
            deployment = fake_workloads.deployment_from_replica_set(
                name,
                _owner_uid("Deployment", namespace, name),
                replica_set,
                replica_set["metadata"]["creationTimestamp"],
            )
            self._seeded.add(key)
        elif key in self._seeded:
            deployment = copy.deepcopy(deployment)
            deployment["spec"]["replicas"] = int(deployment["spec"].get("replicas", 0)) + int(
                replica_set["spec"].get("replicas", 0)
            )
        else:
            return fake_workloads.owned_by(replica_set, deployment)
        owned = fake_workloads.owned_by(replica_set, deployment)
        deployment["status"] = self._deployment_status(deployment, [*self._replica_sets_of(deployment), owned])
        self._store(_DEPLOYMENTS, deployment)
        return owned

    def _deployment_of(self, replica_set: JsonObj) -> JsonObj | None:
        reference = _controller_ref(replica_set)
        if reference is None or reference.get("kind") != "Deployment":
            return None
        found = self._objects.get(
            self._key(_DEPLOYMENTS, replica_set["metadata"]["namespace"], str(reference.get("name")))
        )
        if found is None or found["metadata"]["uid"] != reference.get("uid"):
            return None
        return found

    def _replica_sets_of(self, deployment: JsonObj) -> list[JsonObj]:
        uid = deployment["metadata"]["uid"]
        return [
            rs
            for rs in self._select(_REPLICASETS, deployment["metadata"]["namespace"])
            if (ref := _controller_ref(rs)) is not None and ref.get("uid") == uid
        ]

    def _workload_status(self, resource: _Resource, owner: JsonObj) -> JsonObj:
        """The status each controller writes: counts of its pods (pkg/controller/replicaset
        calculateStatus, statefulset computeReplicaStatus, job_controller)."""
        metadata = owner["metadata"]
        pods = self._pods_of_owner(owner)
        active = [p for p in pods if fake_workloads.is_active(p)]
        ready = sum(1 for p in active if _is_pod_ready(p))
        old = owner.get("status") or {}
        generation = int(metadata.get("generation", 1))
        if resource is _REPLICASETS:
            status: JsonObj = {"replicas": len(active), "fullyLabeledReplicas": len(active)}
            if ready:
                status.update(readyReplicas=ready, availableReplicas=ready)
            status["observedGeneration"] = generation
            return status
        if resource is _STATEFULSETS:
            revision = str(old.get("currentRevision") or f"{metadata['name']}-fake")
            status = {"observedGeneration": generation, "replicas": len(active)}
            if ready:
                status.update(readyReplicas=ready, availableReplicas=ready)
            status.update(
                currentReplicas=len(active),
                updatedReplicas=len(active),
                currentRevision=revision,
                updateRevision=revision,
                collisionCount=0,
            )
            return status
        # A Job (pkg/controller/job/job_controller.go): active pods, those Ready, finished ones, conditions.
        status = {}
        if old.get("conditions"):
            status["conditions"] = copy.deepcopy(old["conditions"])
        if old.get("startTime"):
            status["startTime"] = old["startTime"]
        elif not owner["spec"].get("suspend"):
            created = min((str(p["metadata"].get("creationTimestamp", "")) for p in pods), default="")
            status["startTime"] = created or format_time(self._clock.wall())
        if active:
            status["active"] = len(active)
        status["ready"] = ready
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        terminating = sum(1 for p in pods if _is_terminating(p))
        if terminating:
            status["terminating"] = terminating
        return status

    def _deployment_status(self, deployment: JsonObj, replica_sets: Sequence[JsonObj]) -> JsonObj:
        """pkg/controller/deployment/sync.go calculateStatus: sums over the Deployment's ReplicaSets."""
        replicas = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in replica_sets)
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in replica_sets)
        available = sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in replica_sets)
        status: JsonObj = {"observedGeneration": int(deployment["metadata"].get("generation", 1))}
        status["replicas"] = replicas
        status["updatedReplicas"] = replicas
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        unavailable = int(deployment["spec"].get("replicas", 0)) - available
        if unavailable > 0:
            status["unavailableReplicas"] = unavailable
        return status

    def _adopt_daemonsets(self) -> None:
        """Every DaemonSet a pod names as its controller exists (its controller made the pods), so that
        ``kubectl drain --ignore-daemonsets`` finds the owners of the DaemonSet pods it leaves alone."""
        owners: dict[tuple[str, str], list[JsonObj]] = {}
        for pod in self._select(_PODS, None):
            reference = _controller_ref(pod)
            if reference is not None and reference.get("kind") == "DaemonSet":
                owners.setdefault((pod["metadata"]["namespace"], str(reference["name"])), []).append(pod)
        for (namespace, name), pods in owners.items():
            if self._key(_DAEMONSETS, namespace, name) in self._objects:
                continue
            reference = _controller_ref(pods[0]) or {}
            template_labels = {
                k: v
                for k, v in _labels(pods[0]).items()
                if k not in ("controller-revision-hash", "pod-template-generation")
            }
            ready = sum(1 for pod in pods if _is_pod_ready(pod))
            daemonset: JsonObj = {
                "kind": "DaemonSet",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": reference.get("uid") or self._new_uid(),
                    "generation": 1,
                    "creationTimestamp": min(str(pod["metadata"].get("creationTimestamp", "")) for pod in pods)
                    or format_time(self._clock.wall()),
                },
                "spec": {
                    "selector": {"matchLabels": template_labels},
                    "template": {
                        "metadata": {"labels": template_labels},
                        "spec": {"containers": copy.deepcopy(pods[0]["spec"].get("containers") or [])},
                    },
                },
                "status": {
                    "desiredNumberScheduled": len(pods),
                    "currentNumberScheduled": len(pods),
                    "numberReady": ready,
                    "updatedNumberScheduled": len(pods),
                    "numberAvailable": ready,
                    "numberMisscheduled": 0,
                    "observedGeneration": 1,
                },
            }
            self._store(_DAEMONSETS, daemonset)


def _validate(resource: _Resource, obj: JsonObj) -> None:
    """The validation strategy of the few resources whose rules piclusterd can break (422 Invalid)."""
    if resource is _LEASES:
        errors = fake_validation.validate_lease(obj)
    elif resource is _EVENTS:
        errors = fake_validation.validate_event(obj)
    elif resource.plural in _SCALABLE or resource is _JOBS:
        # pkg/apis/apps/validation ValidateDeploymentSpec / ValidateReplicaSetSpec / ValidateStatefulSetSpec and
        # pkg/apis/batch/validation ValidateJobSpec: counts are non-negative; errors name the GroupKind.
        spec = obj.get("spec") or {}
        fields = ("parallelism", "completions") if resource is _JOBS else ("replicas",)
        for field in fields:
            value = spec.get(field, 0)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise _bad_request(
                    f'{resource.kind} in version "v1" cannot be handled as a {resource.kind}: json: cannot '
                    f"unmarshal {type(value).__name__} into Go struct field of type int32"
                )
        found = [_negative(f"spec.{field}", spec[field]) for field in fields if (spec.get(field) or 0) < 0]
        if found:
            raise _invalid_kind(resource.group, resource.kind, str(obj["metadata"].get("name") or ""), found)
        return
    else:
        return
    if errors:
        raise _invalid_fields(resource, str(obj["metadata"].get("name") or ""), errors)


def _dry_run_values(values: Sequence[Any]) -> bool:
    """staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation: dryRun may only be ``All``."""
    for value in values:
        if value != "All":
            raise _bad_request(f'Invalid dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def _scaled(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with rounding up."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    percent = int(text[:-1])
    return -(-percent * total // 100)


# ---------------------------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake API server until SIGINT or SIGTERM; print its URL on the first line of stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m piclusterd.sim.fake_api_server", description="A fake Kubernetes API server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="FILE",
        help="a kubectl get -o json List to seed from (repeatable)",
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="write a kubeconfig for the server here")
    parser.add_argument("--controller", action="store_true", help="run the replacement/scheduling controller")
    parser.add_argument("--controller-interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--ready-delay", type=float, default=5.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    server = FakeKubeServer(host=args.host, port=args.port, controller=args.controller, ready_delay_s=args.ready_delay)
    for path in args.load:
        server.load_objects(Path(path))
    done = threading.Event()

    def stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with server:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(server.url, flush=True)
        while not done.wait(args.controller_interval):
            if args.controller:
                server.run_controller_once()
    return 0


if __name__ == "__main__":
    sys.exit(main())
