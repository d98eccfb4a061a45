"""A leading daemon's metrics, scraped from the real process: the leader, its plan and the planner's time."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from piclusterd.config.cluster_key import create_key_file
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name + "".join(f"/{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_leader_exports_its_lead_its_plan_and_the_planners_time(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    create_key_file(str(tmp_path / "cluster.key"))
    with FakeKubeServer(controller=True) as cluster:
        cluster.load_objects(CLINIC)
        cluster.run_controller_once()
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
            config = tmp_path / "piclusterd.toml"
            config.write_text(
                f'[node]\nname = "pi1"\n[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\n'
                'poll_interval = "0.5s"\nstale_after = "3s"\n[battery]\ncapacity_wh = 84\noverhead_w = 5\n'
                f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\non_battery_grace = "2s"\n'
                f'ssh_key = "{tmp_path}/missing"\npower_off_on_halt = true\nkey_file = "{tmp_path}/cluster.key"\n'
                f'target_runtime = "4h"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
                f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
            )
            with DaemonProcess(config) as daemon:
                daemon.wait_for("leader.acquired", timeout_s=30)
                ups.set("ups.status", "OB DISCHRG")
                decided = daemon.wait_for("plan.decided", lambda e: bool(e["shed"]), timeout_s=30)
                metrics = scrape(port)
    assert metrics["piclusterd_leader"] == 1 and metrics["piclusterd_cluster_enabled"] == 1
    assert metrics["piclusterd_nodes_shed"] == len(set(decided["shed"]) | set(decided["in_progress"])) > 0
    assert metrics["piclusterd_plan_projected_runtime_seconds"] == decided["projected_runtime_s"]
    assert metrics["piclusterd_target_runtime_seconds"] == 4 * 3600
    assert metrics["piclusterd_planner_duration_seconds_count"] >= 1
    assert metrics["piclusterd_power_state/state=on_battery"] == 1
