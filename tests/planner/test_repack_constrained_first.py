"""A re-pack tries the pods that other pods constrain first: a big pod placed first must not take the one home
left to a pod the pods that stay repel (found by test_planner_is_optimal_against_brute_force, seed 1)."""

from __future__ import annotations

from piclusterd.core.cluster_view import ClusterView, LabelSelector, PodAffinityTerm
from piclusterd.core.planner import GiveUpNoncritical, PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.testing.clusters import GIB, MIB, make_node, make_pod

APART = (PodAffinityTerm(LabelSelector((("app", "web"),)), "kubernetes.io/hostname"),)  # one web per node
MEMORY = 4 * GIB - 300 * MIB  # a 4 GB Pi 4B's allocatable memory: 3796 MiB


def cluster() -> ClusterView:
    """n0: the only k3s server, with a web replica. n1: a bare pod (nothing would recreate it), so it stays,
    2032 MiB free. n3's cache (2000 MiB) fits n1 or n0; its web replica only n1 (n0 has one): cache on n0."""
    nodes = (
        make_node("n0", server=True, memory_b=MEMORY),
        make_node("n1", memory_b=MEMORY),
        make_node("n3", memory_b=MEMORY),
    )
    pods = (
        make_pod("web-0", "n0", pod_anti_affinity=APART),
        make_pod("batch-0", "n1", memory_b=1700 * MIB, owner_kind=None),
        make_pod("cache-0", "n3", memory_b=2000 * MIB),
        make_pod("web-1", "n3", pod_anti_affinity=APART),
        *(make_pod(f"exporter-{n.name}", n.name, cpu_m=50, memory_b=64 * MIB, owner_kind="DaemonSet") for n in nodes),
    )
    return ClusterView(nodes, pods, ())


def test_a_node_whose_pods_fit_only_one_way_is_shed() -> None:
    policy = PlannerPolicy(target_runtime_s=8 * 3600.0, give_up_noncritical=GiveUpNoncritical.NEVER)
    power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)
    decided = plan(cluster(), power, BatterySpec(capacity_wh=20.0), policy, 10_000.0, hardware=PowerConfig())
    assert decided.nodes_to_shed == ("n3",), decided.refused
    homes = {p.pod: p.to_node for p in decided.placements}
    assert homes == {"default/cache-0": "n0", "default/web-1": "n1"}
