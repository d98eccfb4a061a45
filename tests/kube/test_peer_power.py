"""Powering off a drained peer: its own daemon first, SSH (a real sshd) as the fallback, NotReady as proof."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.power_off_request import PeerPowerOff, PowerOffOutcome
from piclusterd.cluster.power_off_ssh import SshOutcome, SshPowerOff
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    render_shed_record,
)
from piclusterd.core.power_state import PowerState
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer, make_node
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.daemon_process import installed_script
from piclusterd.testing.leadership import Leadership
from piclusterd.testing.sshd import SshServer

DRAINED = ShedRecord(ShedPhase.DRAINED, "pi1", "on battery: shedding to reach 4 h", "2026-11-24T02:01:00Z", False)


@dataclass
class FakeNodeDaemon:
    """Stands in for pi4's own PowerDaemon: records the shutdown and 'powers off' in the fake cluster."""

    server: FakeKubeServer
    name: str
    reasons: list[str] = field(default_factory=list)

    def request_local_shutdown(self, reason: str) -> bool:
        self.reasons.append(reason)
        self.server.power_off_node(self.name)
        return True


@dataclass
class Rig:
    server: FakeKubeServer
    clock: FakeClock
    api: KubeClusterApi
    audit: CapturedAudit
    leadership: Leadership
    ticks: list[object] = field(default_factory=list)

    def tick(self) -> None:
        for action in self.ticks:
            action()  # type: ignore[operator]

    def agent(self, daemon: FakeNodeDaemon, audit: CapturedAudit | None = None) -> NodeAgent:
        """pi4's agent, on battery (a power-off fits), checking requests with the cluster key."""
        log = (audit or CapturedAudit("pi4")).logger
        return NodeAgent(self.api, "pi4", daemon, log, verifier=self.leadership.verifier("pi4", log))

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.leadership.renew()  # the leader renews as it waits (cli.py's keep_alive)

    def power_off(self, ssh: SshPowerOff | None = None, ssh_port: int = 22) -> PeerPowerOff:
        return PeerPowerOff(
            self.api,
            self.clock,
            leader="pi1",
            signer=self.leadership.signer,
            sleep=self.sleep,
            fence=lambda: None,
            tick=self.tick,
            ssh=ssh,
            ssh_port=ssh_port,
            ack_timeout_s=10,
            off_timeout_s=90,  # a dead node turns NotReady only after the 40 s node-monitor grace period
            events=EventRecorder(self.server.api_client(retries=False, token=DAEMON_TOKEN), reporter="pi1"),
            log=self.audit.logger,
        )

    def annotations(self, node: str = "pi4") -> dict[str, str]:
        found = self.server.get_object("Node", None, node)
        assert found is not None
        return dict(found["metadata"].get("annotations") or {})

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.server.list_objects("Event")]


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock(start=1000.0, epoch=1_800_000_000.0 - 1000.0)
    with FakeKubeServer(clock=clock) as server:
        server.put_object(make_node("pi1", address="127.0.0.1"))
        server.put_object(make_node("pi4", address="127.0.0.1", unschedulable=True))
        server.update_object(
            "Node",
            None,
            "pi4",
            lambda n: (
                n["metadata"].setdefault("annotations", {}).update({SHED_ANNOTATION: render_shed_record(DRAINED)})
            ),
        )
        client = server.api_client(retries=False, token=DAEMON_TOKEN)  # the leader's daemon
        leadership = Leadership(server)
        yield Rig(server, clock, KubeClusterApi(client), CapturedAudit("pi1"), leadership)
        leadership.close()
        client.close()


def test_the_nodes_own_daemon_acknowledges_and_powers_off(rig: Rig) -> None:
    daemon = FakeNodeDaemon(rig.server, "pi4")
    agent = rig.agent(daemon)
    rig.ticks.append(lambda: agent.tick(PowerState.ON_BATTERY))
    result = rig.power_off().power_off("pi4", DRAINED)
    assert result.outcome is PowerOffOutcome.POWERED_OFF and result.via == "agent"
    assert daemon.reasons == [f"power-off requested by pi1 ({result.request_id})"]
    annotations = rig.annotations()
    assert annotations[ACK_ANNOTATION] == result.request_id
    record = parse_shed_record(annotations[SHED_ANNOTATION])
    assert isinstance(record, ShedRecord) and record.phase is ShedPhase.POWERED_OFF
    assert rig.event_reasons() == ["PowerOffRequested", "PowerShed"]
    assert [e["event"] for e in rig.audit.events] == ["node.poweroff_requested", "node.powered_off"]


def test_an_acknowledged_request_is_not_obeyed_again_after_a_reboot(rig: Rig) -> None:
    daemon = FakeNodeDaemon(rig.server, "pi4")
    first_life = rig.agent(daemon)
    rig.ticks.append(lambda: first_life.tick(PowerState.ON_BATTERY))
    rig.power_off().power_off("pi4", DRAINED)
    rig.server.power_on_node("pi4")
    after_boot = rig.agent(daemon)
    assert after_boot.tick(PowerState.ON_BATTERY) is None
    assert len(daemon.reasons) == 1


def test_a_hand_edited_request_is_reported_once_and_never_obeyed(rig: Rig) -> None:
    rig.server.update_object(
        "Node", None, "pi4", lambda n: n["metadata"]["annotations"].update({REQUEST_ANNOTATION: "please turn off"})
    )
    daemon = FakeNodeDaemon(rig.server, "pi4")
    audit = CapturedAudit("pi4")
    agent = rig.agent(daemon, audit)
    assert agent.tick(PowerState.ON_BATTERY) is None and agent.tick(PowerState.ON_BATTERY) is None
    assert daemon.reasons == []
    assert len(audit.named("node.poweroff_request_invalid")) == 1


def test_no_answer_and_no_ssh_leaves_the_node_cordoned_and_says_so(rig: Rig) -> None:
    result = rig.power_off().power_off("pi4", DRAINED)
    assert result.outcome is PowerOffOutcome.NOT_CONFIRMED
    record = parse_shed_record(rig.annotations()[SHED_ANNOTATION])
    assert isinstance(record, ShedRecord) and record.phase is ShedPhase.POWEROFF_REQUESTED
    assert "PowerOffUnconfirmed" in rig.event_reasons()


def test_a_resumed_request_keeps_its_id_and_writes_no_new_one(rig: Rig) -> None:
    earlier = DRAINED.with_phase(ShedPhase.POWEROFF_REQUESTED, "2026-11-24T02:05:00Z", "abc123")
    rig.server.power_off_node("pi4")  # the earlier leader's request already worked
    rig.sleep(40)  # and pi4 has been NotReady since the node-monitor grace period ran out
    rig.server.run_controller_once()
    patches_before = [r for r in rig.server.requests if r.method == "PATCH"]
    result = rig.power_off().power_off("pi4", earlier)
    assert result.outcome is PowerOffOutcome.POWERED_OFF and result.request_id == "abc123"
    assert REQUEST_ANNOTATION not in rig.annotations()
    patches = [r for r in rig.server.requests if r.method == "PATCH"][len(patches_before) :]
    assert len(patches) == 1  # only the powered_off record


def test_refuses_to_power_off_a_node_that_is_not_drained(rig: Rig) -> None:
    draining = DRAINED.with_phase(ShedPhase.DRAINING, "x")
    with pytest.raises(ValueError, match="not drained"):
        rig.power_off().power_off("pi4", draining)


@pytest.fixture
def sshd(rig: Rig, tmp_path: Path) -> Iterator[tuple[SshServer, Path]]:
    """pi4's sshd, whose forced command checks the request on pi4's Node with the cluster's key and Lease."""
    if os.geteuid() != 0:
        pytest.fail("the SSH fallback test starts a real sshd and needs root (.ci/run runs as root)")
    calls = tmp_path / "calls"
    config = tmp_path / "pi4.toml"
    rig.leadership.write_key_file(str(tmp_path / "cluster.key"))
    config.write_text(
        f'mode = "enforce"\n[node]\nname = "pi4"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        f'[shutdown]\ncommand = ["/bin/sh", "-c", "echo off >> {calls}"]\n[battery]\ncapacity_wh = 84\n'
        f'[cluster]\nenabled = true\nkey_file = "{tmp_path}/cluster.key"\n'
        f'kubeconfig = "{rig.server.write_kubeconfig(tmp_path / "kubeconfig")}"\n'
    )
    with SshServer(f"{installed_script()} remote-poweroff --config {config} --log-format json") as server:
        yield server, calls


def test_without_an_answer_the_leader_falls_back_to_ssh(rig: Rig, sshd: tuple[SshServer, Path]) -> None:
    server, calls = sshd
    ssh = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))

    def node_goes_down_once_its_shutdown_ran() -> None:
        if calls.exists():
            rig.server.power_off_node("pi4")

    rig.ticks.append(node_goes_down_once_its_shutdown_ran)
    result = rig.power_off(ssh, server.port).power_off("pi4", DRAINED)
    assert result.outcome is PowerOffOutcome.POWERED_OFF and result.via == "ssh"
    assert calls.read_text().splitlines() == ["off"]
    assert rig.audit.named("node.poweroff_ssh")[0]["outcome"] == "accepted"


def test_a_changed_host_key_stops_the_power_off_with_an_alert(rig: Rig, sshd: tuple[SshServer, Path]) -> None:
    server, calls = sshd
    server.rotate_host_key()
    ssh = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))
    result = rig.power_off(ssh, server.port).power_off("pi4", DRAINED)
    assert result.outcome is PowerOffOutcome.REFUSED
    assert not calls.exists()
    warnings = [e for e in rig.server.list_objects("Event") if e["reason"] == "PowerOffRefused"]
    assert warnings and warnings[0]["type"] == "Warning" and "never skips verification" in warnings[0]["message"]


def test_a_node_shed_over_ssh_does_not_power_off_again_once_restored(rig: Rig, sshd: tuple[SshServer, Path]) -> None:
    """Finding 6: its agent never acknowledged the request, so it used to obey it again after the restore."""
    server, calls = sshd
    ssh = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))
    rig.ticks.append(lambda: rig.server.power_off_node("pi4") if calls.exists() else None)
    result = rig.power_off(ssh, server.port).power_off("pi4", DRAINED)
    assert result.outcome is PowerOffOutcome.POWERED_OFF and result.via == "ssh"

    rig.server.power_on_node("pi4")  # restored: its daemon starts and its agent looks at its Node
    daemon = FakeNodeDaemon(rig.server, "pi4")
    # On battery again, where a stale request would fit the situation: there is none left to obey.
    assert rig.agent(daemon).tick(PowerState.ON_BATTERY) is None
    assert daemon.reasons == []
    assert REQUEST_ANNOTATION not in rig.annotations()


def test_an_internal_ip_that_is_an_ssh_option_is_refused_and_ssh_never_runs(
    rig: Rig, sshd: tuple[SshServer, Path], tmp_path: Path
) -> None:
    """Finding 4: a Node InternalIP of ``-oProxyCommand=...`` used to run that command as the leader's root."""
    server, calls = sshd
    marker = tmp_path / "injected"
    hostile = f"-oProxyCommand=sh -c 'touch {marker}'"

    def set_address(node: dict[str, object]) -> None:
        node["status"]["addresses"] = [{"type": "InternalIP", "address": hostile}]  # type: ignore[index]

    rig.server.update_object("Node", None, "pi4", set_address)
    ssh = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))
    power_off = rig.power_off(ssh, server.port)
    first = power_off.power_off("pi4", DRAINED)
    again = power_off.power_off("pi4", DRAINED.with_phase(ShedPhase.POWEROFF_REQUESTED, "x", first.request_id))
    assert first.outcome is PowerOffOutcome.NOT_CONFIRMED and again.outcome is PowerOffOutcome.NOT_CONFIRMED
    assert not marker.exists() and not calls.exists()
    assert rig.audit.named("node.poweroff_ssh") == []
    refused = rig.audit.named("node.poweroff_ssh_refused")
    assert len(refused) == 1 and refused[0]["address"] == hostile
    warnings = [e for e in rig.server.list_objects("Event") if e["reason"] == "PowerOffRefused"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"


def test_a_100000_deep_request_is_reported_once_and_the_agent_goes_on(rig: Rig) -> None:
    """Finding 9: a 100,000-deep JSON value in poweroff-request killed that node's daemon (RecursionError)."""
    deep = "[" * 100_000 + "]" * 100_000
    rig.server.update_object(
        "Node", None, "pi4", lambda n: n["metadata"]["annotations"].update({REQUEST_ANNOTATION: deep})
    )
    daemon = FakeNodeDaemon(rig.server, "pi4")
    audit = CapturedAudit("pi4")
    agent = rig.agent(daemon, audit)
    assert agent.tick(PowerState.ON_BATTERY) is None and agent.tick(PowerState.ON_BATTERY) is None
    assert daemon.reasons == []
    invalid = audit.named("node.poweroff_request_invalid")
    assert len(invalid) == 1 and "deep" in invalid[0]["why"]


def test_ssh_without_a_signed_request_on_the_node_powers_nothing_off(rig: Rig, sshd: tuple[SshServer, Path]) -> None:
    """Issue 13: remote-poweroff checked only the shape of its arguments. Now the id must be that of a signed,
    current request on the node's own Node object, checked as its agent checks one."""
    server, calls = sshd
    ssh = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))
    nothing = ssh.power_off("pi4", "127.0.0.1", server.port, "forged1")
    assert nothing.outcome is SshOutcome.REFUSED and "there is no power-off request on Node pi4" in nothing.detail
    forged = '{"v":1,"id":"forged2","leader":"mallory","at":"2099-01-01T00:00:00Z"}'
    rig.server.update_object(
        "Node", None, "pi4", lambda n: n["metadata"]["annotations"].update({REQUEST_ANNOTATION: forged})
    )
    refused = ssh.power_off("pi4", "127.0.0.1", server.port, "forged2")
    assert refused.outcome is SshOutcome.REFUSED and "check signature" in refused.detail
    assert not calls.exists()
    (event,) = [e for e in rig.server.list_objects("Event") if e["reason"] == "RequestRefused"]
    assert event["involvedObject"]["name"] == "pi4"
