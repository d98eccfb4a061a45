"""The SSH power-off fallback against a real sshd on loopback, whose forced command is the real
``piclusterd remote-poweroff`` with a recording shutdown command. It obeys only the id of a signed, current
request on its Node, which the leader (pi1, holding the Lease on a fake API server) writes first."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from piclusterd.cluster.power_off_ssh import SshOutcome, SshPowerOff, ssh_address
from piclusterd.core.node_records import REQUEST_ANNOTATION
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node
from piclusterd.testing.leadership import Leadership
from piclusterd.testing.sshd import SshServer, free_port

PICLUSTERD = Path(sys.executable).with_name("piclusterd")


@dataclass
class Target:
    server: SshServer
    calls: Path
    config: Path
    leadership: Leadership

    def request(self, request_id: str) -> None:
        """The leader's signed power-off request for pi4, on pi4's Node, as PeerPowerOff writes it."""
        value = self.leadership.poweroff("pi4", request_id)
        self.leadership.server.update_object(
            "Node",
            None,
            "pi4",
            lambda n: n["metadata"].setdefault("annotations", {}).update({REQUEST_ANNOTATION: value}),
        )

    def client(self, key: Path | None = None) -> SshPowerOff:
        return SshPowerOff(
            key_file=str(key or self.server.client_key),
            known_hosts_file=str(self.server.known_hosts),
            connect_timeout_s=5,
            command_timeout_s=30,
        )

    def recorded(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def write_target_config(directory: Path, leadership: Leadership, mode: str = "enforce") -> tuple[Path, Path]:
    calls = directory / "poweroff-calls"
    config = directory / "target.toml"
    leadership.write_key_file(str(directory / "cluster.key"))
    kubeconfig = leadership.server.write_kubeconfig(directory / "kubeconfig")
    config.write_text(
        f'mode = "{mode}"\n[node]\nname = "pi4"\n[daemon]\nruntime_dir = "{directory}/run"\n'
        f'[shutdown]\ncommand = ["/bin/sh", "-c", "echo poweroff >> {calls}"]\n[battery]\ncapacity_wh = 84\n'
        f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\nkey_file = "{directory}/cluster.key"\n'
    )
    return config, calls


@pytest.fixture
def leadership() -> Iterator[Leadership]:
    with FakeKubeServer() as api:
        api.put_object(make_node("pi1"))
        api.put_object(make_node("pi4"))
        made = Leadership(api)
        yield made
        made.close()


@pytest.fixture
def target(tmp_path: Path, leadership: Leadership) -> Iterator[Target]:
    if os.geteuid() != 0:
        pytest.fail("the SSH tests start a real sshd and need root: run them as root (.ci/run does)")
    config, calls = write_target_config(tmp_path, leadership)
    forced = f"{PICLUSTERD} remote-poweroff --config {config} --log-format json"
    with SshServer(forced) as server:
        yield Target(server, calls, config, leadership)


def test_power_off_runs_the_targets_shutdown_command_once(target: Target) -> None:
    target.request("req-1")
    result = target.client().power_off("pi4", target.server.host, target.server.port, "req-1")
    assert result.outcome is SshOutcome.ACCEPTED, result.detail
    again = target.client().power_off("pi4", target.server.host, target.server.port, "req-1")
    assert again.ok and "already under way" in again.detail
    assert target.recorded() == ["poweroff"]


def test_a_request_for_another_node_is_refused(target: Target) -> None:
    result = target.client().power_off("pi5", target.server.host, target.server.port, "req-2")
    assert result.outcome is SshOutcome.REFUSED
    assert "this is pi4, not pi5" in result.detail
    assert target.recorded() == []


def test_the_key_cannot_run_anything_else(target: Target) -> None:
    client = target.client()
    argv = client.argv("pi4", target.server.host, target.server.port, "x")
    argv[-3:] = ["id"]  # what an attacker holding the key would try
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3 and "may only request a power-off" in done.stderr
    assert "uid=" not in done.stdout
    assert target.recorded() == []


def test_a_changed_host_key_is_refused_and_nothing_runs(target: Target) -> None:
    target.server.rotate_host_key()
    result = target.client().power_off("pi4", target.server.host, target.server.port, "req-3")
    assert result.outcome is SshOutcome.HOST_KEY_MISMATCH, result.detail
    assert target.recorded() == []


def test_an_unauthorised_key_is_reported(target: Target, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    result = target.client(other).power_off("pi4", target.server.host, target.server.port, "req-4")
    assert result.outcome is SshOutcome.AUTH_FAILED, result.detail
    assert target.recorded() == []


def test_nobody_listening_is_unreachable(target: Target) -> None:
    result = target.client().power_off("pi4", "127.0.0.1", free_port(), "req-5")
    assert result.outcome is SshOutcome.UNREACHABLE
    assert target.recorded() == []


def test_dry_run_target_accepts_and_does_nothing(tmp_path: Path, leadership: Leadership) -> None:
    config, calls = write_target_config(tmp_path, leadership, mode="dry-run")
    Target(None, calls, config, leadership).request("req-6")  # type: ignore[arg-type]
    with SshServer(f"{PICLUSTERD} remote-poweroff --config {config} --log-format json") as server:
        client = SshPowerOff(key_file=str(server.client_key), known_hosts_file=str(server.known_hosts))
        result = client.power_off("pi4", server.host, server.port, "req-6")
    assert result.ok and "dry-run" in result.detail
    assert not calls.exists()


@pytest.mark.parametrize(
    "destination",
    ["-oProxyCommand=sh -c 'touch {marker}'", "pi4.local", "127.0.0.1 ", "", "127.0.0.1 -oProxyCommand=x"],
)
def test_only_an_ip_address_literal_is_ever_passed_to_ssh(target: Target, tmp_path: Path, destination: str) -> None:
    marker = tmp_path / "injected"
    result = target.client().power_off("pi4", destination.format(marker=marker), target.server.port, "req-7")
    assert result.outcome is SshOutcome.BAD_ADDRESS
    assert not marker.exists() and target.recorded() == []


def test_the_destination_follows_end_of_options() -> None:
    argv = SshPowerOff(key_file="k", known_hosts_file="h").argv("pi4", "10.0.0.4", 22, "r")
    assert argv[argv.index("10.0.0.4") - 1] == "--"


@pytest.mark.parametrize(
    ("text", "address"),
    [("10.0.0.4", "10.0.0.4"), ("fd00::4", "fd00::4"), ("FD00:0::4", "fd00::4"), ("-o", None), ("pi4", None)],
)
def test_ssh_address_accepts_literals_only(text: str, address: str | None) -> None:
    assert ssh_address(text) == address


@pytest.mark.parametrize(("network", "outcome"), [("127.0.0.0/8", SshOutcome.ACCEPTED), ("10.9.9.0/24", None)])
def test_the_generated_authorized_keys_line_accepts_the_key_only_from_the_cluster(
    target: Target, network: str, outcome: SshOutcome | None
) -> None:
    """The line piclusterctl authorized-keys prints, installed in a real sshd (with this test's command path)."""
    from piclusterd.cluster.authorized_keys import FORCED_COMMAND, authorized_keys_line, read_public_key

    public = read_public_key(str(target.server.client_key.with_suffix(".pub")))
    line = authorized_keys_line(parse_networks(network), public)
    (target.server.dir / "authorized_keys").write_text(
        line.replace(FORCED_COMMAND, target.server.forced_command) + "\n"
    )
    target.request("req-8")
    result = target.client().power_off("pi4", target.server.host, target.server.port, "req-8")
    if outcome is None:
        assert result.outcome is SshOutcome.AUTH_FAILED and target.recorded() == []
    else:
        assert result.outcome is outcome and target.recorded() == ["poweroff"]


def parse_networks(text: str) -> tuple[str, ...]:
    from piclusterd.cluster.authorized_keys import parse_cidrs

    return parse_cidrs([text])


def test_an_id_that_is_not_a_signed_request_on_the_node_is_refused(target: Target) -> None:
    """The key alone is not enough: the id must be that of the leader's signed, current request on pi4."""
    result = target.client().power_off("pi4", target.server.host, target.server.port, "made-up")
    assert result.outcome is SshOutcome.REFUSED and "there is no power-off request on Node pi4" in result.detail
    target.request("req-7")
    other = target.client().power_off("pi4", target.server.host, target.server.port, "req-8")
    assert other.outcome is SshOutcome.REFUSED and "is 'req-7', not 'req-8'" in other.detail
    assert target.recorded() == []
