"""``piclusterctl simulate``: read a simulation file, run :mod:`piclusterd.sim.simulator`, print, export, plot.

The shell around the pure simulator: this module reads files, writes the CSV and draws the plot
(matplotlib, optional, Agg backend). A simulation file is TOML::

    [cluster]
    snapshot = "../clusters/clinic-5.json"   # kubectl get nodes,pods,pdb -A -o json; relative to this file
    figures = "../clusters/clinic-5.toml"    # battery, fixed loads, policy (default: the snapshot's .toml)

    [outage]
    profile = "storm-2am"                    # storm-2am, brownout-flap, long-night, blip
    # csv = "mains.csv"                      # or a log of real mains on/off times

    [simulate]                               # all optional; defaults shown
    step = "10s"                             # how often the planner decides (>= 1 s; <= 100,000 a run)
    pod_move = "60s"                         # shed decision -> pods running elsewhere, node off
    restore_after = "2m"                     # mains back this long -> shed nodes on again
    recharge = "8h"                          # empty -> full on mains (linear)
    shutdown_at_pct = 0.0                    # extra shutdown floor (the battery's own LB level applies anyway)
    peukert_exponent = 1.0                   # lead-acid rate derating; 1.0 = off
    low_battery_confirm = "auto"             # the daemons' OB + LB confirmation ([policy] low_battery_confirm):
                                             # "auto" = full_shutdown_wait, as theirs; "0s" ends each failure at LB
    full_shutdown_wait = "3m"                # what it keeps in reserve, twice ([shutdown] full_shutdown_wait)
    rated_hours = 20.0                       # the hour rate the capacity is given at
    initial_charge_pct = 100.0               # every battery's charge at the start
    restore_min_charge = 50.0                # after a full shutdown, the shed nodes stay off until this charge
    # start = "01:50"                        # time of day at t = 0, for [solar] (default: the outage's)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piclusterd.core.durations import format_duration, parse_duration
from piclusterd.core.errors import ConfigError, PiclusterError
from piclusterd.sim.scenarios import Scenario, clock_time_s, load_scenario
from piclusterd.sim.simulator import (
    OUTAGES,
    Outage,
    Policy,
    SimResult,
    SimSettings,
    TimelineRow,
    find_battery_for,
    parse_outage_csv,
    simulate,
    timeline_csv,
)

__all__ = ["PlottingUnavailable", "SimulationFile", "load_simulation", "main", "plot_results", "plot_timelines"]

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


class PlottingUnavailable(PiclusterError, RuntimeError):
    """``--plot`` needs matplotlib, which is optional."""


@dataclass(frozen=True, slots=True)
class SimulationFile:
    """What a simulation file names: the cluster, the outage (if any) and the settings."""

    scenario: Scenario
    outage: Outage | None
    settings: SimSettings


#: The shortest decision step: the daemon polls once a second, and a smaller step only makes a run take hours.
MIN_STEP_S = 1.0
#: Decisions in one run at most (about a minute of computing): a finer step over a longer outage is refused.
MAX_STEPS = 100_000
#: A snapshot larger than this is not a small cluster's ``kubectl get -o json`` (clinic-5's is 40 KiB).
MAX_SNAPSHOT_BYTES = 64 << 20


def _duration(table: dict[str, Any], key: str, default: float, file: str, low: float = 0.0) -> float:
    value = table.get(key)
    if value is None:
        return default
    expected = "a duration such as 10s, 2m, 8h" + (f", at least {format_duration(low)}" if low else "")
    try:
        seconds = parse_duration(value) if isinstance(value, str) else math.nan
    except ValueError as error:
        raise ConfigError(file, f"simulate.{key}", str(error), expected) from error
    if not math.isfinite(seconds) or seconds < low:
        raise ConfigError(file, f"simulate.{key}", f"invalid value {str(value)[:40]!r}", expected)
    return seconds


def _number(table: dict[str, Any], key: str, default: float, file: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(file, f"simulate.{key}", f"invalid value {str(value)[:40]!r}", "a number")
    return float(value)


def _table(data: dict[str, Any], key: str, file: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(file, key, "is not a table", f"a [{key}] section")
    return value


def _path(table: dict[str, Any], section: str, key: str, file: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(file, f"{section}.{key}", "is not a path in quotes", "a file name, relative to this file")
    return value


def _check_snapshot(snapshot: Path, file: str) -> None:
    """The snapshot is a regular file of bounded size holding one JSON object (a kubectl List), so a wrong
    file is one line here, not a traceback from deep inside the parser (nor a hang on /dev/zero)."""
    where = "cluster.snapshot"
    expected = "the output of kubectl get nodes,pods,pdb -A -o json"
    try:
        with snapshot.open("rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise ConfigError(file, where, f"{snapshot} is not a regular file", expected)
            raw = stream.read(MAX_SNAPSHOT_BYTES + 1)
    except OSError as error:
        raise ConfigError(file, where, f"cannot read {snapshot}: {error.strerror}", expected) from None
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise ConfigError(file, where, f"{snapshot} is larger than {MAX_SNAPSHOT_BYTES >> 20} MiB", expected)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        why = "nested too deeply" if isinstance(error, RecursionError) else f"not JSON ({error})"
        raise ConfigError(file, where, f"{snapshot} is {why}", expected) from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(data), "null"
        )
        raise ConfigError(file, where, f"{snapshot} holds {kind}, not a kubectl List (a JSON object)", expected)


def _start(value: object, file: str) -> float:
    try:
        return clock_time_s(str(value))
    except ValueError:
        raise ConfigError(file, "simulate.start", f"{value!r} is not a time of day", "HH:MM, such as 01:50") from None


def load_simulation(path: Path) -> SimulationFile:
    """Read a simulation file (see the module docstring). Paths inside are relative to it."""
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as error:
        raise ConfigError(file, "", f"cannot read: {error}") from error
    cluster, outage_table, sim = (_table(data, k, file) for k in ("cluster", "outage", "simulate"))
    if "snapshot" not in cluster:
        raise ConfigError(file, "cluster.snapshot", "missing", "the path of a kubectl get -o json List")
    base = path.parent
    snapshot = base / _path(cluster, "cluster", "snapshot", file)
    figures = base / _path(cluster, "cluster", "figures", file) if "figures" in cluster else None
    _check_snapshot(snapshot, file)
    try:
        scenario = load_scenario(snapshot, figures)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        # A file the user named, of a shape the scenario reader did not expect: one line, not a traceback.
        raise ConfigError(file, "cluster", f"cannot load {snapshot}: {type(error).__name__}: {error}") from error
    outage: Outage | None = None
    if "profile" in outage_table:
        outage = outage_by_name(str(outage_table["profile"]), file)
    elif "csv" in outage_table:
        outage = read_outage_csv(base / _path(outage_table, "outage", "csv", file))
    full_shutdown_wait = _duration(sim, "full_shutdown_wait", 180.0, file)
    # The daemons' default, [policy] low_battery_confirm = "auto": OB + LB confirmed for full_shutdown_wait.
    # With "0s" a flicker at LB after a full shutdown (storm-2am's at 06:00) is a second one, as it would be.
    confirm = sim.get("low_battery_confirm", "auto")
    lb_confirm_s = full_shutdown_wait if confirm == "auto" else _duration(sim, "low_battery_confirm", 0.0, file)
    settings = SimSettings(
        step_s=_duration(sim, "step", 10.0, file, low=MIN_STEP_S),
        pod_move_s=_duration(sim, "pod_move", 60.0, file),
        restore_after_s=_duration(sim, "restore_after", 120.0, file),
        recharge_h=_duration(sim, "recharge", 8 * 3600.0, file) / 3600.0,
        shutdown_at_pct=_number(sim, "shutdown_at_pct", 0.0, file),
        peukert_exponent=_number(sim, "peukert_exponent", 1.0, file),
        rated_hours=_number(sim, "rated_hours", 20.0, file),
        initial_charge_pct=_number(sim, "initial_charge_pct", 100.0, file),
        start_clock_s=None if "start" not in sim else _start(sim["start"], file),
        lb_confirm_s=lb_confirm_s,
        orderly_shutdown_s=full_shutdown_wait,
        restore_min_charge_pct=_number(sim, "restore_min_charge", 50.0, file),
    )
    return SimulationFile(scenario, outage, settings)


def check_steps(outage: Outage, settings: SimSettings, file: str) -> None:
    """Refuse a run of more than MAX_STEPS decisions (a step too fine for the outage's length)."""
    steps = outage.stop_s / settings.step_s
    if steps > MAX_STEPS:
        raise ConfigError(
            file,
            "simulate.step",
            f"{format_duration(settings.step_s)} over {format_duration(outage.stop_s)} is {steps:,.0f} decisions",
            f"a step of at least {format_duration(math.ceil(outage.stop_s / MAX_STEPS))} "
            f"(at most {MAX_STEPS:,} decisions a run)",
        )


def outage_by_name(name: str, file: str = "--outage") -> Outage:
    """A built-in outage profile; did-you-mean by listing them."""
    try:
        return OUTAGES[name]
    except KeyError:
        raise ConfigError(file, "outage", f"no outage profile {name!r}", ", ".join(OUTAGES)) from None


def read_outage_csv(path: Path) -> Outage:
    try:
        with path.open("rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise ConfigError(str(path), "", "is not a regular file", "a CSV file of mains times")
            raw = stream.read(MAX_SNAPSHOT_BYTES + 1)
    except OSError as error:
        raise ConfigError(str(path), "", f"cannot read: {error}") from error
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise ConfigError(str(path), "", f"is larger than {MAX_SNAPSHOT_BYTES >> 20} MiB", "a CSV file of mains times")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "is not UTF-8 text", "a CSV file of mains times") from None
    return parse_outage_csv(text, path.name)


def _targets(text: str) -> list[float]:
    """``target_runtime=2h,4h,8h`` -> seconds."""
    key, _, values = text.partition("=")
    if key.strip() != "target_runtime" or not values:
        raise ConfigError("--compare", key, "only target_runtime can be compared", "target_runtime=2h,4h,8h")
    try:
        return [parse_duration(v) for v in values.split(",") if v.strip()]
    except ValueError as error:
        raise ConfigError("--compare", "target_runtime", str(error), "target_runtime=2h,4h,8h") from error


def _label(result: SimResult) -> str:
    if result.summary.policy is Policy.NO_SHEDDING:
        return "no shedding"
    return f"piclusterd (target {format_duration(result.target_runtime_s)})"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render_summary(results: Sequence[SimResult], outage: Outage) -> str:
    """The figures scenarios.md asks for, one column per run."""
    lines = [
        f"{results[0].scenario}, outage {outage.name}: {outage.description} "
        f"({len(outage.intervals)} failure(s), {format_duration(outage.off_s)} without mains)"
    ]
    width = 34

    def row(name: str, values: Sequence[str]) -> None:
        lines.append(f"{name:<{width}}" + "".join(f"{v:<34}" for v in values))

    row("", [_label(r) for r in results])
    mains = [r.summary.main_outage for r in results]
    if all(m is not None for m in mains):
        first = mains[0]
        assert first is not None
        lines.append(
            f"longest failure: {format_duration(first.on_at_s - first.off_at_s)} from "
            f"t={format_duration(first.off_at_s)}; no shedding lasts {format_duration(first.no_shedding_runtime_s)} "
            "(usable energy down to the shutdown level / draw), "
            f"the physical optimum {format_duration(first.optimum_runtime_s)}"
        )
        row("  runtime achieved", [format_duration(m.runtime_s) for m in mains if m])
        row("  lasted until mains returned", ["yes" if m.survived else "no" for m in mains if m])
        row(
            "  vs no shedding",
            [
                "outlasted the outage" if m.survived else f"{m.runtime_s / m.no_shedding_runtime_s:.2f} x"
                for m in mains
                if m
            ],
        )
        # A battery that outlasted the failure did not run to the optimum's end: a share of it would read as a
        # shortfall (solar-3's storm said "44.4 %" while surviving).
        row(
            "  vs physical optimum",
            ["outlasted the outage" if m.survived else _pct(m.runtime_s / m.optimum_runtime_s) for m in mains if m],
        )
    row("critical up, share of outage", [_pct(r.summary.critical_up_fraction) for r in results])
    row("power-offs / power-ons", [f"{r.summary.power_offs} / {r.summary.power_ons}" for r in results])
    row("full shutdowns (low battery)", [str(r.summary.full_shutdowns) for r in results])
    row("refused by safety rules", [str(len(r.summary.refused)) for r in results])
    row("energy drawn from battery", [f"{r.summary.energy_drawn_wh:.1f} Wh" for r in results])
    lines.append("energy left when mains returned (Wh, charge), per failure:")
    for index, figures in enumerate(results[0].summary.outages):
        cells = []
        for result in results:
            item = result.summary.outages[index]
            cells.append(f"{item.energy_left_wh:.1f} Wh {item.charge_left_pct:.0f} %{'' if item.survived else ' down'}")
        row(f"  t={format_duration(figures.off_at_s)} +{format_duration(figures.on_at_s - figures.off_at_s)}", cells)
    refused = sorted({f"{node} ({rule.value})" for r in results for node, rule in r.summary.refused})
    if refused:
        lines.append("refused: " + ", ".join(refused))
    return "\n".join(lines)


def plot_results(results: Sequence[SimResult], outage: Outage, path: Path) -> None:
    """Battery %, load, nodes powered and critical workloads up over time, every run on the same axes."""
    series = [(_label(result), result.timeline) for result in results]
    plot_timelines(series, outage, f"{results[0].scenario}: {outage.name}", path)


def plot_timelines(series: Sequence[tuple[str, Sequence[TimelineRow]]], outage: Outage, title: str, path: Path) -> None:
    """Draw labelled timelines (the simulator's, or the demo's) on four shared panels; PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlottingUnavailable(
            "--plot needs matplotlib: pip install matplotlib (or pip install 'piclusterd[plot]'), "
            "or on Debian / Raspberry Pi OS: apt install python3-matplotlib"
        ) from error
    figure, axes = plt.subplots(4, 1, sharex=True, figsize=(11, 9))
    panels: tuple[tuple[str, Callable[[TimelineRow], float]], ...] = (
        ("battery charge (%)", lambda r: r.charge_pct),
        ("load at UPS output (W)", lambda r: r.load_w),
        ("nodes powered", lambda r: float(r.nodes_powered)),
        ("critical workloads up", lambda r: float(r.critical_up)),
    )
    for axis, (panel, value) in zip(axes, panels, strict=True):
        for off_at, on_at in outage.intervals:
            axis.axvspan(off_at / 3600, on_at / 3600, color="0.9", linewidth=0)
        for label, timeline in series:
            times = [row.t_s / 3600 for row in timeline]
            values = [value(row) for row in timeline]
            if times:
                times.append(timeline[-1].t_s / 3600)
                values.append(values[-1])
            axis.step(times, values, where="post", label=label)
        axis.set_ylabel(panel, fontsize=8)
        axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[-1].set_xlabel("hours since the start of the simulation (grey: mains off)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(args: argparse.Namespace) -> int:
    """Run ``piclusterctl simulate``; errors become messages and exit codes."""
    try:
        loaded = load_simulation(Path(args.scenario))
        outage = loaded.outage
        if args.outage_csv:
            outage = read_outage_csv(Path(args.outage_csv))
        elif args.outage:
            outage = outage_by_name(args.outage)
        scenario, settings = loaded.scenario, loaded.settings
        if outage is not None:
            check_steps(outage, settings, args.scenario)
        if args.find_battery_for:
            hours = parse_duration(args.find_battery_for) / 3600.0
            check_steps(Outage("find-battery-for", ((0.0, hours * 3600),)), settings, args.scenario)
            with_wh = find_battery_for(scenario, hours, Policy.PICLUSTERD, settings)
            without_wh = find_battery_for(scenario, hours, Policy.NO_SHEDDING, settings)
            usable = scenario.battery.usable_fraction
            print(f"{scenario.name}: smallest battery that keeps the cluster up {format_duration(hours * 3600)}")
            print(f"  with piclusterd (target {format_duration(hours * 3600)}): {with_wh:.1f} Wh")
            print(f"  without shedding:                 {without_wh:.1f} Wh")
            print(f"  (nameplate Wh at usable_fraction {usable}; now {scenario.battery.capacity_wh:.0f} Wh)")
            return EXIT_OK
        if outage is None:
            raise ConfigError(args.scenario, "outage", "no outage", "[outage] in the file, --outage or --outage-csv")
        targets = _targets(args.compare) if args.compare else [scenario.policy.target_runtime_s]
    except (ConfigError, ValueError) as error:
        print(f"piclusterctl simulate: {error}", file=sys.stderr)
        return EXIT_CONFIG
    results = [simulate(scenario, outage, Policy.PICLUSTERD, settings, target) for target in targets]
    results.append(simulate(scenario, outage, Policy.NO_SHEDDING, settings))
    print(render_summary(results, outage))
    try:
        if args.csv:
            Path(args.csv).write_text(timeline_csv(results), encoding="utf-8")
            print(f"timeline written to {args.csv}")
        if args.plot:
            plot_results(results, outage, Path(args.plot))
            print(f"plot written to {args.plot}")
    except PlottingUnavailable as error:
        print(f"piclusterctl simulate: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as error:
        print(f"piclusterctl simulate: cannot write: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
