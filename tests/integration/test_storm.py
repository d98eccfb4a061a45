"""Storm: mains fails, the leader sheds to target, critical pods stay Ready on the survivors; mains returns,
the leader's restore policy wakes the shed hosts (Wake-on-LAN to their NICs' firmware), they boot and rejoin,
and the cluster is back where it started: all automatic."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from .cluster import REACHABLE_TARGET, NetnsCluster, running_cluster
from .faults import Faults, event_wall

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

#: Restore's timings, short for the test (defaults 2 min and 30 s): mains must hold RESTORE_AFTER_S before the
#: first power-on, then one every RESTORE_STAGGER_S.
RESTORE_AFTER_S = 10.0
RESTORE_STAGGER_S = 3.0
#: A target that shedding some (not all) of clinic-5's nodes meets: the plan ends in target_met.
TARGET = {
    "cluster": {"target_runtime": REACHABLE_TARGET},
    "restore": {"restore_after": f'"{RESTORE_AFTER_S:g}s"', "restore_stagger": f'"{RESTORE_STAGGER_S:g}s"'},
}
#: Event times are the daemons' (wall, to the microsecond) and the NICs' (when the packet arrived): a lower bound
#: the leader keeps on its own clock may look this much shorter across them.
CLOCK_SLACK_S = 0.25


#: Records that are live data (each node's power) or held for a while (a power-on, for restore_after).
LIVE_RECORDS = ("picluster.io/power", "picluster.io/power-on")


def start_state(cluster: NetnsCluster) -> dict[str, Any]:
    """What must be the same after the storm: readiness, cordons and our annotations (not the power record,
    which is live data), and where the critical workloads run (by workload, not pod name)."""
    nodes = {
        name: (
            cluster.ready(name),
            cluster.cordoned(name),
            sorted(k for k in cluster.annotations(name) if k.startswith("picluster.io/") and k not in LIVE_RECORDS),
        )
        for name in cluster.node_names
    }
    return {"nodes": nodes, "critical_ready": cluster.critical_pods_ready()}


def test_storm_sheds_to_target_keeps_critical_pods_and_returns_to_the_start(tmp_path: Path) -> None:
    with running_cluster(tmp_path, config_extra=TARGET, wake_on_lan=True) as cluster:
        faults = Faults(cluster)
        before = start_state(cluster)
        assert before["critical_ready"] and all(
            ready and not cordoned for ready, cordoned, _ in before["nodes"].values()
        )

        faults.mains_fail()
        plan = cluster.wait_event("plan.decided", lambda e: e["decision"] == "shed_to_target" and bool(e["shed"]))
        # Each step is replanned on the UPS's new load, so the final set is the last plan's, not the first's.
        met = cluster.wait_event("plan.decided", lambda e: e["decision"] == "target_met", timeout_s=120)
        shed = list(met["in_progress"])
        assert 0 < len(shed) < len(cluster.node_names)

        # A power-off is confirmed when the node turns NotReady, after the node-monitor grace period.
        for name in shed:
            cluster.wait_event("node.powered_off", lambda e, name=name: e["target"] == name, timeout_s=120)
        assert sorted(cluster.shutdown_nodes()) == sorted(shed)  # exactly the planned nodes, once each
        powered_off = cluster.named("node.powered_off")
        assert sorted(e["target"] for e in powered_off) == sorted(shed)
        assert all(e["via"] == "agent" for e in powered_off)
        for name in shed:  # drained before powered off, in that order
            steps = [e["event"] for e in sorted(cluster.events(), key=event_wall) if e.get("target") == name]
            assert (
                steps.index("node.drained") < steps.index("node.poweroff_requested") < steps.index("node.powered_off")
            )
            assert cluster.cordoned(name) and '"phase":"powered_off"' in cluster.annotations(name)["picluster.io/shed"]
            assert not cluster.ready(name)
        cluster.wait_until("critical pods Ready on the survivors", cluster.critical_pods_ready, 60)
        survivors = [n for n in cluster.node_names if n not in shed]
        assert not any(cluster.cordoned(n) for n in survivors)
        assert {e["involvedObject"]["name"] for e in cluster.kube_events("PowerShed")} == set(shed)

        assert cluster.wakes == []  # nothing powered on while mains is out
        back = faults.mains_return()
        cluster.wait_event(
            "plan.decided", lambda e: e["decision"] == "hold_online" and event_wall(e) > event_wall(plan)
        )
        # Nobody touches a host from here: the leader's restore sends the magic packets, the NICs boot the hosts.
        cluster.wait_until(
            "every shed node restored",
            lambda: {e["target"] for e in cluster.named("node.restored")} == set(shed),
            60 + RESTORE_AFTER_S + RESTORE_STAGGER_S * len(shed),
        )
        cluster.wait_until("the start state", lambda: start_state(cluster) == before, 60)
        assert {e["involvedObject"]["name"] for e in cluster.kube_events("PowerRestored")} == set(shed)

        requested = sorted(cluster.named("node.power_on_requested"), key=event_wall)
        assert sorted(e["target"] for e in requested) == sorted(shed)  # each shed node once, no other
        assert all(e["method"] == "wol" and e["outcome"] == "sent" for e in requested)
        wakes = cluster.wakes
        assert sorted(w.node for w in wakes) == sorted(shed) and all(w.booted for w in wakes)  # each booted once
        assert [w.node for w in wakes] == [e["target"] for e in requested]
        # None while mains is out, nor before it held restore_after; then one every restore_stagger.
        assert wakes[0].wall >= back.wall + RESTORE_AFTER_S - CLOCK_SLACK_S
        gaps = [later - earlier for earlier, later in pairwise(map(event_wall, requested))]
        assert all(gap >= RESTORE_STAGGER_S - CLOCK_SLACK_S for gap in gaps), gaps
        for event in requested:  # each power-on reached a host that was off, and after it went off
            off = next(e for e in powered_off if e["target"] == event["target"])
            assert event_wall(event) > event_wall(off)
        assert all(cluster.hosts[name].daemon is not None and len(cluster.hosts[name].lives) == 2 for name in shed)

        summary = faults.summary("storm")
        summary.report(tmp_path)
        summary.assert_invariants()
        assert summary.actions["node.powered_off"] == len(shed) == summary.actions["node.restored"]
        print(
            f"[storm: {len(shed)} shed, woken {[round(w.wall - back.wall, 1) for w in wakes]} s after mains returned, "
            f"power-on gaps {[round(g, 1) for g in gaps]} s]",
            flush=True,
        )
