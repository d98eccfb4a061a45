#!/usr/bin/env python3
"""What the planner's work budget costs: plans with a small budget against the brute force. A script, not a test.

    .venv/bin/python benchmarks/bench_budget_gap.py [--cases 400] [--seed 0]

Random clusters of 2 to 6 nodes (k3s servers and agents, one board model, 4 CPU / 4 or 8 GB, up to three
pods of 0.5-2 CPU and 0.5-3 GiB each, some critical, some pinned to SSD nodes), batteries and targets
drawn so that some plans reach the target and some escalate. For each, the brute force of
tests/planner/test_planner_properties.py (every node set, exact placement, runtime computed from scratch)
gives the best safe plan; the planner runs with several budgets. Reported per budget: how many plans were
cut, how many are worse than the best, and by how much (nodes more than the fewest reaching the target;
runtime short of the longest when it cannot be reached). Every plan is checked to be one of the safe sets.
Counts work, not time: the figures are the same on any machine.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "planner"))

from test_planner_properties import Case, TooHard, all_safe_sets

from piclusterd.core.cluster_view import ClusterView, Node, Pod
from piclusterd.core.planner import PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.core.work_budget import PLAN_WORK_UNITS
from piclusterd.testing.clusters import GIB, MIB, make_node, make_pod

BUDGETS = (0, 20, 50, 100, 200, 500, 1_000, 5_000, PLAN_WORK_UNITS)
HARDWARE = PowerConfig(fixed_loads_w={"switch": 4.0})  # the brute force's own hardware


def random_case(rng: random.Random) -> Case:
    n = rng.randint(2, 6)
    servers = rng.randint(0, min(3, n))
    nodes: list[Node] = []
    pods: list[Pod] = []
    for i in range(n):
        ssd = rng.random() < 0.3
        memory = rng.choice((4 * GIB - 300 * MIB, 8 * GIB - 400 * MIB))
        labels = {"picluster.io/pi-model": "pi4b", "picluster.io/power-off-on-halt": "true"}
        if ssd:
            labels["disk"] = "ssd"
        node = make_node(f"n{i}", server=i < servers, tier=rng.randrange(3), memory_b=memory, labels=labels)
        nodes.append(node)
        pods.append(make_pod(f"exporter-{i}", node.name, cpu_m=50, memory_b=64 * MIB, owner_kind="DaemonSet"))
        free_cpu, free_mem = 4000 - 50, memory - 64 * MIB
        for j in range(rng.randint(0, 3)):
            cpu = rng.choice((500, 1000, 1500, 2000))
            mem = rng.choice((512, 1024, 2048, 3072)) * MIB
            if cpu > free_cpu or mem > free_mem:
                continue
            free_cpu -= cpu
            free_mem -= mem
            pods.append(
                make_pod(
                    f"app{rng.randrange(5)}-{i}{j}",
                    node.name,
                    cpu_m=cpu,
                    memory_b=mem,
                    critical=rng.random() < 0.5,
                    node_selector={"disk": "ssd"} if rng.random() < 0.15 else None,
                )
            )
    battery = BatterySpec(
        capacity_wh=rng.choice((20.0, 40.0, 84.0, 150.0)), usable_fraction=0.8, inverter_efficiency=0.85
    )
    policy = PlannerPolicy(target_runtime_s=rng.choice((1, 2, 3, 4, 6)) * 3600.0, min_nodes=rng.randint(1, 2))
    return Case(ClusterView(tuple(nodes), tuple(pods)), battery, 100.0, policy)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rows = {units: {"cut": 0, "worse": 0, "extra_nodes": 0, "short": [], "missed": 0} for units in BUDGETS}
    counted = 0
    while counted < args.cases:
        case = random_case(rng)
        try:
            safe = dict(all_safe_sets(case))
        except TooHard:
            continue
        counted += 1
        target = case.policy.target_runtime_s
        reaching = [len(s) for s, r in safe.items() if r >= target]
        power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=case.charge)
        for units in BUDGETS:
            result = plan(case.view, power, case.battery, case.policy, 10_000.0, hardware=HARDWARE, work_units=units)
            chosen = frozenset(result.nodes_to_shed)
            assert chosen in safe, f"unsafe plan {sorted(chosen)} with {units} units"
            row = rows[units]
            row["cut"] += result.search_cut
            runtime = safe[chosen]
            if reaching:
                if runtime < target:
                    row["worse"] += 1
                    row["missed"] += 1
                elif len(chosen) > min(reaching):
                    row["worse"] += 1
                    row["extra_nodes"] += len(chosen) - min(reaching)
            else:
                best = max(safe.values())
                if runtime < best * (1 - 1e-9):
                    row["worse"] += 1
                    row["short"].append(1 - runtime / best)
    print(f"{counted} random clusters of 2-6 nodes (seed {args.seed}); brute force = every safe node set")
    print(
        "| work units | plans cut | worse than best | target missed though reachable | extra nodes (sum) "
        "| runtime short of best (mean / worst, when escalating) |"
    )
    print("|---|---|---|---|---|---|")
    for units in BUDGETS:
        row = rows[units]
        short = row["short"]
        assert isinstance(short, list)
        gap = f"{100 * sum(short) / len(short):.1f} % / {100 * max(short):.1f} %" if short else "-"
        print(
            f"| {units:,} | {row['cut']} | {row['worse']} ({100 * int(row['worse']) / counted:.1f} %) "  # type: ignore[call-overload]
            f"| {row['missed']} | {row['extra_nodes']} | {gap} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
