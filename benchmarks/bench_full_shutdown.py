#!/usr/bin/env python3
"""The orderly full shutdown of clinic-5 on simulated time: how long each phase takes. A script, not a test.

    .venv/bin/python benchmarks/bench_full_shutdown.py

Runs the real code of five nodes (``ClusterWorld``: daemons, electors, agents, controllers, the outage
coordinator) against the fake API server on a fake clock, 1 s polls, with a scripted UPS that goes
``OB LB`` (critical) at once. Prints, in *simulated* seconds from the battery turning critical, when each node
ran its shutdown command and when the leader asked the UPS to cut its output, then how long (wall clock) the
simulation took. The fake server makes a node NotReady the moment it powers off and a pod go away at once, so
the simulated figures are a floor: on real Pis, each control-plane node adds its shutdown time plus the node
lifecycle controller's 40 s before NotReady, which is what ``[shutdown] full_shutdown_wait`` must cover.
"""

from __future__ import annotations

import datetime
import platform
import sys
import time
from pathlib import Path

from piclusterd.config.settings import ShedSettings
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario

DATA = Path(__file__).resolve().parents[1] / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")


def stamp(event: dict[str, object]) -> float:
    return datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def main() -> int:
    scenario = load_scenario(DATA)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_539_600.0 - 1000.0)
    started = time.perf_counter()
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(DATA)
        server.run_controller_once()
        world = ClusterWorld(server, clock, NAMES, settings)
        world.run(10)
        critical_at = clock.wall()
        world.ups.drive(ups_status="OB DISCHRG LB", battery_charge="18", battery_runtime="200", ups_realpower="14")
        world.run_until(lambda: not any(pi.alive for pi in world.pis.values()), max_s=900)
        order = world.shutdown_order  # within the same simulated second, the order things really happened in
        rows = [
            (stamp(e) - critical_at, order.index(str(e["node"])), f"{e['node']} runs its shutdown command")
            for e in world.events("shutdown.local_started")
        ]
        rows += [
            (stamp(e) - critical_at, order.index(str(e["node"])) - 0.5, f"{e['node']} asks the UPS to cut and return")
            for e in world.events("shutdown.ups_return")
        ]
        world.close()
    elapsed = time.perf_counter() - started
    print(f"clinic-5 full shutdown, {platform.python_implementation()} {platform.python_version()}")
    for seconds, _, what in sorted(rows):
        print(f"  +{seconds:5.0f} s  {what}")
    print(f"  simulated in {elapsed:.1f} s of wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
