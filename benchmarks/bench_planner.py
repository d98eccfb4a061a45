#!/usr/bin/env python3
"""How long plan() takes, from 10 nodes / 100 pods to 1,000 nodes / 30,000 pods. A script, not a test.

    .venv/bin/python benchmarks/bench_planner.py [--repeat 5]

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

from piclusterd.cluster import ClusterView
from piclusterd.planner import Plan, PlannerPolicy, plan
from piclusterd.power_model import (
    BatterySpec,
    NodePowerConfig,
    PiModel,
    PowerConfig,
    PowerSituation,
    cluster_load_w,
)
from piclusterd.testing.clusters import synthetic_cluster

SIZES = [(10, 100), (30, 900), (100, 3_000), (300, 9_000), (1_000, 10_000), (1_000, 30_000)]


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()}, median of {args.repeat} runs")
    header = ("nodes", "pods", "situation", "plan ms", "decision", "shed", "refused")
    print("{:>6} {:>7} {:>9} {:>9} {:>15} {:>5} {:>8}".format(*header))
    for nodes, pods in SIZES:
        for situation in ("reach", "escalate", "met"):
            seconds, result = time_plan(nodes, pods, situation, args.repeat)
            print(
                f"{nodes:>6} {pods:>7} {situation:>9} {seconds * 1000:>9.1f} {result.decision.value:>15} "
                f"{len(result.actions):>5} {len(result.refused):>8}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
