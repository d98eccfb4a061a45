"""Adapter: the Kubernetes API calls piclusterd makes, on the unmodified ``kubernetes`` client.

Reads come back as raw JSON (``_preload_content=False``), exactly what ``kubectl get -o json`` prints, so the
one parser of the pure core (``cluster.parse_kubectl_list``) serves live clusters and snapshot files alike,
and nothing depends on the client's model classes (which differ between 22.x on Debian bookworm and 37.x).
Every call has a timeout; errors become :class:`piclusterd.core.errors.ClusterError` leaves with the status.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from piclusterd.core.bounded_json import API_MAX_BYTES, JsonRefused, load_api_json
from piclusterd.core.errors import ClusterError
from piclusterd.core.node_records import rfc3339
from piclusterd.core.outage_record import OUTAGE_CONFIGMAP

__all__ = [
    "ApiCallFailed",
    "EventRecorder",
    "EvictionOutcome",
    "EvictionResult",
    "KubeClusterApi",
    "ObjectCache",
    "can_i",
]

JsonObject = dict[str, Any]
PAGE_SIZE = 500


class ApiCallFailed(ClusterError):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, what: str, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{what}: {status or 'no answer'} {message}".strip())


def _read_bounded(response: Any, limit: int) -> bytes:
    """The body of a streamed (``_preload_content=False``) response, refused past ``limit`` bytes unread."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = response.read(1024 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ApiCallFailed("read the answer", int(response.status or 0), f"more than {limit} bytes")
            chunks.append(chunk)
    finally:
        with contextlib.suppress(Exception):
            response.release_conn()


def _error_details(body: object) -> dict[str, Any]:
    """An error answer's Status object, read like any answer (bounded); {} when it is not one."""
    with contextlib.suppress(JsonRefused, AttributeError, TypeError):
        raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
        data = load_api_json(raw, max_bytes=1024 * 1024) if isinstance(raw, bytes) else None
        if isinstance(data, dict):
            return data
    return {}


def _fail(what: str, error: Exception) -> ApiCallFailed:
    if isinstance(error, ApiCallFailed):
        return ApiCallFailed(what, error.status, str(error).split(": ", 1)[-1])
    if isinstance(error, ApiException):
        message = str(_error_details(error.body).get("message", error.reason or ""))
        return ApiCallFailed(what, int(error.status or 0), message[:500])
    return ApiCallFailed(what, 0, str(error))


class EvictionOutcome(enum.Enum):
    EVICTED = "evicted"  # 201: the pod is being deleted
    GONE = "gone"  # 404: already gone
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget refuses now; retry later
    FAILED = "failed"  # anything else (500 for a pod under two PDBs): this pod cannot be evicted


@dataclass(frozen=True, slots=True)
class EvictionResult:
    outcome: EvictionOutcome
    message: str = ""
    retry_after_s: float | None = None
    blocking_pdbs: tuple[str, ...] = ()


class ObjectCache(Protocol):
    """Objects kept by watches (``cluster.informer.ClusterCache``): each answer None when it cannot tell."""

    def snapshot(self) -> JsonObject | None: ...

    def node(self, name: str, own: str) -> JsonObject | None: ...

    def configmap(self, namespace: str, name: str) -> tuple[bool, JsonObject | None]:
        """(True, the object or None if there is none) when watched, else (False, None)."""
        ...

    def remember(self, key: str, obj: JsonObject) -> None: ...

    def forget(self, key: str, namespace: str, name: str) -> None: ...

    @property
    def changes(self) -> int: ...


def request_timeout(seconds: float) -> tuple[float, float]:
    """A (connect, read) pair: kubernetes 22.6 silently ignores a plain float as ``_request_timeout``."""
    return (seconds, seconds)


class KubeClusterApi:
    def __init__(self, api_client: k8s.ApiClient, *, request_timeout_s: float = 10.0) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self._policy = k8s.PolicyV1Api(api_client)
        self._apps = k8s.AppsV1Api(api_client)
        self._batch = k8s.BatchV1Api(api_client)
        self._timeout = request_timeout(request_timeout_s)
        self._cache: ObjectCache | None = None
        self._identity = ""

    @property
    def changes(self) -> int | None:
        """What the watches applied so far (unchanged: nothing read changed); None without watches."""
        return None if self._cache is None else self._cache.changes

    def use_cache(self, cache: ObjectCache, identity: str) -> None:
        """Serve reads from ``cache`` (watches, :mod:`piclusterd.cluster.informer`) where it has them."""
        self._cache, self._identity = cache, identity

    def _raw(self, what: str, call: Any, *args: Any, **kwargs: Any) -> JsonObject:
        """One call's JSON object. Garbage from the API server (or whatever answers on its port) is a failed
        call: a body over ``API_MAX_BYTES``, not UTF-8, nested deeper than ``API_MAX_DEPTH``, NaN or infinity,
        or not a JSON object (:func:`~piclusterd.core.bounded_json.load_api_json`)."""
        try:
            response = call(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            body = _read_bounded(response, API_MAX_BYTES)
        except Exception as error:  # the client raises ApiException, urllib3 and socket errors alike
            raise _fail(what, error) from error
        try:
            data = load_api_json(body)
        except JsonRefused as error:
            raise ApiCallFailed(what, int(getattr(response, "status", 0) or 0), f"unreadable answer: {error}") from None
        if not isinstance(data, dict):
            raise ApiCallFailed(what, int(getattr(response, "status", 0) or 0), "unreadable answer: not a JSON object")
        return data

    def _list_all(self, what: str, call: Any, **kwargs: Any) -> list[JsonObject]:
        items: list[JsonObject] = []
        token: str | None = None
        while True:
            extra = {"_continue": token} if token else {}
            page = self._raw(what, call, limit=PAGE_SIZE, **kwargs, **extra)
            items.extend(page.get("items", []))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def snapshot(self) -> JsonObject:
        """Nodes, pods (all namespaces), PDBs, PVs and PVCs as one ``kubectl get nodes,pods,pdb,pv,pvc -A -o
        json`` List: from the watches once they are in, else five LISTs.

        Volumes that cannot be listed for want of permission (403: an RBAC from before PVs were read) or
        support (404) are left out: the planner then says which claims it could not check
        (``ClusterView.volumes_unchecked``) instead of the leader stopping; any other failure fails the call.
        """
        cached = None if self._cache is None else self._cache.snapshot()
        if cached is not None:
            return cached
        nodes = self._list_all("list nodes", self._core.list_node)
        pods = self._list_all("list pods", self._core.list_pod_for_all_namespaces)
        pdbs = self._list_all("list poddisruptionbudgets", self._policy.list_pod_disruption_budget_for_all_namespaces)
        volumes = self._list_optional("list persistentvolumes", self._core.list_persistent_volume)
        claims = self._list_optional(
            "list persistentvolumeclaims", self._core.list_persistent_volume_claim_for_all_namespaces
        )
        for item, (kind, version) in (
            *((n, ("Node", "v1")) for n in nodes),
            *((p, ("Pod", "v1")) for p in pods),
            *((b, ("PodDisruptionBudget", "policy/v1")) for b in pdbs),
            *((v, ("PersistentVolume", "v1")) for v in volumes),
            *((c, ("PersistentVolumeClaim", "v1")) for c in claims),
        ):
            # List items come without kind/apiVersion on the wire; the snapshot format has them.
            item["kind"] = kind
            item.setdefault("apiVersion", version)
        return {"kind": "List", "apiVersion": "v1", "items": [*nodes, *pods, *pdbs, *volumes, *claims]}

    def _list_optional(self, what: str, call: Any) -> list[JsonObject]:
        try:
            return self._list_all(what, call)
        except ApiCallFailed as error:
            if error.status in (403, 404):
                return []
            raise

    def get_node(self, name: str) -> JsonObject:
        cached = None if self._cache is None else self._cache.node(name, self._identity)
        if cached is not None:
            return cached
        return self._raw(f"get node {name}", self._core.read_node, name)

    def node_exists(self, name: str) -> bool | None:
        """Whether a Node of that name exists (the Lease's holder must be one); None if the API cannot tell."""
        try:
            self.get_node(name)
        except ApiCallFailed as error:
            return False if error.status == 404 else None
        return True

    def patch_node(self, name: str, patch: Mapping[str, Any], *, dry_run: bool = False) -> JsonObject:
        """Strategic-merge patch (the client sends a dict body as strategic-merge-patch+json). ``dry_run``:
        the server runs every check and persists nothing (``?dryRun=All``, KEP-576; doctor's)."""
        extra = {"dry_run": "All"} if dry_run else {}
        written = self._raw(f"patch node {name}", self._core.patch_node, name, dict(patch), **extra)
        if self._cache is not None and not dry_run:
            self._cache.remember("node", written)  # our own write, before the watch brings it
        return written

    def pods_on_node(self, node: str) -> list[JsonObject]:
        return self._list_all(
            f"list pods on {node}", self._core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
        )

    def get_pod(self, namespace: str, name: str) -> JsonObject | None:
        try:
            return self._raw(f"get pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace)
        except ApiCallFailed as error:
            if error.status == 404:
                return None
            raise

    def delete_pod(self, namespace: str, name: str, uid: str, grace_period_s: int | None = None) -> bool:
        """DELETE the pod with its UID as a precondition (never a namesake created since), with its own grace
        period when ``grace_period_s`` is None. False if it is already gone (404) or is another pod (409)."""
        body: Any = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period_s is not None:
            body["gracePeriodSeconds"] = grace_period_s
        try:
            self._core.delete_namespaced_pod(name, namespace, body=body, _request_timeout=self._timeout)
        except ApiException as error:
            if int(error.status or 0) in (404, 409):
                return False
            raise _fail(f"delete pod {namespace}/{name}", error) from error
        except Exception as error:
            raise _fail(f"delete pod {namespace}/{name}", error) from error
        return True

    def read_configmap(self, namespace: str, name: str) -> JsonObject | None:
        """The ConfigMap, or None if there is none (piclusterd's outage record lives in one)."""
        if self._cache is not None:
            found, cached = self._cache.configmap(namespace, name)
            if found:
                return cached
        try:
            return self._raw(
                f"get configmap {namespace}/{name}", self._core.read_namespaced_config_map, name, namespace
            )
        except ApiCallFailed as error:
            if error.status == 404:
                return None
            raise

    def write_configmap(self, namespace: str, name: str, data: Mapping[str, str], resource_version: str) -> JsonObject:
        """Create it (``resource_version`` "") or replace the version read (409 if someone wrote since)."""
        metadata: dict[str, str] = {"name": name, "namespace": namespace}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
        if not resource_version:
            created = self._raw(
                f"create configmap {namespace}/{name}", self._core.create_namespaced_config_map, namespace, body
            )
            if self._cache is not None and name == OUTAGE_CONFIGMAP:
                self._cache.remember("outage", created)
            return created
        metadata["resourceVersion"] = resource_version
        written = self._raw(
            f"replace configmap {namespace}/{name}", self._core.replace_namespaced_config_map, name, namespace, body
        )
        if self._cache is not None and name == OUTAGE_CONFIGMAP:  # the one ConfigMap the watches keep
            self._cache.remember("outage", written)
        return written

    def delete_configmap(self, namespace: str, name: str) -> None:
        try:
            self._raw(f"delete configmap {namespace}/{name}", self._core.delete_namespaced_config_map, name, namespace)
        except ApiCallFailed as error:
            if error.status != 404:
                raise
        if self._cache is not None and name == OUTAGE_CONFIGMAP:
            self._cache.forget("outage", namespace, name)

    # --- stopping non-critical work (Plan.scale_down) and putting it back ------------------------------

    def _optional(self, what: str, call: Any, *args: Any) -> JsonObject | None:
        try:
            return self._raw(what, call, *args)
        except ApiCallFailed as error:
            if error.status == 404:
                return None
            raise

    def _scale_calls(self, kind: str) -> tuple[Any, Any]:
        calls = {
            "Deployment": (self._apps.read_namespaced_deployment_scale, self._apps.patch_namespaced_deployment_scale),
            "ReplicaSet": (self._apps.read_namespaced_replica_set_scale, self._apps.patch_namespaced_replica_set_scale),
            "StatefulSet": (
                self._apps.read_namespaced_stateful_set_scale,
                self._apps.patch_namespaced_stateful_set_scale,
            ),
        }
        if kind not in calls:
            raise ValueError(f"{kind} has no scale subresource piclusterd uses")
        return calls[kind]

    def read_replica_set(self, namespace: str, name: str) -> JsonObject | None:
        """The ReplicaSet (to find the Deployment that controls it), or None if there is none."""
        return self._optional(
            f"get replicaset {namespace}/{name}", self._apps.read_namespaced_replica_set, name, namespace
        )

    def read_scale(self, kind: str, namespace: str, name: str) -> JsonObject | None:
        """The scale subresource (autoscaling/v1 Scale) of a Deployment, ReplicaSet or StatefulSet; None if
        the workload is gone. ``kubectl get --subresource=scale``."""
        read, _ = self._scale_calls(kind)
        return self._optional(f"get {kind.lower()} {namespace}/{name} scale", read, name, namespace)

    def patch_scale(self, kind: str, namespace: str, name: str, replicas: int) -> JsonObject:
        """Set ``spec.replicas`` through the scale subresource (``kubectl scale``), a strategic-merge patch."""
        _, patch = self._scale_calls(kind)
        body = {"spec": {"replicas": replicas}}
        return self._raw(f"scale {kind.lower()} {namespace}/{name} to {replicas}", patch, name, namespace, body)

    def read_job(self, namespace: str, name: str) -> JsonObject | None:
        return self._optional(f"get job {namespace}/{name}", self._batch.read_namespaced_job, name, namespace)

    def patch_job_suspend(self, namespace: str, name: str, suspend: bool) -> JsonObject:
        """``spec.suspend`` of a Job (batch/v1, GA in 1.24): true deletes its active pods, false creates them
        again (KEP-2232)."""
        body = {"spec": {"suspend": suspend}}
        what = f"{'suspend' if suspend else 'resume'} job {namespace}/{name}"
        return self._raw(what, self._batch.patch_namespaced_job, name, namespace, body)

    def evict(
        self, namespace: str, name: str, grace_period_s: int | None = None, *, dry_run: bool = False
    ) -> EvictionResult:
        """POST the pod's Eviction. ``dry_run``: ``deleteOptions.dryRun: ["All"]``, every check (PDBs
        included) and nothing deleted (pkg/registry/core/pod/storage/eviction.go; doctor's)."""
        # A plain dict body is serialised as-is by every client version (typed as V1Eviction in newer ones).
        body: Any = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        options: dict[str, Any] = {}
        if grace_period_s is not None:
            options["gracePeriodSeconds"] = grace_period_s
        if dry_run:
            options["dryRun"] = ["All"]
        if options:
            body["deleteOptions"] = options
        try:
            self._core.create_namespaced_pod_eviction(name, namespace, body, _request_timeout=self._timeout)
        except ApiException as error:
            status = int(error.status or 0)
            details = _error_details(error.body)
            message = str(details.get("message", error.reason or ""))[:500]
            if status == 404:
                return EvictionResult(EvictionOutcome.GONE, message)
            if status == 429:
                info = details.get("details")
                info = info if isinstance(info, dict) else {}
                retry = info.get("retryAfterSeconds")
                causes = info.get("causes")
                pdbs = tuple(
                    str(c.get("message", ""))[:500]
                    for c in (causes if isinstance(causes, list) else [])
                    if isinstance(c, dict) and c.get("reason") == "DisruptionBudget"
                )
                retry_s = float(retry) if isinstance(retry, int | float) and 0 <= retry <= 3600 else None
                return EvictionResult(EvictionOutcome.BLOCKED, message, retry_s, pdbs)
            return EvictionResult(EvictionOutcome.FAILED, f"{status} {message}")
        except Exception as error:
            raise _fail(f"evict {namespace}/{name}", error) from error
        return EvictionResult(EvictionOutcome.EVICTED)


def can_i(api_client: k8s.ApiClient, attributes: Mapping[str, str], request_timeout_s: float = 10.0) -> bool:
    """Whether the API server lets this client do what ``attributes`` (a SelfSubjectAccessReview's
    ``resourceAttributes``) describe: ``kubectl auth can-i``. Raises :class:`ApiCallFailed`."""
    body: Any = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": dict(attributes)},
    }
    what = "create selfsubjectaccessreview"
    try:
        response = k8s.AuthorizationV1Api(api_client).create_self_subject_access_review(
            body, _preload_content=False, _request_timeout=request_timeout(request_timeout_s)
        )
        data = load_api_json(_read_bounded(response, API_MAX_BYTES))
    except JsonRefused as error:
        raise ApiCallFailed(what, 0, f"unreadable answer: {error}") from None
    except Exception as error:
        raise _fail(what, error) from error
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, dict) or not isinstance(status.get("allowed"), bool):
        raise ApiCallFailed(what, 0, "unreadable answer: no status.allowed")
    return bool(status["allowed"])


class EventRecorder:
    """Kubernetes Events on Nodes (namespace ``default``), counted, not flooded: the same reason and message
    for the same node bumps ``count`` and ``lastTimestamp`` on the existing Event."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        reporter: str,
        request_timeout_s: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self._reporter = reporter
        self._wall = wall  # the clock the Event times are on (the demo's is accelerated)
        self._timeout = request_timeout(request_timeout_s)
        self._seen: dict[tuple[str, str, str], tuple[str, int]] = {}

    def _event_body(
        self,
        namespace: str,
        name: str,
        involved: dict[str, str],
        reason: str,
        message: str,
        warning: bool,
        now: str,
    ) -> dict[str, Any]:
        """A new core/v1 Event from this reporter about ``involved``, seen once at ``now``."""
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "piclusterd", "host": self._reporter},
            "reportingComponent": "piclusterd",
            "reportingInstance": self._reporter,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    def emit(self, node: str, reason: str, message: str, *, warning: bool = False) -> None:
        now = rfc3339(self._wall())
        message = message[:1024]
        key = (node, reason, message)
        if key in self._seen:
            name, count = self._seen[key]
            patch = {"count": count + 1, "lastTimestamp": now}
            try:
                self._core.patch_namespaced_event(name, "default", patch, _request_timeout=self._timeout)
                self._seen[key] = (name, count + 1)
                return
            except ApiException as error:
                if error.status != 404:
                    raise _fail(f"patch event {name}", error) from error
        name = f"{node}.{reason.lower()}.{len(self._seen):x}{datetime.datetime.now(datetime.UTC):%H%M%S%f}"
        involved = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node}
        body: Any = self._event_body("default", name, involved, reason, message, warning, now)
        try:
            self._core.create_namespaced_event("default", body, _request_timeout=self._timeout)
        except Exception as error:
            raise _fail(f"create event {reason} on {node}", error) from error
        self._seen[key] = (name, 1)

    def emit_on(
        self,
        kind: str,
        api_version: str,
        namespace: str,
        name: str,
        reason: str,
        message: str,
        *,
        warning: bool = False,
    ) -> None:
        """A Kubernetes Event on a workload (``kubectl describe deployment`` shows it), in the workload's own
        namespace as the API server requires. Not counted: each is one action of piclusterd's."""
        now = rfc3339(self._wall())
        event_name = f"{name[:200]}.{reason.lower()}.{datetime.datetime.now(datetime.UTC):%H%M%S%f}"
        involved = {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}
        body: Any = self._event_body(namespace, event_name, involved, reason, message[:1024], warning, now)
        try:
            self._core.create_namespaced_event(namespace, body, _request_timeout=self._timeout)
        except Exception as error:
            raise _fail(f"create event {reason} on {kind} {namespace}/{name}", error) from error
