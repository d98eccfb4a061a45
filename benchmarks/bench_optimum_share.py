#!/usr/bin/env python3
"""Every reference storm's share of the physical optimum, stop_work off and on: BENCHMARKS.md's issue-16 table.

    .venv/bin/python benchmarks/bench_optimum_share.py

Each ``examples/scenarios/<cluster>-<outage>.toml`` run as ``piclusterctl simulate`` runs it (the file's own
``[simulate]`` settings, piclusterd's column, the longest failure), once with the simulator's default
``stop_work`` (off: the leader stops no work yet) and once with ``stop_work=True``. Simulated, so the figures
are exact on any machine. Exits 1 if a storm the battery cannot outlast is under 95 % with ``stop_work`` on.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from piclusterd.core.durations import format_duration
from piclusterd.sim.simulate_command import load_simulation
from piclusterd.sim.simulator import OutageFigures, Policy, simulate

SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
GOAL = 0.95


def _share(failure: OutageFigures) -> str:
    if failure.survived:
        return "outlasted the outage"
    return f"{100.0 * failure.runtime_s / failure.optimum_runtime_s:.1f} %"


def main() -> int:
    short: list[str] = []
    print(
        "| cluster | outage | runtime reached (stop_work off / on) | physical optimum | vs optimum, stop_work off "
        "| vs optimum, stop_work on | full shutdowns (off / on) | battery outlasted the outage |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for cluster in ("clinic-5", "district-10", "solar-3"):
        for outage in ("blip", "brownout", "storm", "long-night"):
            loaded = load_simulation(SCENARIOS / f"{cluster}-{outage}.toml")
            assert loaded.outage is not None
            runs = [
                simulate(
                    loaded.scenario, loaded.outage, Policy.PICLUSTERD, dataclasses.replace(loaded.settings, stop_work=s)
                )
                for s in (False, True)
            ]
            mains = [r.summary.main_outage for r in runs]
            off, on = mains
            assert off is not None and on is not None
            if not on.survived and on.runtime_s < GOAL * on.optimum_runtime_s:
                short.append(f"{cluster} {loaded.outage.name}")
            print(
                f"| {cluster} | {loaded.outage.name} "
                f"| {format_duration(off.runtime_s)} / {format_duration(on.runtime_s)} "
                f"| {format_duration(off.optimum_runtime_s)} | {_share(off)} | {_share(on)} "
                f"| {runs[0].summary.full_shutdowns} / {runs[1].summary.full_shutdowns} "
                f"| {' / '.join(sorted({'yes' if m.survived else 'no' for m in (off, on)}))} |"
            )
    if short:
        print(f"under {GOAL:.0%} of the optimum with stop_work on: {', '.join(short)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
