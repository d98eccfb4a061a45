"""Every Kubernetes API call the daemon makes, in one table: what deploy/rbac.yaml must allow.

``piclusterctl doctor`` asks the API server about each line with a SelfSubjectAccessReview, so a rule
missing from a cluster's RBAC is found before the first outage, not as a 403 during one. The table cannot
drift from the code: tests check that every client method the cluster layer calls is on a line here, and
that every request a daemon makes against the fake API server (which records them) is covered by a line.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from piclusterd.core.outage_record import OUTAGE_CONFIGMAP
from piclusterd.core.stopped_work import STOPPED_WORK_CONFIGMAP

__all__ = ["DAEMON_API_CALLS", "ApiCall", "Permission", "Where", "needed_permissions"]

EVENTS_NAMESPACE = "default"  # Events about Nodes are accepted only there (kube_api.EventRecorder)

#: Without these the leader stops no non-critical work (cluster.scaler): its drains move it to the nodes that
#: stay on, and the runtime falls short of the plan's. Nothing unsafe, so doctor warns.
STOPPING = "stopping non-critical work to reach the target runtime (give_up_noncritical)"


class Where(enum.Enum):
    """Which namespace a call goes to (and which object name, for the calls RBAC grants by name)."""

    CLUSTER = "cluster"  # a cluster-scoped object, or any namespace (a ClusterRole)
    LEASE = "lease"  # [cluster] lease_namespace
    LEASE_OBJECT = "lease-object"  # the Lease itself (resourceNames: [lease_name])
    OUTAGE = "outage"  # the outage record's namespace ([cluster] full-shutdown namespace)
    OUTAGE_OBJECT = "outage-object"  # the outage record ConfigMap itself
    STOPPED_WORK_OBJECT = "stopped-work-object"  # the stopped-work record ConfigMap (same namespace)
    EVENTS = "events"  # "default"


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One kind of request: the RBAC attributes kube-apiserver derives from it (requestinfo.go), the
    ``kubernetes`` client methods that make it, and what fails without it."""

    verb: str
    group: str
    resource: str
    subresource: str
    where: Where
    methods: tuple[str, ...]
    why: str
    optional: bool = False  # the daemon carries on without it (and says what it could not check)


DAEMON_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("list", "", "nodes", "", Where.CLUSTER, ("list_node",), "the cluster snapshot"),
    ApiCall("watch", "", "nodes", "", Where.CLUSTER, ("list_node",), "planning on change (the informer)"),
    ApiCall("get", "", "nodes", "", Where.CLUSTER, ("read_node",), "reading a node before acting on it"),
    ApiCall("patch", "", "nodes", "", Where.CLUSTER, ("patch_node",), "cordon, uncordon and the node annotations"),
    ApiCall("list", "", "pods", "", Where.CLUSTER, ("list_pod_for_all_namespaces",), "the cluster snapshot"),
    ApiCall("watch", "", "pods", "", Where.CLUSTER, ("list_pod_for_all_namespaces",), "the informer"),
    ApiCall("get", "", "pods", "", Where.CLUSTER, ("read_namespaced_pod",), "following a drain"),
    ApiCall("delete", "", "pods", "", Where.CLUSTER, ("delete_namespaced_pod",), "the self-drain's last minute"),
    ApiCall("create", "", "pods", "eviction", Where.CLUSTER, ("create_namespaced_pod_eviction",), "every drain"),
    ApiCall(
        "list",
        "policy",
        "poddisruptionbudgets",
        "",
        Where.CLUSTER,
        ("list_pod_disruption_budget_for_all_namespaces",),
        "the cluster snapshot",
    ),
    ApiCall(
        "watch",
        "policy",
        "poddisruptionbudgets",
        "",
        Where.CLUSTER,
        ("list_pod_disruption_budget_for_all_namespaces",),
        "the informer",
    ),
    *(
        ApiCall(
            verb,
            "",
            resource,
            "",
            Where.CLUSTER,
            (method,),
            "which pods their volumes pin to a node",
            optional=True,
        )
        for resource, method in (
            ("persistentvolumes", "list_persistent_volume"),
            ("persistentvolumeclaims", "list_persistent_volume_claim_for_all_namespaces"),
        )
        for verb in ("list", "watch")
    ),
    ApiCall("get", "coordination.k8s.io", "leases", "", Where.LEASE_OBJECT, ("read_namespaced_lease",), "election"),
    ApiCall("create", "coordination.k8s.io", "leases", "", Where.LEASE, ("create_namespaced_lease",), "election"),
    ApiCall(
        "update", "coordination.k8s.io", "leases", "", Where.LEASE_OBJECT, ("replace_namespaced_lease",), "election"
    ),
    ApiCall("list", "coordination.k8s.io", "leases", "", Where.LEASE, ("list_namespaced_lease",), "watching the Lease"),
    ApiCall(
        "watch", "coordination.k8s.io", "leases", "", Where.LEASE, ("list_namespaced_lease",), "watching the Lease"
    ),
    ApiCall("get", "", "configmaps", "", Where.OUTAGE_OBJECT, ("read_namespaced_config_map",), "the outage record"),
    ApiCall("create", "", "configmaps", "", Where.OUTAGE, ("create_namespaced_config_map",), "the outage record"),
    ApiCall(
        "update", "", "configmaps", "", Where.OUTAGE_OBJECT, ("replace_namespaced_config_map",), "the outage record"
    ),
    ApiCall(
        "delete", "", "configmaps", "", Where.OUTAGE_OBJECT, ("delete_namespaced_config_map",), "the outage record"
    ),
    ApiCall("list", "", "configmaps", "", Where.OUTAGE, ("list_namespaced_config_map",), "watching the record"),
    ApiCall("watch", "", "configmaps", "", Where.OUTAGE, ("list_namespaced_config_map",), "watching the record"),
    *(
        ApiCall(verb, "", "configmaps", "", Where.STOPPED_WORK_OBJECT, (method,), STOPPING, optional=True)
        for verb, method in (
            ("get", "read_namespaced_config_map"),
            ("update", "replace_namespaced_config_map"),
            ("delete", "delete_namespaced_config_map"),
        )
    ),
    # Stopping non-critical work to reach the target (Plan.scale_down), and putting it back with the restore.
    ApiCall("get", "apps", "replicasets", "", Where.CLUSTER, ("read_namespaced_replica_set",), STOPPING, optional=True),
    *(
        ApiCall(verb, "apps", resource, "scale", Where.CLUSTER, (method,), STOPPING, optional=True)
        for resource, kind in (
            ("deployments", "deployment"),
            ("replicasets", "replica_set"),
            ("statefulsets", "stateful_set"),
        )
        for verb, method in (
            ("get", f"read_namespaced_{kind}_scale"),
            ("patch", f"patch_namespaced_{kind}_scale"),
        )
    ),
    ApiCall("get", "batch", "jobs", "", Where.CLUSTER, ("read_namespaced_job",), STOPPING, optional=True),
    ApiCall("patch", "batch", "jobs", "", Where.CLUSTER, ("patch_namespaced_job",), STOPPING, optional=True),
    ApiCall("create", "", "events", "", Where.EVENTS, ("create_namespaced_event",), "Events on Nodes"),
    ApiCall(
        "create", "", "events", "", Where.CLUSTER, ("create_namespaced_event",), "Events on stopped work", optional=True
    ),
    ApiCall("patch", "", "events", "", Where.EVENTS, ("patch_namespaced_event",), "counting repeated Events"),
)
"""The daemon's calls (doctor's own SelfSubjectAccessReviews need no rule: every authenticated user may)."""


@dataclass(frozen=True, slots=True)
class Permission:
    """One right the daemon needs on a given cluster: SelfSubjectAccessReview's resourceAttributes."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str  # "" : cluster-scoped, or every namespace
    name: str  # "" : any object
    why: str
    optional: bool

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def covers(self, verb: str, group: str, resource: str, subresource: str, namespace: str, name: str) -> bool:
        """Whether a request with these RBAC attributes is one this permission stands for."""
        return (
            (self.verb, self.group, self.resource, self.subresource) == (verb, group, resource, subresource)
            and self.namespace in ("", namespace)
            and self.name in ("", name)
        )

    def rbac_rule(self) -> str:
        """The rule to add to deploy/rbac.yaml, and where."""
        names = f', resourceNames: ["{self.name}"]' if self.name else ""
        rule = f'{{apiGroups: ["{self.group}"], resources: ["{self.resource_path}"]{names}, verbs: ["{self.verb}"]}}'
        if not self.namespace:
            return f"add to the ClusterRole piclusterd in deploy/rbac.yaml: {rule}"
        role = "piclusterd-events" if self.resource == "events" else "piclusterd-leader"
        return f'add to the Role {role} (namespace "{self.namespace}") in deploy/rbac.yaml: {rule}'


def needed_permissions(
    calls: Sequence[ApiCall], *, lease_namespace: str, lease_name: str, outage_namespace: str
) -> tuple[Permission, ...]:
    """The table's lines with this cluster's namespaces and object names filled in."""
    where = {
        Where.CLUSTER: ("", ""),
        Where.LEASE: (lease_namespace, ""),
        Where.LEASE_OBJECT: (lease_namespace, lease_name),
        Where.OUTAGE: (outage_namespace, ""),
        Where.OUTAGE_OBJECT: (outage_namespace, OUTAGE_CONFIGMAP),
        Where.STOPPED_WORK_OBJECT: (outage_namespace, STOPPED_WORK_CONFIGMAP),
        Where.EVENTS: (EVENTS_NAMESPACE, ""),
    }
    return tuple(
        Permission(c.verb, c.group, c.resource, c.subresource, *where[c.where], c.why, c.optional) for c in calls
    )
