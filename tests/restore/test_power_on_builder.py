"""From ``[node_power.<node>]`` to the leader's backends: each method builds its backend, unlisted nodes are
manual, the gpio-relay request lands on the via node, and a wol node configured in the file is woken through
a real UDP listener in a network namespace."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from piclusterd.cluster import power_on_backends as node_power
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on import RelayViaPeer, build_power_on, relay_lines
from piclusterd.cluster.power_on_backends import ManualPower, PowerOutcome, RtcWakePower, WakeOnLan
from piclusterd.config.model import Config
from piclusterd.config.parse import parse_config
from piclusterd.config.settings import PowerOnSettings, agent_settings, power_on_settings, relays_driven_by
from piclusterd.core.errors import ConfigError, PowerControlFailed
from piclusterd.core.node_records import POWER_ON_REQUEST_ANNOTATION, PowerOnRequest, parse_poweron_request
from piclusterd.core.wake_on_lan import magic_packet, parse_mac
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.leadership import Leadership

from .conftest import LanInNamespace

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
WALL = 1_795_485_600.0


def config(tables: Mapping[str, Mapping[str, Any]], **ups: Any) -> Config:
    return parse_config({"ups": dict(ups), "node_power": {k: dict(v) for k, v in tables.items()}}, "x.toml")


def power_on(tables: Mapping[str, Mapping[str, Any]], **ups: Any) -> PowerOnSettings:
    return power_on_settings(config(tables, **ups))


def test_each_method_builds_its_backend_and_unlisted_nodes_are_manual(
    api: KubeClusterApi, leadership: Leadership
) -> None:
    built = build_power_on(
        power_on(
            {
                "pi3": {"method": "manual", "where": "rack B, shelf 2"},
                "nas": {"method": "wol", "mac": "dc:a6:32:01:02:03", "broadcast": "192.168.1.255", "port": 7},
                "pi5b": {"method": "rtc-wake", "recheck": "10m"},
                "pi4": {"method": "gpio-relay", "via": "pi1", "pin": 17},
            }
        ),
        api,
        identity="pi1",
        wall=lambda: WALL,
        signer=leadership.signer,
    )
    methods = {name: built.method_for(name) for name in ("pi3", "nas", "pi5b", "pi4", "pi9")}
    assert methods == {"pi3": "manual", "nas": "wol", "pi5b": "rtc-wake", "pi4": "gpio-relay", "pi9": "manual"}
    wol = built.backend_for("nas")
    assert isinstance(wol, WakeOnLan) and (wol.broadcast, wol.port) == ("192.168.1.255", 7)
    rtc = built.backend_for("pi5b")
    assert isinstance(rtc, RtcWakePower) and rtc.recheck_s == 600
    assert isinstance(built.backend_for("pi4"), RelayViaPeer)
    assert isinstance(built.backend_for("pi9"), ManualPower)
    assert "(rack B, shelf 2)" in built.backend_for("pi3").power_on("pi3").detail


def test_relay_lines_are_the_ones_whose_via_is_this_node() -> None:
    made = config(
        {
            "pi4": {"method": "gpio-relay", "via": "pi1", "pin": 17, "active": "low", "pulse": "250ms"},
            "pi5": {"method": "gpio-relay", "via": "pi2", "pin": 27},
        }
    )
    lines = relay_lines(relays_driven_by(made.node_power, "pi1"))
    assert list(lines) == ["pi4"]
    assert (lines["pi4"].pin, lines["pi4"].active_level.name, lines["pi4"].pulse_ms) == (17, "LOW", 250)
    assert relay_lines(relays_driven_by(made.node_power, "pi3")) == {}


def test_a_relay_request_lands_on_the_via_node(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    relay = RelayViaPeer(api, {"pi4": "pi2"}, leader="pi1", wall=lambda: WALL, signer=leadership.signer)
    result = relay.power_on("pi4")
    assert result.outcome is PowerOutcome.SENT
    node = server.get_object("Node", None, "pi2")
    assert node is not None
    request = parse_poweron_request(node["metadata"]["annotations"][POWER_ON_REQUEST_ANNOTATION])
    assert isinstance(request, PowerOnRequest)
    assert (request.target, request.leader, request.requested_at) == ("pi4", "pi1", "2026-11-24T02:00:00Z")
    assert request.request_id in result.detail
    assert request.term == 0 and len(request.signature) == 64  # signed in pi1's term, checked by pi2


def test_a_relay_on_a_node_that_is_down_fails_loudly(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    server.power_off_node("pi2")
    time.sleep(0.05)  # past the node-monitor grace period (10 ms here)
    signer = leadership.signer
    with pytest.raises(PowerControlFailed, match="pi2, which drives pi4's relay, is not Ready"):
        RelayViaPeer(api, {"pi4": "pi2"}, leader="pi1", wall=lambda: WALL, signer=signer).power_on("pi4")
    with pytest.raises(PowerControlFailed, match="cannot read ghost"):
        RelayViaPeer(api, {"pi4": "ghost"}, leader="pi1", wall=lambda: WALL, signer=signer).power_on("pi4")


class RecordedOutlet:
    """Stands in for the nut-outlet backend (written elsewhere): records how the builder constructs it."""

    name = "nut-outlet"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def test_nut_outlet_is_built_with_the_agreed_signature_and_ups_defaults(
    api: KubeClusterApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leadership: Leadership
) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    monkeypatch.setattr(node_power, "NutOutletPower", RecordedOutlet, raising=False)
    made = config(
        {"pi2": {"method": "nut-outlet", "outlet": 2}},
        host="10.0.0.5",
        port=3494,
        name="eaton",
        username="upsmon",
        password_file=str(password),
        timeout="3s",
    )
    built = build_power_on(power_on_settings(made), api, identity="pi1", wall=lambda: WALL, signer=leadership.signer)
    backend = built.backend_for("pi2")
    assert isinstance(backend, RecordedOutlet)
    assert backend.kwargs == {
        "host": "10.0.0.5",
        "port": 3494,
        "ups": "eaton",
        "outlets": {"pi2": 2},
        "username": "upsmon",
        "password": "s3cret",
        "timeout_s": 3.0,
    }


def test_nut_outlet_without_its_backend_is_a_config_error(
    api: KubeClusterApi, monkeypatch: pytest.MonkeyPatch, leadership: Leadership
) -> None:
    monkeypatch.delattr(node_power, "NutOutletPower", raising=False)
    with pytest.raises(ConfigError, match=re.escape('x.toml: node_power.pi2.method: "nut-outlet" is not available')):
        build_power_on(
            power_on({"pi2": {"method": "nut-outlet", "outlet": 2}}),
            api,
            identity="pi1",
            wall=lambda: WALL,
            signer=leadership.signer,
        )


LISTENER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 9))
sock.settimeout(20)
print("ready", flush=True)
data, (host, _) = sock.recvfrom(4096)
print(host, data.hex(), flush=True)
"""


@pytest.mark.root
def test_a_wol_node_from_the_file_is_woken_on_its_lan(
    lan_in_namespace: LanInNamespace, api: KubeClusterApi, leadership: Leadership
) -> None:
    lan = lan_in_namespace
    mac = "dc:a6:32:aa:bb:cc"
    built = build_power_on(
        power_on({"nas": {"method": "wol", "mac": mac, "broadcast": lan.broadcast}}),
        api,
        identity="pi1",
        wall=lambda: WALL,
        signer=leadership.signer,
    )
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lan.namespace, sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        built.backend_for("nas").power_on("nas")
        out, err = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    sender, payload = out.split()
    assert sender == lan.host_ip, err
    assert bytes.fromhex(payload) == magic_packet(parse_mac(mac))


class NoShutdown:
    def request_local_shutdown(self, reason: str) -> bool:
        raise AssertionError("not in this test")


def test_the_daemons_agent_gets_its_alarm_and_relays_and_starts_without_a_gpio_library(
    api: KubeClusterApi, tmp_path: Path, leadership: Leadership
) -> None:
    from piclusterd.cli import _node_agent
    from piclusterd.sim.captured_audit import CapturedAudit

    made = parse_config(
        {
            "node": {"name": "pi1"},
            "ups": {"stale_after": "20s"},
            "node_power": {
                "pi1": {"method": "rtc-wake", "recheck": "10m", "wakealarm": str(tmp_path / "wakealarm")},
                "pi4": {"method": "gpio-relay", "via": "pi1", "pin": 17},
            },
        },
        "x.toml",
    )
    audit = CapturedAudit("pi1")
    verifier = leadership.verifier("pi1", audit.logger)
    agent = _node_agent(
        agent_settings(made),
        api,
        NoShutdown(),  # type: ignore[arg-type]
        audit.logger,
        verifier,
        "kube-system",
    )
    assert agent._wake_alarm is not None and agent._wake_alarm.path == tmp_path / "wakealarm"
    assert (agent._recheck_s, agent._check_in_wait_s) == (600, 20.0)
    # No GPIO header here (the test extra's gpiod finds no pinctrl chip): the node's own protection must still
    # start, and say why it cannot help pi4.
    (unavailable,) = audit.named("node.relay_unavailable")
    assert unavailable["targets"] == ["pi4"] and "no GPIO chip labelled pinctrl-rp1" in unavailable["error"]
    assert agent._relay is None
