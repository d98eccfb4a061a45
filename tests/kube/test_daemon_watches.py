"""Issue 17, findings 2 and 3's traffic: the installed daemon reads the cluster through watches and plans on
change, instead of a LIST of nodes, pods and PDBs and a GET of its Node and the outage record every poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cluster.election import LeaseElector
from piclusterd.sim.fake_api_server import FakeKubeServer, RequestRecord, SystemClock
from piclusterd.sim.fake_rbac import DAEMON, DAEMON_TOKEN
from piclusterd.sim.fake_watch import is_watch
from piclusterd.testing.api_budget import mains_allowance, over_budget
from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

from .test_daemon_cluster_process import CLINIC, cluster_config

pytestmark = pytest.mark.realnut

#: Polls (0.5 s each) counted on mains and on battery.
WINDOW_S = 5.0


@pytest.fixture
def cluster() -> Iterator[FakeKubeServer]:
    with FakeKubeServer(controller=True) as server:
        server.load_objects(CLINIC)
        server.run_controller_once()
        yield server


def reads(records: list[RequestRecord]) -> list[str]:
    """The plain reads (GET, not a watch): what a poll used to cost."""
    return [r.path for r in records if r.method == "GET" and not is_watch(r.query)]


def leases(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if "/leases" in r.path]


def test_the_leader_reads_by_watch_and_plans_on_change(cluster: FakeKubeServer, tmp_path: Path) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
        config = tmp_path / "piclusterd.toml"
        config.write_text(cluster_config(tmp_path, ups, kubeconfig, mode="dry-run"))
        with DaemonProcess(config) as daemon:
            daemon.wait_for("leader.acquired", timeout_s=90)
            daemon.wait_for("plan.decided", timeout_s=30)  # hold_online: the journal still shows the decision
            time.sleep(2.0)  # the watches are in
            start = len(cluster.requests)
            time.sleep(WINDOW_S)
            on_mains = list(cluster.requests[start:])
            # On mains nothing changes: no LIST, no GET of a Node or the outage record; the Lease is renewed
            # by a PUT per retry period (2 s, not per 0.5 s poll), with no GET before it; issue 17's goal.
            assert [p for p in reads(on_mains) if "/leases/" not in p] == []
            assert all(r.method == "PUT" for r in leases(on_mains))
            allowed = mains_allowance(window_s=WINDOW_S, nodes=1, retry_period_s=2.0, refresh_every_s=None)
            assert over_budget(on_mains, allowed) == []

            ups.set("ups.status", "OB DISCHRG")
            decided = daemon.wait_for("plan.decided", lambda e: e["decision"] != "hold_online", timeout_s=30)
            assert decided["dry_run"] is True  # a change of input: planned at once, and said
            start = len(cluster.requests)
            time.sleep(WINDOW_S)
            on_battery = list(cluster.requests[start:])
            assert [p for p in reads(on_battery) if "/leases/" not in p] == []


def test_a_follower_reads_the_lease_by_watch_and_never_reads_the_pods(cluster: FakeKubeServer, tmp_path: Path) -> None:
    # Issue 17: a follower needs its own Node and the Lease, and no pod (the leader's watch has all pods; a
    # node's own pods are listed, field-selected on spec.nodeName, only when it drains itself before a halt).
    holder = LeaseElector.on_kubernetes(cluster.api_client(retries=False), SystemClock(), "pi2")
    stop = threading.Event()

    def lead() -> None:  # pi2 holds the Lease, renewed per client-go's retry period, as the admin
        while not stop.is_set():
            holder.try_acquire_or_renew()
            stop.wait(2.0)

    leader = threading.Thread(target=lead, daemon=True)
    leader.start()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=DAEMON_TOKEN)  # the admin is pi2
    try:
        with NutServer({**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "23"}) as ups:
            config = tmp_path / "piclusterd.toml"
            config.write_text(cluster_config(tmp_path, ups, kubeconfig, mode="dry-run"))
            with DaemonProcess(config) as daemon:
                daemon.wait_for("daemon.started", timeout_s=90)
                time.sleep(4.0)  # its watches are in
                start = len(cluster.requests)
                time.sleep(WINDOW_S)
                mine = [r for r in cluster.requests[start:] if r.user == DAEMON.user]
                assert not daemon.named("leader.acquired")
    finally:
        stop.set()
        leader.join(timeout=10)
    everything = [r for r in cluster.requests if r.user == DAEMON.user]
    assert not any("/pods" in r.path for r in everything)
    watches = {(r.path, r.query.get("fieldSelector")) for r in everything if is_watch(r.query)}
    assert watches == {
        ("/api/v1/nodes", "metadata.name=pi1"),
        ("/apis/coordination.k8s.io/v1/namespaces/piclusterd/leases", "metadata.name=piclusterd-leader"),
    }
    assert mine == []  # on mains, a follower is silent: the Lease comes by its watch, not a GET per retry period
