"""Issue 16: one source of truth for the summary. Every figure comes from the timeline the plot and the CSV draw,
by the simulator's code; the optimum is never below what was achieved; every reference storm the battery cannot
outlast reaches 95 % of the physical optimum, as `piclusterctl simulate` prints it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from piclusterd.sim.simulate_command import load_simulation
from piclusterd.sim.simulator import Policy, SimResult, SimSettings, simulate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
PICLUSTERCTL = Path(sys.executable).parent / "piclusterctl"
# With the daemons' OB + LB confirmation too, as the demo runs them: the optimum must end where the run does.
CONFIRMED = SimSettings(lb_confirm_s=180.0, orderly_shutdown_s=180.0)


def by_hand(result: SimResult, stop_s: float) -> list[tuple[float, float, float, bool, float]]:
    """Each failure from the rows alone, independently of the simulator's code: (off_at, on_at, runtime with a
    node powered, lasted, energy at the first row with mains back)."""
    rows = result.timeline
    found: list[tuple[float, float, float, bool, float]] = []
    k = 0
    while k < len(rows):
        if rows[k].mains:
            k += 1
            continue
        start, runtime, lasted = rows[k].t_s, 0.0, True
        while k < len(rows) and not rows[k].mains:
            until = rows[k + 1].t_s if k + 1 < len(rows) else stop_s
            runtime += (until - rows[k].t_s) if rows[k].nodes_powered else 0.0
            lasted = lasted and rows[k].nodes_powered > 0
            k += 1
        if k < len(rows):
            found.append((start, rows[k].t_s, runtime, lasted, rows[k].energy_wh))
    return found


@pytest.mark.parametrize("settings", [SimSettings(), CONFIRMED], ids=["lb-at-once", "lb-confirmed"])
@pytest.mark.parametrize("name", ["clinic-5-storm", "district-10-long-night"])
def test_the_summary_is_what_the_plotted_timeline_says_and_never_beats_the_optimum(
    name: str, settings: SimSettings
) -> None:
    loaded = load_simulation(SCENARIOS / f"{name}.toml")
    assert loaded.outage is not None
    result = simulate(loaded.scenario, loaded.outage, Policy.PICLUSTERD, settings)
    figures = result.summary.outages
    expected = by_hand(result, loaded.outage.stop_s)
    assert [(f.off_at_s, f.on_at_s, f.survived) for f in figures] == [(a, b, c) for a, b, _, c, _ in expected]
    for failure, (_, _, runtime, _, energy) in zip(figures, expected, strict=True):
        assert failure.runtime_s == pytest.approx(runtime, abs=1e-6)
        assert failure.energy_left_wh == pytest.approx(energy, abs=1e-9)
        assert failure.optimum_runtime_s >= failure.runtime_s - 1e-6, failure  # never below what was achieved
    rows = result.timeline
    off = up = 0.0
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        until = following.t_s if following is not None else loaded.outage.stop_s
        if not row.mains:
            off += until - row.t_s
            up += (until - row.t_s) if row.critical_up == row.critical_total else 0.0
    assert result.summary.critical_up_fraction == pytest.approx(up / off, abs=1e-12)


def reached(name: str) -> tuple[bool, float | None]:
    """(lasted until mains returned, the share of the optimum) of piclusterd's run, as `piclusterctl simulate`
    prints them."""
    done = subprocess.run(
        [str(PICLUSTERCTL), "simulate", str(SCENARIOS / f"{name}.toml")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (lasted,) = [x for x in done.stdout.splitlines() if x.startswith("  lasted until mains returned")]
    (share,) = [x for x in done.stdout.splitlines() if x.startswith("  vs physical optimum")]
    if lasted.split()[-2] == "yes":
        return True, None
    match = re.match(r"\s+vs physical optimum\s+([\d.]+) %", share)
    assert match is not None, share
    return False, float(match.group(1))


@pytest.mark.parametrize("cluster", ["clinic-5", "solar-3"])
@pytest.mark.parametrize("outage", ["storm", "long-night"])
def test_a_reference_storm_the_battery_cannot_outlast_reaches_95_percent_of_the_optimum(
    cluster: str, outage: str
) -> None:
    lasted, share = reached(f"{cluster}-{outage}")
    assert lasted or (share is not None and share >= 95.0), share


@pytest.mark.parametrize("outage", ["storm", "long-night"])
def test_district_10_as_the_leader_runs_it_reaches_95_percent_of_the_optimum(outage: str) -> None:
    """Issue 16 item 4: `piclusterctl simulate` predicts what the daemon does, and the leader now stops the
    non-critical work its kept nodes would otherwise run (cluster.scaler): 98.2 % (85.4 % before)."""
    lasted, share = reached(f"district-10-{outage}")
    assert not lasted and share is not None and share >= 95.0, share


@pytest.mark.parametrize("outage", ["storm", "long-night"])
def test_district_10_keeping_its_work_running_stays_short_of_the_optimum(outage: str) -> None:
    """Without the stops (as before the leader's scaler) the kept nodes run the non-critical work of the
    shed ones, room being left for it: 85.4 % (74.2 % keeping every pod)."""
    loaded = load_simulation(SCENARIOS / f"district-10-{outage}.toml")
    assert loaded.outage is not None
    settings = dataclasses.replace(loaded.settings, stop_work=False)
    result = simulate(loaded.scenario, loaded.outage, Policy.PICLUSTERD, settings)
    failure = result.summary.main_outage
    assert failure is not None and failure.optimum_runtime_s > 0
    assert 0.85 <= failure.runtime_s / failure.optimum_runtime_s < 0.95, failure


def test_a_run_at_the_optimum_never_reports_more_than_the_optimum_when_lb_is_confirmed() -> None:
    """Every pod critical, so the plan is the optimum's node set; with the daemons' OB + LB confirmation the run
    lasts the confirmation longer than to LB. The optimum used to end at LB and read below what was achieved."""
    loaded = load_simulation(SCENARIOS / "clinic-5-long-night.toml")
    assert loaded.outage is not None
    everything_critical = dataclasses.replace(
        loaded.scenario, policy=dataclasses.replace(loaded.scenario.policy, critical_priority_threshold=-(2**31))
    )
    result = simulate(everything_critical, loaded.outage, Policy.PICLUSTERD, CONFIRMED)
    (failure,) = result.summary.outages
    assert not failure.survived
    assert failure.optimum_runtime_s >= failure.runtime_s
