"""The long night: the battery goes critical, the leader powers the whole cluster off in order (workers, then
the control plane one at a time, itself last), every host exactly once; mains returns, the UPS's output comes
back and every host boots (the test does that: here the UPS powers the Pis, nothing wakes them); the new
leader undoes the full shutdown, the cluster is back where it started, and the outage is summed up once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .cluster import running_cluster
from .faults import Faults, event_wall
from .test_storm import start_state

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

CONTROL_PLANE = {"pi1", "pi2", "pi3"}  # clinic-5's servers (etcd); pi4 and pi5 are agents
#: A small target, so that nothing is shed before the battery is critical: the night is the full shutdown's.
#: full_shutdown_wait covers the whole order here (the harness marks a Node NotReady as soon as it is off).
LONG_NIGHT = {
    "cluster": {"target_runtime": '"10m"'},
    "shutdown": {"full_shutdown_wait": '"90s"', "drain_timeout": '"20s"'},
}
CRITICAL_UPS = {"ups.status": "OB LB DISCHRG", "battery.charge": "12", "battery.runtime": "150"}
BACK_UPS = {"ups.status": "OL CHRG", "battery.charge": "100", "battery.runtime": "7200"}


def test_long_night_full_shutdown_in_order_then_every_host_boots_and_the_cluster_is_back(tmp_path: Path) -> None:
    with running_cluster(tmp_path, config_extra=LONG_NIGHT) as cluster:
        faults = Faults(cluster)
        before = start_state(cluster)
        faults.mains_fail()
        cluster.ups.set_many(CRITICAL_UPS)
        started = cluster.wait_event("shutdown.cluster_started", timeout_s=60)
        leader = str(started["host"])
        cluster.wait_until(
            "every host powered off",
            lambda: (
                len(cluster.shutdown_nodes()) == len(cluster.node_names)
                and all(h.powered_off for h in cluster.hosts.values())
            ),
            240,
        )
        order = cluster.shutdown_nodes()
        assert Counter(order) == Counter(cluster.node_names)  # each host's local shutdown exactly once
        acquired = [str(e["host"]) for e in cluster.named("leader.acquired")]
        assert order[-1] == leader, f"the leader last: order {order}, leader {leader}, Lease acquired by {acquired}"
        # Workers, then the control plane; the leader is last even when it is a worker (whoever wins the Lease).
        workers = [i for i, name in enumerate(order) if name not in CONTROL_PLANE and name != leader]
        servers = [i for i, name in enumerate(order) if name in CONTROL_PLANE and name != leader]
        assert workers and servers and max(workers) < min(servers)
        assert len(cluster.named("shutdown.cluster_started")) == 1
        asked = sorted(e["target"] for e in cluster.named("node.poweroff_requested"))
        assert asked == sorted(set(cluster.node_names) - {leader})  # every peer asked once, not the leader

        faults.mains_return()
        cluster.ups.set_many(BACK_UPS)
        for name in cluster.node_names:  # the UPS's output is back: every Pi boots
            cluster.power_on(name)
        summary_event = cluster.wait_event("outage.summary", timeout_s=120)
        cluster.wait_until("the start state", lambda: start_state(cluster) == before, 60)
        assert len(cluster.named("outage.summary")) == 1
        assert event_wall(summary_event) > event_wall(started)
        assert cluster.api.get_object("ConfigMap", "piclusterd", "piclusterd-outage") is None
        assert cluster.shutdown_nodes() == order  # nothing went down again after the boot

        summary = faults.summary("long night", deliberate_off=set())
        summary.report(tmp_path)
        summary.assert_invariants()
        print(f"[long night: order {order}, leader {leader}, outage.summary {dict(summary_event)}]", flush=True)
