"""The package also builds and runs on Debian trixie (Python 3.13, the base of Raspberry Pi OS trixie):
dpkg-buildpackage inside a trixie chroot made with mmdebstrap, then apt install of the .deb there."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DEFAULT_CACHE, _copy_tree, require_root_and_tools

PACKAGES = (
    "debhelper,dh-python,python3-all,python3-setuptools,pybuild-plugin-pyproject,"
    "python3-structlog,python3-kubernetes,python3-smbus2,python3-systemd"
)


def _trixie_tarball() -> Path:
    """A trixie build chroot, cached by its package list (about 40 s to make, 250 MB)."""
    key = hashlib.sha256(PACKAGES.encode()).hexdigest()[:12]
    cached = DEFAULT_CACHE / f"trixie-buildd-{key}.tar"
    if cached.exists():
        return cached
    DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    done = subprocess.run(
        [
            "mmdebstrap",
            "--variant=buildd",
            "--format=tar",  # the .partial name would otherwise make a directory
            f"--include={PACKAGES}",
            "trixie",
            str(partial),
            "http://deb.debian.org/debian",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(f"mmdebstrap trixie failed: {done.stderr[-2000:]}", pytrace=False)
    partial.rename(cached)
    return cached


@pytest.fixture(scope="module")
def trixie_root() -> Iterator[Path]:
    require_root_and_tools()
    root = Path(tempfile.mkdtemp(prefix="piclusterd-trixie-"))
    with tarfile.open(_trixie_tarball()) as archive:
        archive.extractall(root, filter="fully_trusted")
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    _copy_tree(root / "build" / "piclusterd")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def in_root(root: Path, script: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), "sh", "-ec", script], capture_output=True, text=True, timeout=timeout_s)


def test_the_package_builds_installs_and_runs_on_trixie(trixie_root: Path) -> None:
    built = in_root(trixie_root, "cd /build/piclusterd && dpkg-buildpackage -us -uc -b")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (deb,) = (trixie_root / "build").glob("piclusterd_*_all.deb")
    installed = in_root(
        trixie_root,
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        f"/build/{deb.name} >/dev/null",
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    ran = in_root(
        trixie_root,
        "python3 --version; piclusterd check-config --config /etc/piclusterd/piclusterd.toml; "
        "piclusterd demo --speed 0 --outage blip | tail -9; "
        'python3 -c "from piclusterd.drivers.nut import NutPowerSource; print(NutPowerSource.__name__)"',
    )
    assert ran.returncode == 0, ran.stderr
    assert "Python 3.13" in ran.stdout
    assert ": OK (" in ran.stdout and "mode dry-run" in ran.stdout
    assert "whole cluster down                 0 s" in ran.stdout  # the cluster demo, on Debian's own libraries
    assert "nodes shed (power-offs)            none (0)" in ran.stdout
    assert "NutPowerSource" in ran.stdout  # the vendored client: no telnetlib on 3.13
