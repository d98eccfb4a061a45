"""The outage report (``piclusterctl report``): what happened, from the journal's piclusterd events. Pure.

Input: journal entries as ``journalctl -o json`` gives them (``PICLUSTER_*`` fields, ``__REALTIME_TIMESTAMP``),
already parsed with bounds by the reader. Every value is checked here again (a field may be missing,
repeated or garbage): an entry that cannot be read is skipped and counted, never the report's end.

An outage is a stretch of time in which some node was on battery, from its ``power.state_changed`` events;
stretches joined by the leader's outage record (``outage.started`` .. ``outage.summary``, one record per
outage, across a full shutdown and leader changes) are one outage. So a report works on a single node
without the cluster side, and a flickering night is one outage when the leader kept it as one.

The battery's health: for each outage with a known energy and a charge drop of at least
:data:`MIN_DROP_PCT`, the energy one percent of charge delivered (Wh/%). A battery that ages holds less
energy per percent; over :data:`TREND_MIN_OUTAGES` outages and :data:`TREND_MIN_DAYS` days, a fall of
:data:`AGEING_FALL` or more is said, with the numbers.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from piclusterd.core.durations import format_duration

__all__ = [
    "AGEING_FALL",
    "MIN_DROP_PCT",
    "TIMELINE_EVENTS",
    "TREND_MIN_DAYS",
    "TREND_MIN_OUTAGES",
    "BatteryTrend",
    "Entry",
    "Outage",
    "OutageReport",
    "build_report",
    "parse_entries",
    "render_report",
]

#: The events a report reads (the reader asks journalctl for these only).
TIMELINE_EVENTS = (
    "power.state_changed",
    "power.source_lost",
    "power.source_restored",
    "leader.acquired",
    "plan.decided",
    "node.drained",
    "node.drain_failed",
    "node.powered_off",
    "node.power_on_requested",
    "node.restored",
    "outage.started",
    "outage.summary",
    "shutdown.cluster_started",
    "shutdown.cluster_step",
    "shutdown.leader_last",
    "shutdown.local_started",
    "daemon.started",
)
_BATTERY = frozenset({"on_battery", "low_battery", "critical"})
MIN_DROP_PCT = 5.0
TREND_MIN_OUTAGES = 3
TREND_MIN_DAYS = 30.0
AGEING_FALL = 0.15  # Wh/% down by 15 % or more: say the battery is ageing
_MAX_FIELD = 4096


@dataclass(frozen=True, slots=True)
class Entry:
    """One piclusterd event from the journal: when (UNIX seconds), which node, which event, its fields."""

    at: float
    node: str
    event: str
    fields: Mapping[str, str]

    def number(self, key: str) -> float | None:
        text = self.fields.get(key)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def text(self, key: str) -> str:
        return self.fields.get(key, "")


def _field(value: object) -> str | None:
    """journalctl gives a field as a string, a list (repeated, or binary as bytes), or null: one string or none."""
    if isinstance(value, list):
        value = value[0] if value and isinstance(value[0], str) else None
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        return None
    return value


def parse_entries(raw: Iterable[Mapping[str, Any]]) -> tuple[list[Entry], int]:
    """Entries from journalctl's JSON objects, in time order, and how many were skipped as unreadable."""
    entries: list[Entry] = []
    skipped = 0
    for item in raw:
        event = _field(item.get("PICLUSTER_EVENT"))
        node = _field(item.get("PICLUSTER_NODE")) or ""
        stamp = _field(item.get("__REALTIME_TIMESTAMP"))
        if event is None or event not in TIMELINE_EVENTS or stamp is None or not stamp.isdigit() or len(stamp) > 20:
            skipped += 1
            continue
        fields = {}
        for key, value in item.items():
            if isinstance(key, str) and key.startswith("PICLUSTER_"):
                text = _field(value)
                if text is not None:
                    fields[key.removeprefix("PICLUSTER_")] = text
        entries.append(Entry(int(stamp) / 1e6, node, event, fields))
    entries.sort(key=lambda e: e.at)
    return entries, skipped


@dataclass
class Outage:
    """One outage as the report shows it."""

    started: float
    mains_back: float | None  # the last return of mains, None while it lasts
    ended: float  # the last event that belongs to it (restores included)
    entries: list[Entry] = field(default_factory=list)
    nodes_shed: list[str] = field(default_factory=list)
    nodes_restored: list[str] = field(default_factory=list)
    full_shutdown: list[str] = field(default_factory=list)  # its steps, in words
    critical_downtime_s: float | None = None
    energy_wh: float | None = None
    charge_start_pct: float | None = None
    charge_end_pct: float | None = None
    capacity_wh: float | None = None

    @property
    def id(self) -> str:
        return _stamp(self.started)

    @property
    def duration_s(self) -> float | None:
        return None if self.mains_back is None else max(0.0, self.mains_back - self.started)

    @property
    def wh_per_pct(self) -> float | None:
        """Energy per percent of charge: the battery's health figure (None when not measurable)."""
        if self.energy_wh is None or self.charge_start_pct is None or self.charge_end_pct is None:
            return None
        drop = self.charge_start_pct - self.charge_end_pct
        return None if drop < MIN_DROP_PCT or self.energy_wh <= 0 else self.energy_wh / drop


@dataclass(frozen=True, slots=True)
class BatteryTrend:
    points: tuple[tuple[str, float], ...]  # (outage id, Wh per %)
    ageing: bool
    message: str


@dataclass(frozen=True, slots=True)
class OutageReport:
    outages: tuple[Outage, ...]
    trend: BatteryTrend
    skipped: int


def _stamp(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: str) -> float | None:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def _battery_spans(entries: Sequence[Entry]) -> list[list[float]]:
    """[start, end, seen] of each node's time on battery. ``seen`` 1.0: it ended with mains seen back;
    0.0: the node halted (its shutdown, or a new daemon after it) or the journal ends, so the span says
    nothing of when mains returned."""
    spans: list[list[float]] = []
    open_at: dict[str, float] = {}
    last_seen: dict[str, float] = {}
    for entry in entries:
        node = entry.node
        if entry.event == "daemon.started" and node in open_at:  # the daemon before this one went down
            spans.append([open_at.pop(node), last_seen.get(node, entry.at), 0.0])
        last_seen[node] = entry.at
        if entry.event == "shutdown.local_started" and node in open_at:
            spans.append([open_at.pop(node), entry.at, 0.0])
        if entry.event != "power.state_changed":
            continue
        new = entry.text("NEW")
        if new in _BATTERY and node not in open_at:
            open_at[node] = entry.at
        elif new == "online" and node in open_at:
            spans.append([open_at.pop(node), entry.at, 1.0])
    for start in open_at.values():
        spans.append([start, math.inf, 0.0])  # still on battery when the journal ends
    return spans


def _record_windows(entries: Sequence[Entry]) -> list[tuple[float, float]]:
    """[started_at, ended_at] of each outage record the leaders kept (open records end at +inf)."""
    started: dict[str, float] = {}
    windows: list[tuple[float, float]] = []
    for entry in entries:
        if entry.event == "outage.started":
            at = _parse_stamp(entry.text("STARTED_AT"))
            if at is not None:
                started.setdefault(entry.text("STARTED_AT"), at)
        elif entry.event == "outage.summary":
            at, end = _parse_stamp(entry.text("STARTED_AT")), _parse_stamp(entry.text("ENDED_AT"))
            if at is not None and end is not None and end >= at:
                started.pop(entry.text("STARTED_AT"), None)
                windows.append((at, end))
    windows.extend((at, math.inf) for at in started.values())
    return windows


def _merge(spans: list[list[float]], windows: Sequence[tuple[float, float]]) -> list[list[float]]:
    """Union of battery spans ([start, end, mains seen back at end]), joined where one record covers several."""
    merged: list[list[float]] = []
    for span in sorted(spans):
        if merged and (
            span[0] <= merged[-1][1] or any(w0 - 60 <= merged[-1][0] and span[0] <= w1 for w0, w1 in windows)
        ):
            last = merged[-1]
            if span[1] > last[1] or (span[1] == last[1] and span[2]):
                last[1], last[2] = span[1], span[2]
            elif span[2] and span[1] == last[1]:
                last[2] = 1.0
        else:
            merged.append(list(span))
    return merged


def build_report(entries: Sequence[Entry], *, capacity_wh: float | None = None, skipped: int = 0) -> OutageReport:
    """Every outage in ``entries`` (oldest first) and the battery's trend across them."""
    windows = _record_windows(entries)
    outages: list[Outage] = []
    merged = _merge(_battery_spans(entries), windows)
    for index, (start, back, seen) in enumerate(merged):
        next_start = merged[index + 1][0] if index + 1 < len(merged) else math.inf
        # The outage owns what follows mains' return (restores, the summary) until the next outage starts,
        # or until its record's end when the leader kept one.
        record_end = max((w1 for w0, w1 in windows if w0 - 60 <= start <= w1 or start - 60 <= w0 <= back), default=None)
        horizon = (
            min(next_start, record_end + 1) if record_end is not None and math.isfinite(record_end) else next_start
        )
        outage = Outage(started=start, mains_back=back if seen else None, ended=start)
        outage.entries = [e for e in entries if start - 1 <= e.at < horizon]
        _fill(outage, capacity_wh)
        if outage.mains_back is None and not math.isinf(back):
            outage.ended = max(outage.ended, back)
        outages.append(outage)
    return OutageReport(tuple(outages), _trend(outages), skipped)


def _fill(outage: Outage, capacity_wh: float | None) -> None:
    outage.capacity_wh = capacity_wh
    charges: list[float] = []
    for entry in outage.entries:
        outage.ended = max(outage.ended, entry.at)
        target = entry.text("TARGET")
        if entry.event == "node.powered_off" and target and target not in outage.nodes_shed:
            outage.nodes_shed.append(target)
        elif entry.event == "node.restored" and target and target not in outage.nodes_restored:
            outage.nodes_restored.append(target)
        elif entry.event == "shutdown.cluster_started":
            outage.full_shutdown.append(f"{_clock(entry.at)} full shutdown started by {entry.node}")
        elif entry.event == "shutdown.cluster_step":
            outage.full_shutdown.append(f"{_clock(entry.at)} {entry.node}: {_words(entry)}")
        elif entry.event == "shutdown.leader_last":
            outage.full_shutdown.append(f"{_clock(entry.at)} {entry.node} powers itself off last")
        elif entry.event == "shutdown.local_started":
            outage.full_shutdown.append(f"{_clock(entry.at)} {entry.node} halted ({entry.text('BY') or 'shutdown'})")
        elif entry.event == "outage.summary":
            back = _parse_stamp(entry.text("MAINS_BACK_AT"))
            if back is not None and back >= outage.started:
                outage.mains_back = back  # the leader's record: right across a full shutdown too
            outage.energy_wh = entry.number("ENERGY_USED_WH")
            outage.critical_downtime_s = entry.number("CRITICAL_DOWNTIME_S")
            if outage.charge_start_pct is None:
                outage.charge_start_pct = entry.number("CHARGE_AT_START_PCT")
        elif entry.event == "power.state_changed":
            charge = entry.number("CHARGE_PCT")
            if charge is not None and 0 <= charge <= 100:
                charges.append(charge)
                if outage.charge_start_pct is None and entry.text("NEW") in _BATTERY:
                    outage.charge_start_pct = charge
    battery_charges = [
        c
        for e in outage.entries
        if e.event == "power.state_changed" and outage.mains_back is not None and e.at <= outage.mains_back
        for c in [e.number("CHARGE_PCT")]
        if c is not None and 0 <= c <= 100
    ]
    if battery_charges:
        outage.charge_end_pct = min(battery_charges)
    if outage.energy_wh is None and capacity_wh and outage.charge_start_pct is not None and outage.charge_end_pct:
        outage.energy_wh = round((outage.charge_start_pct - outage.charge_end_pct) / 100 * capacity_wh, 1)


def _words(entry: Entry) -> str:
    parts = [f"{k.lower()}={v}" for k, v in entry.fields.items() if k not in ("NODE", "COMPONENT", "SOURCE")]
    return " ".join(parts)[:200]


def _clock(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%H:%M:%S")


def _trend(outages: Sequence[Outage]) -> BatteryTrend:
    points = tuple((o.id, round(o.wh_per_pct, 3)) for o in outages if o.wh_per_pct is not None)
    if len(points) < TREND_MIN_OUTAGES:
        return BatteryTrend(
            points,
            False,
            f"battery trend: {len(points)} outage(s) with a measurable charge drop; "
            f"{TREND_MIN_OUTAGES} over {TREND_MIN_DAYS:.0f} days are needed to see one",
        )
    first_at, last_at = _parse_stamp(points[0][0]), _parse_stamp(points[-1][0])
    days = ((last_at or 0) - (first_at or 0)) / 86400
    first = sum(p[1] for p in points[:2]) / 2
    last = sum(p[1] for p in points[-2:]) / 2
    fall = 1 - last / first if first > 0 else 0.0
    if days < TREND_MIN_DAYS:
        return BatteryTrend(
            points,
            False,
            f"battery trend: {len(points)} outages over {days:.0f} days; "
            f"{TREND_MIN_DAYS:.0f} days are needed to see one",
        )
    if fall >= AGEING_FALL:
        return BatteryTrend(
            points,
            True,
            f"the battery is ageing: {first:.2f} Wh per % of charge in {points[0][0][:7]}, {last:.2f} Wh per % "
            f"in {points[-1][0][:7]} ({fall * 100:.0f} % less over {days:.0f} days); plan its replacement",
        )
    return BatteryTrend(
        points, False, f"battery holds: {first:.2f} -> {last:.2f} Wh per % of charge over {days:.0f} days"
    )


def render_report(report: OutageReport, outage: Outage) -> list[str]:
    """The report of one outage, as lines for a terminal."""
    lines = [f"Outage {outage.id}"]
    back = "not seen in this journal" if outage.mains_back is None else _stamp(outage.mains_back)
    duration = "" if outage.duration_s is None else f" ({format_duration(outage.duration_s)})"
    lines.append(f"  mains failed {_stamp(outage.started)}, back {back}{duration}")
    lines.append(f"  nodes shed: {', '.join(outage.nodes_shed) or 'none'}")
    lines.append(f"  nodes restored: {', '.join(outage.nodes_restored) or 'none'}")
    if outage.critical_downtime_s is None:
        lines.append("  critical downtime: unknown (no outage record: the cluster side was off or no leader closed it)")
    else:
        lines.append(f"  critical downtime: {format_duration(outage.critical_downtime_s)}")
    lines.append(f"  energy: {_energy(outage)}")
    if outage.full_shutdown:
        lines.append("  full shutdown:")
        lines.extend(f"    {step}" for step in outage.full_shutdown)
    lines.append("  timeline (UTC):")
    lines.extend(f"    {_clock(e.at)} {e.node:<10} {_line(e)}" for e in outage.entries)
    lines.append(report.trend.message)
    if report.skipped:
        lines.append(f"({report.skipped} journal entries could not be read and were left out)")
    return lines


def _energy(outage: Outage) -> str:
    if outage.energy_wh is None:
        return "unknown (set [battery] capacity_wh, or the UPS's charge was not seen)"
    text = f"{outage.energy_wh:.1f} Wh"
    if outage.capacity_wh:
        text += f" of {outage.capacity_wh:.0f} Wh ({outage.energy_wh / outage.capacity_wh * 100:.0f} % of capacity)"
    if outage.charge_start_pct is not None and outage.charge_end_pct is not None:
        text += f"; charge {outage.charge_start_pct:.0f} % -> {outage.charge_end_pct:.0f} %"
    if outage.wh_per_pct is not None:
        text += f"; {outage.wh_per_pct:.2f} Wh per %"
    return text


def _line(entry: Entry) -> str:
    f = entry.fields
    match entry.event:
        case "power.state_changed":
            charge = f" at {f['CHARGE_PCT']} %" if "CHARGE_PCT" in f else ""
            return f"power {f.get('OLD', '?')} -> {f.get('NEW', '?')}{charge} ({f.get('REASON', '')})"
        case "plan.decided":
            projected = f.get("PROJECTED_RUNTIME_S", "?")
            return f"plan: {f.get('DECISION', '?')}, shed {f.get('SHED', '[]')}, projected {projected} s"
        case "node.powered_off" | "node.restored" | "node.drained" | "node.drain_failed" | "node.power_on_requested":
            return f"{entry.event.split('.', 1)[1].replace('_', ' ')}: {f.get('TARGET', '?')}"
        case _:
            return entry.event


def outage_to_json(outage: Outage) -> dict[str, Any]:
    return {
        "id": outage.id,
        "started_at": _stamp(outage.started),
        "mains_back_at": None if outage.mains_back is None else _stamp(outage.mains_back),
        "duration_s": None if outage.duration_s is None else round(outage.duration_s),
        "nodes_shed": outage.nodes_shed,
        "nodes_restored": outage.nodes_restored,
        "critical_downtime_s": outage.critical_downtime_s,
        "full_shutdown": outage.full_shutdown,
        "energy_wh": outage.energy_wh,
        "capacity_wh": outage.capacity_wh,
        "charge_start_pct": outage.charge_start_pct,
        "charge_end_pct": outage.charge_end_pct,
        "wh_per_pct": None if outage.wh_per_pct is None else round(outage.wh_per_pct, 3),
        "timeline": [{"at": _stamp(e.at), "node": e.node, "event": e.event, **dict(e.fields)} for e in outage.entries],
    }
