"""``piclusterctl report`` on a real journal file of a real outage: five nodes' daemons (ClusterWorld: the real
node and cluster code on one fake clock against the fake API server) through one hour without mains, their
audit events written to a journal by systemd-journal-remote, read back by journalctl."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.config.settings import ShedSettings
from piclusterd.core.restore import RestorePolicy
from piclusterd.sim.cluster_world import BootInWorld, ClusterWorld, SimulatedPi
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.daemon_process import installed_script
from piclusterd.testing.journal_file import write_journal_file

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
HOUR = 3600.0
EPOCH = 1_796_522_400.0 - 1000.0  # monotonic 1000 is 2026-12-06 02:00 UTC


@pytest.fixture(scope="module")
def outage() -> Iterator[dict[str, Any]]:
    """One hour without mains at 02:00 on clinic-5, then mains back until every shed node is restored."""
    clock = FakeClock(start=1000.0, epoch=EPOCH)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(CLINIC)
        server.run_controller_once()
        scenario = load_scenario(CLINIC)
        settings = ShedSettings(
            scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=RestorePolicy()
        )
        world = ClusterWorld(
            server, clock, NAMES, settings, power_on=lambda w: PowerOnBackends({}, default=BootInWorld(w, 30.0))
        )
        every: dict[int, SimulatedPi] = {}
        charge = 100.0

        def run(seconds: float, mains: bool, step_s: float) -> None:
            nonlocal charge
            end = clock.monotonic() + seconds
            while clock.monotonic() < end:
                running = sum(pi.alive for pi in world.pis.values())
                hours = step_s / HOUR
                charge = min(100.0, charge + 20 * hours) if mains else charge - (6 + 4 * running) * hours
                status = ("OL CHRG" if charge < 100 else "OL") if mains else "OB DISCHRG"
                world.ups.drive(
                    ups_realpower=f"{8 * running}",
                    ups_status=status,
                    battery_charge=f"{charge:.1f}",
                    battery_runtime=f"{charge / (6 + 4 * running) * HOUR:.0f}",
                )
                world.step(step_s)
                every.update((id(pi), pi) for pi in world.pis.values())

        try:
            run(20, True, 5.0)
            run(HOUR, False, 15.0)
            run(30 * 60, True, 5.0)
            events = [e for pi in every.values() for e in pi.audit.events]
            yield {
                "events": events,
                "world_shed": [e["target"] for e in world.events("node.powered_off")],
                "capacity_wh": scenario.battery.capacity_wh,
            }
        finally:
            world.close()


@pytest.fixture(scope="module")
def journal(outage: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("journal")
    (directory / "piclusterd.toml").write_text(f"[battery]\ncapacity_wh = {outage['capacity_wh']}\n")
    return write_journal_file(outage["events"], directory / "outage.journal")


def report(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = journal.with_name("piclusterd.toml")
    if not config.exists():
        config.write_text("")
    return subprocess.run(
        [installed_script("piclusterctl"), "report", "--journal-file", str(journal), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_of_a_real_outage_shows_its_figures(outage: dict[str, Any], journal: Path) -> None:
    done = report(journal, "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    shown = body["outage"]
    assert shown["started_at"] == "2026-12-06T02:00:20Z"
    assert shown["duration_s"] == pytest.approx(HOUR, abs=30)  # seen at the polls after mains returns
    assert outage["world_shed"] and shown["nodes_shed"] == outage["world_shed"]
    assert sorted(shown["nodes_restored"]) == sorted(outage["world_shed"])
    (summary,) = [e for e in outage["events"] if e["event"] == "outage.summary"]
    assert shown["critical_downtime_s"] == summary["critical_downtime_s"] == 0
    assert shown["energy_wh"] == summary["energy_used_wh"] > 0
    assert shown["capacity_wh"] == outage["capacity_wh"]
    assert shown["charge_start_pct"] == pytest.approx(100, abs=1)
    events = [step["event"] for step in shown["timeline"]]
    assert {"power.state_changed", "plan.decided", "node.drained", "node.powered_off", "node.restored"} <= set(events)
    assert events[-1] == "outage.summary" or "outage.summary" in events
    assert body["outages"] == [shown["id"]] and body["unreadable_entries"] == 0
    assert "1 outage(s)" in body["battery_trend"]["message"]


def test_the_text_report_reads_as_the_night_was(outage: dict[str, Any], journal: Path) -> None:
    done = report(journal)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "Outage 2026-12-06T02:00:20Z" in text
    assert f"nodes shed: {', '.join(outage['world_shed'])}" in text
    assert "critical downtime: 0 s" in text
    assert f"of {outage['capacity_wh']:.0f} Wh (" in text
    assert "mains failed 2026-12-06T02:00:20Z, back 2026-12-06T03:00:" in text
    assert "power online -> on_battery" in text


def test_the_plot_draws_the_outage(journal: Path, tmp_path: Path) -> None:
    target = tmp_path / "outage.png"
    done = report(journal, "--plot", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000


def test_an_unknown_outage_names_the_ones_there_are(journal: Path) -> None:
    done = report(journal, "--outage", "2025-01-01")
    assert done.returncode == 2
    assert "no outage '2025-01-01'; the latest: 2026-12-06T02:00:20Z" in done.stderr


def test_a_journal_without_outages_says_so(tmp_path: Path) -> None:
    quiet = write_journal_file(
        [{"timestamp": "2026-12-06T02:00:00Z", "event": "daemon.started", "node": "pi1", "level": "info"}],
        tmp_path / "quiet.journal",
    )
    done = report(quiet)
    assert done.returncode == 1 and "no outage in the journal" in done.stderr
