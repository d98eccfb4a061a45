"""PersistentVolumes, claims and StorageClasses in the fake API server, with k3s's local-path semantics.

- k3s ships the StorageClass ``local-path`` (provisioner ``rancher.io/local-path``, default class,
  ``volumeBindingMode: WaitForFirstConsumer``; k3s manifests/local-storage.yaml). A claim of it stays Pending
  until a pod using it is scheduled; then the provisioner (rancher/local-path-provisioner provisioner.go)
  makes a PersistentVolume on that pod's node with a *required node affinity* to it
  (``kubernetes.io/hostname In [node]``), and the claim is bound to it.
- The scheduler's VolumeBinding filter (pkg/scheduler/framework/plugins/volumebinding) never places a pod on
  a node its bound volumes' node affinity excludes: "node(s) had volume node affinity conflict". A claim that
  does not exist, or is unbound with ``Immediate`` binding, keeps the pod Pending too.
- A volume without node affinity (NFS, a network block device) can be used on any node, so its pod moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "LOCAL_PATH_CLASS",
    "LOCAL_PATH_PROVISIONER",
    "make_local_path_pv",
    "make_local_path_storage_class",
    "make_network_pv",
    "make_pvc",
    "matches_node_selector",
    "pod_claims",
    "provisioned_pv",
    "volume_unfit_reason",
]

JsonObj = dict[str, Any]
Lookup = Callable[[str, str, str], JsonObj | None]
"""(plural, namespace, name) -> the stored object or None."""

LOCAL_PATH_CLASS = "local-path"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
_LOCAL_PATH_ROOT = "/var/lib/rancher/k3s/storage"  # k3s's --default-local-storage-path
VOLUME_NODE_AFFINITY_CONFLICT = "node(s) had volume node affinity conflict"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


def make_local_path_storage_class() -> JsonObj:
    """The StorageClass k3s installs (manifests/local-storage.yaml)."""
    return {
        "kind": "StorageClass",
        "apiVersion": "storage.k8s.io/v1",
        "metadata": {
            "name": LOCAL_PATH_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def make_pvc(
    name: str,
    namespace: str = "default",
    *,
    storage_class: str = LOCAL_PATH_CLASS,
    size: str = "1Gi",
    volume: str | None = None,
) -> JsonObj:
    """A ReadWriteOnce claim; ``volume`` binds it to that PersistentVolume (as the binder would have)."""
    claim: JsonObj = {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "storageClassName": storage_class,
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }
    if volume is not None:
        claim["spec"]["volumeName"] = volume
        claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}
    return claim


def _bound_pv(name: str, claim: Mapping[str, Any], size: str) -> JsonObj:
    metadata = claim.get("metadata") or {}
    return {
        "kind": "PersistentVolume",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": size},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": metadata.get("namespace", "default"),
                "name": metadata.get("name", ""),
                "uid": metadata.get("uid", ""),
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }


def make_local_path_pv(name: str, node: str, claim: Mapping[str, Any], *, size: str = "1Gi") -> JsonObj:
    """A volume as local-path-provisioner makes it: a directory on ``node``, required affinity to it."""
    metadata = claim.get("metadata") or {}
    pv = _bound_pv(name, claim, size)
    pv["metadata"]["annotations"] = {"local.path.provisioner/selected-node": node,
                                     "pv.kubernetes.io/provisioned-by": LOCAL_PATH_PROVISIONER}  # fmt: skip
    pv["spec"]["storageClassName"] = LOCAL_PATH_CLASS
    pv["spec"]["hostPath"] = {
        "path": f"{_LOCAL_PATH_ROOT}/{name}_{metadata.get('namespace', 'default')}_{metadata.get('name', '')}",
        "type": "DirectoryOrCreate",
    }
    pv["spec"]["nodeAffinity"] = {
        "required": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
            ]
        }
    }
    return pv


def make_network_pv(name: str, claim: Mapping[str, Any], *, server: str = "10.0.0.2", size: str = "1Gi") -> JsonObj:
    """An NFS volume: no node affinity, so its pod may run on any node."""
    pv = _bound_pv(name, claim, size)
    pv["spec"]["storageClassName"] = str((claim.get("spec") or {}).get("storageClassName") or "nfs")
    pv["spec"]["nfs"] = {"server": server, "path": f"/exports/{name}"}
    return pv


def matches_node_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A NodeSelector (component-helpers scheduling/corev1/nodeaffinity): terms ORed, expressions ANDed."""
    terms = (selector or {}).get("nodeSelectorTerms") or []
    return any(_term_matches(term, labels) for term in terms)


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    if not expressions and not term.get("matchFields"):
        return False  # an empty term matches nothing
    for expression in expressions:
        key, operator = str(expression.get("key")), expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        value = labels.get(key)
        if operator == "In" and value not in values:
            return False
        if operator == "NotIn" and value in values:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
        if operator in ("Gt", "Lt"):
            if value is None or not value.lstrip("-").isdigit() or len(values) != 1:
                return False
            if (int(value) > int(values[0])) != (operator == "Gt") or int(value) == int(values[0]):
                return False
    return True


def pod_claims(pod: Mapping[str, Any]) -> list[str]:
    """The claim names a pod's volumes use."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.append(str(claim["claimName"]))
    return names


def volume_unfit_reason(pod: Mapping[str, Any], node: Mapping[str, Any], lookup: Lookup) -> str | None:
    """Why the VolumeBinding filter refuses ``node`` for ``pod``, or None when its volumes allow it."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    labels = dict((node.get("metadata") or {}).get("labels") or {})
    for claim_name in pod_claims(pod):
        claim = lookup("persistentvolumeclaims", namespace, claim_name)
        if claim is None:
            return f'persistentvolumeclaim "{claim_name}" not found'
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            volume = lookup("persistentvolumes", "", str(volume_name))
            if volume is None:
                return f'persistentvolume "{volume_name}" not found'
            required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
            if required and not matches_node_selector(required, labels):
                return VOLUME_NODE_AFFINITY_CONFLICT
            continue
        storage_class = lookup("storageclasses", "", str((claim.get("spec") or {}).get("storageClassName") or ""))
        if storage_class is None or storage_class.get("volumeBindingMode") != "WaitForFirstConsumer":
            return UNBOUND_IMMEDIATE
    return None


def provisioned_pv(claim: Mapping[str, Any], node: str, storage_class: Mapping[str, Any]) -> JsonObj | None:
    """The volume a WaitForFirstConsumer provisioner makes once the claim's first pod is bound to ``node``
    (local-path: on that node; None for a provisioner the fake does not know)."""
    if storage_class.get("provisioner") != LOCAL_PATH_PROVISIONER:
        return None
    uid = str((claim.get("metadata") or {}).get("uid") or "")
    size = str(((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage") or "1Gi")
    return make_local_path_pv(f"pvc-{uid}", node, claim, size=size)


def unbound_claims(pod: Mapping[str, Any], lookup: Lookup) -> Sequence[JsonObj]:
    """The pod's claims not bound yet (what the binder provisions or binds when the pod is bound)."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    found = []
    for claim_name in pod_claims(pod):
        claim = lookup("persistentvolumeclaims", namespace, claim_name)
        if claim is not None and not (claim.get("spec") or {}).get("volumeName"):
            found.append(claim)
    return found
