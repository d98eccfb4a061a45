"""The leader is SIGKILLed in the middle of a drain: another node takes the lease within its duration and
finishes (or undoes) that drain exactly once: no node powered off twice, none left cordoned by us."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cluster import REACHABLE_TARGET, running_cluster
from .faults import Faults, event_wall

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

TARGET = {"cluster": {"target_runtime": REACHABLE_TARGET}}


def test_leader_killed_mid_drain_new_leader_finishes_it_once(tmp_path: Path) -> None:
    # Replacements take 6 s to turn Ready, so the drain (which waits for them) is still under way at the kill.
    with running_cluster(tmp_path, config_extra=TARGET, ready_delay_s=6.0) as cluster:
        faults = Faults(cluster)
        leader = cluster.leader()
        assert leader is not None
        faults.mains_fail()
        started = cluster.wait_event("node.drain_started", lambda e: e["host"] == leader)
        victim = str(started["target"])
        killed = faults.kill_daemon(leader)
        record = json.loads(cluster.annotations(victim)["picluster.io/shed"])
        assert record["leader"] == leader  # the intent was written on the Node before the step

        takeover = cluster.wait_event(
            "leader.acquired", lambda e: e["host"] != leader and event_wall(e) > killed.wall, timeout_s=30
        )
        resumed = cluster.wait_event(
            "node.drain_resumed" if record["phase"] == "draining" else "node.poweroff_resumed",
            lambda e: e["target"] == victim,
        )
        # The node that took over resumes (under heavy load the lease may pass on once more: never to the dead).
        assert resumed["host"] != leader and event_wall(resumed) >= event_wall(takeover)
        cluster.wait_event("node.powered_off", lambda e: e["target"] == victim and e["host"] != leader)
        cluster.wait_event("plan.decided", lambda e: e["decision"] == "target_met", timeout_s=120)

        assert cluster.shutdown_nodes().count(victim) == 1
        requests = {e["request_id"] for e in cluster.named("node.poweroff_requested", target=victim)}
        assert len(requests) == 1  # one request id for the victim, whoever asked

        # Nothing left half-done: every record becomes a finished power-off. Waited for, not read at once: with
        # graceful termination each drain lasts its pods' grace period, so the target can be met while the
        # last power-off (counted in the plan) is still being confirmed, and the lease may pass on meanwhile.
        cluster.wait_until("every shed record a finished power-off", cluster.shed_records_settled, 60)
        assert cluster.critical_pods_ready()

        summary = faults.summary("leader killed mid-drain", deliberate_off={leader})
        summary.report(tmp_path)
        summary.assert_invariants()
        assert summary.time_to_new_leader_s is not None
