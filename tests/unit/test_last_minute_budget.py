"""Issue 19, finding 3 / item 2: one budget for the last minute, and check-config says where it falls short."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from piclusterd.config.last_minute import last_minute_report, own_budget
from piclusterd.config.parse import parse_config
from piclusterd.core.cluster_view import ClusterView, Node, Pod
from piclusterd.core.kubelet_shutdown import KubeletShutdown
from piclusterd.core.last_minute_budget import (
    ReserveVerdict,
    check_reserve,
    cluster_last_minute,
    full_shutdown_turn_s,
    grace_periods,
    last_minute_budget,
    pods_time_s,
    self_drain_seconds,
)
from piclusterd.testing.daemon_process import installed_script


def config(**shutdown: object) -> object:
    return parse_config(
        {"node": {"name": "pi1"}, "shutdown": {"k3s_config": "/nonexistent/k3s.yaml", **shutdown}}, "t.toml"
    )


def test_pods_end_non_critical_then_critical_so_the_largest_of_each_add() -> None:
    assert pods_time_s([(10, False), (30, False), (20, True), (5, True)]) == 50.0
    assert pods_time_s([]) == 0.0


def test_the_budget_adds_its_parts_and_says_where_the_reserve_goes() -> None:
    budget = last_minute_budget(pods_s=50, os_shutdown_s=90, other_turns_s=[60, 150], ups_delay_s=30)
    assert budget.total_s == 380.0
    assert budget.describe() == (
        "pods 50 s (grace periods) + OS shutdown 90 s + 2 other node(s) first 210 s + UPS delay 30 s = 380 s"
    )


@pytest.mark.parametrize(("control_plane", "turn"), [(False, 60.0), (True, 150.0)])
def test_a_control_plane_nodes_turn_includes_its_halt(control_plane: bool, turn: float) -> None:
    assert full_shutdown_turn_s(drain_s=30, ack_s=30, os_shutdown_s=90, control_plane=control_plane) == turn


@pytest.mark.parametrize(
    ("critical_runtime", "verdict"),
    [(300.0, ReserveVerdict.OK), (180.0, ReserveVerdict.OK), (179.0, ReserveVerdict.WARN)],
)
def test_critical_runtime_below_the_budget_warns(critical_runtime: float, verdict: ReserveVerdict) -> None:
    budget = last_minute_budget(pods_s=60, os_shutdown_s=90, ups_delay_s=30)
    (check,) = check_reserve(budget, critical_runtime_s=critical_runtime)
    assert check.verdict is verdict and check.key == "policy.critical_runtime"


def test_the_ups_low_battery_threshold_below_the_budget_warns() -> None:
    budget = last_minute_budget(pods_s=60, os_shutdown_s=90)
    checks = check_reserve(budget, critical_runtime_s=600, lb_runtime_s=100, lb_charge_pct=10)
    assert [c.key for c in checks if c.verdict is ReserveVerdict.WARN] == ["battery.charge.low"]


@pytest.mark.parametrize(
    ("left", "seconds"), [(None, 60.0), (300.0, 60.0), (150.0, 30.0), (100.0, 0.0), (float("nan"), 60.0)]
)
def test_the_self_drain_gets_the_energy_left_after_what_must_follow_it(left: float | None, seconds: float) -> None:
    assert self_drain_seconds(left, cap_s=60, os_shutdown_s=90, ups_delay_s=30) == seconds


def test_the_kubelets_grace_period_is_the_pods_part_where_it_is_on() -> None:
    assert own_budget(config(), KubeletShutdown(120.0, 40.0)).pods_s == 120.0  # type: ignore[arg-type]
    assert own_budget(config(), KubeletShutdown()).pods_s == 60.0  # type: ignore[arg-type]


def test_report_warns_when_critical_runtime_is_short_and_says_the_k3s_lines() -> None:
    short = parse_config(
        {
            "node": {"name": "pi1"},
            "policy": {"critical_runtime": "2m"},
            "shutdown": {
                "ups_shutdown_return": True,
                "full_shutdown_wait": "1m",
                "k3s_config": "/nonexistent/k3s.yaml",
            },
        },
        "t.toml",
    )
    report = last_minute_report(short, KubeletShutdown())
    assert [w.key for w in report.warnings] == ["policy.critical_runtime"]
    text = "\n".join(report.lines())
    assert "shutdown-grace-period=60s" in text and "kubelet-arg+:" in text
    assert "pods 60 s" in text and "OS shutdown 90 s" in text and "UPS delay 10 s" in text


def test_report_warns_when_the_shutdown_command_bypasses_the_kubelets_lock() -> None:
    forced = config(command=["systemctl", "poweroff", "--force"])
    report = last_minute_report(forced, KubeletShutdown(60.0, 30.0))  # type: ignore[arg-type]
    assert any("without logind" in note for note in report.notes)


def test_the_leaders_last_minute_holds_every_other_nodes_turn() -> None:
    view = ClusterView(
        nodes=(
            Node("pi1", 4000, 4 << 30, labels={"node-role.kubernetes.io/control-plane": "true"}),
            Node("pi2", 4000, 4 << 30),
            Node("pi3", 4000, 4 << 30),
        ),
        pods=(
            Pod("default", "db-0", "pi1", owner_kind="StatefulSet", labels={"picluster.io/critical": "true"}),
            Pod("default", "web-0", "pi2", owner_kind="ReplicaSet"),
        ),
    )
    snapshot = {
        "items": [
            {
                "kind": "Pod",
                "metadata": {"name": "db-0", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 120},
            }
        ]
    }
    found = cluster_last_minute(
        view,
        grace_periods(snapshot),
        critical_priority=1_000_000,
        os_shutdown_s=90,
        drain_s=30,
        ack_s=30,
        ups_delay_s=30,
    )
    assert found is not None
    leader, budget = found
    assert leader == "pi1"  # its 120 s database, then two workers' 60 s turns before it
    assert (budget.pods_s, budget.others_first_s, budget.total_s) == (120.0, 120.0, 360.0)


def test_check_config_prints_the_method_and_the_budget(tmp_path: Path) -> None:
    # On the old code check-config said only "OK": nothing about how the pods end or the last minute.
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        '[node]\nname = "pi1"\n[policy]\ncritical_runtime = "2m"\n'
        f'[shutdown]\nfull_shutdown_wait = "1m"\nk3s_config = "{tmp_path}/k3s.yaml"\n'
    )
    done = subprocess.run(
        [installed_script("piclusterd"), "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # warnings, never a refusal: a daemon that won't start protects nothing
    assert "pods before a halt: self-drain" in done.stdout
    assert "warning: policy.critical_runtime: critical_runtime 120 s is less than the last minute needs" in done.stdout


def test_plan_shows_where_the_reserve_goes() -> None:
    clinic = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
    done = subprocess.run(
        [installed_script("piclusterctl"), "plan", "--snapshot", str(clinic), "--battery-wh", "84", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    import json

    last = json.loads(done.stdout)["last_minute"]
    # Five Pis: four turns before the leader's own (three control-plane nodes halt in theirs), at the timeouts.
    assert last["others_first_s"] == 4 * 60 + 3 * 90
    assert last["budget_s"] == last["pods_s"] + 90 + last["others_first_s"]
    assert last["covered"] is False  # the defaults' 5 min do not cover the worst case: said, not hidden
