"""The installed ``piclusterd run`` with ``[cluster] enabled = true``, as a user runs it: a real upsd, a
kubeconfig pointing at the fake API server, the packaged default dry-run mode."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.config.cluster_key import create_key_file
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer
from piclusterd.testing.clusters import with_network_volumes
from piclusterd.testing.daemon_process import DaemonProcess, installed_script
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"


@pytest.fixture
def cluster() -> Iterator[FakeKubeServer]:
    with FakeKubeServer(controller=True) as server:
        server.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        server.run_controller_once()
        yield server


def status_of(tmp_path: Path, config: Path) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [
            installed_script("piclusterctl"),
            "status",
            "--runtime-dir",
            f"{tmp_path}/run",
            "--config",
            str(config),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return result


def test_dry_run_leader_plans_reports_and_changes_nothing(cluster: FakeKubeServer, tmp_path: Path) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=DAEMON_TOKEN)
    create_key_file(str(tmp_path / "cluster.key"))  # piclusterctl keygen
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(
            f'[node]\nname = "pi1"\n[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\n'
            'poll_interval = "0.5s"\nstale_after = "3s"\n'
            "[battery]\ncapacity_wh = 84\noverhead_w = 5\n"
            f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\non_battery_grace = "2s"\n'
            f'ssh_key = "{tmp_path}/missing"\npower_off_on_halt = true\nkey_file = "{tmp_path}/cluster.key"\n'
            f'[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        )
        with DaemonProcess(config) as daemon:
            assert "missing" in daemon.wait_for("cluster.ssh_fallback_off")["key"]
            assert daemon.wait_for("daemon.started")["mode"] == "dry-run"  # the packaged default
            daemon.wait_for("leader.acquired", timeout_s=30)
            lease = cluster.get_object("Lease", "piclusterd", "piclusterd-leader")
            assert lease is not None and lease["spec"]["holderIdentity"] == "pi1"
            ups.set("ups.status", "OB DISCHRG")
            decided = daemon.wait_for("plan.decided", lambda e: bool(e["shed"]), timeout_s=30)
            assert decided["dry_run"] is True
            assert decided["shed"] == ["pi4", "pi5", "pi3"]
            assert {r["rule"] for r in decided["refused"]} == {"etcd_quorum"}
            status = status_of(tmp_path, config)
            assert status["state"] == "on_battery" and status["cluster"]["leader"] == "pi1"
            nodes = {n["name"]: n for n in status["cluster"]["nodes"]}
            pi1 = cluster.get_object("Node", None, "pi1")
            assert pi1 is not None and '"state":"on_battery"' in pi1["metadata"]["annotations"]["picluster.io/power"]
            assert set(nodes) == {"pi1", "pi2", "pi3", "pi4", "pi5"}
            assert all(n["ready"] and n["shed"] == "none" and n["draw_w"] > 2 for n in nodes.values())
            assert nodes["pi1"]["role"] == "control-plane" and nodes["pi4"]["role"] == "agent"
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0
        assert daemon.named("leader.released")
    nodes = cluster.list_objects("Node")
    assert not any(n["spec"].get("unschedulable") for n in nodes)  # dry-run: nothing cordoned
    assert not any("picluster.io/shed" in (n["metadata"].get("annotations") or {}) for n in nodes)
    planned = [e for e in cluster.list_objects("Event") if e["reason"] == "PowerShedPlanned"]
    assert {e["involvedObject"]["name"] for e in planned} == {"pi4", "pi5", "pi3"}
    assert all("would shed (dry-run)" in e["message"] for e in planned)
    lease = cluster.get_object("Lease", "piclusterd", "piclusterd-leader")
    assert lease is not None and lease["spec"].get("holderIdentity", "") == ""  # released on a clean stop


def cluster_config(tmp_path: Path, ups: NutServer, kubeconfig: Path, *, mode: str, extra: str = "") -> str:
    key = tmp_path / "cluster.key"
    if not key.exists():
        create_key_file(str(key))  # piclusterctl keygen
    return (
        f'mode = "{mode}"\n[node]\nname = "pi1"\n[ups]\nhost = "{ups.host}"\nport = {ups.port}\n'
        f'name = "{ups.ups_name}"\npoll_interval = "0.5s"\nstale_after = "3s"\n'
        "[battery]\ncapacity_wh = 84\noverhead_w = 5\n"
        f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\non_battery_grace = "2s"\n'
        f'ssh_key = "{tmp_path}/missing"\npower_off_on_halt = true\nkey_file = "{key}"\n{extra}'
        f'[daemon]\nruntime_dir = "{tmp_path}/run"\n'
    )


def test_reloading_to_dry_run_stops_a_running_leader(cluster: FakeKubeServer, tmp_path: Path) -> None:
    # Issue 13, finding 5: after mode = "dry-run" and SIGHUP the journal said "reloaded", and the leader went
    # on cordoning, draining and powering off pi4 on the enforce settings it was built with.
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=DAEMON_TOKEN)
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(cluster_config(tmp_path, ups, kubeconfig, mode="enforce"))
        with DaemonProcess(config) as daemon:
            assert daemon.wait_for("daemon.started")["mode"] == "enforce"
            daemon.wait_for("leader.acquired", timeout_s=30)
            config.write_text(cluster_config(tmp_path, ups, kubeconfig, mode="dry-run"))
            daemon.signal(signal.SIGHUP)
            assert daemon.wait_for("config.reloaded")["mode"] == "dry-run"
            ups.set("ups.status", "OB DISCHRG")
            decided = daemon.wait_for("plan.decided", lambda e: bool(e["shed"]), timeout_s=30)
            assert decided["dry_run"] is True and "pi4" in decided["shed"]
            status = status_of(tmp_path, config)  # a few polls later: still nothing done
            assert status["mode"] == "dry-run" and status["cluster"]["leader"] == "pi1"
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0
        assert not daemon.named("node.cordoned") and not daemon.named("node.drain_started")
        assert daemon.named("cluster.mode_changed")[0]["mode"] == "dry-run"
    nodes = cluster.list_objects("Node")
    assert not any(n["spec"].get("unschedulable") for n in nodes)  # the dry-run leader touched nothing
    assert not any("picluster.io/shed" in (n["metadata"].get("annotations") or {}) for n in nodes)


def test_a_reload_changing_what_the_cluster_side_was_built_with_is_refused_naming_the_keys(
    cluster: FakeKubeServer, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=DAEMON_TOKEN)
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(cluster_config(tmp_path, ups, kubeconfig, mode="dry-run"))
        with DaemonProcess(config) as daemon:
            daemon.wait_for("leader.acquired", timeout_s=30)
            edited = cluster_config(tmp_path, ups, kubeconfig, mode="enforce", extra='target_runtime = "2h"\n')
            config.write_text(edited)
            daemon.signal(signal.SIGHUP)
            failed = daemon.wait_for("config.reload_failed")
            assert "cluster.target_runtime" in failed["error"] and "restart piclusterd to apply" in failed["error"]
            assert "mode" not in failed["error"].split(":")[1]  # mode alone could be reloaded: not named
            ups.set("ups.status", "OB DISCHRG")
            decided = daemon.wait_for("plan.decided", lambda e: bool(e["shed"]), timeout_s=30)
            assert decided["dry_run"] is True  # nothing of the refused file applied, its mode neither
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0
        assert not daemon.named("config.reloaded") and not daemon.named("cluster.mode_changed")
    assert not any(n["spec"].get("unschedulable") for n in cluster.list_objects("Node"))
