"""The README's "Try it" command, run as a new user would: in a copy of this folder, a clean virtual
environment from the system's python3, ``pip install .``, then the demo exactly as written.

The command lines are read from README.md, so the README cannot drift from what is tested. Its first step,
``sudo apt-get install -y python3-venv``, changes the machine, so it is checked (the package is installed)
instead of run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APT_STEP = "sudo apt-get install -y python3-venv"


def readme_try_it_steps() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try it", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)\n```", section, re.DOTALL)
    assert block is not None, "README.md's 'Try it' section has no ```sh block"
    return [step.strip() for line in block.group(1).splitlines() for step in line.split("&&") if step.strip()]


def copy_of_this_folder(target: Path) -> Path:
    """What a user has after cloning: the tracked and new files, no virtual environment, no build output."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.slow
def test_the_readme_demo_command_works_from_a_clean_venv(tmp_path: Path) -> None:
    steps = readme_try_it_steps()
    assert steps[0] == APT_STEP, steps
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "python3-venv"], capture_output=True, text=True, check=False
    )
    assert "install ok installed" in installed.stdout, "python3-venv missing: the README's first step installs it"
    assert steps[-1] == ".venv/bin/piclusterd demo", steps  # the main-job command, no options
    folder = copy_of_this_folder(tmp_path / "piclusterd")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # the system's python3, not the test's virtual environment
    done = subprocess.run(
        ["bash", "-c", " && ".join(steps[1:])],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "piclusterd demo: clinic-5 (5 nodes, 84 Wh battery), outage 'storm-2am'" in out
    assert re.search(r"^  kubectl --kubeconfig \S+ get nodes -o wide -w$", out, re.MULTILINE)
    assert re.search(r"^\d\d:\d\d:\d\d  pi1  node.powered_off +target=pi\d", out, re.MULTILINE)
    for figure in ("runtime achieved, with piclusterd", "without piclusterd (no shedding)", "physical optimum"):
        assert figure in out
    assert (folder / ".venv" / "bin" / "piclusterd").is_file()
