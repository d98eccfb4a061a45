"""brownout-flap: mains drops and returns every 5-15 s for a while, then stays on. Churn must be bounded: one
step at a time, each node powered off at most once, a cancelled drain undone, nothing left half-done."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from .cluster import running_cluster
from .faults import Faults, event_wall

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

#: scenarios.md's brownout-flap flaps for 3 minutes; CI flaps for 45 s (3-4 battery spells) to keep the suite short.
FLAP_S = float(os.environ.get("PICLUSTERD_FLAP_SECONDS", "45"))


def test_brownout_flap_bounded_churn(tmp_path: Path) -> None:
    # A grace period shorter than the longer battery spells, so some shedding starts and is cut short.
    extra = {"cluster": {"on_battery_grace": '"8s"', "target_runtime": '"2h40m"'}}
    with running_cluster(tmp_path, config_extra=extra, ready_delay_s=3.0) as cluster:
        faults = Faults(cluster)
        flips = random.Random(8)  # the same sequence every run
        end = time.monotonic() + FLAP_S
        on_battery_spells = 0
        while True:
            faults.mains_fail()
            on_battery_spells += 1
            time.sleep(flips.uniform(5, 15))
            stable = faults.mains_return().wall
            if time.monotonic() >= end:
                break
            time.sleep(flips.uniform(5, 15))
        cluster.wait_event("plan.decided", lambda e: e["decision"] == "hold_online" and event_wall(e) > stable)

        # Mains stable: every record left is a finished power-off; nothing else is cordoned by us.
        cluster.wait_until("no half-done shed left", cluster.shed_records_settled, 60)
        for name in cluster.node_names:
            if "picluster.io/shed" not in cluster.annotations(name):
                assert cluster.ready(name) and not cluster.cordoned(name), name

        powered_off = [e["target"] for e in cluster.named("node.powered_off")]
        assert len(powered_off) == len(set(powered_off))  # each node at most once
        assert sorted(set(powered_off)) == sorted(set(cluster.shutdown_nodes()))
        cancelled = cluster.named("node.shed_cancelled") + cluster.named("node.drain_failed")
        assert len(cancelled) <= on_battery_spells  # at most the one step in flight, per spell
        assert len(cluster.named("node.cordoned")) <= len(powered_off) + len(cancelled)

        summary = faults.summary(f"brownout-flap {FLAP_S:.0f} s ({on_battery_spells} battery spells)")
        summary.report(tmp_path)
        summary.assert_invariants()
        assert len(cluster.node_names) - len(powered_off) >= 1
