"""A Debian bookworm virtual machine for system tests: built with mmdebstrap, cached, booted with qemu (TCG).

The test talks to the VM through the QEMU guest agent (``qemu-guest-agent`` in the guest, a virtio-serial
port, a Unix socket on the host): ``Vm.run`` executes a shell script as root in the guest and returns its exit
status and output; ``Vm.write`` puts a file there. No network, no ssh, no console scraping. Every wait is
bounded and fails with the tail of the VM's serial console.

The image (kernel, initrd, ext4 root file system) is cached under ``$PICLUSTERD_VM_CACHE`` (default
``/var/cache/piclusterd-test``), keyed by a hash of everything that goes into it: the package list, the
customize hook, the apt sources and :data:`IMAGE_RECIPE_VERSION`. The cached image is never changed: each
test boots a copy-on-write overlay of it (``disk``), which can be booted again to see what the previous boot
left, as an operator does after a power cut.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "GUEST_BASE_PACKAGES",
    "HOST_FROM_GUEST",
    "Completed",
    "Vm",
    "VmError",
    "VmImage",
    "build_env",
    "cached_image",
    "guest_packages",
    "missing_host_tools",
]

SUITE = "bookworm"
#: Bump when the way the image is made changes in a way the hash below does not see.
IMAGE_RECIPE_VERSION = "1"
#: The guest's own needs; the package's Depends and Recommends are added from debian/control.
GUEST_BASE_PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "procps",
    "linux-image-amd64",
    "initramfs-tools",
    "qemu-guest-agent",
    "man-db",
    "nut-server",
    "nut-client",
)
#: The host's Debian apt sources (deb822): the image comes from the same archive as the host's packages.
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
CUSTOMIZE_HOOK = r"""#!/bin/sh
# Runs once in mmdebstrap's customize phase; $1 is the new root file system.
set -eu
root=$1
echo piclusterd-vm > "$root/etc/hostname"
printf '127.0.1.1\tpiclusterd-vm\n' >> "$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
# No man-db index rebuild on every dpkg run: minutes under TCG, and nothing here reads it.
rm -f "$root/var/lib/man-db/auto-update"
# Nothing runs in the background that the test did not start.
systemctl --root="$root" mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    man-db.timer systemd-tmpfiles-clean.timer >/dev/null 2>&1
"""
#: Tools the system tests run on the host, and the Debian package that has each.
HOST_TOOLS: Mapping[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "mke2fs": "e2fsprogs",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "dpkg-buildpackage": "dpkg-dev",
    "dh": "debhelper",
    "lintian": "lintian",
}
#: The build and the host tools see Debian's Python, not a virtual environment or pyenv's.
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


class VmError(AssertionError):
    """The VM did not do what the test needed; the message says what, with the serial console's tail."""


def build_env(**extra: str) -> dict[str, str]:
    """A clean environment for host tools: Debian's PATH, C.UTF-8, no virtual environment."""
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def missing_host_tools() -> list[str]:
    """``"tool (apt install package)"`` for each host tool that is not on Debian's PATH."""
    return [f"{tool} (apt install {package})" for tool, package in HOST_TOOLS.items() if not _which(tool)]


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=SYSTEM_PATH)


def _control_field(control: str, package: str, field: str) -> list[str]:
    """The first alternative of each relation in ``field`` of binary ``package``, without versions/substvars."""
    for stanza in re.split(r"\n\s*\n", control):
        if re.search(rf"^Package:\s*{re.escape(package)}\s*$", stanza, flags=re.MULTILINE) is None:
            continue
        match = re.search(rf"^{field}:(.*(?:\n[ \t].*)*)", stanza, flags=re.MULTILINE)
        if match is None:
            return []
        names = []
        for relation in match.group(1).split(","):
            first = relation.split("|")[0].strip()
            first = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", first).strip()
            if first and not first.startswith("${"):
                names.append(first)
        return names
    raise ValueError(f"debian/control has no binary package {package}")


def guest_packages(control: Path) -> tuple[str, ...]:
    """Everything the image holds: the guest's base, then the package's Depends and Recommends."""
    text = control.read_text(encoding="utf-8")
    wanted = [*GUEST_BASE_PACKAGES]
    for field in ("Depends", "Recommends"):
        wanted += _control_field(text, "piclusterd", field)
    return tuple(sorted(set(wanted)))


@dataclass(frozen=True, slots=True)
class VmImage:
    """A bootable image in the cache: kernel, initrd and a raw ext4 root file system."""

    directory: Path
    key: str
    build_seconds: float | None  # None: it was already in the cache

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs.img"


def _image_key(packages: Sequence[str]) -> str:
    digest = hashlib.sha256()
    sources = HOST_SOURCES.read_bytes() if HOST_SOURCES.exists() else b"(mmdebstrap default)"
    for part in (IMAGE_RECIPE_VERSION, SUITE, "\n".join(packages), CUSTOMIZE_HOOK, sources):
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per cache (two pytest runs at once wait for each other, not race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(argv: Sequence[str], log: Path, timeout_s: float, what: str) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=build_env(), timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            raise VmError(f"{what} took longer than {timeout_s:.0f} s; log: {log}") from error
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise VmError(f"{what} failed (exit status {done.returncode}); log: {log}\n{tail}")


def cached_image(cache_root: Path, control: Path, *, build_timeout_s: float = 1800) -> VmImage:
    """The image for the current package list: from the cache, or built (mmdebstrap, then mke2fs) into it."""
    packages = guest_packages(control)
    key = _image_key(packages)
    final = cache_root / f"{SUITE}-{key}"
    with _locked(cache_root / ".lock"):
        if (final / "complete").exists():
            return VmImage(final, key, None)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"building-{key}-", dir=cache_root))
        try:
            log = work / "build.log"
            hook = work / "customize-hook.sh"
            hook.write_text(CUSTOMIZE_HOOK, encoding="utf-8")
            root = work / "root"
            argv = [
                "mmdebstrap",
                "--mode=root",
                "--variant=apt",
                "--include=" + ",".join(packages),
                f'--customize-hook=sh {hook} "$1"',
                SUITE,
                str(root),
            ]
            if HOST_SOURCES.exists():
                argv.append(str(HOST_SOURCES))
            _run_logged(argv, log, build_timeout_s, "mmdebstrap (building the VM image)")
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            initrds = sorted((root / "boot").glob("initrd.img-*"))
            if len(kernels) != 1 or len(initrds) != 1:
                raise VmError(f"expected one kernel and one initrd in the image, found {kernels} {initrds}")
            shutil.copy2(kernels[0], work / "vmlinuz")
            shutil.copy2(initrds[0], work / "initrd.img")
            used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
            size_mb = max(2048, used * 2 // 2**20 + 512)
            _run_logged(
                ["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(root), str(work / "rootfs.img"), f"{size_mb}M"],
                log,
                600,
                "mke2fs (making the VM's root file system)",
            )
            shutil.rmtree(root)
            (work / "packages.txt").write_text("\n".join(packages) + "\n", encoding="utf-8")
            seconds = time.monotonic() - started
            (work / "complete").write_text(json.dumps({"build_seconds": round(seconds, 1)}) + "\n")
            for old in cache_root.glob(f"{SUITE}-*"):  # one image at a time: disk is not free
                shutil.rmtree(old, ignore_errors=True)
            work.rename(final)
            return VmImage(final, key, seconds)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Completed:
    """What a guest command did."""

    script: str
    status: int
    stdout: str
    stderr: str

    def check(self) -> Completed:
        if self.status != 0:
            raise VmError(
                f"in the VM, exit status {self.status}: {self.script}\n--- stdout\n{self.stdout}\n--- stderr\n"
                f"{self.stderr}"
            )
        return self


class _GuestAgent:
    """The QEMU guest agent protocol (JSON lines over the virtio-serial port's Unix socket)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = int(time.time()) % 100000 * 1000

    def _send(self, message: Mapping[str, Any], prefix: bytes = b"") -> None:
        assert self._sock is not None
        self._sock.sendall(prefix + json.dumps(message).encode() + b"\n")

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        assert self._sock is not None
        while marker not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(min(left, 5.0))
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("guest agent socket closed")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def sync(self, attempt_s: float) -> bool:
        """Connect if needed and synchronise (guest-sync-delimited); False if the agent did not answer yet."""
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self._path))
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                return False
            self._sock = sock
        self._next_id += 1
        wanted = self._next_id
        # 0xFF resets the agent's parser; the answer to guest-sync-delimited starts with 0xFF too.
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": wanted}}, prefix=b"\xff")
        deadline = time.monotonic() + attempt_s
        try:
            while True:
                self._read_until(b"\xff", deadline)
                line = self._read_until(b"\n", deadline)
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                if answer.get("return") == wanted:
                    return True
        except TimeoutError:
            return False

    def call(self, command: str, arguments: Mapping[str, Any] | None = None, timeout_s: float = 60) -> Any:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = dict(arguments)
        self._send(message)
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_until(b"\n", deadline).strip(b"\xff \r")
            if not line:
                continue
            answer = json.loads(line)
            if "error" in answer:
                raise VmError(f"guest agent refused {command}: {answer['error']}")
            if "return" in answer:
                return answer["return"]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


#: QEMU's user network: the host's 127.0.0.1 as the guest sees it, and the guest's own static address.
HOST_FROM_GUEST = "10.0.2.2"
GUEST_ADDRESS = "10.0.2.15"

GUEST_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "DEBIAN_FRONTEND=noninteractive",
    "SYSTEMD_PAGER=",
    "SYSTEMD_COLORS=0",
    "TERM=dumb",
)


class Vm:
    """A running VM (use as a context manager). ``run`` executes shell as root in the guest."""

    def __init__(
        self,
        image: VmImage,
        disk: Path,
        *,
        memory_mb: int = 1536,
        cpus: int = 2,
        boot_timeout_s: float = 300,
        host_network: bool = False,
    ) -> None:
        """``disk``: the VM's qcow2 overlay on the image; made if missing, kept (boot it again to see what is left).

        ``host_network``: a virtio NIC on QEMU's user network, where the guest reaches the host's loopback
        services at :data:`HOST_FROM_GUEST` (no default route is configured: nothing else); the guest configures
        it with :meth:`configure_host_network`.
        """
        self.image = image
        self._host_network = host_network
        self.disk = disk
        self._memory_mb = memory_mb
        self._cpus = cpus
        self._boot_timeout_s = boot_timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="picvm-"))  # short: Unix socket paths are limited
        self.serial_log = self.workdir / "serial.log"
        self._agent = _GuestAgent(self.workdir / "qga.sock")
        self._qemu: subprocess.Popen[bytes] | None = None
        self.boot_seconds: float | None = None

    def __enter__(self) -> Vm:
        argv = [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-smp",
            str(self._cpus),
            "-m",
            str(self._memory_mb),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            str(self.image.kernel),
            "-initrd",
            str(self.image.initrd),
            "-append",
            "root=/dev/vda rw console=ttyS0 panic=-1",
            "-drive",
            f"file={self.disk},format=qcow2,if=virtio",
            "-serial",
            f"file:{self.serial_log}",
            "-chardev",
            f"socket,id=qga0,path={self.workdir / 'qga.sock'},server=on,wait=off",
            "-device",
            "virtio-serial-pci",
            "-device",
            "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-device",
            "virtio-rng-pci",
            "-nic",
            "user,model=virtio-net-pci" if self._host_network else "none",
        ]
        if not self.disk.exists():
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.rootfs), str(self.disk)],
                env=build_env(),
                check=True,
                capture_output=True,
            )
        started = time.monotonic()
        self._qemu = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=(self.workdir / "qemu.log").open("wb"), stderr=subprocess.STDOUT
        )
        try:
            deadline = started + self._boot_timeout_s
            while not self._agent.sync(attempt_s=5):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise VmError(f"the guest agent did not answer within {self._boot_timeout_s:.0f} s{self.tail()}")
                if not (self.workdir / "qga.sock").exists():
                    time.sleep(0.2)  # qemu is still creating its socket; nothing to poll yet
            state = self.run("systemctl is-system-running --wait", timeout_s=self._boot_timeout_s).stdout.strip()
            if state not in ("running", "degraded"):
                raise VmError(f"the VM did not finish booting: {state}{self.tail()}")
            self.boot_seconds = time.monotonic() - started
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._agent.close()
        if self._qemu is not None and self._qemu.poll() is None:
            self._qemu.terminate()
            try:
                self._qemu.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._qemu.kill()
                self._qemu.wait(timeout=20)
        if error is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def configure_host_network(self) -> None:
        """A static address on the user network's NIC, by systemd-networkd (in the image; no DHCP client there)."""
        self.write(
            "/etc/systemd/network/10-host.network",
            f"[Match]\nName=en*\n\n[Network]\nAddress={GUEST_ADDRESS}/24\n",
        )
        self.run("systemctl start systemd-networkd", timeout_s=60, check=True)
        deadline = time.monotonic() + 60
        while self.run(f"networkctl status --no-pager | grep -q {GUEST_ADDRESS}").status != 0:
            if time.monotonic() > deadline:
                raise VmError(f"no {GUEST_ADDRESS} in the guest: {self.run('networkctl status --no-pager').stdout}")
            time.sleep(0.5)  # networkd is configuring the link

    def wait_for_poweroff(self, timeout_s: float) -> str:
        """Wait until the guest powers itself off (qemu exits); returns the serial console's text."""
        assert self._qemu is not None
        self._agent.close()
        try:
            self._qemu.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            raise VmError(f"the VM was still running {timeout_s:.0f} s later{self.tail()}") from error
        return self.serial_log.read_text(errors="replace")

    def _check_alive(self) -> None:
        if self._qemu is not None and self._qemu.poll() is not None:
            qemu_log = (self.workdir / "qemu.log").read_text(errors="replace")
            raise VmError(f"qemu exited with status {self._qemu.returncode}: {qemu_log}{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The last lines of the serial console, for error messages."""
        try:
            text = self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return "\n(no serial console output)"
        return f"\n--- last {lines} lines of the VM's console ({self.serial_log}):\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def run(self, script: str, *, timeout_s: float = 120, check: bool = False) -> Completed:
        """Run ``script`` with /bin/sh as root in the guest; the guest kills it after ``timeout_s``."""
        self._check_alive()
        limit = f"{timeout_s:.0f}"
        started = self._agent.call(
            "guest-exec",
            {
                "path": "/usr/bin/timeout",
                "arg": ["--kill-after=5", limit, "/bin/sh", "-c", script],
                "env": list(GUEST_ENV),
                "capture-output": True,
            },
        )
        deadline = time.monotonic() + timeout_s + 30
        while True:
            status = self._agent.call("guest-exec-status", {"pid": started["pid"]})
            if status["exited"]:
                break
            self._check_alive()
            if time.monotonic() > deadline:
                raise VmError(f"no answer from the VM within {timeout_s + 30:.0f} s: {script}{self.tail()}")
            time.sleep(0.1)  # the agent has no blocking wait; poll the process's status
        code = status.get("exitcode", 128 + status.get("signal", 0))
        if code == 124:
            raise VmError(f"timed out after {limit} s in the VM: {script}")
        done = Completed(
            script,
            code,
            base64.b64decode(status.get("out-data", "")).decode(errors="replace"),
            base64.b64decode(status.get("err-data", "")).decode(errors="replace"),
        )
        return done.check() if check else done

    def write(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Create or replace the file ``path`` in the guest (owned by root)."""
        content = data.encode() if isinstance(data, str) else data
        handle = self._agent.call("guest-file-open", {"path": path, "mode": "wb"})
        try:
            for offset in range(0, len(content), 48 * 1024):
                chunk = base64.b64encode(content[offset : offset + 48 * 1024]).decode()
                self._agent.call("guest-file-write", {"handle": handle, "buf-b64": chunk})
        finally:
            self._agent.call("guest-file-close", {"handle": handle})
        self.run(f"chmod {mode:o} '{path}'", check=True)
