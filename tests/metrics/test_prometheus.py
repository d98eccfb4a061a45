"""Debian's real Prometheus scrapes a real daemon (real upsd), and promtool checks and fires the alert rules."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "piclusterd-rules.yml"
RULE_TESTS = Path(__file__).with_name("piclusterd-rules.test.yml")
DASHBOARD = REPO / "deploy" / "grafana" / "piclusterd-dashboard.json"

#: Every family the daemon exports (docs/metrics.md lists the same).
FAMILIES = {
    "piclusterd_info",
    "piclusterd_power_state",
    "piclusterd_ups_data_ok",
    "piclusterd_battery_charge_percent",
    "piclusterd_runtime_estimate_seconds",
    "piclusterd_load_watts",
    "piclusterd_on_battery_seconds",
    "piclusterd_local_shutdown_started",
    "piclusterd_cluster_enabled",
    "piclusterd_leader",
    "piclusterd_nodes_shed",
    "piclusterd_plan_projected_runtime_seconds",
    "piclusterd_plan_runtime_without_shedding_seconds",
    "piclusterd_target_runtime_seconds",
    "piclusterd_critical_runtime_seconds",
    "piclusterd_drains_total",
    "piclusterd_power_offs_total",
    "piclusterd_power_ons_total",
    "piclusterd_nodes_restored_total",
    "piclusterd_refusals_total",
    "piclusterd_api_errors_total",
    "piclusterd_planner_duration_seconds_count",
    "piclusterd_last_outage_energy_wh",
    "piclusterd_last_outage_duration_seconds",
    "piclusterd_last_outage_critical_downtime_seconds",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt install prometheus (Debian's; .ci/run installs it)")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_promtool_accepts_the_shipped_alert_rules() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_the_alert_rules_fire_on_a_recorded_outage_and_stay_quiet_otherwise() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", RULE_TESTS.name], capture_output=True, text=True, cwd=RULE_TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_and_the_dashboard_use_only_metrics_the_daemon_exports() -> None:
    used = set(re.findall(r"piclusterd_[a-z_]+", RULES.read_text()))
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert expressions, "the dashboard has no queries"
    used |= {name for expr in expressions for name in re.findall(r"piclusterd_[a-z_]+", expr)}
    exported = FAMILIES | {"piclusterd_planner_duration_seconds_bucket", "piclusterd_planner_duration_seconds_sum"}
    assert used - exported == set()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real Prometheus scraping 127.0.0.1:<port> every second; yields (its URL, the port to serve on)."""
    target = free_port()
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{RULES}']\n"
        f"scrape_configs:\n  - job_name: piclusterd\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{web}", target
    finally:
        process.terminate()
        process.wait(timeout=30)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(url: str, promql: str, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """The query's result once it is not empty (Prometheus scrapes every second; start-up takes a few)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = query(url, promql)
        except OSError:
            result = []
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus had no result for {promql} after {timeout_s:.0f} s")
        time.sleep(0.5)


def test_a_real_prometheus_scrapes_every_metric_of_a_running_daemon(
    tmp_path: Path, prometheus: tuple[str, int]
) -> None:
    url, port = prometheus
    variables = {**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600"}
    with NutServer(variables) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(
            '[node]\nname = "pi1"\n'
            f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\npoll_interval = "0.2s"\n'
            f'[daemon]\nruntime_dir = "{tmp_path / "run"}"\n'
            f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
        )
        with DaemonProcess(config) as daemon:
            serving = daemon.wait_for("metrics.serving")
            assert serving["address"] == f"http://127.0.0.1:{port}/metrics"
            daemon.wait_for("power.state_changed", lambda e: e.get("new") == "online")
            assert wait_for(url, 'up{job="piclusterd"} == 1')
            names = {series["metric"]["__name__"] for series in wait_for(url, '{__name__=~"piclusterd_.+"}')}
            assert FAMILIES - names == set()
            ups.set_many({"ups.status": "OB DISCHRG", "battery.charge": "63", "battery.runtime": "2460"})
            daemon.wait_for("power.state_changed", lambda e: e.get("new") == "on_battery")
            (charge,) = wait_for(url, "piclusterd_battery_charge_percent == 63")
            assert charge["metric"]["instance"] == f"127.0.0.1:{port}"
            wait_for(url, 'piclusterd_power_state{state="on_battery"} == 1')
            # The shipped rule sees it too, in a real Prometheus (pending: it needs the state for 1 minute).
            (alert,) = wait_for(url, 'ALERTS{alertname="PiclusterOnBattery"}')
            assert alert["metric"]["alertstate"] == "pending"
