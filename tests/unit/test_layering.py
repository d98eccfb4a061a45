"""The folder tree is the architecture: import-linter's contracts (pyproject.toml) hold on the installed tree.

The contracts run on a copy laid out as installed (``drivers/`` as ``piclusterd.drivers``), and a second run
plants a forbidden import in such a copy to show that a broken rule fails the suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
RINGS = ("core", "config", "node", "cluster", "sim", "testing")


def installed_tree(into: Path) -> Path:
    """``piclusterd`` as pip installs it: the package with the top-level ``drivers/`` inside it."""
    package = into / "piclusterd"
    shutil.copytree(REPO / "piclusterd", package, ignore=shutil.ignore_patterns("__pycache__", "drivers"))
    shutil.copytree(REPO / "drivers", package / "drivers", ignore=shutil.ignore_patterns("__pycache__"))
    return package


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_layering_contract_is_kept(tmp_path: Path) -> None:
    installed_tree(tmp_path)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("core/planner.py", "import piclusterd.cluster.kube_api", "Rings"),
        ("core/reading.py", "import piclusterd._vendor.PyNUT", "The core is pure"),
        ("drivers/hat.py", "import piclusterd.cluster.drain", "Rings"),
        ("node/daemon.py", "import piclusterd.cluster.election", "Rings"),
        ("cluster/controller.py", "import piclusterd.sim.fake_clock", "Rings"),
        ("sim/simulator.py", "import piclusterd.testing.nut_emulator", "Rings"),
        ("cli.py", "import piclusterd.testing.sshd", "Only tests import testing"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    package = installed_tree(tmp_path)
    path = package / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{forbidden_import}  # planted\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


@pytest.mark.parametrize("ring", RINGS)
def test_each_ring_says_its_purpose_and_what_it_may_import(ring: str) -> None:
    doc = (REPO / "piclusterd" / ring / "__init__.py").read_text(encoding="utf-8")
    assert doc.startswith('"""') and "May import" in doc, f"piclusterd/{ring}/__init__.py"
