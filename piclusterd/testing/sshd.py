"""A real OpenSSH ``sshd`` on loopback, with keys and a forced command, for tests of the SSH fallback.

Needs Debian's ``openssh-server`` (``/usr/sbin/sshd``) and ``openssh-client`` (``ssh-keygen``), and root
(sshd's privilege separation). Everything lives in a temporary directory and is removed on ``stop()``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["SshServer", "free_port"]

SSHD = "/usr/sbin/sshd"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


class SshServer:
    """``sshd -D`` on ``host:port``; the client key may only run ``forced_command`` (a path you choose).

    Attributes for the client side: :attr:`client_key` (private key file), :attr:`known_hosts` (a file
    holding this server's host key for ``[host]:port``). :meth:`rotate_host_key` restarts sshd with a new
    host key, as a reinstalled or impostor machine would present.

    ``port`` (0: a free one), ``client_key`` (an existing private key to authorise instead of a new one, so
    several servers trust one leader key) and ``command_prefix`` (e.g. ``ip netns exec NS``, to run sshd in
    another network namespace) are for the multi-host tests.
    """

    def __init__(
        self,
        forced_command: str,
        host: str = "127.0.0.1",
        user: str = "root",
        *,
        port: int = 0,
        client_key: Path | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        for tool in (SSHD, shutil.which("ssh-keygen"), shutil.which("ssh")):
            if tool is None or not os.path.exists(tool):
                raise RuntimeError("OpenSSH is missing: apt-get install openssh-server openssh-client")
        if os.geteuid() != 0:
            raise RuntimeError("a real sshd needs root (privilege separation); run the tests as root")
        self.host = host
        self.user = user
        self.forced_command = forced_command
        self.port = port
        self.command_prefix = list(command_prefix)
        self.dir = Path(tempfile.mkdtemp(prefix="piclusterd-sshd-"))
        self.client_key = client_key if client_key is not None else self.dir / "client_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self._host_key = self.dir / "host_ed25519"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write_config(self) -> Path:
        authorized = self.dir / "authorized_keys"
        public = (self.client_key.with_suffix(".pub")).read_text().strip()
        authorized.write_text(f'restrict,command="{self.forced_command}" {public}\n')
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {self._host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin forced-commands-only\nStrictModes no\nLogLevel VERBOSE\n"
        )
        return config

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
        if not self.client_key.exists():
            _keygen(self.client_key, "piclusterd-test-client")
        if not self._host_key.exists():
            _keygen(self._host_key, "piclusterd-test-host")
        if self.port == 0:
            self.port = free_port(self.host)
        config = self._write_config()
        host_public = self._host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_public[0]} {host_public[1]}\n")
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
        self._process = subprocess.Popen(
            [*self.command_prefix, SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "ab"),  # noqa: SIM115 - owned by the child
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port}: see {self.dir / 'sshd.log'}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def rotate_host_key(self) -> None:
        """Restart with a new host key, keeping the port; :attr:`known_hosts` keeps the *old* key."""
        old_known = self.known_hosts.read_text()
        self.stop()
        self._host_key.unlink()
        self._host_key.with_suffix(".pub").unlink()
        self.start()
        self.known_hosts.write_text(old_known)

    @property
    def log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""
