#!/usr/bin/env python3
"""How long plan() takes, from 10 nodes / 100 pods to 1,000 nodes / 30,000 pods. A script, not a test.

    .venv/bin/python benchmarks/bench_planner.py [--repeat 5] [--markdown] [--family NAME ...]

Three families of clusters, from piclusterd.testing.clusters (3 k3s servers, the rest agents, 4 CPU nodes,
one DaemonSet pod per node, a fifth of the pods critical):

- ``synthetic``: synthetic_cluster(nodes, pods), 8 GB nodes about 35 % requested by pods of one size class
  (half to one and a half times the mean): from 10 to 1,000 nodes and 100 to 30,000 pods;
- ``few-large``: few_large_pods_cluster(nodes, k), one or two pods of 0.9-1.7 CPU and 1-3 GiB per 8 GB node,
  the hardest packing (issue 17): 10 to 1,000 nodes;
- ``random-shape``: random_shape_cluster(nodes, pods), 2/4/8 GB nodes, some SSD-labelled or tainted, pods of
  10m-2 CPU and 16 MiB-3 GiB, some pinned or tolerating: 10 to 1,000 nodes with 1, 10 and 30 pods per node.

Each size is planned in three situations, all on battery past the grace period at 100 % charge with a 4 h
target:

- ``reach``: with every node on the battery lasts 70 % of the target, so a third or so of the nodes must go
  (fewest-nodes search);
- ``escalate``: it lasts 20 % of the target, which cannot be reached (shed as much as is safe, until the
  pods no longer fit);
- ``met``: it lasts 150 % of the target: nothing to shed (the plan still computes the physical optimum).

The time is the process (CPU) time of the whole plan() call (both searches: the plan and the physical
optimum), excluding building the cluster: the median and the worst of ``--repeat`` runs. Process time, not
wall time, because the machines this runs on are shared: other jobs' load does not count, though it still
slows a run through shared caches. Python's own speed dominates: compare figures only on the same machine.
``cut`` says which searches ran out of their work budget (piclusterd.core.work_budget): P the plan's, O
the physical optimum's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.planner import Plan, PlannerPolicy, plan
from piclusterd.core.power_draw import (
    BatterySpec,
    NodePowerConfig,
    PiModel,
    PowerConfig,
    PowerSituation,
    cluster_load_w,
)
from piclusterd.testing.clusters import few_large_pods_cluster, random_shape_cluster, synthetic_cluster

NODES = (10, 30, 100, 300, 1_000)
PODS = (100, 1_000, 10_000, 30_000)
MAX_PODS_PER_NODE = 100  # a kubelet runs at most 110; more per node is no cluster anyone has
SIZES = [(nodes, pods) for nodes in NODES for pods in PODS if pods <= MAX_PODS_PER_NODE * nodes]
SITUATIONS = ("reach", "escalate", "met")
FAMILIES: dict[str, list[tuple[int, int]]] = {
    "synthetic": SIZES,
    "few-large": [(nodes, nodes * k) for nodes in NODES for k in (1, 2)],
    "random-shape": [(nodes, nodes * k) for nodes in NODES for k in (1, 10, 30)],
}


def cluster(family: str, nodes: int, pods: int) -> ClusterView:
    if family == "few-large":
        return few_large_pods_cluster(nodes, pods // nodes, seed=nodes)
    if family == "random-shape":
        return random_shape_cluster(nodes, pods, seed=nodes)
    return synthetic_cluster(nodes, pods, seed=nodes)


def hardware_for(view: ClusterView) -> PowerConfig:
    """Pi 4B everywhere, with POWER_OFF_ON_HALT (0.2 W halted), and an 8 W switch."""
    nodes = {n.name: NodePowerConfig(model=PiModel.PI4B, power_off_on_halt=True) for n in view.nodes}
    return PowerConfig(nodes=nodes, fixed_loads_w={"switch": 8.0})


POLICY = PlannerPolicy(target_runtime_s=4 * 3600.0)
POWER = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)


def battery_for(view: ClusterView, hardware: PowerConfig, situation: str) -> BatterySpec:
    """A battery whose runtime with every node on is a set share of the 4 h target."""
    running = [n.name for n in view.nodes]
    load_w = cluster_load_w(view, hardware, running)
    share = {"reach": 0.7, "escalate": 0.2, "met": 1.5}[situation]
    wanted_draw_w = load_w / 0.85  # no UPS overhead here
    capacity_wh = wanted_draw_w * 4 * share / 0.8
    return BatterySpec(capacity_wh=capacity_wh, usable_fraction=0.8, inverter_efficiency=0.85)


def time_plan(family: str, nodes: int, pods: int, situation: str, repeat: int) -> tuple[float, float, Plan]:
    """(median, worst) process time of ``repeat`` plans, and the plan."""
    view = cluster(family, nodes, pods)
    hardware = hardware_for(view)
    battery = battery_for(view, hardware, situation)
    runs = []
    result = None
    for _ in range(repeat):
        start = time.process_time()
        result = plan(view, POWER, battery, POLICY, 60.0, hardware=hardware)
        runs.append(time.process_time() - start)
    assert result is not None
    return statistics.median(runs), max(runs), result


def cut(result: Plan) -> str:
    return ("P" if result.search_cut else "") + ("O" if result.optimum and result.optimum.search_cut else "") or "-"


def growth(times: dict[tuple[int, int], float], label: str, fixed: str) -> str:
    """How the time grows along one axis: the exponent k of time ~ size^k between the ends of the axis
    (pods per node fixed for the ``nodes`` axis of the few-large and random-shape families)."""
    import math

    lines = []
    if fixed == "pods":
        for pods in PODS:
            row = sorted((n, t) for (n, p), t in times.items() if p == pods)
            if len(row) >= 2:
                (n0, t0), (n1, t1) = row[0], row[-1]
                k = math.log(t1 / t0) / math.log(n1 / n0)
                lines.append(f"{label}: {pods} pods, {n0} -> {n1} nodes: x{t1 / t0:.1f} (time ~ nodes^{k:.2f})")
    elif fixed == "per-node":
        for per_node in sorted({p // n for n, p in times}):
            row = sorted((n, t) for (n, p), t in times.items() if p == n * per_node)
            if len(row) >= 2:
                (n0, t0), (n1, t1) = row[0], row[-1]
                k = math.log(t1 / t0) / math.log(n1 / n0)
                lines.append(
                    f"{label}: {per_node} pod(s) per node, {n0} -> {n1} nodes: x{t1 / t0:.1f} (time ~ nodes^{k:.2f})"
                )
    else:
        for nodes in NODES:
            row = sorted((p, t) for (n, p), t in times.items() if n == nodes)
            if len(row) >= 2:
                (p0, t0), (p1, t1) = row[0], row[-1]
                k = math.log(t1 / t0) / math.log(p1 / p0)
                lines.append(f"{label}: {nodes} nodes, {p0} -> {p1} pods: x{t1 / t0:.1f} (time ~ pods^{k:.2f})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="a table for BENCHMARKS.md")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all three")
    args = parser.parse_args(argv)
    families = args.family or list(FAMILIES)
    print(f"Python {platform.python_version()} on {platform.machine()}, process time of {args.repeat} runs")
    header = ("family", "nodes", "pods", "situation", "median ms", "worst ms", "decision", "shed", "refused", "cut")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("{:>12} {:>6} {:>7} {:>9} {:>9} {:>9} {:>15} {:>5} {:>8} {:>4}".format(*header))
    times: dict[tuple[str, str], dict[tuple[int, int], float]] = {}
    slowest = (0.0, "")
    for family in families:
        for nodes, pods in FAMILIES[family]:
            for situation in SITUATIONS:
                median, worst, result = time_plan(family, nodes, pods, situation, args.repeat)
                times.setdefault((family, situation), {})[(nodes, pods)] = median
                slowest = max(slowest, (worst, f"{family} {nodes} nodes {pods} pods {situation}"))
                cells = (family, nodes, pods, situation, f"{median * 1000:.1f}", f"{worst * 1000:.1f}")
                rest = (result.decision.value, len(result.actions), len(result.refused), cut(result))
                if args.markdown:
                    print("| " + " | ".join(str(c) for c in (*cells, *rest)) + " |", flush=True)
                else:
                    print(
                        "{:>12} {:>6} {:>7} {:>9} {:>9} {:>9} {:>15} {:>5} {:>8} {:>4}".format(*cells, *rest),
                        flush=True,
                    )
    print()
    for (family, situation), figures in times.items():
        label = f"{family} {situation}"
        if family == "synthetic":
            print(growth(figures, label, "pods"))
            print(growth(figures, label, "nodes"))
        else:
            print(growth(figures, label, "per-node"))
    print(f"\nslowest plan: {slowest[0] * 1000:.0f} ms ({slowest[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
