#!/usr/bin/env python3
"""Write the reference cluster snapshots of docs/reference/scenarios.md as ``kubectl get -o json`` Lists.

    python3 examples/clusters/generate.py          # rewrites clinic-5.json, district-10.json and solar-3.json here
    python3 examples/clusters/generate.py --check  # exit 1 if the committed files are out of date

The objects look like what k3s returns to ``kubectl get nodes,pods,pdb,pv,pvc -A -o json`` (labels k3s sets,
ownerReferences, priority, conditions, allocatable, default tolerations, DaemonSet node affinity, and the
databases' claims bound to k3s's default ``local-path`` volumes, each pinned to its node), built
only from the workloads scenarios.md lists, so that every figure can be checked by hand. Where the scenario
leaves a choice open, the choice is written next to it below. Everything is deterministic: names, UIDs
and timestamps derive from the object names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CREATED = "2026-11-20T09:00:00Z"
STARTED = "2026-11-24T01:30:00Z"
K3S_VERSION = "v1.31.4+k3s1"
CRITICAL_CLASS = "clinic-critical"
CRITICAL_PRIORITY = 1_000_000  # PriorityClass clinic-critical; the planner's default threshold
NAMESPACE = "clinic"
GIB = 1024**3
MIB = 1024**2


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "picluster.io/examples/" + "/".join(parts)))


def suffix(name: str, length: int) -> str:
    """A stable random-looking suffix, the way ReplicaSets and DaemonSets name their pods."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def mem(value_b: int) -> str:
    """Bytes as Kubernetes prints requests: Mi or Gi when exact."""
    if value_b % GIB == 0:
        return f"{value_b // GIB}Gi"
    if value_b % MIB == 0:
        return f"{value_b // MIB}Mi"
    return str(value_b)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    server: bool
    model: str  # picluster.io/pi-model
    memory_ki: int  # allocatable memory
    ip: str


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment, StatefulSet, Job, CronJob
    name: str
    cpu_m: int
    memory_b: int
    critical: bool
    nodes: tuple[str, ...]  # where each replica runs now
    pvc: bool = False
    empty_dir: bool = False
    cpu_usage_m: int | None = None  # picluster.io/cpu-usage, when it differs from the request
    image: str = ""


def node_object(spec: NodeSpec, index: int) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
        "picluster.io/pi-model": spec.model,
    }
    annotations = {
        "alpha.kubernetes.io/provided-node-ip": spec.ip,
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": spec.ip,
        "k3s.io/hostname": spec.name,
        "k3s.io/internal-ip": spec.ip,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if spec.server:
        labels.update(
            {
                "node-role.kubernetes.io/control-plane": "true",
                "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/master": "true",
            }
        )
        annotations["etcd.k3s.cattle.io/node-name"] = f"{spec.name}-{suffix(spec.name, 8)}"
        annotations["k3s.io/node-args"] = '["server","--cluster-init"]'
    else:
        annotations["k3s.io/node-args"] = '["agent"]'
    capacity_ki = spec.memory_ki + 200 * 1024
    heartbeat = "2026-11-24T01:59:30Z"
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    if spec.server:
        conditions.insert(0, ("EtcdIsVoter", "True", "MemberNotLearner", "Node is a voting member of the etcd cluster"))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": CREATED,
            "finalizers": ["wrangler.cattle.io/node"],
            "labels": labels,
            "name": spec.name,
            "resourceVersion": str(1000 + index),
            "uid": uid("node", spec.name),
        },
        "spec": {
            "podCIDR": f"10.42.{index}.0/24",
            "podCIDRs": [f"10.42.{index}.0/24"],
            "providerID": f"k3s://{spec.name}",
        },
        "status": {
            "addresses": [
                {"address": spec.ip, "type": "InternalIP"},
                {"address": spec.name, "type": "Hostname"},
            ],
            "allocatable": {
                "cpu": "4",
                "ephemeral-storage": "57692452745",
                "memory": f"{spec.memory_ki}Ki",
                "pods": "110",
            },
            "capacity": {
                "cpu": "4",
                "ephemeral-storage": "59306804Ki",
                "memory": f"{capacity_ki}Ki",
                "pods": "110",
            },
            "conditions": [
                {
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": CREATED,
                    "message": message,
                    "reason": reason,
                    "status": status,
                    "type": kind,
                }
                for kind, status, reason, message in conditions
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "arm64",
                "bootID": uid("boot", spec.name),
                "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.6.51+rpt-rpi-v8" if spec.model == "pi4b" else "6.6.51+rpt-rpi-2712",
                "kubeProxyVersion": K3S_VERSION,
                "kubeletVersion": K3S_VERSION,
                "machineID": uuid.UUID(uid("machine", spec.name)).hex,
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": uid("system", spec.name),
            },
        },
    }


DEFAULT_TOLERATIONS = [
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
]

DAEMONSET_TOLERATIONS = [
    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists"},
    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node.kubernetes.io/disk-pressure", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node.kubernetes.io/memory-pressure", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node.kubernetes.io/pid-pressure", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node.kubernetes.io/network-unavailable", "operator": "Exists"},
]


def pod_object(
    *,
    namespace: str,
    name: str,
    node: NodeSpec,
    owner: tuple[str, str, str],  # apiVersion, kind, name
    container: str,
    labels: dict[str, str],
    image: str,
    cpu_m: int,
    memory_b: int,
    critical: bool,
    volumes: list[dict[str, Any]],
    index: int,
    cpu_usage_m: int | None = None,
    daemonset: bool = False,
) -> dict[str, Any]:
    mounts = [
        {
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": "kube-api-access",
            "readOnly": True,
        }
    ]
    mounts += [{"mountPath": f"/data/{v['name']}", "name": v["name"]} for v in volumes]
    spec: dict[str, Any] = {
        "containers": [
            {
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "name": container,
                "resources": {"requests": {"cpu": f"{cpu_m}m", "memory": mem(memory_b)}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": mounts,
            }
        ],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": node.name,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": CRITICAL_PRIORITY if critical else 0,
        "restartPolicy": "Never" if owner[1] == "Job" else "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "default",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": DAEMONSET_TOLERATIONS if daemonset else DEFAULT_TOLERATIONS,
        "volumes": [
            *volumes,
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                "name": "kube-root-ca.crt",
                            }
                        },
                    ],
                },
            },
        ],
    }
    if critical:
        spec["priorityClassName"] = CRITICAL_CLASS
    if daemonset:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node.name]}]}
                    ]
                }
            }
        }
    metadata: dict[str, Any] = {
        "creationTimestamp": STARTED,
        "generateName": name[: name.rfind("-") + 1],
        "labels": labels,
        "name": name,
        "namespace": namespace,
        "ownerReferences": [
            {
                "apiVersion": owner[0],
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": owner[1],
                "name": owner[2],
                "uid": uid(namespace, owner[1], owner[2]),
            }
        ],
        "resourceVersion": str(5000 + index),
        "uid": uid(namespace, "pod", name),
    }
    if cpu_usage_m is not None:
        metadata["annotations"] = {"picluster.io/cpu-usage": f"{cpu_usage_m}m"}
    condition_names = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": STARTED, "status": "True", "type": kind}
                for kind in condition_names
            ],
            "containerStatuses": [
                {
                    "containerID": "containerd://" + hashlib.sha256(name.encode()).hexdigest(),
                    "image": image,
                    "imageID": image.split(":")[0] + "@sha256:" + hashlib.sha256(image.encode()).hexdigest(),
                    "lastState": {},
                    "name": container,
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": STARTED}},
                }
            ],
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "phase": "Running",
            "podIP": f"10.42.{int(node.ip.rsplit('.', 1)[1]) % 256}.{10 + index % 200}",
            "podIPs": [{"ip": f"10.42.{int(node.ip.rsplit('.', 1)[1]) % 256}.{10 + index % 200}"}],
            "qosClass": "Burstable",
            "startTime": STARTED,
        },
    }


def workload_pods(workload: Workload, nodes: dict[str, NodeSpec], start: int) -> list[dict[str, Any]]:
    pods = []
    base = {"app.kubernetes.io/name": workload.name, "app.kubernetes.io/part-of": "clinic"}
    if workload.critical:
        base["picluster.io/critical"] = "true"
    for replica, node_name in enumerate(workload.nodes):
        labels = dict(base)
        volumes: list[dict[str, Any]] = []
        if workload.kind == "Deployment":
            template = suffix(workload.name + "-template", 10)
            owner = ("apps/v1", "ReplicaSet", f"{workload.name}-{template}")
            name = f"{workload.name}-{template}-{suffix(f'{workload.name}-{replica}', 5)}"
            labels["pod-template-hash"] = template
        elif workload.kind == "StatefulSet":
            owner = ("apps/v1", "StatefulSet", workload.name)
            name = f"{workload.name}-{replica}"
            labels["controller-revision-hash"] = f"{workload.name}-{suffix(workload.name, 10)}"
            labels["statefulset.kubernetes.io/pod-name"] = name
            labels["apps.kubernetes.io/pod-index"] = str(replica)
        else:  # a Job's pod, the Job maybe made by a CronJob
            job = workload.name if workload.kind == "Job" else f"{workload.name}-29400120"
            owner = ("batch/v1", "Job", job)
            name = f"{job}-{suffix(job + str(replica), 5)}"
            labels["batch.kubernetes.io/job-name"] = job
            labels["batch.kubernetes.io/controller-uid"] = uid(NAMESPACE, "Job", job)
        if workload.pvc:
            claim = f"data-{name}" if workload.kind == "StatefulSet" else f"{workload.name}-data"
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
        if workload.empty_dir:
            volumes.append({"emptyDir": {}, "name": "scratch"})
        pods.append(
            pod_object(
                namespace=NAMESPACE,
                name=name,
                node=nodes[node_name],
                owner=owner,
                container=workload.name,
                labels=labels,
                image=workload.image,
                cpu_m=workload.cpu_m,
                memory_b=workload.memory_b,
                critical=workload.critical,
                volumes=volumes,
                index=start + replica,
                cpu_usage_m=workload.cpu_usage_m,
            )
        )
    return pods


def daemonset_pods(nodes: list[NodeSpec], start: int) -> list[dict[str, Any]]:
    labels = {
        "app.kubernetes.io/name": "node-exporter",
        "controller-revision-hash": "node-exporter-" + suffix("node-exporter", 10),
        "pod-template-generation": "1",
    }
    return [
        pod_object(
            namespace="monitoring",
            name=f"node-exporter-{suffix('node-exporter-' + node.name, 5)}",
            node=node,
            owner=("apps/v1", "DaemonSet", "node-exporter"),
            container="node-exporter",
            labels=labels,
            image="quay.io/prometheus/node-exporter:v1.8.2",
            cpu_m=50,
            memory_b=64 * MIB,
            critical=False,
            volumes=[],
            index=start + i,
            daemonset=True,
        )
        for i, node in enumerate(nodes)
    ]


def pdb_object(workload: Workload, index: int) -> dict[str, Any]:
    """maxUnavailable 1 with every replica healthy: the disruption controller allows 1."""
    replicas = len(workload.nodes)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "creationTimestamp": CREATED,
            "generation": 1,
            "name": workload.name,
            "namespace": NAMESPACE,
            "resourceVersion": str(9000 + index),
            "uid": uid(NAMESPACE, "pdb", workload.name),
        },
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": workload.name}}},
        "status": {
            "conditions": [
                {
                    "lastTransitionTime": STARTED,
                    "message": "",
                    "observedGeneration": 1,
                    "reason": "SufficientPods",
                    "status": "True",
                    "type": "DisruptionAllowed",
                }
            ],
            "currentHealthy": replicas,
            "desiredHealthy": replicas - 1,
            "disruptionsAllowed": 1,
            "expectedPods": replicas,
            "observedGeneration": 1,
        },
    }


def local_path_volume(claim: str, node: str, index: int) -> list[dict[str, Any]]:
    """A claim and the volume k3s's ``local-path`` provisioner made for it (StorageClass ``local-path``,
    WaitForFirstConsumer): a directory on ``node``, so the PV's required node affinity names that node
    alone (rancher/local-path-provisioner provisioner.go, ``nodeAffinity`` on ``kubernetes.io/hostname``)."""
    claim_uid = uid(NAMESPACE, "pvc", claim)
    volume = f"pvc-{claim_uid}"
    size = "8Gi"
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path",
                    "volume.kubernetes.io/selected-node": node,
                    "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
                },
                "creationTimestamp": CREATED,
                "finalizers": ["kubernetes.io/pvc-protection"],
                "name": claim,
                "namespace": NAMESPACE,
                "resourceVersion": str(9500 + index),
                "uid": claim_uid,
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "storageClassName": "local-path",
                "volumeMode": "Filesystem",
                "volumeName": volume,
            },
            "status": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}, "phase": "Bound"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "annotations": {
                    "local.path.provisioner/selected-node": node,
                    "pv.kubernetes.io/provisioned-by": "rancher.io/local-path",
                },
                "creationTimestamp": CREATED,
                "finalizers": ["kubernetes.io/pv-protection"],
                "name": volume,
                "resourceVersion": str(9600 + index),
                "uid": uid("pv", volume),
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": size},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "name": claim,
                    "namespace": NAMESPACE,
                    "resourceVersion": str(9500 + index),
                    "uid": claim_uid,
                },
                "hostPath": {
                    "path": f"/var/lib/rancher/k3s/storage/{volume}_{NAMESPACE}_{claim}",
                    "type": "DirectoryOrCreate",
                },
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                },
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "local-path",
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        },
    ]


def build(nodes: list[NodeSpec], workloads: list[Workload], pdb_for: set[str]) -> dict[str, Any]:
    by_name = {node.name: node for node in nodes}
    items: list[dict[str, Any]] = [node_object(node, i) for i, node in enumerate(nodes)]
    volumes: list[dict[str, Any]] = []
    index = 0
    for workload in workloads:
        pods = workload_pods(workload, by_name, index)
        items += pods
        index += len(workload.nodes)
        for pod in pods:
            for volume in pod["spec"]["volumes"]:
                claim = volume.get("persistentVolumeClaim")
                if claim is not None:
                    volumes += local_path_volume(claim["claimName"], pod["spec"]["nodeName"], len(volumes))
    items += daemonset_pods(nodes, index)
    items += [pdb_object(w, i) for i, w in enumerate(workloads) if w.name in pdb_for]
    items += volumes
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


# Node allocatable: 4 CPU, 3.7 Gi (4 GB) or 7.6 Gi (8 GB), as scenarios.md gives it, in the Ki kubelet prints.
MEM_4GB_KI = 3879731  # 3.7 Gi
MEM_8GB_KI = 7969177  # 7.6 Gi


def clinic_5() -> dict[str, Any]:
    """pi1-pi3 Pi 4B 4 GB k3s servers (embedded etcd), pi4-pi5 Pi 4B 8 GB agents.

        Placement of the replicas is one a default scheduler could have produced; it is a choice, the scenario
        does not give one. openmrs keeps 30 % of a Pi busy (1200m of 4000m), set as its measured usage; the
        other pods use what they request. No PDB. mariadb's data is a local-path volume on pi5: it cannot move, so
    pi5 stays on.
    """
    nodes = [
        NodeSpec("pi1", True, "pi4b", MEM_4GB_KI, "192.168.10.11"),
        NodeSpec("pi2", True, "pi4b", MEM_4GB_KI, "192.168.10.12"),
        NodeSpec("pi3", True, "pi4b", MEM_4GB_KI, "192.168.10.13"),
        NodeSpec("pi4", False, "pi4b", MEM_8GB_KI, "192.168.10.14"),
        NodeSpec("pi5", False, "pi4b", MEM_8GB_KI, "192.168.10.15"),
    ]
    workloads = [
        Workload(
            "Deployment",
            "openmrs",
            1000,
            1536 * MIB,
            True,
            ("pi4",),
            cpu_usage_m=1200,
            image="openmrs/openmrs-reference-application-3-backend:3.2.0",
        ),
        Workload("StatefulSet", "mariadb", 500, 1 * GIB, True, ("pi5",), pvc=True, image="mariadb:10.11"),
        Workload(
            "Deployment",
            "matrix-synapse",
            500,
            512 * MIB,
            True,
            ("pi4",),
            image="matrixdotorg/synapse:v1.120.0",
        ),
        Workload(
            "Deployment",
            "lab-reports",
            500,
            512 * MIB,
            False,
            ("pi5", "pi1"),
            image="registry.clinic.local/lab-reports:2.4.1",
        ),
        Workload(
            "Deployment",
            "prometheus",
            500,
            1 * GIB,
            False,
            ("pi2",),
            empty_dir=True,
            image="quay.io/prometheus/prometheus:v2.55.1",
        ),
    ]
    return build(nodes, workloads, pdb_for=set())


def district_10() -> dict[str, Any]:
    """n1-n3 Pi 5 8 GB k3s servers, n4-n10 Pi 5 8 GB agents; the clinic-5 set plus PACS, analytics, backups.

    "Each Deployment with 2 replicas where the app allows": openmrs 2 and lab-reports 2 (stateless web
    tiers), mariadb 2 (StatefulSet, primary + replica); matrix-synapse stays 1 (its main process is a
    singleton) and prometheus 1 (one TSDB on emptyDir). PDB maxUnavailable 1 on the 2-replica critical apps
    (openmrs, mariadb). The nightly analytics Job is running (2000m / 4 Gi). The backup CronJob's Job is
    running too (02:00): the scenario gives it no size, so it requests 250m / 256 Mi.
    """
    nodes = [NodeSpec(f"n{i}", i <= 3, "pi5", MEM_8GB_KI, f"192.168.20.{10 + i}") for i in range(1, 11)]
    workloads = [
        Workload(
            "Deployment",
            "openmrs",
            1000,
            1536 * MIB,
            True,
            ("n4", "n5"),
            cpu_usage_m=1200,
            image="openmrs/openmrs-reference-application-3-backend:3.2.0",
        ),
        Workload("StatefulSet", "mariadb", 500, 1 * GIB, True, ("n6", "n7"), pvc=True, image="mariadb:10.11"),
        Workload(
            "Deployment",
            "matrix-synapse",
            500,
            512 * MIB,
            True,
            ("n8",),
            image="matrixdotorg/synapse:v1.120.0",
        ),
        Workload(
            "Deployment",
            "lab-reports",
            500,
            512 * MIB,
            False,
            ("n9", "n10"),
            image="registry.clinic.local/lab-reports:2.4.1",
        ),
        Workload(
            "Deployment",
            "prometheus",
            500,
            1 * GIB,
            False,
            ("n1",),
            empty_dir=True,
            image="quay.io/prometheus/prometheus:v2.55.1",
        ),
        Workload("Deployment", "pacs-viewer", 1000, 2 * GIB, False, ("n2", "n9"), image="ohif/app:v3.9.2"),
        Workload(
            "Job",
            "analytics-nightly",
            2000,
            4 * GIB,
            False,
            ("n10",),
            image="registry.clinic.local/analytics:1.7.0",
        ),
        Workload("CronJob", "backup", 250, 256 * MIB, False, ("n3",), image="restic/restic:0.17.3"),
    ]
    return build(nodes, workloads, pdb_for={"openmrs", "mariadb"})


def solar_3() -> dict[str, Any]:
    """s1 Pi 4B 4 GB k3s server (single etcd member: no quorum to protect beyond itself), s2-s3 Pi 4B 4 GB
    agents, each with its own UPS HAT and all fed by the shared 12 V LiFePO4 (figures in solar-3.toml).

    scenarios.md gives solar-3 no workloads; a rural clinic's essentials are chosen here: openmrs and
    mariadb (critical, one replica each, on the agents) and lab-reports (one replica, not critical, on the
    server). Any one Pi can hold all three (3000m of 4000m, 3 Gi of 3.7 Gi), so two may be shed.
    """
    nodes = [
        NodeSpec("s1", True, "pi4b", MEM_4GB_KI, "192.168.30.11"),
        NodeSpec("s2", False, "pi4b", MEM_4GB_KI, "192.168.30.12"),
        NodeSpec("s3", False, "pi4b", MEM_4GB_KI, "192.168.30.13"),
    ]
    workloads = [
        Workload(
            "Deployment",
            "openmrs",
            1000,
            1536 * MIB,
            True,
            ("s2",),
            cpu_usage_m=1200,
            image="openmrs/openmrs-reference-application-3-backend:3.2.0",
        ),
        Workload("StatefulSet", "mariadb", 500, 1 * GIB, True, ("s3",), pvc=True, image="mariadb:10.11"),
        Workload(
            "Deployment",
            "lab-reports",
            500,
            512 * MIB,
            False,
            ("s1",),
            image="registry.clinic.local/lab-reports:2.4.1",
        ),
    ]
    return build(nodes, workloads, pdb_for=set())


SNAPSHOTS = {"clinic-5": clinic_5, "district-10": district_10, "solar-3": solar_3}


def render(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for name, make in SNAPSHOTS.items():
        path = HERE / f"{name}.json"
        text = render(make())
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run examples/clusters/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
