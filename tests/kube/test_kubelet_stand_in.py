"""The self-drain end to end with a real process as the pod: its SIGTERM comes from the eviction, it flushes,
and the self-drain ends when the Pod is gone, not at its grace period's end (a kubelet stand-in plays the
kubelet, as in the VM test, which has none)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.self_drain import SelfDrain
from piclusterd.core.kubelet_shutdown import KubeletShutdown
from piclusterd.node.clock import SystemClock
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pod
from piclusterd.testing.kubelet_stand_in import KubeletStandIn

WORKLOAD = """
import signal, sys, time
def flush(_signum, _frame):
    time.sleep(0.5)  # the database's checkpoint
    open(sys.argv[1], "w").write("flushed\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, flush)
open(sys.argv[1], "w").write("running\\n")
while True:
    time.sleep(0.05)
"""


def test_the_workload_gets_its_sigterm_and_flushes_before_the_shutdown_command(tmp_path: Path) -> None:
    state = tmp_path / "db-state"
    db = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(state)])
    try:
        deadline = time.monotonic() + 10
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with FakeKubeServer(graceful_deletion=True) as server:
            server.put_object(make_node("pi1", cpu="4", memory="4Gi"))
            server.put_object(
                make_pod(
                    "records-db-0",
                    node="pi1",
                    owner=("StatefulSet", "records-db"),
                    labels={"picluster.io/critical": "true"},
                    grace_period_s=20,
                )
            )
            client = server.api_client(retries=False)
            api = KubeClusterApi(client)
            audit = CapturedAudit("pi1")
            drain = SelfDrain(
                api,
                "pi1",
                SystemClock(),
                kubelet=KubeletShutdown(),
                budget=lambda: 30.0,
                sleep=time.sleep,
                log=audit.logger,
                poll_s=0.2,
            )
            with KubeletStandIn(api, "pi1", {"default/records-db-0": db.pid}) as kubelet:
                started = time.monotonic()
                drain.before_local_shutdown("battery critical")
                took = time.monotonic() - started
            client.close()
        assert state.read_text() == "flushed\n"  # its SIGTERM handler ran to the end
        assert db.wait(5) == 0
        assert kubelet.history == [("default/records-db-0", "SIGTERM"), ("default/records-db-0", "removed")]
        assert audit.named("shutdown.self_drained")[0]["ended"] == ["default/records-db-0"]
        assert took < 10  # ended when the pod was gone, not at its 20 s grace period
    finally:
        if db.poll() is None:
            db.kill()
            db.wait()
