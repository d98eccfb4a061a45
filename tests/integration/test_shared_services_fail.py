"""The shared services fail during an outage: the API server (no destructive step without a fresh lease,
critical nodes still protect themselves) and upsd (NUT's fail-safe rule, no shedding on stale data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cluster import REACHABLE_TARGET, NetnsCluster, running_cluster
from .faults import Faults, event_wall

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

DESTRUCTIVE = ("node.cordoned", "node.drain_started", "node.drained", "node.poweroff_requested", "node.poweroff_ssh")


def every_host_says(cluster: NetnsCluster, event: str, since: float, count: int = 1, **fields: object) -> bool:
    return all(
        sum(
            1
            for e in cluster.events(name)
            if e["event"] == event and event_wall(e) >= since and all(e.get(k) == v for k, v in fields.items())
        )
        >= count
        for name in cluster.node_names
    )


def test_api_unreachable_no_destructive_step_and_critical_nodes_shut_down(tmp_path: Path) -> None:
    with running_cluster(tmp_path, config_extra={"cluster": {"target_runtime": '"2h40m"'}}) as cluster:
        faults = Faults(cluster)
        old_leader = cluster.leader()
        cut = faults.stop_api()
        faults.mains_fail()
        cluster.wait_until(
            "every host on battery", lambda: every_host_says(cluster, "power.state_changed", cut.wall, new="on_battery")
        )
        lost = cluster.wait_event("leader.lost", lambda e: e["host"] == old_leader and event_wall(e) > cut.wall)
        assert lost["host"] == old_leader
        # Well past the grace period, every host has kept polling and failing to reach the API, twice more.
        grace_over = cluster.named("power.state_changed", host=old_leader, new="on_battery")[-1]
        cluster.wait_until(
            "every host failing to reach the API after the grace period",
            lambda: every_host_says(cluster, "cluster.api_failed", event_wall(grace_over) + 4, count=2),
        )
        after_cut = [e for e in cluster.events() if e["event"] in DESTRUCTIVE and event_wall(e) > cut.wall]
        assert after_cut == []

        faults.garbage_from_ups({"battery.charge": "4", "battery.runtime": "60", "ups.status": "OB DISCHRG LB"})
        cluster.wait_until("every host shut down", lambda: sorted(cluster.shutdown_nodes()) == cluster.node_names)
        for name in cluster.node_names:
            [started] = cluster.named("shutdown.local_started", host=name)
            assert "power-off requested" not in started["reason"], started  # its own decision, not a leader's
            assert cluster.named("power.state_changed", host=name, new="critical")
        assert [e for e in cluster.events() if e["event"] in DESTRUCTIVE and event_wall(e) > cut.wall] == []
        faults.start_api()

        summary = faults.summary("API server unreachable")
        summary.report(tmp_path)
        summary.assert_invariants()


def test_api_back_shedding_starts_only_after_the_lease_is_renewed(tmp_path: Path) -> None:
    with running_cluster(tmp_path, config_extra={"cluster": {"target_runtime": REACHABLE_TARGET}}) as cluster:
        faults = Faults(cluster)
        cut = faults.stop_api()
        failed = faults.mains_fail()
        cluster.wait_until(
            "every host failing to reach the API, past the grace period",
            lambda: every_host_says(cluster, "cluster.api_failed", failed.wall + 4, count=2),
        )
        back = faults.start_api()
        met = cluster.wait_event("plan.decided", lambda e: e["decision"] == "target_met", timeout_s=120)

        actions = sorted((e for e in cluster.events() if e["event"] in DESTRUCTIVE), key=event_wall)
        assert actions and event_wall(actions[0]) > back.wall  # nothing while the API was away
        leader = str(actions[0]["host"])
        renewed = [e for e in cluster.named("leader.acquired", host=leader) if event_wall(e) > cut.wall]
        assert renewed and event_wall(renewed[0]) < event_wall(actions[0])  # a fresh lease first
        assert sorted(cluster.shutdown_nodes()) == sorted(met["in_progress"])

        summary = faults.summary("API server back during an outage")
        summary.report(tmp_path)
        summary.assert_invariants()


def test_upsd_dies_on_battery_every_node_fails_safe_and_nothing_is_shed(tmp_path: Path) -> None:
    # A grace period longer than the test's reaction: the leader has not started shedding when upsd dies.
    with running_cluster(tmp_path, config_extra={"cluster": {"on_battery_grace": '"60s"'}}) as cluster:
        faults = Faults(cluster)
        failed = faults.mains_fail()
        cluster.wait_until(
            "every host on battery",
            lambda: every_host_says(cluster, "power.state_changed", failed.wall, new="on_battery"),
        )
        died = faults.stop_upsd()
        cluster.wait_until("every host shut down", lambda: sorted(cluster.shutdown_nodes()) == cluster.node_names)
        for name in cluster.node_names:
            [alert] = [e for e in cluster.named("power.source_lost", host=name) if event_wall(e) > died.wall]
            assert alert["level"] == "warning" and alert["last_state"] == "on_battery"
            [critical] = cluster.named("power.state_changed", host=name, new="critical")
            assert "while on battery (fail-safe: OB LB)" in critical["reason"]
            assert event_wall(alert) < event_wall(critical)
            [started] = cluster.named("shutdown.local_started", host=name)
            assert event_wall(started) > died.wall
        # No shedding on stale data: nothing destructive before the fail-safe's critical. What follows critical
        # is upsmon's FSD done in order (the leader's orderly full shutdown, or each node alone): protection,
        # not shedding, and no plan ever named a node to shed.
        first_critical = min(event_wall(e) for e in cluster.named("power.state_changed", new="critical"))
        early = [e for e in cluster.events() if e["event"] in DESTRUCTIVE and event_wall(e) < first_critical]
        assert early == []
        assert [e for e in cluster.named("plan.decided") if e.get("shed")] == []
        for started in cluster.named("shutdown.cluster_started"):
            assert "fail-safe" in str(started["reason"])

        summary = faults.summary("upsd dies on battery")
        summary.report(tmp_path)
        summary.assert_invariants()
