"""The workload objects of the fake API server and the rules of their controllers, as pure functions on JSON.

The fake serves apps/v1 Deployments, ReplicaSets and StatefulSets and batch/v1 Jobs. A cluster loaded from a
``kubectl get`` List has pods whose controller references name these owners; :func:`owner_from_pods` makes
each owner as its controller would have: replicas (a Job's parallelism) = its live pods, the pod template
taken from one of them. A ReplicaSet named ``<d>-<H>`` whose pods carry ``pod-template-hash=H`` belongs to
the Deployment ``<d>`` (pkg/controller/deployment/sync.go getNewReplicaSet names it
``deployment.Name + "-" + podTemplateSpecHash``).

The rules copied, each from its upstream source:

- the scale subresource (pkg/registry/apps/{deployment,replicaset,statefulset}/storage/storage.go
  ``scaleFrom*``): an autoscaling/v1 Scale with the owner's name, namespace, uid, resourceVersion and
  creationTimestamp, ``spec.replicas``, and ``status.replicas`` + ``status.selector`` (the selector as a
  string, metav1.LabelSelectorAsSelector(...).String()): :func:`scale_of`;
- which surplus pods a ReplicaSet deletes (pkg/controller/replicaset/replica_set.go getPodsToDelete, ranked by
  pkg/controller/controller_utils.go ActivePodsWithRanks.Less): :func:`deletion_order`;
- a StatefulSet's ordinals (pkg/controller/statefulset/stateful_set_utils.go getParentNameAndOrdinal) and the
  identity and claims of a new pod (newVersionedStatefulSetPod, updateIdentity, updateStorage);
- a Job's Suspended condition (pkg/controller/job/job_controller.go, KEP-2232): :func:`suspended_condition`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEPLOYMENT_REVISION",
    "POD_TEMPLATE_HASH",
    "deletion_order",
    "deployment_from_replica_set",
    "deployment_name",
    "is_active",
    "owner_from_pods",
    "scale_of",
    "selector_string",
    "stateful_ordinal",
    "suspended_condition",
]

JsonObj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
STATEFULSET_POD_NAME = "statefulset.kubernetes.io/pod-name"
STATEFULSET_POD_INDEX = "apps.kubernetes.io/pod-index"
JOB_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# Labels one pod has and its siblings do not: never part of a template or a selector.
_PER_POD_LABELS = frozenset({STATEFULSET_POD_NAME, STATEFULSET_POD_INDEX})
# Labels a StatefulSet or DaemonSet controller adds per revision: in the pods, not in the selector.
_REVISION_LABELS = frozenset({"controller-revision-hash", "pod-template-generation"})
_API_VERSIONS = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "Deployment": "apps/v1", "Job": "batch/v1"}


def is_active(pod: Mapping[str, Any]) -> bool:
    """controller.FilterActivePods / IsPodActive: not Succeeded, not Failed, not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def stateful_ordinal(set_name: str, pod_name: str) -> int | None:
    """getParentNameAndOrdinal: the ordinal of ``<set>-<n>``, or None for a pod not named so."""
    match = re.fullmatch(r"(.*)-([0-9]+)", pod_name)
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def deployment_name(replica_set: str, pod_labels: Mapping[str, str]) -> str | None:
    """The Deployment that made ``replica_set``: getNewReplicaSet names a ReplicaSet ``<deployment>-<hash>``
    and labels its pods ``pod-template-hash=<hash>``. None for a ReplicaSet not named so."""
    template_hash = pod_labels.get(POD_TEMPLATE_HASH)
    if not template_hash or not replica_set.endswith(f"-{template_hash}"):
        return None
    prefix = replica_set[: -len(template_hash) - 1]
    return prefix or None


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """metav1.LabelSelectorAsSelector(selector).String(): requirements sorted by key, joined by commas."""
    if not selector:
        return ""
    terms: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        terms.append((str(key), f"{key}={value}"))
    for expression in selector.get("matchExpressions") or []:
        key, operator = str(expression.get("key", "")), expression.get("operator")
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        shown = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(str(operator), key)
        terms.append((key, shown))
    return ",".join(text for _, text in sorted(terms))


def _controller_reference(kind: str, name: str, uid: str) -> JsonObj:
    return {
        "apiVersion": _API_VERSIONS[kind],
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _template(pod: Mapping[str, Any], drop_labels: Iterable[str]) -> JsonObj:
    """A PodTemplateSpec read back from a pod the controller made from it (GetPodFromTemplate, reversed)."""
    metadata = pod.get("metadata") or {}
    dropped = frozenset(drop_labels) | _PER_POD_LABELS
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in dropped}
    template_metadata: JsonObj = {"labels": labels}
    if metadata.get("annotations"):
        template_metadata["annotations"] = copy.deepcopy(metadata["annotations"])
    spec = copy.deepcopy(pod.get("spec") or {})
    for field in ("nodeName", "hostname", "subdomain"):
        spec.pop(field, None)
    return {"metadata": template_metadata, "spec": spec}


def owner_from_pods(
    kind: str,
    namespace: str,
    name: str,
    uid: str,
    pods: Sequence[Mapping[str, Any]],
    created: str,
    claims: Mapping[str, Mapping[str, Any]] | None = None,
) -> JsonObj:
    """A ReplicaSet, StatefulSet or Job as its controller would have made ``pods`` (at least one).

    ``claims`` are the PersistentVolumeClaims of the namespace by name: a StatefulSet's pod that mounts
    ``<v>-<set>-<n>`` as volume ``<v>`` got it from the volumeClaimTemplate ``<v>`` (updateStorage), whose spec
    is read back from that claim.
    """
    active = [pod for pod in pods if is_active(pod)]
    sample = active[0] if active else pods[0]
    metadata: JsonObj = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": 1,
        "creationTimestamp": created,
    }
    if kind == "ReplicaSet":
        template = _template(sample, ())
        metadata["labels"] = dict(template["metadata"]["labels"])
        metadata["annotations"] = {DEPLOYMENT_REVISION: "1"}
        spec: JsonObj = {
            "replicas": len(active),
            "selector": {"matchLabels": dict(template["metadata"]["labels"])},
            "template": template,
        }
    elif kind == "StatefulSet":
        template = _template(sample, _REVISION_LABELS)
        members = [pod for pod in active if stateful_ordinal(name, str(pod["metadata"]["name"])) is not None]
        claim_templates = _claim_templates(name, sample, template, claims or {})
        spec = {
            "replicas": len(members),
            "selector": {"matchLabels": dict(template["metadata"]["labels"])},
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "template": template,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        }
        if claim_templates:
            spec["volumeClaimTemplates"] = claim_templates
    elif kind == "Job":
        template = _template(sample, ())
        labels = template["metadata"]["labels"]
        for label in JOB_LABELS:
            labels[label] = uid
        for label in JOB_NAME_LABELS:
            labels[label] = name
        template["spec"]["restartPolicy"] = template["spec"].get("restartPolicy") or "Never"
        if template["spec"]["restartPolicy"] == "Always":  # a Job's pods may not restart Always (validation)
            template["spec"]["restartPolicy"] = "Never"
        succeeded = sum(1 for pod in pods if (pod.get("status") or {}).get("phase") == "Succeeded")
        metadata["labels"] = {label: labels[label] for label in (*JOB_LABELS, *JOB_NAME_LABELS)}
        spec = {
            "parallelism": len(active),
            "completions": len(active) + succeeded,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": False,
            "selector": {"matchLabels": {JOB_LABELS[0]: uid}},
            "manualSelector": False,
            "template": template,
        }
    else:
        raise ValueError(f"the fake makes no {kind} from pods")
    return {"kind": kind, "apiVersion": _API_VERSIONS[kind], "metadata": metadata, "spec": spec, "status": {}}


def _claim_templates(
    set_name: str, pod: Mapping[str, Any], template: JsonObj, claims: Mapping[str, Mapping[str, Any]]
) -> list[JsonObj]:
    ordinal = stateful_ordinal(set_name, str((pod.get("metadata") or {}).get("name", "")))
    if ordinal is None:
        return []
    found: list[JsonObj] = []
    kept: list[JsonObj] = []
    for volume in template["spec"].get("volumes") or []:
        claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim_name != f"{volume.get('name')}-{set_name}-{ordinal}":
            kept.append(volume)
            continue
        claim = claims.get(str(claim_name)) or {}
        claim_spec = {
            k: copy.deepcopy(v)
            for k, v in (claim.get("spec") or {}).items()
            if k in ("accessModes", "resources", "storageClassName", "volumeMode")
        }
        claim_spec.setdefault("accessModes", ["ReadWriteOnce"])
        found.append({"metadata": {"name": volume["name"]}, "spec": claim_spec})
    if found:
        template["spec"]["volumes"] = kept
        if not kept:
            template["spec"].pop("volumes")
    return found


def deployment_from_replica_set(name: str, uid: str, replica_set: Mapping[str, Any], created: str) -> JsonObj:
    """The Deployment whose only ReplicaSet is ``replica_set``: its template and selector without the
    ``pod-template-hash`` label the Deployment controller adds to its ReplicaSets."""
    rs_spec = replica_set["spec"]
    template = copy.deepcopy(rs_spec["template"])
    template["metadata"]["labels"].pop(POD_TEMPLATE_HASH, None)
    labels = dict(template["metadata"]["labels"])
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": replica_set["metadata"]["namespace"],
            "uid": uid,
            "generation": 1,
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {DEPLOYMENT_REVISION: "1"},
        },
        "spec": {
            "replicas": int(rs_spec.get("replicas", 0)),
            "selector": {"matchLabels": labels},
            "template": template,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


def owned_by(owner: Mapping[str, Any], deployment: Mapping[str, Any]) -> JsonObj:
    """``owner`` with a controller reference to ``deployment``."""
    updated = copy.deepcopy(dict(owner))
    metadata = deployment["metadata"]
    updated["metadata"]["ownerReferences"] = [_controller_reference("Deployment", metadata["name"], metadata["uid"])]
    return updated


def pod_from_template(owner: Mapping[str, Any], name: str, generate_name: str | None) -> JsonObj:
    """controller.GetPodFromTemplate: the template's labels, annotations and spec, and a controller
    reference to ``owner``."""
    template = owner["spec"]["template"]
    template_metadata = template.get("metadata") or {}
    owner_metadata = owner["metadata"]
    metadata: JsonObj = {
        "name": name,
        "namespace": owner_metadata["namespace"],
        "labels": dict(template_metadata.get("labels") or {}),
        "ownerReferences": [_controller_reference(owner["kind"], owner_metadata["name"], owner_metadata["uid"])],
    }
    if generate_name:
        metadata["generateName"] = generate_name
    if template_metadata.get("annotations"):
        metadata["annotations"] = copy.deepcopy(template_metadata["annotations"])
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}


def stateful_pod(owner: Mapping[str, Any], ordinal: int) -> JsonObj:
    """newVersionedStatefulSetPod: ``<set>-<ordinal>`` with its identity (hostname, subdomain, the pod-name
    and pod-index labels) and a volume per claim template, claim ``<template>-<set>-<ordinal>``."""
    set_name = owner["metadata"]["name"]
    pod = pod_from_template(owner, f"{set_name}-{ordinal}", None)
    pod["metadata"]["labels"][STATEFULSET_POD_NAME] = pod["metadata"]["name"]
    pod["metadata"]["labels"][STATEFULSET_POD_INDEX] = str(ordinal)
    spec = pod["spec"]
    spec["hostname"] = pod["metadata"]["name"]
    if owner["spec"].get("serviceName"):
        spec["subdomain"] = owner["spec"]["serviceName"]
    volumes = [v for v in spec.get("volumes") or [] if not _is_claim_volume(v, owner)]
    for claim in owner["spec"].get("volumeClaimTemplates") or []:
        claim_name = claim["metadata"]["name"]
        volumes.append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{set_name}-{ordinal}"}}
        )
    if volumes:
        spec["volumes"] = volumes
    return pod


def _is_claim_volume(volume: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    names = {claim["metadata"]["name"] for claim in owner["spec"].get("volumeClaimTemplates") or []}
    return volume.get("name") in names


def stateful_claim(owner: Mapping[str, Any], claim_template: Mapping[str, Any], ordinal: int) -> JsonObj:
    """getPersistentVolumeClaims: the claim ``<template>-<set>-<ordinal>``, labelled with the set's selector."""
    set_name = owner["metadata"]["name"]
    labels = dict((owner["spec"].get("selector") or {}).get("matchLabels") or {})
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{claim_template['metadata']['name']}-{set_name}-{ordinal}",
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
        },
        "spec": copy.deepcopy(dict(claim_template.get("spec") or {})),
        "status": {"phase": "Pending"},
    }


def scale_of(owner: Mapping[str, Any]) -> JsonObj:
    """The autoscaling/v1 Scale of a Deployment, ReplicaSet or StatefulSet (``scaleFrom*``)."""
    metadata = owner["metadata"]
    scale_metadata = {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if key in metadata
    }
    status = owner.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": {"replicas": int((owner.get("spec") or {}).get("replicas", 0))},
        "status": {
            "replicas": int(status.get("replicas", 0)),
            "selector": selector_string(owner["spec"].get("selector")),
        },
    }


def _rfc3339_key(stamp: object) -> str:
    return str(stamp or "")


def deletion_order(pods: Sequence[Mapping[str, Any]], related: Sequence[Mapping[str, Any]]) -> list[JsonObj]:
    """getPodsToDelete's ranking: the pods a ReplicaSet deletes first come first (ActivePodsWithRanks.Less).

    ``related`` are the active pods of the ReplicaSet and of its Deployment's other ReplicaSets; a pod's rank
    is how many of them share its node (getPodsRankedByRelatedPodsOnSameNode). In order, first:
    1. not yet on a node; 2. Pending before Unknown before Running; 3. not Ready before Ready; 4. the lower
    ``controller.kubernetes.io/pod-deletion-cost``; 5. the higher rank (doubled-up pods); 6. Ready for the
    shorter time; 7. more container restarts; 8. the newer pod.
    """
    on_node: dict[str, int] = {}
    for pod in related:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            on_node[node] = on_node.get(node, 0) + 1

    def phase_rank(pod: Mapping[str, Any]) -> int:
        return {"Pending": 0, "Unknown": 1, "Running": 2}.get(str((pod.get("status") or {}).get("phase")), 0)

    def ready_since(pod: Mapping[str, Any]) -> str:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "True":
                return _rfc3339_key(condition.get("lastTransitionTime"))
        return ""

    def is_ready(pod: Mapping[str, Any]) -> bool:
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )

    def cost(pod: Mapping[str, Any]) -> int:
        text = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST, "0")
        try:
            return int(text)
        except ValueError:
            return 0

    def restarts(pod: Mapping[str, Any]) -> int:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return max((int(s.get("restartCount", 0)) for s in statuses), default=0)

    def key(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        ready = is_ready(pod)
        created = _rfc3339_key((pod.get("metadata") or {}).get("creationTimestamp"))
        return (
            bool(node),
            phase_rank(pod),
            ready,
            cost(pod),
            -on_node.get(node, 0) if node else 0,
            _Reversed(ready_since(pod)) if ready else _Reversed(""),
            -restarts(pod),
            _Reversed(created),
            str((pod.get("metadata") or {}).get("name")),
        )

    return [copy.deepcopy(dict(pod)) for pod in sorted(pods, key=key)]


class _Reversed:
    """Sorts a string descending inside an ascending sort key (later timestamps first)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Reversed) -> bool:
        return self.text > other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def suspended_condition(suspended: bool) -> JsonObj:
    """job_controller.go: ``Suspended`` True with reason JobSuspended while spec.suspend is true; False with
    reason JobResumed once it is false again."""
    if suspended:
        return {"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}
    return {"type": "Suspended", "status": "False", "reason": "JobResumed", "message": "Job resumed"}
