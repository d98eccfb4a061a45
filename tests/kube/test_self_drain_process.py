"""Issue 19, finding 1, as a user runs it: the installed ``piclusterd run`` on a one-node k3s cluster (the fake
API server, a real upsd) whose battery goes critical. Before its shutdown command, the daemon ends the node's
pods through the API server with their own grace periods; on the old code the shutdown command ran with the
database still Running (systemd-shutdown's SIGTERM would have been its only warning)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.config.cluster_key import create_key_file
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pod
from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut


@pytest.fixture
def cluster() -> Iterator[FakeKubeServer]:
    with FakeKubeServer(controller=True, graceful_deletion=True) as server:
        server.put_object(
            make_node("pi1", cpu="4", memory="4Gi", labels={"node-role.kubernetes.io/control-plane": "true"})
        )
        server.put_object(
            make_pod(
                "records-db-0",
                node="pi1",
                owner=("StatefulSet", "records-db"),
                labels={"picluster.io/critical": "true"},
                grace_period_s=2,
            )
        )
        server.run_controller_once()
        yield server


def test_a_critical_node_ends_its_pods_before_it_powers_off(cluster: FakeKubeServer, tmp_path: Path) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    first = cluster.get_object("Pod", "default", "records-db-0")
    assert first is not None
    first_uid = first["metadata"]["uid"]
    create_key_file(str(tmp_path / "cluster.key"))
    calls = tmp_path / "shutdown-calls"
    k3s = tmp_path / "k3s-config.yaml"
    k3s.write_text("write-kubeconfig-mode: '0644'\n")  # k3s's default: the kubelet's graceful shutdown is off
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(
            f'mode = "enforce"\n[node]\nname = "pi1"\n[ups]\nhost = "{ups.host}"\nport = {ups.port}\n'
            f'name = "{ups.ups_name}"\npoll_interval = "0.5s"\nstale_after = "3s"\n'
            "[battery]\ncapacity_wh = 84\noverhead_w = 5\n"
            f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\non_battery_grace = "2s"\n'
            f'ssh_key = "{tmp_path}/missing"\nkey_file = "{tmp_path}/cluster.key"\n'
            f'[shutdown]\ncommand = ["/bin/sh", "-c", "echo off >> {calls}"]\nfull_shutdown_wait = "20s"\n'
            f'k3s_config = "{k3s}"\n'
            f'[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        )
        with DaemonProcess(config) as daemon:
            assert daemon.wait_for("node.graceful_shutdown")["method"] == "self-drain"
            daemon.wait_for("leader.acquired", timeout_s=30)
            ups.set("ups.status", "OB LB")
            drained = daemon.wait_for("shutdown.self_drained", timeout_s=60)
            assert drained["ended"] == ["default/records-db-0"]
            assert drained["left_running"] == []
            # Evicted with its own grace period (no override), so it had its 2 s to flush.
            evictions = [r for r in cluster.requests if r.path.endswith("/pods/records-db-0/eviction")]
            assert evictions and all("deleteOptions" not in (r.body or {}) for r in evictions)
            names = [e["event"] for e in daemon.events]
            # The leader last, through the full shutdown's own path: the drain runs between "started" and the command.
            assert names.index("shutdown.leader_last") < names.index("shutdown.local_started")
            assert names.index("shutdown.local_started") < names.index("shutdown.self_drain_started")
            daemon.stop()
    assert calls.read_text() == "off\n"  # the shutdown command ran, once, after the drain
    now = cluster.get_object("Pod", "default", "records-db-0")
    assert now is None or now["metadata"]["uid"] != first_uid  # the StatefulSet's new one, not the one we ended
