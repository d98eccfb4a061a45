"""The harness itself: a crashed run's leftovers are cleaned, teardown leaves nothing, a fault this machine
cannot inject is refused with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .cluster import BRIDGE, NetnsCluster, _namespaces
from .faults import Faults, FaultUnavailable

pytestmark = [pytest.mark.realnut, pytest.mark.root]


def ours() -> list[str]:
    return [n for n in _namespaces() if n.startswith("pc-")]


def bridge_exists() -> bool:
    return subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode == 0


def test_leftovers_are_removed_and_teardown_leaves_nothing(tmp_path: Path) -> None:
    subprocess.run(["ip", "netns", "add", "pc-crashed"], check=True)
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    with NetnsCluster(tmp_path, nodes=("pi1", "pi2")) as cluster:
        assert sorted(ours()) == ["pc-pi1", "pc-pi2"]
        # The hosts see each other over the bridge: pi1 reaches pi2's sshd.
        probe = "import socket; print(socket.create_connection(('10.77.0.12', 2222), 5).recv(4))"
        reach = subprocess.run(
            ["ip", "netns", "exec", "pc-pi1", sys.executable, "-c", probe], capture_output=True, text=True, check=False
        )
        assert reach.returncode == 0 and "SSH-" in reach.stdout, reach.stderr
        assert cluster.hosts["pi2"].sshd is not None
    assert ours() == [] and not bridge_exists()


def test_latency_is_added_or_refused_with_the_reason(tmp_path: Path) -> None:
    with NetnsCluster(tmp_path, nodes=("pi1",)) as cluster:
        faults = Faults(cluster)
        try:
            faults.add_latency("pi1", 200)
        except FaultUnavailable as error:
            assert "sch_netem" in str(error) and "tc netem" in str(error)
            assert faults.injected == []  # nothing pretended
            return
        shown = subprocess.run(
            ["tc", "-n", "pc-pi1", "qdisc", "show", "dev", "eth0"], capture_output=True, text=True, check=True
        ).stdout
        assert "netem" in shown and "200ms" in shown
        faults.clear_latency("pi1")
        assert (
            "netem"
            not in subprocess.run(
                ["tc", "-n", "pc-pi1", "qdisc", "show", "dev", "eth0"], capture_output=True, text=True, check=True
            ).stdout
        )
