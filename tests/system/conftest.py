"""Fixtures for the system tests: the .deb built from this tree, and the cached VM image.

These tests need root and Debian's build and VM tools. Without them they fail, saying what is missing and
how to get it (``.ci/run`` installs everything); they never skip, so a CI run cannot pass without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .gpio_sim import cached_gpio_sim_module
from .vm import VmImage, build_env, cached_image, missing_host_tools

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path("/var/cache/piclusterd-test")


def require_root_and_tools() -> None:
    """Fail (not skip) when the system tests cannot run here, naming the fix."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: mmdebstrap builds the VM image as root. Run: sudo bash .ci/run")
    missing = missing_host_tools()
    if missing:
        problems.append("missing tools: " + ", ".join(missing) + " (.ci/run installs them)")
    if problems:
        pytest.fail("system tests cannot run: " + "; ".join(problems), pytrace=False)


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    """The result of ``dpkg-buildpackage -us -uc -b`` on a copy of this tree."""

    deb: Path
    changes: Path
    source_tree: Path
    build_seconds: float


def _copy_tree(destination: Path) -> None:
    """The files git knows about (tracked or new, not ignored), so .venv and caches stay out of the build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in git
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


@pytest.fixture(scope="session")
def built_package() -> Iterator[BuiltPackage]:
    require_root_and_tools()
    work = Path(tempfile.mkdtemp(prefix="piclusterd-deb-"))
    tree = work / "piclusterd"
    _copy_tree(tree)
    checked = subprocess.run(["dpkg-checkbuilddeps"], cwd=tree, env=build_env(), capture_output=True, text=True)
    if checked.returncode != 0:
        pytest.fail(f"cannot build the .deb: {checked.stderr.strip()} (.ci/run installs them)", pytrace=False)
    started = time.monotonic()
    log = work / "build.log"
    with log.open("wb") as out:
        done = subprocess.run(
            ["dpkg-buildpackage", "-us", "-uc", "-b"],
            cwd=tree,
            env=build_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"dpkg-buildpackage failed (exit status {done.returncode}), log {log}:\n{tail}", pytrace=False)
    (deb,) = work.glob("piclusterd_*_all.deb")
    (changes,) = work.glob("piclusterd_*.changes")
    yield BuiltPackage(deb, changes, tree, time.monotonic() - started)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def vm_image() -> VmImage:
    require_root_and_tools()
    cache = Path(os.environ.get("PICLUSTERD_VM_CACHE", DEFAULT_CACHE))
    return cached_image(cache, REPO / "debian" / "control")


@pytest.fixture(scope="session")
def gpio_sim_module(vm_image: VmImage) -> Path:
    """gpio-sim for the VM's kernel (Debian builds none): a real GPIO chip for the libgpiod backend (issue 15)."""
    cache = Path(os.environ.get("PICLUSTERD_VM_CACHE", DEFAULT_CACHE))
    return cached_gpio_sim_module(cache, vm_image)
