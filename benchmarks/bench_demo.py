#!/usr/bin/env python3
"""How fast ``piclusterd demo`` runs flat out (``--speed 0``): simulated hours per wall second. A script.

    .venv/bin/python benchmarks/bench_demo.py [--outage storm-2am]

Every reference cluster through one outage with every node's real code, the fake API server on loopback
and real HTTP between them (``cluster_demo.run_cluster_demo``); the timeline printed is discarded. The
demo's default ``--speed 600`` asks for 600 simulated seconds per second, 0.17 h/s: a figure above that
means the default speed is kept.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time

from piclusterd.sim.cluster_demo import clusters, run_cluster_demo
from piclusterd.sim.simulator import OUTAGES


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", choices=sorted(OUTAGES), default="storm-2am")
    args = parser.parse_args(argv)
    outage = OUTAGES[args.outage]
    print(f"Python {platform.python_version()} on {platform.machine()}, outage {outage.name}")
    print("| cluster | simulated | wall (s) | simulated h / s | power-offs |")
    print("|---|---|---|---|---|")
    for cluster in clusters():
        start = time.perf_counter()
        figures = run_cluster_demo(outage, 0, io.StringIO(), cluster=cluster)
        wall = time.perf_counter() - start
        hours = outage.stop_s / 3600
        print(f"| {cluster} | {hours:.2f} h | {wall:.1f} | {hours / wall:.2f} | {figures.power_offs} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
