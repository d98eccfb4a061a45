"""Wake-on-LAN against a real UDP listener on the far side of a veth pair, in its own network namespace."""

from __future__ import annotations

import subprocess
import sys

import pytest

from piclusterd.cluster.power_on_backends import PowerOutcome, WakeOnLan
from piclusterd.core.wake_on_lan import magic_packet, parse_mac

from .conftest import LanInNamespace

pytestmark = pytest.mark.root

MAC = "dc:a6:32:aa:bb:cc"

# Binds the WoL port on every address in the namespace (broadcasts included), says so, prints what arrives.
LISTENER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
sock.settimeout(20)
print("ready", flush=True)
data, (host, _) = sock.recvfrom(4096)
print(host, data.hex(), flush=True)
"""


@pytest.mark.parametrize("target", ["broadcast", "unicast"])
def test_magic_packet_reaches_a_listener_on_the_lan(lan_in_namespace: LanInNamespace, target: str) -> None:
    lan = lan_in_namespace
    address = lan.broadcast if target == "broadcast" else lan.peer_ip
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lan.namespace, sys.executable, "-c", LISTENER, "9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready", listener.stderr.read() if listener.stderr else ""
        result = WakeOnLan({"nas": MAC}, broadcast=address, port=9).power_on("nas")
        out, err = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    sender, payload = out.split()
    assert sender == lan.host_ip, err
    assert bytes.fromhex(payload) == magic_packet(parse_mac(MAC))
    assert result.outcome is PowerOutcome.SENT
    assert result.detail == f"magic packet for {MAC} sent to {address}:9"
