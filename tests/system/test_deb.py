"""The Debian package as built from this tree by dpkg-buildpackage: lintian-clean, and holding what it must."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from piclusterd import __version__

from .conftest import REPO, BuiltPackage
from .vm import build_env

pytestmark = [pytest.mark.slow]


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True, env=build_env()).stdout


@pytest.fixture(scope="module")
def contents(built_package: BuiltPackage) -> dict[str, str]:
    """Path (without the leading ".") -> permissions, from ``dpkg-deb -c``."""
    listing: dict[str, str] = {}
    for line in dpkg_deb("-c", str(built_package.deb)).splitlines():
        fields = line.split()
        listing[fields[5].removeprefix(".").rstrip("/") or "/"] = fields[0]
    return listing


def test_the_debian_and_man_page_versions_are_the_python_version() -> None:
    first = (REPO / "debian" / "changelog").read_text(encoding="utf-8").splitlines()[0]
    assert re.match(rf"^piclusterd \({re.escape(__version__)}\) ", first), first
    for page in ("man/piclusterd.8", "man/piclusterctl.1"):
        assert f'"piclusterd {__version__}"' in (REPO / page).read_text(encoding="utf-8"), page


def test_lintian_reports_no_errors_and_no_warnings(built_package: BuiltPackage) -> None:
    done = subprocess.run(
        ["lintian", "--fail-on", "none", str(built_package.changes)],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=600,
    )
    tags = [line for line in done.stdout.splitlines() if line.startswith(("E:", "W:"))]
    assert tags == [], "\n".join(tags)


def test_the_package_holds_the_commands_unit_config_and_docs(contents: dict[str, str]) -> None:
    for path in (
        "/usr/bin/piclusterd",
        "/usr/bin/piclusterctl",
        "/lib/systemd/system/piclusterd.service",
        "/etc/piclusterd/piclusterd.toml",
        "/usr/share/man/man8/piclusterd.8.gz",
        "/usr/share/man/man1/piclusterctl.1.gz",
        "/usr/lib/systemd/catalog/piclusterd.catalog",
        "/usr/share/bash-completion/completions/piclusterd",
        "/usr/share/bash-completion/completions/piclusterctl",
        "/usr/share/doc/piclusterd/audit.md",
        "/usr/share/doc/piclusterd/security.md",
        "/usr/share/doc/piclusterd/README.md",
        "/usr/lib/python3/dist-packages/piclusterd/_vendor/PyNUT.py",
        "/usr/lib/python3/dist-packages/piclusterd/drivers/nut.py",
    ):
        assert path in contents, path
    assert contents["/var/lib/piclusterd"] == "drwx------"


def test_the_packaged_config_is_a_conffile_in_dry_run(built_package: BuiltPackage, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-R", str(built_package.deb), str(tmp_path)], check=True, env=build_env())
    assert (tmp_path / "DEBIAN" / "conffiles").read_text().split() == ["/etc/piclusterd/piclusterd.toml"]
    config = (tmp_path / "etc" / "piclusterd" / "piclusterd.toml").read_text()
    assert re.search(r'^mode = "dry-run"$', config, flags=re.MULTILINE)


def test_it_depends_on_debian_packages_only(built_package: BuiltPackage) -> None:
    depends = dpkg_deb("-f", str(built_package.deb), "Depends")
    for needed in ("python3-kubernetes", "python3-structlog", "python3-systemd", "python3-smbus2"):
        assert needed in depends
    assert "nut" not in depends.lower(), "the NUT client is vendored (piclusterd/_vendor/PyNUT.py)"


def test_the_commands_start_without_pkg_resources(built_package: BuiltPackage, tmp_path: Path) -> None:
    """Old setuptools scripts check install_requires (pynutclient, from PyPI) at start; these must not."""
    subprocess.run(["dpkg-deb", "-x", str(built_package.deb), str(tmp_path)], check=True, env=build_env())
    for command in ("piclusterd", "piclusterctl"):
        script = (tmp_path / "usr" / "bin" / command).read_text()
        assert script.startswith("#!/usr/bin/python3\n")
        assert "pkg_resources" not in script and "load_entry_point" not in script
