#!/usr/bin/env python3
"""How long plan() takes, from 10 nodes / 100 pods to 1,000 nodes / 30,000 pods. A script, not a test.

    .venv/bin/python benchmarks/bench_planner.py [--repeat 5] [--markdown]

Clusters come from piclusterd.testing.clusters.synthetic_cluster (3 k3s servers, the rest agents, 4 CPU /
8 GB nodes, one DaemonSet pod per node, Deployment pods of 50-400m, a fifth of them critical). Each size is
planned in three situations, all on battery past the grace period at 100 % charge with a 4 h target:

- ``reach``: with every node on the battery lasts 70 % of the target, so a third or so of the nodes must go
  (fewest-nodes search);
- ``escalate``: it lasts 20 % of the target, which cannot be reached (shed as much as is safe, until the
  pods no longer fit);
- ``met``: it lasts 150 % of the target: nothing to shed (the plan still computes the physical optimum).

The time is the median of ``--repeat`` runs of the whole plan() call (both searches: the plan and the
physical optimum), excluding building the cluster. Python's own speed dominates: compare figures only on
the same machine.
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
from piclusterd.testing.clusters import synthetic_cluster

NODES = (10, 30, 100, 300, 1_000)
PODS = (100, 1_000, 10_000, 30_000)
MAX_PODS_PER_NODE = 100  # a kubelet runs at most 110; more per node is no cluster anyone has
SIZES = [(nodes, pods) for nodes in NODES for pods in PODS if pods <= MAX_PODS_PER_NODE * nodes]
SITUATIONS = ("reach", "escalate", "met")


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


def time_plan(nodes: int, pods: int, situation: str, repeat: int) -> tuple[float, Plan]:
    view = synthetic_cluster(nodes, pods, seed=nodes)
    hardware = hardware_for(view)
    battery = battery_for(view, hardware, situation)
    runs = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = plan(view, POWER, battery, POLICY, 60.0, hardware=hardware)
        runs.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(runs), result


def growth(times: dict[tuple[int, int], float], situation: str, fixed: str) -> str:
    """How the time grows along one axis: the exponent k of time ~ size^k between the ends of the axis."""
    import math

    lines = []
    if fixed == "pods":
        for pods in PODS:
            row = sorted((n, t) for (n, p), t in times.items() if p == pods)
            if len(row) >= 2:
                (n0, t0), (n1, t1) = row[0], row[-1]
                k = math.log(t1 / t0) / math.log(n1 / n0)
                lines.append(f"{situation}: {pods} pods, {n0} -> {n1} nodes: x{t1 / t0:.1f} (time ~ nodes^{k:.2f})")
    else:
        for nodes in NODES:
            row = sorted((p, t) for (n, p), t in times.items() if n == nodes)
            if len(row) >= 2:
                (p0, t0), (p1, t1) = row[0], row[-1]
                k = math.log(t1 / t0) / math.log(p1 / p0)
                lines.append(f"{situation}: {nodes} nodes, {p0} -> {p1} pods: x{t1 / t0:.1f} (time ~ pods^{k:.2f})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="a table for BENCHMARKS.md")
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()}, median of {args.repeat} runs")
    header = ("nodes", "pods", "situation", "plan ms", "decision", "shed", "refused")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("{:>6} {:>7} {:>9} {:>9} {:>15} {:>5} {:>8}".format(*header))
    times: dict[str, dict[tuple[int, int], float]] = {situation: {} for situation in SITUATIONS}
    for nodes, pods in SIZES:
        for situation in SITUATIONS:
            seconds, result = time_plan(nodes, pods, situation, args.repeat)
            times[situation][(nodes, pods)] = seconds
            cells = (nodes, pods, situation, f"{seconds * 1000:.1f}", result.decision.value)
            counts = (len(result.actions), len(result.refused))
            if args.markdown:
                print("| " + " | ".join(str(c) for c in (*cells, *counts)) + " |", flush=True)
            else:
                print(
                    f"{nodes:>6} {pods:>7} {situation:>9} {cells[3]:>9} {cells[4]:>15} {counts[0]:>5} {counts[1]:>8}",
                    flush=True,
                )
    print()
    for situation in SITUATIONS:
        print(growth(times[situation], situation, "pods"))
        print(growth(times[situation], situation, "nodes"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
