"""``piclusterctl report``: the outage report from this Pi's journal (or a copy of another's), text or JSON,
with an optional plot. The figures come from :mod:`piclusterd.core.outage_report`; this is the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from piclusterd.config.parse import DEFAULT_CONFIG_PATH, load_config
from piclusterd.core.errors import ConfigError, PiclusterError
from piclusterd.core.outage_report import (
    TIMELINE_EVENTS,
    Outage,
    OutageReport,
    build_report,
    outage_to_json,
    parse_entries,
    render_report,
)
from piclusterd.node.journal_reader import JournalWhere, read_piclusterd_events

__all__ = ["main", "plot_outage"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    capacity_wh: float | None = None
    config_path = args.config or str(DEFAULT_CONFIG_PATH)
    if args.config is not None or Path(config_path).exists():
        try:
            capacity_wh = load_config(config_path).battery.capacity_wh or None
        except ConfigError as error:
            print(f"piclusterctl report: {error}", file=sys.stderr)
            return EXIT_USAGE
    where = JournalWhere(file=args.journal_file, directory=args.journal_dir)
    try:
        raw, unreadable = read_piclusterd_events(TIMELINE_EVENTS, where)
    except PiclusterError as error:
        print(f"piclusterctl report: {error}", file=sys.stderr)
        return EXIT_FAILURE
    entries, skipped = parse_entries(raw)
    report = build_report(entries, capacity_wh=capacity_wh, skipped=skipped + unreadable)
    if not report.outages:
        print("piclusterctl report: no outage in the journal (no piclusterd node was on battery)", file=sys.stderr)
        return EXIT_FAILURE
    chosen = _choose(report, args.outage)
    if chosen is None:
        known = ", ".join(o.id for o in report.outages[-5:])
        print(
            f"piclusterctl report: no outage {args.outage!r}; the latest: {known} (or --outage latest)", file=sys.stderr
        )
        return EXIT_USAGE
    if args.plot:
        try:
            plot_outage(chosen, Path(args.plot))
        except PiclusterError as error:
            print(f"piclusterctl report: {error}", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        body = {
            "outage": outage_to_json(chosen),
            "outages": [o.id for o in report.outages],
            "battery_trend": {
                "points": [{"outage": i, "wh_per_pct": v} for i, v in report.trend.points],
                "ageing": report.trend.ageing,
                "message": report.trend.message,
            },
            "unreadable_entries": report.skipped,
        }
        print(json.dumps(body, indent=1), file=out)
    else:
        print("\n".join(render_report(report, chosen)), file=out)
    return EXIT_OK


def _choose(report: OutageReport, wanted: str) -> Outage | None:
    """``latest``, an outage's id, or the start of one (a date: ``2026-12-06``): the newest that matches."""
    if wanted == "latest":
        return report.outages[-1]
    matching = [o for o in report.outages if o.id.startswith(wanted)]
    return matching[-1] if matching else None


def plot_outage(outage: Outage, path: Path) -> None:
    """Each node's charge over the outage, with sheds and restores marked; PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PiclusterError(
            "--plot needs matplotlib: apt install python3-matplotlib (or pip install 'piclusterd[plot]')"
        ) from None
    figure, axis = plt.subplots(figsize=(11, 5))
    nodes = sorted({e.node for e in outage.entries})
    for node in nodes:
        points = [
            ((e.at - outage.started) / 3600, charge)
            for e in outage.entries
            if e.node == node and e.event == "power.state_changed"
            for charge in [e.number("CHARGE_PCT")]
            if charge is not None
        ]
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{node} charge %")
    for entry in outage.entries:
        if entry.event in ("node.powered_off", "node.restored"):
            when = (entry.at - outage.started) / 3600
            colour = "tab:red" if entry.event == "node.powered_off" else "tab:green"
            axis.axvline(when, color=colour, alpha=0.4)
            axis.annotate(entry.text("TARGET"), (when, 2), rotation=90, fontsize=8, color=colour)
    axis.set_ylim(0, 100)
    axis.set_ylabel("charge (%)")
    axis.set_xlabel("hours since mains failed")
    axis.set_title(f"Outage {outage.id}: red = node shed, green = restored")
    if nodes:
        axis.legend(loc="upper right")
    figure.savefig(path, dpi=100)
    plt.close(figure)
