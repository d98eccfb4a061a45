"""Server-side printing for the fake API server: the ``meta.k8s.io/v1`` ``Table`` that kubectl asks for.

``kubectl get`` sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the table the
server returns; without one it falls back to NAME and AGE only. The columns, their priorities (1: only with
``-o wide``) and the cell values follow kube-apiserver's printers (``pkg/printers/internalversion``) for
the kinds the fake serves, so what a user sees in ``kubectl get`` matches a real cluster. Pure.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["human_duration", "render_table", "table_columns", "wants_table"]

JsonObj = dict[str, Any]
Cells = list[Any]


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a meta.k8s.io/v1 Table (kubectl get; v1beta1 is not served)."""
    for media in accept.split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in media.split(";")[1:])}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
    return False


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: ``45s``, ``5m3s``, ``3h20m``, ``5d7h``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def _since(stamp: object, now: float) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        moment = _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration(now - moment.timestamp())


def _age(obj: JsonObj, now: float) -> str:
    return _since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _condition(obj: JsonObj, kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _node_cells(node: JsonObj, now: float) -> Cells:
    labels: Mapping[str, str] = node["metadata"].get("labels") or {}
    status = "Ready" if _condition(node, "Ready") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/") and "/" in key}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    info: Mapping[str, str] = node.get("status", {}).get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or []}
    return [
        node["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _pod_cells(pod: JsonObj, now: float) -> Cells:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses")
    if statuses:
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    else:  # the fake's kubelet keeps only the pod's Ready condition
        ready = len(containers) if _condition(pod, "Ready") == "True" else 0
        restarts = 0
    reason = status.get("reason") or status.get("phase") or "Unknown"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "NodeLost" if status.get("reason") == "NodeLost" else "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        _age(pod, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{sum(1 for g in gates if _condition(pod, g.get('conditionType', '')) == 'True')}/{len(gates)}"
        if gates
        else "<none>",
    ]


def _event_cells(event: JsonObj, now: float) -> Cells:
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    last = event.get("lastTimestamp") or (event.get("series") or {}).get("lastObservedTime") or event.get("eventTime")
    first = event.get("firstTimestamp") or event.get("eventTime")
    count = int(event.get("count") or (event.get("series") or {}).get("count") or 1)
    return [
        _since(last, now),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        str(event.get("message", "")).strip(),
        _since(first, now),
        count,
        event["metadata"]["name"],
    ]


def _pdb_cells(pdb: JsonObj, now: float) -> Cells:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    return [
        pdb["metadata"]["name"],
        str(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
        str(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
        int(status.get("disruptionsAllowed", 0)),
        _age(pdb, now),
    ]


def _lease_cells(lease: JsonObj, now: float) -> Cells:
    return [lease["metadata"]["name"], (lease.get("spec") or {}).get("holderIdentity") or "", _age(lease, now)]


def _daemonset_cells(daemonset: JsonObj, now: float) -> Cells:
    spec, status = daemonset.get("spec") or {}, daemonset.get("status") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted((template.get("nodeSelector") or {}).items()))
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    return [
        daemonset["metadata"]["name"],
        int(status.get("desiredNumberScheduled", 0)),
        int(status.get("currentNumberScheduled", 0)),
        int(status.get("numberReady", 0)),
        int(status.get("updatedNumberScheduled", 0)),
        int(status.get("numberAvailable", 0)),
        selector or "<none>",
        _age(daemonset, now),
        ",".join(c.get("name", "") for c in template.get("containers") or []),
        ",".join(c.get("image", "") for c in template.get("containers") or []),
        ",".join(f"{k}={v}" for k, v in sorted(match.items())) or "<none>",
    ]


def _template_cells(obj: JsonObj) -> tuple[str, str, str]:
    """CONTAINERS, IMAGES and SELECTOR of a workload (printers.go layoutContainerCells + its selector)."""
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = spec.get("selector") or {}
    shown = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(shown) or "<none>",
    )


def _deployment_cells(deployment: JsonObj, now: float) -> Cells:
    """printDeployment: READY is readyReplicas/spec.replicas."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    return [
        deployment["metadata"]["name"],
        f"{int(status.get('readyReplicas', 0))}/{int(spec.get('replicas', 0))}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        _age(deployment, now),
        *_template_cells(deployment),
    ]


def _replicaset_cells(replica_set: JsonObj, now: float) -> Cells:
    """printReplicaSet: DESIRED spec.replicas, CURRENT status.replicas, READY status.readyReplicas."""
    spec, status = replica_set.get("spec") or {}, replica_set.get("status") or {}
    return [
        replica_set["metadata"]["name"],
        int(spec.get("replicas", 0)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        _age(replica_set, now),
        *_template_cells(replica_set),
    ]


def _statefulset_cells(stateful_set: JsonObj, now: float) -> Cells:
    """printStatefulSet: READY is readyReplicas/spec.replicas."""
    spec, status = stateful_set.get("spec") or {}, stateful_set.get("status") or {}
    containers, images, _ = _template_cells(stateful_set)
    return [
        stateful_set["metadata"]["name"],
        f"{int(status.get('readyReplicas', 0))}/{int(spec.get('replicas', 0))}",
        _age(stateful_set, now),
        containers,
        images,
    ]


def _job_cells(job: JsonObj, now: float) -> Cells:
    """printJob (1.30+): STATUS from the conditions, COMPLETIONS succeeded/completions, DURATION since start."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    state = "Running"
    for kind, shown in (("Failed", "Failed"), ("Complete", "Complete"), ("Suspended", "Suspended")):
        if _condition(job, kind) == "True":
            state = shown
            break
    completions = spec.get("completions")
    succeeded = int(status.get("succeeded", 0))
    done = f"{succeeded}/{completions}" if completions is not None else f"{succeeded}/1 of {spec.get('parallelism', 1)}"
    duration = _since(status.get("startTime"), now) if status.get("startTime") else ""
    return [job["metadata"]["name"], state, done, duration, _age(job, now), *_template_cells(job)]


_NAME = ("Name", "string", "name", 0)
_AGE = ("Age", "string", "", 0)
# plural -> (columns as (name, type, format, priority), cells)
_PRINTERS: dict[str, tuple[tuple[tuple[str, str, str, int], ...], Callable[[JsonObj, float], Cells]]] = {
    "nodes": (
        (
            _NAME,
            ("Status", "string", "", 0),
            ("Roles", "string", "", 0),
            _AGE,
            ("Version", "string", "", 0),
            ("Internal-IP", "string", "", 1),
            ("External-IP", "string", "", 1),
            ("OS-Image", "string", "", 1),
            ("Kernel-Version", "string", "", 1),
            ("Container-Runtime", "string", "", 1),
        ),
        _node_cells,
    ),
    "pods": (
        (
            _NAME,
            ("Ready", "string", "", 0),
            ("Status", "string", "", 0),
            ("Restarts", "integer", "", 0),
            _AGE,
            ("IP", "string", "", 1),
            ("Node", "string", "", 1),
            ("Nominated Node", "string", "", 1),
            ("Readiness Gates", "string", "", 1),
        ),
        _pod_cells,
    ),
    "events": (
        (
            ("Last Seen", "string", "", 0),
            ("Type", "string", "", 0),
            ("Reason", "string", "", 0),
            ("Object", "string", "", 0),
            ("Subobject", "string", "", 1),
            ("Source", "string", "", 1),
            ("Message", "string", "", 0),
            ("First Seen", "string", "", 1),
            ("Count", "string", "", 1),
            ("Name", "string", "", 1),
        ),
        _event_cells,
    ),
    "poddisruptionbudgets": (
        (
            _NAME,
            ("Min Available", "string", "", 0),
            ("Max Unavailable", "string", "", 0),
            ("Allowed Disruptions", "integer", "", 0),
            _AGE,
        ),
        _pdb_cells,
    ),
    "leases": ((_NAME, ("Holder", "string", "", 0), _AGE), _lease_cells),
    "daemonsets": (
        (
            _NAME,
            ("Desired", "integer", "", 0),
            ("Current", "integer", "", 0),
            ("Ready", "integer", "", 0),
            ("Up-to-date", "integer", "", 0),
            ("Available", "integer", "", 0),
            ("Node Selector", "string", "", 0),
            _AGE,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ),
        _daemonset_cells,
    ),
    "deployments": (
        (
            _NAME,
            ("Ready", "string", "", 0),
            ("Up-to-date", "integer", "", 0),
            ("Available", "integer", "", 0),
            _AGE,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ),
        _deployment_cells,
    ),
    "replicasets": (
        (
            _NAME,
            ("Desired", "integer", "", 0),
            ("Current", "integer", "", 0),
            ("Ready", "integer", "", 0),
            _AGE,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ),
        _replicaset_cells,
    ),
    "statefulsets": (
        (_NAME, ("Ready", "string", "", 0), _AGE, ("Containers", "string", "", 1), ("Images", "string", "", 1)),
        _statefulset_cells,
    ),
    "jobs": (
        (
            _NAME,
            ("Status", "string", "", 0),
            ("Completions", "string", "", 0),
            ("Duration", "string", "", 0),
            _AGE,
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ),
        _job_cells,
    ),
}


def table_columns(plural: str) -> list[JsonObj]:
    """The ``columnDefinitions`` for a resource (NAME and AGE for one without its own printer)."""
    columns = _PRINTERS[plural][0] if plural in _PRINTERS else (_NAME, _AGE)
    return [
        {"name": name, "type": kind, "format": fmt, "description": "", "priority": priority}
        for name, kind, fmt, priority in columns
    ]


def _row_object(obj: JsonObj, include: str) -> JsonObj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def render_table(
    plural: str,
    objects: Sequence[JsonObj],
    now: float,
    *,
    metadata: Mapping[str, Any] | None = None,
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> JsonObj:
    """A Table of ``objects`` (full objects, with kind and apiVersion) as kube-apiserver prints them at
    wall time ``now``. ``include_object`` is the request's ``includeObject`` (None, Metadata, Object).
    """
    cells = _PRINTERS[plural][1] if plural in _PRINTERS else (lambda o, n: [o["metadata"]["name"], _age(o, n)])
    rows = []
    for obj in objects:
        row: JsonObj = {"cells": cells(obj, now)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    table: JsonObj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(metadata or {})}
    if with_columns:
        table["columnDefinitions"] = table_columns(plural)
    table["rows"] = rows
    return table
