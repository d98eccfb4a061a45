"""Adapter: ask a peer to power itself off over SSH, the fallback when its own daemon does not answer.

It runs the system OpenSSH client with a dedicated key, ``BatchMode=yes`` (never a prompt) and
``StrictHostKeyChecking=yes`` against piclusterd's own known_hosts file: a changed or unknown host key is
refused and reported, never skipped. On the target, the key's ``authorized_keys`` line forces the command
(``restrict,command="/usr/bin/piclusterd remote-poweroff"``, see ``deploy/``), so this key can do nothing
but ask for a clean power-off; what we send as the command is only the request's identity, for the log.

The destination is only ever an IP address literal (:func:`ssh_address`), and it follows ``--``: a Node's
address is written by whoever can patch Nodes, and ``-oProxyCommand=...`` as a destination would otherwise be
an ssh option run by the leader as root.
"""

from __future__ import annotations

import enum
import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SshOutcome", "SshPowerOff", "SshResult", "ssh_address"]


class SshOutcome(enum.Enum):
    ACCEPTED = "accepted"  # the target's forced command ran and exited 0
    REFUSED = "refused"  # the target's forced command ran and refused (non-zero)
    HOST_KEY_MISMATCH = "host_key_mismatch"  # the key changed or is unknown: possible impostor, alert
    AUTH_FAILED = "auth_failed"  # our key is not authorised there
    UNREACHABLE = "unreachable"  # no route, refused, timed out
    BAD_ADDRESS = "bad_address"  # the destination is not an IP address literal: ssh was not run


def ssh_address(text: str) -> str | None:
    """``text`` as an IP address literal in its canonical form, or None if it is anything else.

    Only a literal is accepted: never a host name (DNS can be spoofed and ssh_config could match it) and
    never anything starting with ``-`` (an ssh option). Link-local IPv6 may carry a ``%zone``.
    """
    if not isinstance(text, str) or len(text) > 64 or text != text.strip():
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SshResult:
    outcome: SshOutcome
    exit_status: int
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome is SshOutcome.ACCEPTED


def _classify(code: int, stderr: str) -> SshOutcome:
    if code == 0:
        return SshOutcome.ACCEPTED
    if code != 255:
        return SshOutcome.REFUSED
    text = stderr.lower()
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return SshOutcome.HOST_KEY_MISMATCH
    if "permission denied" in text:
        return SshOutcome.AUTH_FAILED
    return SshOutcome.UNREACHABLE


class SshPowerOff:
    """Sends ``poweroff <node> <request-id>`` to ``user@host`` with the dedicated key."""

    def __init__(
        self,
        *,
        key_file: str,
        known_hosts_file: str,
        user: str = "root",
        connect_timeout_s: float = 10.0,
        command_timeout_s: float = 60.0,
        ssh_binary: str = "ssh",
    ) -> None:
        self._key_file = key_file
        self._known_hosts = known_hosts_file
        self._user = user
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._ssh = ssh_binary

    def argv(self, node: str, host: str, port: int, request_id: str) -> list[str]:
        return [
            self._ssh,
            "-F", "/dev/null",  # no user or system ssh_config can weaken the options below
            "-i", self._key_file,
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self._known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", f"ConnectTimeout={max(1, round(self._connect_timeout_s))}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=2",
            "-p", str(port),
            "-l", self._user,
            "--",  # end of options: whatever the destination says, it is never read as one
            host,
            "poweroff", node, request_id,
        ]  # fmt: skip

    def power_off(self, node: str, host: str, port: int = 22, request_id: str = "-") -> SshResult:
        address = ssh_address(host)
        if address is None:
            return SshResult(SshOutcome.BAD_ADDRESS, 2, f"{host[:80]!r} is not an IP address: ssh not run")
        argv: Sequence[str] = self.argv(node, address, port, request_id)
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._connect_timeout_s + self._command_timeout_s,
                check=False,
            )
        except FileNotFoundError:
            return SshResult(SshOutcome.UNREACHABLE, 127, f"{self._ssh} not found: apt install openssh-client")
        except subprocess.TimeoutExpired:
            return SshResult(SshOutcome.UNREACHABLE, 124, f"no answer from {host}:{port} in time")
        detail = (done.stderr.strip().splitlines() or [done.stdout.strip()])[-1:]
        return SshResult(_classify(done.returncode, done.stderr), done.returncode, " ".join(detail))
