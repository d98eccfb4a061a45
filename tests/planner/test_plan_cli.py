"""`piclusterctl plan --snapshot` as an operator runs it, on the reference snapshots."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from piclusterd.testing.daemon_process import installed_script

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_script("piclusterctl"), "plan", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_clinic_5_on_battery_sheds_an_agent_and_one_server_keeps_the_database_node() -> None:
    done = plan(
        "--snapshot", str(CLUSTERS / "clinic-5.json"), "--on-battery", "--charge", "100", "--battery-wh", "84", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["shed"] == ["pi4", "pi3"]
    assert result["projected_runtime_s"] > result["runtime_without_shedding_s"] > 0
    assert {(r["node"], r["rule"]) for r in result["refused"]} == {
        ("pi1", "etcd_quorum"),
        ("pi2", "etcd_quorum"),
        ("pi5", "pinned_volume"),
    }
    assert "volumes were not checked" not in done.stderr
    # Whether the search ran out of its work budget (the plan is then the best safe one found within it).
    assert result["search_cut"] is False and result["optimum"]["search_cut"] is False


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


def solar_snapshot_with_records(tmp_path: Path, charges: dict[str, float], age_s: float) -> Path:
    """solar-3 as `kubectl get -o json` shows it with each node's picluster.io/power record (HAT on battery)."""
    import time

    from piclusterd.core.node_records import rfc3339
    from piclusterd.core.power_record import POWER_ANNOTATION, BatteryRecord, PowerRecord, render_power_record
    from piclusterd.core.power_state import PowerState
    from piclusterd.core.reading import UpsFlag

    data = json.loads((CLUSTERS / "solar-3.json").read_text())
    at = rfc3339(time.time() - age_s)
    for item in data["items"]:
        name = item["metadata"]["name"]
        if item["kind"] == "Node" and name in charges:
            hat = BatteryRecord("hat:x728@i2c-1:0x36", frozenset({UpsFlag.OB}), charges[name], 3600.0, at)
            record = PowerRecord(PowerState.ON_BATTERY, charges[name], 3600.0, "hat", (hat,), at)
            item["metadata"]["annotations"][POWER_ANNOTATION] = render_power_record(record)
    path = tmp_path / "solar-3-now.json"
    path.write_text(json.dumps(data))
    return path


def per_node_config(tmp_path: Path) -> Path:
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        '[battery]\ncapacity_wh = 256\ntopology = "per-node"\nnode_capacity_wh = 21.6\n'
        '[cluster]\ntarget_runtime = "2h"\n'
    )
    return path


def test_per_node_what_if_moves_work_off_the_node_whose_own_battery_runs_out(tmp_path: Path) -> None:
    snapshot = solar_snapshot_with_records(tmp_path, {"s1": 95.0, "s2": 25.0, "s3": 90.0}, age_s=10)
    done = plan("--snapshot", str(snapshot), "--config", str(per_node_config(tmp_path)), "--on-battery", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["decision"] == "per_node" and result["shed"] == ["s2"] and result["topology"] == "per-node"


def test_hat_records_without_node_capacity_warn_that_the_plan_is_shared_only(tmp_path: Path) -> None:
    snapshot = solar_snapshot_with_records(tmp_path, {"s1": 95.0, "s2": 25.0, "s3": 90.0}, age_s=10)
    config = tmp_path / "piclusterd.toml"
    config.write_text('[battery]\ncapacity_wh = 256\n[cluster]\ntarget_runtime = "2h"\n')
    done = plan("--snapshot", str(snapshot), "--config", str(config), "--on-battery", "--json")
    assert done.returncode == 0, done.stderr
    assert "s1, s2, s3 publish a battery of their own (HAT), but [battery] node_capacity_wh is not set" in done.stderr
    assert json.loads(done.stdout)["topology"] == "shared"
    # Without HAT records there is nothing to warn of.
    quiet = plan("--snapshot", str(CLUSTERS / "solar-3.json"), "--config", str(config), "--on-battery", "--json")
    assert quiet.returncode == 0 and "node_capacity_wh" not in quiet.stderr


def test_per_node_what_if_on_old_records_acts_on_nothing_and_says_why(tmp_path: Path) -> None:
    snapshot = solar_snapshot_with_records(tmp_path, {"s1": 95.0, "s2": 25.0, "s3": 90.0}, age_s=3600)
    done = plan("--snapshot", str(snapshot), "--config", str(per_node_config(tmp_path)), "--on-battery")
    assert done.returncode == 0, done.stderr
    assert "power_unknown" in done.stdout and "stale after 180 s" in done.stdout
    assert "  #  shed" not in done.stdout


def test_as_of_the_snapshots_time_replays_the_per_node_decision(tmp_path: Path) -> None:
    """Issue 17, finding 5: a saved snapshot's records were judged against now, so they were all stale and a
    per-node decision could not be replayed. --as-of judges them as of the snapshot's time."""
    import time

    from piclusterd.core.node_records import rfc3339

    snapshot = solar_snapshot_with_records(tmp_path, {"s1": 95.0, "s2": 25.0, "s3": 90.0}, age_s=3600)
    taken = rfc3339(time.time() - 3600 + 10)  # ten seconds after the records were written
    config = str(per_node_config(tmp_path))
    done = plan("--snapshot", str(snapshot), "--config", config, "--on-battery", "--json", "--as-of", taken)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["decision"] == "per_node" and result["shed"] == ["s2"]
    # The same time as UNIX seconds; and judged as of now, the same records are too old to act on.
    unix = plan(
        "--snapshot",
        str(snapshot),
        "--config",
        config,
        "--on-battery",
        "--json",
        "--as-of",
        f"@{time.time() - 3590:.0f}",
    )
    assert json.loads(unix.stdout)["shed"] == ["s2"]
    assert (
        json.loads(plan("--snapshot", str(snapshot), "--config", config, "--on-battery", "--json").stdout)["shed"] == []
    )


def test_as_of_lets_a_node_back_less_than_restore_after_before_settle(tmp_path: Path) -> None:
    """A node the leader brought back (its power-on record) settles for restore_after: the what-if, as of the
    snapshot's time, keeps it on as the leader would."""
    from piclusterd.core.power_on_record import (
        POWER_ON_ANNOTATION,
        PowerOnRecord,
        PowerOnStep,
        render_power_on_record,
    )

    data = json.loads((CLUSTERS / "clinic-5.json").read_text())
    for item in data["items"]:
        if item["kind"] == "Node" and item["metadata"]["name"] == "pi4":
            record = PowerOnRecord(PowerOnStep.BACK, "2026-12-06T02:00:00Z")
            item["metadata"].setdefault("annotations", {})[POWER_ON_ANNOTATION] = render_power_on_record(record)
    snapshot = tmp_path / "clinic-5-restored.json"
    snapshot.write_text(json.dumps(data))
    args = ("--snapshot", str(snapshot), "--on-battery", "--charge", "100", "--battery-wh", "84", "--json")
    settling = json.loads(plan(*args, "--as-of", "2026-12-06T02:01:00Z").stdout)
    assert "pi4" not in settling["shed"]
    assert ("pi4", "settling") in {(r["node"], r["rule"]) for r in settling["refused"]}
    settled = json.loads(plan(*args, "--as-of", "2026-12-06T03:00:00Z").stdout)
    assert "pi4" in settled["shed"]


@pytest.mark.parametrize("value", ["yesterday", "2026-12-06T02:00:00", "@1e400", "@nan", "1900-01-01T00:00:00Z"])
def test_an_as_of_that_is_not_a_time_is_refused_in_one_line(value: str) -> None:
    done = plan("--snapshot", str(CLUSTERS / "clinic-5.json"), "--battery-wh", "84", "--as-of", value)
    assert done.returncode == 2
    assert done.stderr.startswith("piclusterctl plan: --as-of") and done.stderr.count("\n") == 1
