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
    assert "summary" in done.stdout and "leader.acquired" in done.stdout
    assert "nodes shed (power-offs)            none (0)" in done.stdout  # an 8 s blip sheds nothing


def test_cluster_demo_sheds_after_the_grace_period_and_keeps_critical_services_up() -> None:
    from piclusterd.cluster_demo import run_cluster_demo

    out = io.StringIO()
    figures = run_cluster_demo("storm-2am", speed=0, out=out)
    text = out.getvalue()
    first_off = re.search(r"^(\d\d:\d\d:\d\d)  pi1  node.powered_off", text, re.MULTILINE)
    assert first_off is not None and "02:01:00" <= first_off.group(1) <= "02:05:00"  # after the 60 s grace
    assert "02:00:00  pi1  plan.decided             shed nothing [hold_grace]" in text
    assert figures.runtime_planned_s is not None and figures.runtime_without_s is not None
    assert figures.runtime_without_s < figures.runtime_planned_s <= (figures.runtime_optimum_s or 0) + 60
    assert set(figures.shed[:3]) <= {"pi2", "pi3", "pi4", "pi5"} and "pi1" not in figures.shed  # never the leader
    assert figures.critical_up_s > 0.5 * figures.on_battery_s
    assert "node.restored" in text  # shed nodes rejoin when mains returns


def test_the_demos_cluster_is_the_reference_clinic_5() -> None:
    data = Path(__file__).resolve().parents[2] / "piclusterd" / "testing" / "data"
    examples = Path(__file__).resolve().parents[2] / "examples" / "clusters"
    for name in ("clinic-5.json", "clinic-5.toml"):
        assert (data / name).read_text() == (examples / name).read_text()
