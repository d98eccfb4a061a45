#!/usr/bin/env python3
"""How long plan() takes with per-node batteries, where a third of the nodes run short. A script, not a test.

    .venv/bin/python benchmarks/bench_per_node.py [--repeat 3]

Clusters come from piclusterd.testing.clusters.synthetic_cluster (Pi 4B, POWER_OFF_ON_HALT); every node
lives on its own 21.6 Wh HAT battery, one in three at 25 % (short of the 2 h target), the others full. The
per-node step places the short nodes' pods with one packer for the whole plan, re-packing from scratch only
for a short node refused for lack of room.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

from piclusterd.core.node_batteries import NodeBatteries, NodeBattery, Topology
from piclusterd.core.planner import PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, NodePowerConfig, PiModel, PowerConfig, PowerSituation, SupplyKind
from piclusterd.testing.clusters import synthetic_cluster

SIZES = [(10, 100), (30, 900), (100, 3_000), (300, 9_000)]
HAT = BatterySpec(21.6, 0.8, SupplyKind.DC, shutdown_charge_pct=10.0, shutdown_runtime_s=300.0)
POLICY = PlannerPolicy(target_runtime_s=2 * 3600.0)
POWER = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# Python {platform.python_version()} on {platform.machine()}, median of {args.repeat}")
    print(f"{'nodes':>6}{'pods':>7}{'short':>7}{'shed':>6}{'refused':>9}{'wall s':>9}")
    for nodes, pods in SIZES:
        view = synthetic_cluster(nodes, pods)
        hardware = PowerConfig(
            nodes={n.name: NodePowerConfig(model=PiModel.PI4B, power_off_on_halt=True) for n in view.nodes}
        )
        charges = {n.name: NodeBattery(n.name, 25.0 if i % 3 == 0 else 100.0, True) for i, n in enumerate(view.nodes)}
        batteries = NodeBatteries(Topology.PER_NODE, HAT, charges)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = plan(view, POWER, BatterySpec(1000.0), POLICY, 100.0, hardware=hardware, node_batteries=batteries)
            times.append(time.perf_counter() - start)
        short = sum(1 for i in range(nodes) if i % 3 == 0)
        print(
            f"{nodes:>6}{pods:>7}{short:>7}{len(result.actions):>6}{len(result.refused):>9}"
            f"{statistics.median(times):>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
