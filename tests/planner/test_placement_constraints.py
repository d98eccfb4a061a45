"""The scheduler's hard constraints on pods that must move (issue 14, findings 1 and 8).

Each rule cites the upstream behaviour it follows:

- volume pins: the scheduler's VolumeBinding plugin refuses a node a bound PV's ``spec.nodeAffinity``
  does not match ("volume node affinity conflict"); k3s's local-path provisioner pins each PV to one node
  (rancher/local-path-provisioner, provisioner.go: ``nodeAffinity`` on ``kubernetes.io/hostname``);
- InterPodAffinity (pkg/scheduler/framework/plugins/interpodaffinity/filtering.go): required affinity and
  anti-affinity, existing pods' anti-affinity too, and the first-pod exception for self-affinity;
- PodTopologySpread (plugins/podtopologyspread/filtering.go): DoNotSchedule, skew against the emptiest
  domain, nodes without the topology label are unschedulable;
- NodePorts (plugins/nodeports): one pod per host port and protocol on a node;
- the node's ``status.allocatable.pods``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from piclusterd.core.cluster_view import (
    ClusterView,
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    Requirement,
    SelectorOperator,
    TopologySpread,
    VolumePin,
    parse_kubectl_list,
)
from piclusterd.core.planner import GiveUpNoncritical, Plan, PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.core.refusal import SafetyRule
from piclusterd.core.safety import check_shed
from piclusterd.testing.clusters import GIB, make_node, make_pod
from piclusterd.testing.daemon_process import installed_script

THRESHOLD = 1_000_000
BATTERY = BatterySpec(capacity_wh=20.0, usable_fraction=0.8, inverter_efficiency=0.85, ups_overhead_w=0.0)
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def shed_all_you_can(view: ClusterView, **policy: Any) -> Plan:
    """A critical battery: the plan sheds every node it safely can. These tests are about where pods can go,
    so every pod must keep a home (give_up_noncritical = "never") unless a test says otherwise."""
    power = PowerSituation("critical", on_battery_since=0.0, charge_pct=10.0)
    policy.setdefault("give_up_noncritical", GiveUpNoncritical.NEVER)
    settings = PlannerPolicy(critical_priority_threshold=THRESHOLD, **policy)
    return plan(view, power, BATTERY, settings, 1000.0, hardware=PowerConfig())


def pinned_to(node: str, claim: str = "data-db-0") -> VolumePin:
    requirement = Requirement(HOSTNAME, SelectorOperator.IN, (node,))
    return VolumePin(claim, f"pvc-{claim}", (NodeSelectorTerm((requirement,)),))


def refusals(result: Plan) -> dict[str, tuple[str, str]]:
    return {r.node: (r.rule.value, r.detail) for r in result.refused}


def moved(result: Plan) -> dict[str, str | None]:
    return {p.pod: p.to_node for p in result.placements}


# --------------------------------------------------------------------------------------------------------
# Volume pins (finding 1)


def local_path_snapshot(*, with_volumes: bool = True) -> dict[str, Any]:
    """One k3s server and two agents; the critical database on agent-2 on a local-path volume, as
    ``kubectl get nodes,pods,pdb,pv,pvc -A -o json`` prints it (or without the PV and PVC)."""

    def node(name: str, server: bool) -> dict[str, Any]:
        labels = {HOSTNAME: name, "kubernetes.io/os": "linux"}
        if server:
            labels |= {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}
        return {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "7969177Ki", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }

    def pod(name: str, node_name: str, critical: bool, claim: str | None = None) -> dict[str, Any]:
        volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}] if claim else []
        owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name.rsplit("-", 1)[0], "controller": True}
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": "clinic",
                "labels": {"app": name.rsplit("-", 1)[0], **({"picluster.io/critical": "true"} if critical else {})},
                "ownerReferences": [owner],
            },
            "spec": {
                "nodeName": node_name,
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
                "volumes": volumes,
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }

    items = [
        node("server", True),
        node("agent-1", False),
        node("agent-2", False),
        pod("db-0", "agent-2", True, "data-db-0"),
        pod("web-0", "agent-1", False),
    ]
    if with_volumes:
        volume = "pvc-3f1c0e2a"
        items += [
            {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "metadata": {"name": "data-db-0", "namespace": "clinic"},
                "spec": {"storageClassName": "local-path", "volumeName": volume},
                "status": {"phase": "Bound"},
            },
            {
                "kind": "PersistentVolume",
                "apiVersion": "v1",
                "metadata": {"name": volume},
                "spec": {
                    "storageClassName": "local-path",
                    "claimRef": {"name": "data-db-0", "namespace": "clinic"},
                    "hostPath": {"path": f"/var/lib/rancher/k3s/storage/{volume}_clinic_data-db-0"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": ["agent-2"]}]}
                            ]
                        }
                    },
                },
                "status": {"phase": "Bound"},
            },
        ]
    return {"kind": "List", "apiVersion": "v1", "items": items}


def test_a_critical_pod_on_a_local_path_volume_keeps_its_node() -> None:
    """Finding 1: the plan no longer sheds the node holding the database's local-path volume, and says why,
    naming the pod, the claim and the node."""
    result = shed_all_you_can(parse_kubectl_list(local_path_snapshot()))
    assert "agent-2" not in result.nodes_to_shed
    assert "clinic/db-0" not in moved(result)
    rule, detail = refusals(result)["agent-2"]
    assert rule == "pinned_volume"
    assert "clinic/db-0" in detail and "data-db-0" in detail and "agent-2" in detail
    assert "agent-1" in result.nodes_to_shed  # the other agent still goes


def plan_cli(snapshot: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(snapshot))
    arguments = ["plan", "--snapshot", str(path), "--on-battery", "--battery-wh", "20", "--json"]
    return subprocess.run(
        [installed_script("piclusterctl"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_piclusterctl_plan_on_a_snapshot_with_pv_and_pvc_keeps_the_pinned_node(tmp_path: Path) -> None:
    """Finding 1, as an operator meets it: ``kubectl get nodes,pods,pdb,pv,pvc -A -o json`` is read."""
    done = plan_cli(local_path_snapshot(), tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "agent-2" not in report["shed"]
    assert {(r["node"], r["rule"]) for r in report["refused"]} >= {("agent-2", "pinned_volume")}
    assert "volumes were not checked" not in done.stderr


def test_a_snapshot_without_pvs_and_pvcs_is_accepted_with_one_line(tmp_path: Path) -> None:
    """An older snapshot (no pv,pvc) still plans; one line says the volumes were not checked, and the pod
    whose volume is unknown counts as pinned (the safe reading)."""
    done = plan_cli(local_path_snapshot(with_volumes=False), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "volumes were not checked" in line]
    assert len(lines) == 1 and "clinic/data-db-0" in lines[0] and "pv,pvc" in lines[0]
    report = json.loads(done.stdout)
    assert "agent-2" not in report["shed"]


def test_a_non_critical_pinned_pod_refuses_too_unless_it_may_be_given_up() -> None:
    """With give_up_noncritical = "never" a pinned non-critical pod holds its node. Where the policy lets
    non-critical pods go Pending (the default "when-needed" on a critical battery), the node may be shed and the
    pod is given up."""
    view = ClusterView(
        (make_node("s1", server=True), make_node("a1"), make_node("a2")),
        (make_pod("cache-0", "a2", owner_kind="StatefulSet", volume_pins=(pinned_to("a2", "data-cache-0"),)),),
    )
    strict = shed_all_you_can(view)
    assert "a2" not in strict.nodes_to_shed
    assert refusals(strict)["a2"][0] == "pinned_volume"
    lenient = shed_all_you_can(view, give_up_noncritical=GiveUpNoncritical.WHEN_NEEDED)
    assert "a2" in lenient.nodes_to_shed
    assert moved(lenient)["default/cache-0"] is None


def test_a_volume_pinned_to_a_zone_moves_within_its_zone_only() -> None:
    """A network volume limited to a zone (a PV node affinity on the zone label) moves, but only there."""
    zone_a = Requirement(ZONE, SelectorOperator.IN, ("a",))
    pin = VolumePin("data-db-0", "pvc-db", (NodeSelectorTerm((zone_a,)),))
    view = ClusterView(
        (
            make_node("s1", server=True, labels={ZONE: "b"}),
            make_node("a1", labels={ZONE: "a"}, tier=1),
            make_node("a2", labels={ZONE: "a"}, tier=0),
            make_node("b1", labels={ZONE: "b"}),
        ),
        (make_pod("db-0", "a2", critical=True, owner_kind="StatefulSet", volume_pins=(pin,)),),
    )
    result = shed_all_you_can(view)
    assert moved(result).get("default/db-0") in (None, "a1")
    assert "a1" not in result.nodes_to_shed  # the last node of the zone stays for the database
    assert "a2" in result.nodes_to_shed


def test_check_shed_names_the_pinned_volume_rule() -> None:
    view = ClusterView(
        (make_node("s1", server=True), make_node("a1")),
        (make_pod("db-0", "a1", critical=True, owner_kind="StatefulSet", volume_pins=(pinned_to("a1"),)),),
    )
    refusal = check_shed(
        view, view.node("a1"), min_nodes=1, allow_unreplicated=False, evict_emptydir=True, priority_threshold=THRESHOLD
    )
    assert refusal is not None and refusal.rule is SafetyRule.PINNED_VOLUME


# --------------------------------------------------------------------------------------------------------
# Constraints between pods (finding 8)


def anti_affinity_snapshot() -> dict[str, Any]:
    """Two web replicas with required anti-affinity on the hostname, one per agent; the server is tainted
    NoSchedule (k3s with ``--node-taint``), so shedding an agent would put both replicas on the other."""

    def node(name: str, taint: bool) -> dict[str, Any]:
        return {
            "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME: name}},
            "spec": {"taints": [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}]}
            if taint
            else {},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }

    def web(name: str, node_name: str) -> dict[str, Any]:
        return {
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d", "controller": True}],
            },
            "spec": {
                "nodeName": node_name,
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                "affinity": {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOSTNAME}
                        ]
                    }
                },
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }

    items = [
        {
            **node("server", True),
            "metadata": {
                "name": "server",
                "labels": {HOSTNAME: "server", "node-role.kubernetes.io/control-plane": "true"},
            },
        },
        node("agent-1", False),
        node("agent-2", False),
        web("web-a", "agent-1"),
        web("web-b", "agent-2"),
    ]
    return {"kind": "List", "apiVersion": "v1", "items": items}


def test_required_anti_affinity_keeps_replicas_apart() -> None:
    """Finding 8: shedding either agent would put both web replicas on one node, which their required
    anti-affinity forbids; the replacement would stay Pending. Both agents stay."""
    result = shed_all_you_can(parse_kubectl_list(anti_affinity_snapshot()))
    assert result.nodes_to_shed == ()
    assert {node for node, (rule, _) in refusals(result).items() if rule == "pods_do_not_fit"} >= {"agent-1"}


def web_term() -> PodAffinityTerm:
    return PodAffinityTerm(LabelSelector((("app", "web"),)), HOSTNAME)


def test_existing_pods_anti_affinity_binds_pods_coming_in() -> None:
    """The scheduler checks the anti-affinity of pods already on a node against the pod coming in."""
    view = ClusterView(
        (make_node("s1", server=True, tier=9), make_node("a1"), make_node("a2", tier=5)),
        (
            make_pod("guard-0", "a2", pod_anti_affinity=(web_term(),), labels={"app": "guard"}),
            make_pod("web-0", "a1", labels={"app": "web"}),
        ),
    )
    result = shed_all_you_can(view, min_nodes=2)
    # a1 is shed first (lowest tier); web-0 may not join guard-0 on a2, so it goes to s1.
    assert result.nodes_to_shed == ("a1",)
    assert moved(result)["default/web-0"] == "s1"


def test_required_affinity_follows_its_partner() -> None:
    """A pod with required affinity to app=db in the same zone can only go where a db pod's zone is."""
    near_db = PodAffinityTerm(LabelSelector((("app", "db"),)), ZONE)
    view = ClusterView(
        (
            make_node("s1", server=True, labels={ZONE: "b"}, tier=9),
            make_node("a1", labels={ZONE: "a"}, tier=0),
            make_node("a2", labels={ZONE: "a"}, tier=5),
            make_node("b1", labels={ZONE: "b"}, tier=5),
        ),
        (
            make_pod("db-0", "a2", critical=True, labels={"app": "db"}),
            make_pod("api-0", "a1", critical=True, pod_affinity=(near_db,)),
        ),
    )
    result = shed_all_you_can(view, min_nodes=3)
    assert result.nodes_to_shed == ("a1",)
    assert moved(result)["default/api-0"] == "a2"


def test_topology_spread_do_not_schedule_limits_the_skew() -> None:
    """maxSkew 1 over zones: with one replica in each of zones a and b, the replica of the shed zone-b
    node cannot join zone a (skew 2 - 0); it has to stay in zone b."""
    spread = TopologySpread(1, ZONE, LabelSelector((("app", "web"),)))
    view = ClusterView(
        (
            make_node("s1", server=True, labels={ZONE: "a"}, tier=9),
            make_node("b1", labels={ZONE: "b"}, tier=0),
            make_node("b2", labels={ZONE: "b"}, tier=5),
        ),
        (
            make_pod("web-a", "s1", labels={"app": "web"}, topology_spread=(spread,)),
            make_pod("web-b", "b1", labels={"app": "web"}, topology_spread=(spread,)),
        ),
    )
    result = shed_all_you_can(view, min_nodes=2)
    assert result.nodes_to_shed == ("b1",)
    assert moved(result)["default/web-b"] == "b2"


def test_host_ports_do_not_share_a_node() -> None:
    """Two pods binding host port 8443/TCP cannot share a node: the second agent stays."""
    view = ClusterView(
        (make_node("s1", server=True, tier=9), make_node("a1")),
        (
            make_pod("ingress-0", "s1", host_ports=("8443/TCP",)),
            make_pod("ingress-1", "a1", host_ports=("8443/TCP",)),
        ),
    )
    result = shed_all_you_can(view)
    assert result.nodes_to_shed == ()
    assert refusals(result)["a1"][0] == "pods_do_not_fit"
    other_protocol = ClusterView(
        view.nodes,
        (make_pod("ingress-0", "s1", host_ports=("8443/UDP",)), make_pod("ingress-1", "a1", host_ports=("8443/TCP",))),
    )
    assert shed_all_you_can(other_protocol).nodes_to_shed == ("a1",)


@pytest.mark.parametrize(("max_pods", "shed"), [(3, ()), (4, ("a1",))])
def test_a_node_takes_no_more_pods_than_its_pod_limit(max_pods: int, shed: tuple[str, ...]) -> None:
    """status.allocatable.pods: s1 holds 2 pods; the 2 of a1 fit only under a limit of 4."""
    view = ClusterView(
        (make_node("s1", server=True, tier=9, max_pods=max_pods), make_node("a1")),
        (
            make_pod("x-0", "s1"),
            make_pod("x-1", "s1"),
            make_pod("y-0", "a1"),
            make_pod("y-1", "a1"),
        ),
    )
    assert shed_all_you_can(view).nodes_to_shed == shed


# --------------------------------------------------------------------------------------------------------
# Parsing, bounded


def test_pod_constraints_are_read_from_the_pod_spec() -> None:
    snapshot = anti_affinity_snapshot()
    web = snapshot["items"][3]
    web["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}},
        {"maxSkew": 1, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
    ]
    web["spec"]["affinity"]["podAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE, "namespaceSelector": {}}
        ],
        "preferredDuringSchedulingIgnoredDuringExecution": [],
    }
    web["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    pod = next(p for p in parse_kubectl_list(snapshot).pods if p.name == "web-a")
    assert pod.pod_anti_affinity == (PodAffinityTerm(LabelSelector((("app", "web"),)), HOSTNAME),)
    assert pod.pod_affinity == (PodAffinityTerm(LabelSelector((("app", "db"),)), ZONE, (), True),)
    assert pod.topology_spread == (TopologySpread(1, ZONE, LabelSelector()),)
    assert pod.host_ports == ("8080/TCP",)


@pytest.mark.parametrize(
    ("field", "value", "attribute"),
    [
        (
            "affinity",
            {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": 3}]}},
            "pod_anti_affinity",
        ),
        ("affinity", {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "x"}}, "pod_affinity"),
        ("topologySpreadConstraints", [{"maxSkew": 0, "topologyKey": ZONE}], "topology_spread"),
        ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": ZONE}] * 100, "topology_spread"),
        ("volumes", [{"name": "d", "persistentVolumeClaim": {"claimName": 7}}], "claims"),
    ],
)
def test_garbage_in_one_pod_keeps_that_pods_defaults_and_is_reported_once(
    field: str, value: object, attribute: str
) -> None:
    snapshot = anti_affinity_snapshot()
    snapshot["items"][3]["spec"][field] = value
    view = parse_kubectl_list(snapshot)
    pod = next(p for p in view.pods if p.name == "web-a")
    assert getattr(pod, attribute) == ()
    assert len(view.refused) == 1 and view.refused[0].where == "pod default/web-a"
    other = next(p for p in view.pods if p.name == "web-b")
    assert other.pod_anti_affinity  # the other pod is read as written


def test_a_pv_whose_node_affinity_cannot_be_read_pins_its_pod_where_it_is() -> None:
    snapshot = local_path_snapshot()
    snapshot["items"][-1]["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] = [
        {"matchExpressions": [{"key": HOSTNAME, "operator": "Near", "values": ["agent-1"]}]}
    ]
    view = parse_kubectl_list(snapshot)
    assert [r.where for r in view.refused] == ["PersistentVolume pvc-3f1c0e2a"]
    result = shed_all_you_can(view)
    assert "agent-2" not in result.nodes_to_shed
    assert refusals(result)["agent-2"][0] == "pinned_volume"


def test_a_network_volume_without_node_affinity_moves() -> None:
    snapshot = local_path_snapshot()
    del snapshot["items"][-1]["spec"]["nodeAffinity"]
    view = parse_kubectl_list(snapshot)
    assert view.volumes_unchecked == ()
    assert "agent-2" in shed_all_you_can(view).nodes_to_shed


def test_memory_sizes_are_parsed_for_the_fixture() -> None:
    node = parse_kubectl_list(local_path_snapshot()).node("agent-1")
    assert node.allocatable_memory_b == 7969177 * 1024 and node.allocatable_memory_b < 8 * GIB
