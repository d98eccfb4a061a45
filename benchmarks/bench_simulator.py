#!/usr/bin/env python3
"""Simulated hours per second of wall time, per cluster, outage and policy. A script, not a test.

    .venv/bin/python benchmarks/bench_simulator.py [--repeat 3]

Each run is a whole :func:`piclusterd.sim.simulator.simulate` call (the planner every 10 s of simulated time
while on battery, for the piclusterd policy); the figure is simulated hours / the median wall time of
``--repeat`` runs. Python's own speed dominates: compare figures only on the same machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import OUTAGES, Policy, SimSettings, simulate

CLUSTERS = Path(__file__).resolve().parents[1] / "examples" / "clusters"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# Python {platform.python_version()} on {platform.machine()}, median of {args.repeat}")
    print(f"{'cluster':<12}{'outage':<15}{'policy':<13}{'simulated':>10}{'rows':>7}{'wall s':>9}{'sim h/s':>10}")
    for name in ("clinic-5", "district-10", "solar-3"):
        scenario = load_scenario(CLUSTERS / f"{name}.json")
        # solar-3 starts half charged, as its scenario files do (a full LiFePO4 never reaches the HATs).
        settings = SimSettings(initial_charge_pct=50.0 if name == "solar-3" else 100.0)
        for outage in OUTAGES.values():
            for policy in Policy:
                times = []
                rows = 0
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    result = simulate(scenario, outage, policy, settings)
                    times.append(time.perf_counter() - start)
                    rows = len(result.timeline)
                wall = statistics.median(times)
                hours = outage.stop_s / 3600
                print(
                    f"{name:<12}{outage.name:<15}{policy.value:<13}{hours:>9.2f}h{rows:>7}{wall:>9.3f}"
                    f"{hours / wall:>10.0f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
