"""`piclusterctl plan --snapshot` as an operator runs it, on the reference snapshots."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from piclusterd.testing.daemon_process import installed_script

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_script("piclusterctl"), "plan", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_clinic_5_on_battery_sheds_agents_then_one_server_and_names_the_quorum_refusals() -> None:
    done = plan(
        "--snapshot", str(CLUSTERS / "clinic-5.json"), "--on-battery", "--charge", "100", "--battery-wh", "84", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["shed"] == ["pi4", "pi5", "pi3"]
    assert result["projected_runtime_s"] > result["runtime_without_shedding_s"] > 0
    assert {(r["node"], r["rule"]) for r in result["refused"]} == {("pi1", "etcd_quorum"), ("pi2", "etcd_quorum")}


def test_on_mains_nothing_is_shed() -> None:
    done = plan("--snapshot", str(CLUSTERS / "clinic-5.json"), "--battery-wh", "84", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["shed"] == []


def test_text_output_is_a_table_with_the_optimum() -> None:
    done = plan("--snapshot", str(CLUSTERS / "district-10.json"), "--on-battery", "--battery-wh", "216")
    assert done.returncode == 0, done.stderr
    assert "runtime, no shedding:" in done.stdout and "physical optimum:" in done.stdout
    assert "  1  n4" in done.stdout


def test_an_unknown_battery_is_refused_with_the_fix() -> None:
    done = plan("--snapshot", str(CLUSTERS / "clinic-5.json"), "--on-battery")
    assert done.returncode == 2
    assert "battery.capacity_wh" in done.stderr and "--battery-wh" in done.stderr


def test_a_broken_snapshot_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "snap.json"
    bad.write_text('{"kind": "List", "items": [{"kind": "Node"}]}')
    done = plan("--snapshot", str(bad), "--battery-wh", "84")
    assert done.returncode == 2 and "cannot read" in done.stderr
