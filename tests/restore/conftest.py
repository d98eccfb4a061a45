"""Restore policy and power-on backends: the shared baseline of the decision tables."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.core.restore import RestorePolicy
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.leadership import Leadership

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"


@pytest.fixture
def policy() -> RestorePolicy:
    """The defaults an operator gets: 120 s stable mains, 50 % charge, 30 s between power-ons."""
    return RestorePolicy()


@dataclass(frozen=True, slots=True)
class LanInNamespace:
    """A veth pair: ``host_ip`` here, ``peer_ip`` inside network namespace ``namespace``, one /24 between them."""

    namespace: str
    host_ip: str
    peer_ip: str
    broadcast: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def lan_in_namespace() -> Iterator[LanInNamespace]:
    """A private link into a fresh network namespace, removed afterwards. Needs root and ``ip netns``.

    Fails (never skips) when that is impossible: the Wake-on-LAN backend would otherwise go untested.
    """
    tag = f"{os.getpid() % 100000}"
    namespace, host_if, peer_if = f"pcd-wol-{tag}", f"pcdw{tag}h", f"pcdw{tag}p"
    subnet = "10.213.77"
    if shutil.which("ip") is None:
        pytest.fail("the Wake-on-LAN test needs iproute2's `ip` (apt install iproute2)")
    if os.geteuid() != 0:
        pytest.fail("the Wake-on-LAN test needs root (it creates a network namespace and a veth pair)")
    try:
        _ip("netns", "add", namespace)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"`ip netns add` is unavailable here, the Wake-on-LAN test cannot run: {error.stderr.strip()}")
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", namespace)
        _ip("addr", "add", f"{subnet}.1/24", "brd", "+", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", namespace, "addr", "add", f"{subnet}.2/24", "brd", "+", "dev", peer_if)
        _ip("-n", namespace, "link", "set", peer_if, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield LanInNamespace(namespace, f"{subnet}.1", f"{subnet}.2", f"{subnet}.255")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            _ip("link", "del", host_if)
        _ip("netns", "del", namespace)


@pytest.fixture
def server() -> Iterator[FakeKubeServer]:
    """The fake API server with clinic-5 loaded (modules that need another cluster define their own). A halted
    node turns NotReady after the node-monitor grace period: compressed to 10 ms here (these tests are about
    the power-on paths, not the lifecycle), never skipped."""
    with FakeKubeServer(node_monitor_grace_s=0.01) as made:
        made.load_objects(CLINIC)
        yield made


@pytest.fixture
def leadership(server: FakeKubeServer) -> Iterator[Leadership]:
    """pi1 holds the Lease, with a fresh cluster key: it signs requests, the nodes check them."""
    made = Leadership(server)
    yield made
    made.close()


@pytest.fixture
def api(server: FakeKubeServer) -> Iterator[KubeClusterApi]:
    with server.api_client(retries=False) as client:
        yield KubeClusterApi(client)
