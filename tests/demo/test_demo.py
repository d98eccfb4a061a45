"""The README's main-job command: the real daemon code through storm-2am on an accelerated clock."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from piclusterd.demo import run_demo


def test_storm_ends_in_clean_shutdowns_at_the_analytic_time() -> None:
    out = io.StringIO()
    figures = run_demo("storm-2am", speed=0, out=out)
    text = out.getvalue()
    # LB at 20 % charge: 80 % of 84 Wh x 0.8 at 23 W / 0.85 + 5 W -> 1 h 40 min 36 s after 02:00.
    first_critical = re.search(r"(\S+) \[critical \] power.state_changed", text)
    assert first_critical is not None and first_critical.group(1).startswith("2026-11-24T03:40:3")
    assert figures["shutdowns"] >= 1
    assert text.count("shutdown.local_started") == figures["shutdowns"]


def test_a_blip_changes_nothing_but_the_log() -> None:
    out = io.StringIO()
    figures = run_demo("blip", speed=0, out=out)
    assert figures["shutdowns"] == 0 and figures["down_s"] == 0
    assert "new=on_battery" in out.getvalue() and "new=online" in out.getvalue()


def test_demo_command_runs_as_a_user_would() -> None:
    script = Path(sys.executable).with_name("piclusterd")
    done = subprocess.run(
        [str(script), "demo", "--speed", "0", "--outage", "blip"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "summary" in done.stdout and "power.state_changed" in done.stdout
