"""``/openapi/v3`` for the fake API server: the schemas of the kinds piclusterd touches, as kube-apiserver
serves them (k8s.io/kube-openapi pkg/handler3).

The root, ``GET /openapi/v3``, is the discovery document ``{"paths": {"api/v1": {"serverRelativeURL":
"/openapi/v3/api/v1?hash=..."}, "apis/coordination.k8s.io/v1": {...}}}``: one entry per group-version, each
URL carrying the SHA-512 of its document in upper-case hex (handler3's ETag; kubectl caches by it). Each
group-version's document is OpenAPI 3.0 with the kinds under ``components.schemas``, named as upstream
(``io.k8s.api.coordination.v1.Lease``), each kind tagged with ``x-kubernetes-group-version-kind`` (how
``kubectl explain`` finds it) and references written as upstream writes them (``allOf: [{$ref}]``).

What it is not: the full API. Each kind lists its own fields and the fields of the structs piclusterd reads
(``pods.spec``, ``leases.spec``, ``nodes.spec``...), with upstream's types and shortened descriptions; deeper
structs (a container, an affinity) are plain objects, and ``paths`` lists only each kind's read (``get``,
where kubectl explain finds the kind of a resource), without the ``fieldValidation`` parameter: kubectl then
validates on its own, as it already did with the empty ``/openapi/v2``. kubectl 1.27 and later read this
for ``explain``; older ones (Debian's 1.20) read only ``/openapi/v2``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["discovery", "document", "group_versions"]

JsonObj = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_CORE = "io.k8s.api.core.v1."

#: A field: (name, type, description). Types: string, integer, boolean, number, time (RFC 3339),
#: microtime, map (string to string), quantity-map, object (not described further), array:<type>, or
#: @Schema (a reference to another schema of the same document).
Field = tuple[str, str, str]

_OBJECT_META: Sequence[Field] = (
    ("name", "string", "Name must be unique within a namespace."),
    ("generateName", "string", "An optional prefix, used by the server to generate a unique name."),
    ("namespace", "string", "The namespace the object lives in; empty for cluster-scoped objects."),
    ("uid", "string", "The unique in time and space value for this object, set by the server."),
    ("resourceVersion", "string", "An opaque value for the version of this object (optimistic concurrency)."),
    ("generation", "integer", "A sequence number representing a specific generation of the desired state."),
    ("creationTimestamp", "time", "When this object was created, set by the server."),
    ("deletionTimestamp", "time", "RFC 3339 date and time at which this resource will be deleted."),
    ("deletionGracePeriodSeconds", "integer", "Seconds allowed for this object to terminate gracefully."),
    ("labels", "map", "Map of string keys and values that can be used to organize and select objects."),
    ("annotations", "map", "Unstructured key value map stored with a resource, set by external tools."),
    ("ownerReferences", "array:object", "Objects depended on by this object (a controller among them)."),
    ("finalizers", "array:string", "Must be empty before the object is deleted from the registry."),
)

_TOP = (
    ("apiVersion", "string", "APIVersion defines the versioned schema of this representation of an object."),
    ("kind", "string", "Kind is a string value representing the REST resource this object represents."),
    ("metadata", "@" + _META + "ObjectMeta", "Standard object's metadata."),
)

# name -> (description, fields, group-version-kind or None)
_Schema = tuple[str, Sequence[Field], tuple[str, str, str] | None]

_SCHEMAS: dict[str, dict[str, _Schema]] = {
    "api/v1": {
        _CORE + "Pod": (
            "Pod is a collection of containers that can run on a host.",
            (
                *_TOP,
                ("spec", "@" + _CORE + "PodSpec", "Specification of the desired behavior of the pod."),
                ("status", "@" + _CORE + "PodStatus", "Most recently observed status of the pod."),
            ),
            ("", "v1", "Pod"),
        ),
        _CORE + "PodSpec": (
            "PodSpec is a description of a pod.",
            (
                ("affinity", "object", "If specified, the pod's scheduling constraints."),
                ("containers", "array:object", "List of containers belonging to the pod."),
                ("initContainers", "array:object", "List of initialization containers belonging to the pod."),
                ("nodeName", "string", "The node this pod is bound to (set by the scheduler)."),
                ("nodeSelector", "map", "A selector which must be true for the pod to fit on a node."),
                ("priority", "integer", "The priority value, from the pod's PriorityClass."),
                ("priorityClassName", "string", "If specified, indicates the pod's priority."),
                ("restartPolicy", "string", "Restart policy for all containers within the pod."),
                ("schedulerName", "string", "The pod will be dispatched by this scheduler."),
                ("serviceAccountName", "string", "The name of the ServiceAccount to use to run this pod."),
                (
                    "terminationGracePeriodSeconds",
                    "integer",
                    "Optional duration in seconds the pod needs to terminate gracefully. Defaults to 30 seconds.",
                ),
                ("tolerations", "array:object", "If specified, the pod's tolerations."),
                (
                    "topologySpreadConstraints",
                    "array:object",
                    "How a group of pods ought to spread across topology domains.",
                ),
                ("volumes", "array:object", "List of volumes that can be mounted by containers of the pod."),
            ),
            None,
        ),
        _CORE + "PodStatus": (
            "PodStatus represents information about the status of a pod.",
            (
                ("conditions", "array:object", "Current service state of pod."),
                ("phase", "string", "Pending, Running, Succeeded, Failed or Unknown."),
                ("podIP", "string", "IP address allocated to the pod."),
                ("startTime", "time", "When the object was acknowledged by the kubelet."),
            ),
            None,
        ),
        _CORE + "Node": (
            "Node is a worker node in Kubernetes.",
            (
                *_TOP,
                ("spec", "@" + _CORE + "NodeSpec", "Spec defines the behavior of a node."),
                ("status", "@" + _CORE + "NodeStatus", "Most recently observed status of the node."),
            ),
            ("", "v1", "Node"),
        ),
        _CORE + "NodeSpec": (
            "NodeSpec describes the attributes that a node is created with.",
            (
                ("podCIDR", "string", "The pod IP range assigned to the node."),
                ("providerID", "string", "ID of the node assigned by the cloud provider."),
                ("taints", "array:object", "If specified, the node's taints."),
                ("unschedulable", "boolean", "Controls node schedulability of new pods (kubectl cordon)."),
            ),
            None,
        ),
        _CORE + "NodeStatus": (
            "NodeStatus is information about the current status of a node.",
            (
                ("addresses", "array:object", "List of addresses reachable to the node."),
                ("allocatable", "quantity-map", "The resources of a node that are available for scheduling."),
                ("capacity", "quantity-map", "The total resources of the node."),
                ("conditions", "array:object", "Conditions is an array of current observed node conditions."),
                ("nodeInfo", "object", "Set of ids/uuids to uniquely identify the node."),
            ),
            None,
        ),
        _CORE + "ConfigMap": (
            "ConfigMap holds configuration data for pods to consume.",
            (
                *_TOP,
                ("binaryData", "map", "Binary data, base64-encoded."),
                ("data", "map", "Configuration data."),
                ("immutable", "boolean", "If set to true, the data cannot be updated."),
            ),
            ("", "v1", "ConfigMap"),
        ),
        _CORE + "Event": (
            "Event is a report of an event somewhere in the cluster.",
            (
                *_TOP,
                ("action", "string", "What action was taken/failed regarding the involved object."),
                ("count", "integer", "The number of times this event has occurred."),
                ("eventTime", "microtime", "Time when this Event was first observed."),
                ("firstTimestamp", "time", "The time at which the event was first recorded."),
                ("involvedObject", "object", "The object that this event is about."),
                ("lastTimestamp", "time", "The time at which the most recent occurrence was recorded."),
                ("message", "string", "A human-readable description of the status of this operation."),
                ("reason", "string", "Short, machine understandable string for the transition."),
                ("reportingComponent", "string", "Name of the controller that emitted this Event."),
                ("reportingInstance", "string", "ID of the controller instance."),
                ("source", "object", "The component reporting this event."),
                ("type", "string", "Type of this event (Normal, Warning)."),
            ),
            ("", "v1", "Event"),
        ),
        _CORE + "PersistentVolume": (
            "PersistentVolume is a storage resource provisioned by an administrator.",
            (
                *_TOP,
                ("spec", "@" + _CORE + "PersistentVolumeSpec", "The actual volume backing the claim."),
                ("status", "object", "The current information/status for the persistent volume."),
            ),
            ("", "v1", "PersistentVolume"),
        ),
        _CORE + "PersistentVolumeSpec": (
            "PersistentVolumeSpec is the specification of a persistent volume.",
            (
                ("accessModes", "array:string", "All ways the volume can be mounted."),
                ("capacity", "quantity-map", "The persistent volume's resources and capacity."),
                ("claimRef", "object", "Part of a bi-directional binding between PersistentVolume and claim."),
                ("hostPath", "object", "A directory on the host (single-node testing only)."),
                ("local", "object", "Directly-attached storage with node affinity."),
                ("nfs", "object", "An NFS mount on the host that shares a pod's lifetime."),
                ("csi", "object", "Storage handled by an external CSI driver."),
                ("nodeAffinity", "object", "Constraints that limit what nodes this volume can be accessed from."),
                ("persistentVolumeReclaimPolicy", "string", "What happens when the volume is released."),
                ("storageClassName", "string", "The name of the StorageClass this volume belongs to."),
            ),
            None,
        ),
        _CORE + "PersistentVolumeClaim": (
            "PersistentVolumeClaim is a user's request for and claim to a persistent volume.",
            (
                *_TOP,
                ("spec", "@" + _CORE + "PersistentVolumeClaimSpec", "The desired characteristics of a volume."),
                ("status", "object", "The current information/status of a persistent volume claim."),
            ),
            ("", "v1", "PersistentVolumeClaim"),
        ),
        _CORE + "PersistentVolumeClaimSpec": (
            "PersistentVolumeClaimSpec describes the common attributes of storage devices.",
            (
                ("accessModes", "array:string", "The desired access modes the volume should have."),
                ("resources", "object", "The minimum resources the volume should have."),
                ("storageClassName", "string", "The name of the StorageClass required by the claim."),
                ("volumeMode", "string", "What type of volume is required by the claim."),
                ("volumeName", "string", "The binding reference to the PersistentVolume backing this claim."),
            ),
            None,
        ),
    },
    "apis/coordination.k8s.io/v1": {
        "io.k8s.api.coordination.v1.Lease": (
            "Lease defines a lease concept.",
            (
                *_TOP,
                ("spec", "@io.k8s.api.coordination.v1.LeaseSpec", "spec contains the specification of the Lease."),
            ),
            ("coordination.k8s.io", "v1", "Lease"),
        ),
        "io.k8s.api.coordination.v1.LeaseSpec": (
            "LeaseSpec is a specification of a Lease.",
            (
                ("acquireTime", "microtime", "acquireTime is a time when the current lease was acquired."),
                ("holderIdentity", "string", "holderIdentity contains the identity of the holder of a current lease."),
                (
                    "leaseDurationSeconds",
                    "integer",
                    "leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire "
                    "it. This is measured against the time of last observed renewTime.",
                ),
                (
                    "leaseTransitions",
                    "integer",
                    "leaseTransitions is the number of transitions of a lease between holders.",
                ),
                ("preferredHolder", "string", "PreferredHolder signals to a lease holder that it should give it up."),
                (
                    "renewTime",
                    "microtime",
                    "renewTime is a time when the current holder of a lease has last updated the lease.",
                ),
                (
                    "strategy",
                    "string",
                    "Strategy indicates the strategy for picking the leader for coordinated election.",
                ),
            ),
            None,
        ),
    },
    "apis/policy/v1": {
        "io.k8s.api.policy.v1.PodDisruptionBudget": (
            "PodDisruptionBudget is an object to define the max disruption that can be caused to a collection of pods.",
            (
                *_TOP,
                ("spec", "@io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "Specification of the desired behavior."),
                ("status", "@io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "Most recently observed status."),
            ),
            ("policy", "v1", "PodDisruptionBudget"),
        ),
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec": (
            "PodDisruptionBudgetSpec is a description of a PodDisruptionBudget.",
            (
                (
                    "maxUnavailable",
                    "object",
                    "An eviction is allowed if at most this many pods are unavailable after it.",
                ),
                ("minAvailable", "object", "An eviction is allowed if at least this many pods are available after it."),
                ("selector", "object", "Label query over pods whose evictions are managed by the budget."),
                (
                    "unhealthyPodEvictionPolicy",
                    "string",
                    "When unhealthy running pods may be evicted (IfHealthyBudget).",
                ),
            ),
            None,
        ),
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus": (
            "PodDisruptionBudgetStatus represents information about the status of a PodDisruptionBudget.",
            (
                ("conditions", "array:object", "Conditions contain the budget's state (DisruptionAllowed)."),
                ("currentHealthy", "integer", "current number of healthy pods"),
                ("desiredHealthy", "integer", "minimum desired number of healthy pods"),
                ("disruptedPods", "map", "Pods whose eviction was processed but not yet observed by the controller."),
                ("disruptionsAllowed", "integer", "Number of pod disruptions that are currently allowed."),
                ("expectedPods", "integer", "total number of pods counted by this disruption budget"),
                ("observedGeneration", "integer", "Most recent generation observed when updating this status."),
            ),
            None,
        ),
        "io.k8s.api.policy.v1.Eviction": (
            "Eviction evicts a pod from its node subject to certain policies and safety constraints.",
            (*_TOP, ("deleteOptions", "object", "DeleteOptions may be provided")),
            ("policy", "v1", "Eviction"),
        ),
    },
    "apis/apps/v1": {
        "io.k8s.api.apps.v1.DaemonSet": (
            "DaemonSet represents the configuration of a daemon set.",
            (
                *_TOP,
                ("spec", "object", "The desired behavior of this daemon set."),
                ("status", "object", "The current status of this daemon set."),
            ),
            ("apps", "v1", "DaemonSet"),
        ),
    },
    "apis/storage.k8s.io/v1": {
        "io.k8s.api.storage.v1.StorageClass": (
            "StorageClass describes the parameters for a class of storage for which PersistentVolumes can be "
            "dynamically provisioned.",
            (
                *_TOP,
                ("allowVolumeExpansion", "boolean", "Whether the storage class allows volume expand."),
                ("parameters", "map", "Parameters for the provisioner that should create volumes of this class."),
                ("provisioner", "string", "The type of the provisioner."),
                ("reclaimPolicy", "string", "The reclaim policy of dynamically provisioned volumes."),
                ("volumeBindingMode", "string", "How claims are provisioned and bound (WaitForFirstConsumer)."),
            ),
            ("storage.k8s.io", "v1", "StorageClass"),
        ),
    },
    "apis/authorization.k8s.io/v1": {
        "io.k8s.api.authorization.v1.SelfSubjectAccessReview": (
            "SelfSubjectAccessReview checks whether or the current user can perform an action.",
            (
                *_TOP,
                ("spec", "object", "Spec holds information about the request being evaluated."),
                ("status", "object", "Status is filled in by the server: whether the request is allowed."),
            ),
            ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
        ),
    },
}

#: The operations each document lists: (schema, resource, namespaced). A ``get`` of one object carries the
#: ``x-kubernetes-group-version-kind`` kubectl explain looks for (it finds a kind by its resource's path);
#: a review is only ever created (``post`` on the collection).
_OPERATIONS: dict[str, Sequence[tuple[str, str, bool]]] = {
    "api/v1": (
        (_CORE + "Pod", "pods", True),
        (_CORE + "Node", "nodes", False),
        (_CORE + "ConfigMap", "configmaps", True),
        (_CORE + "Event", "events", True),
        (_CORE + "PersistentVolume", "persistentvolumes", False),
        (_CORE + "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ),
    "apis/coordination.k8s.io/v1": (("io.k8s.api.coordination.v1.Lease", "leases", True),),
    "apis/policy/v1": (("io.k8s.api.policy.v1.PodDisruptionBudget", "poddisruptionbudgets", True),),
    "apis/apps/v1": (("io.k8s.api.apps.v1.DaemonSet", "daemonsets", True),),
    "apis/storage.k8s.io/v1": (("io.k8s.api.storage.v1.StorageClass", "storageclasses", False),),
    "apis/authorization.k8s.io/v1": (
        ("io.k8s.api.authorization.v1.SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
    ),
}

_SHARED: dict[str, JsonObj] = {
    _META + "ObjectMeta": {},  # filled below, from _OBJECT_META
    _META + "Time": {
        "description": "Time is a wrapper around time.Time (RFC 3339).",
        "type": "string",
        "format": "date-time",
    },
    _META + "MicroTime": {
        "description": "MicroTime is version of Time with microsecond level precision.",
        "type": "string",
        "format": "date-time",
    },
}


def _property(kind: str, description: str) -> JsonObj:
    if kind.startswith("@"):
        # upstream's v3 form of a reference with a description: allOf with the one $ref
        return {"allOf": [{"$ref": f"#/components/schemas/{kind[1:]}"}], "default": {}, "description": description}
    if kind.startswith("array:"):
        return {"type": "array", "items": _bare(kind[len("array:") :]), "description": description}
    return {**_bare(kind), "description": description}


def _bare(kind: str) -> JsonObj:
    if kind == "time":
        return {"allOf": [{"$ref": f"#/components/schemas/{_META}Time"}]}
    if kind == "microtime":
        return {"allOf": [{"$ref": f"#/components/schemas/{_META}MicroTime"}]}
    if kind == "map":
        return {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    if kind == "quantity-map":
        return {"type": "object", "additionalProperties": {"type": "string"}}
    return {"type": kind}


def _schema(description: str, fields: Sequence[Field], gvk: tuple[str, str, str] | None) -> JsonObj:
    schema: JsonObj = {
        "description": description,
        "type": "object",
        "properties": {name: _property(kind, text) for name, kind, text in fields},
    }
    if gvk is not None:
        group, version, kind = gvk
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return schema


def group_versions() -> tuple[str, ...]:
    """The group-versions described, as handler3 names them (``api/v1``, ``apis/policy/v1``...)."""
    return tuple(_SCHEMAS)


def _body(group_version: str) -> bytes:
    schemas: JsonObj = {name: _schema(*entry) for name, entry in _SCHEMAS[group_version].items()}
    schemas[_META + "ObjectMeta"] = _schema(
        "ObjectMeta is metadata that all persisted resources must have.", _OBJECT_META, None
    )
    for name, shared in _SHARED.items():
        schemas.setdefault(name, shared)
    paths: JsonObj = {}
    for name, resource, namespaced in _OPERATIONS[group_version]:
        group, version, kind = _SCHEMAS[group_version][name][2] or ("", "", "")
        scope = "/namespaces/{namespace}" if namespaced else ""
        review = resource.endswith("reviews")
        path = f"/{group_version}{scope}/{resource}" + ("" if review else "/{name}")
        paths[path] = {
            "post" if review else "get": {
                "description": f"{'create' if review else 'read the specified'} {kind}",
                "operationId": f"{'create' if review else 'read'}{kind}",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                    }
                },
                "x-kubernetes-action": "post" if review else "get",
                "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
            }
        }
    spec = {
        "openapi": "3.0.0",
        "info": {
            "title": "Kubernetes",
            "version": "v1.31.4+k3s1",
            "description": "The fake API server's subset: the fields of the kinds piclusterd reads and writes.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    return json.dumps(spec, separators=(",", ":"), sort_keys=False).encode()


def document(group_version: str) -> tuple[bytes, str] | None:
    """The OpenAPI v3 document of ``group_version`` and its ETag (SHA-512, upper-case hex), or None."""
    if group_version not in _SCHEMAS:
        return None
    body = _body(group_version)
    return body, hashlib.sha512(body).hexdigest().upper()


def discovery() -> Mapping[str, Any]:
    """``GET /openapi/v3``: each group-version's document URL, with its hash (handler3's OpenAPIV3Discovery)."""
    paths: JsonObj = {}
    for group_version in _SCHEMAS:
        found = document(group_version)
        assert found is not None
        paths[group_version] = {"serverRelativeURL": f"/openapi/v3/{group_version}?hash={found[1]}"}
    return {"paths": paths}
