"""Replay an outage against a cluster on simulated time, with and without piclusterd. Pure.

No clock, no sleeps, no I/O: :func:`simulate` takes a :class:`~piclusterd.sim.scenarios.Scenario`, an
:class:`Outage` and :class:`SimSettings` and returns a :class:`SimResult` (a timeline and a summary).
Reading files and drawing plots is the caller's business (``piclusterctl simulate``).

**Model.** Time advances from event to event (mains change, decision tick every ``step_s``, a drain that
completes, a restore, the battery reaching its shutdown level or full), and power is constant between
events, so energy is integrated exactly: each timeline row holds the power of the segment it starts.

- Battery: ``usable_wh = capacity_wh x usable_fraction`` at 100 %; charge % is usable energy left over that.
  Battery draw is :meth:`BatterySpec.battery_draw_w` (AC: load / inverter efficiency + UPS overhead;
  DC: load / converter efficiency). Optional lead-acid rate derating (Peukert): usable energy goes down at
  ``draw x (draw / rated_w) ** (peukert_exponent - 1)`` with ``rated_w = capacity_wh / rated_hours``
  (``peukert_exponent`` 1.0, the default, turns it off and keeps scenarios.md's accounting). On mains the
  battery recharges linearly from empty to full in ``recharge_h`` (a simplification: real chargers taper).
- Nodes draw what :mod:`piclusterd.core.power_draw` says (utilisation from the pods bound to them).
- Shutdown: when the charge reaches the battery's ``shutdown_charge_pct`` (or ``shutdown_at_pct``, if
  higher) or its runtime at the present draw falls under ``shutdown_runtime_s`` (``critical_runtime``),
  as the nodes' own state machines decide, every node shuts down and the UPS cuts its output (draw 0),
  with either policy. When mains returns the cluster restarts, pods where the snapshot had them. With
  ``lb_confirm_s`` (policy piclusterd only) the charge threshold, the UPS's LB, is confirmed first as the
  daemons do (:func:`~piclusterd.core.power_state.lb_wait_left_s`, with the runtime to empty a UPS reports).
- Policy ``piclusterd``: the real :func:`~piclusterd.core.planner.plan` every ``step_s`` on battery; like the
  cluster controller, one node is shed at a time: the plan's first action starts a drain, the node's
  evicted pods are not Ready for ``pod_move_s`` (a 2-replica workload keeps its other replica), then they
  run where the plan placed them (their CPU load moves there) and the node draws its shed watts. Mains back
  cancels a drain under way. Policy ``no-shedding``: upsmon, nothing until the shutdown level.
- Mixed topology (``Scenario.node_battery``, solar-3): the shared battery feeds every node until its own
  ``shutdown_charge_pct`` (low-voltage disconnect); then each powered node lives on its own battery and shuts
  itself down alone at that battery's level; the cluster is down when no node runs. The planner gets each
  node's own battery; a rotation it asks for (``Plan.power_on``) is done at once, boot lumped in.
- Restore (simplified): ``restore_after_s`` after mains returns, if it is still on, every shed node is on
  again at once (power-on and boot lumped in); pods stay where they are (Kubernetes does not rebalance),
  pods that were given up go back to their node.
- After a full shutdown (shared battery), mains back means the UPS output is back: the Pis boot at once. Under
  ``restore_min_charge_pct`` the nodes shed before the full shutdown stay off (the daemons' smallest safe set,
  :func:`~piclusterd.core.restore.smallest_set_after_full_shutdown`; their boot and second drain are lumped
  in) until the charge reaches it, mains on.

Workloads are pods grouped by controller (namespace, owner kind, owner name); DaemonSets are ignored. A
workload is critical if one of its pods is (label ``picluster.io/critical=true`` or priority at or above
the policy's threshold) and up while one of its pods is bound to a powered node and not being moved.
"""

from __future__ import annotations

import csv
import datetime as _dt
import enum
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from piclusterd.core.cluster_view import ANNOTATION_SHED, ClusterView, Pod, PodPhase
from piclusterd.core.errors import ConfigError
from piclusterd.core.node_batteries import NodeBatteries, NodeBattery, Topology
from piclusterd.core.node_records import ShedPhase, ShedRecord, render_shed_record
from piclusterd.core.planner import PlannerPolicy, physical_optimum, plan
from piclusterd.core.power_draw import (
    BatterySpec,
    PowerConfig,
    PowerSituation,
    SolarProfile,
    cluster_load_w,
    node_load_w,
)
from piclusterd.core.power_state import PowerPolicy, lb_wait_left_s
from piclusterd.core.safety import SafetyRule
from piclusterd.sim.scenarios import Scenario

__all__ = [
    "OUTAGES",
    "TIMELINE_COLUMNS",
    "OpenOutage",
    "Outage",
    "OutageFigures",
    "Policy",
    "SimResult",
    "SimSettings",
    "SimSummary",
    "TimelineFigures",
    "TimelineRow",
    "find_battery_for",
    "no_shedding_runtime_s",
    "parse_outage_csv",
    "simulate",
    "timeline_csv",
    "timeline_figures",
    "workload_key",
    "workloads",
]

_EPS = 1e-9
HOUR = 3600.0
#: Solar power is held constant over bins of this length (its mean over the bin), aligned to the clock.
SOLAR_BIN_S = 900.0
#: The columns of :func:`timeline_csv`.
TIMELINE_COLUMNS = (
    "policy",
    "target_runtime_s",
    "t_s",
    "mains",
    "charge_pct",
    "energy_wh",
    "battery_w",
    "load_w",
    "nodes_powered",
    "critical_up",
    "critical_total",
)


class Policy(enum.StrEnum):
    """What rides out the outage."""

    PICLUSTERD = "piclusterd"
    NO_SHEDDING = "no-shedding"


@dataclass(frozen=True, slots=True)
class Outage:
    """Mains off from ``off_at`` to ``on_at`` (seconds of simulated time) for each interval; sorted, disjoint.

    The simulation runs from 0 to ``end_s`` (default: an hour after mains is back for good).
    """

    name: str
    intervals: tuple[tuple[float, float], ...]
    description: str = ""
    end_s: float | None = None
    start_clock_s: float | None = None  # time of day at t = 0 (seconds after midnight), for solar charging

    def __post_init__(self) -> None:
        last = 0.0
        for off_at, on_at in self.intervals:
            if not (math.isfinite(off_at) and math.isfinite(on_at)) or off_at < last or on_at <= off_at:
                raise ConfigError("outage", self.name, f"interval ({off_at}, {on_at}) is not after {last} s")
            last = on_at
        if self.end_s is not None and self.end_s < last:
            raise ConfigError("outage", self.name, f"ends at {self.end_s} s, before mains is back at {last} s")

    @property
    def stop_s(self) -> float:
        """When the simulation stops."""
        if self.end_s is not None:
            return self.end_s
        return (self.intervals[-1][1] if self.intervals else 0.0) + HOUR

    @property
    def off_s(self) -> float:
        """Total time without mains."""
        return math.fsum(on - off for off, on in self.intervals)


def _storm_2am() -> Outage:
    # t = 0 is 01:50. Mains fails at 02:00, back at 06:00; flickers 3 x (20 s off, 40 s on) starting 40 s
    # after; fails again at 06:30 for 45 min.
    at = 600.0
    back = at + 4 * HOUR
    flickers = tuple((back + 40 + 60 * i, back + 60 + 60 * i) for i in range(3))
    return Outage(
        "storm-2am",
        ((at, back), *flickers, (at + 4.5 * HOUR, at + 5.25 * HOUR)),
        "02:00 fails, 06:00 back, 3 flickers, 06:30 fails for 45 min (t=0 is 01:50)",
        start_clock_s=(1 * 60 + 50) * 60.0,
    )


def _brownout_flap() -> Outage:
    # Alternating every 5-15 s for 3 minutes: a fixed sequence, so that runs compare.
    steps = (7, 12, 5, 15, 9, 11, 6, 14, 8, 13, 10, 5, 15, 7, 12, 9, 6, 11)
    t, intervals, off = 600.0, [], True
    start = t
    for step in steps:
        if t - start >= 180:
            break
        if off:
            intervals.append((t, t + step))
        t += step
        off = not off
    return Outage("brownout-flap", tuple(intervals), "on battery / on line every 5-15 s for 3 min")


OUTAGES: Mapping[str, Outage] = MappingProxyType(
    {
        "storm-2am": _storm_2am(),
        "brownout-flap": _brownout_flap(),
        "long-night": Outage(
            "long-night",
            ((600.0, 600.0 + 10 * HOUR),),
            "20:00 fails for 10 h (t=0 is 19:50)",
            start_clock_s=(19 * 60 + 50) * 60.0,
        ),
        "blip": Outage("blip", ((600.0, 608.0),), "an 8 s outage"),
    }
)

_ON_WORDS = {"on", "1", "true", "ol", "online", "up", "mains"}
_OFF_WORDS = {"off", "0", "false", "ob", "on_battery", "onbatt", "down", "battery"}


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ConfigError("outage-csv", "time", f"{text!r} is neither seconds nor an ISO 8601 time") from error
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.timestamp()


def parse_outage_csv(text: str, name: str = "csv", lead_in_s: float = 600.0) -> Outage:
    """An outage from CSV text: either ``off_at,on_at`` rows, or ``time,mains`` transitions.

    Times are seconds or ISO 8601 timestamps; mains is on/off (also 1/0, OL/OB). A header row is optional.
    Times are shifted so that the first failure happens ``lead_in_s`` into the simulation. A log that ends
    with mains off gets mains back at its last time.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0][0].strip().lower() in {"off_at", "time", "timestamp", "t"}:
        rows = rows[1:]
    intervals: list[tuple[float, float]] = []
    off_since: float | None = None
    last = None
    for number, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ConfigError("outage-csv", f"row {number}", "needs two columns")
        first, second = row[0].strip(), row[1].strip()
        word = second.lower()
        if word in _ON_WORDS or word in _OFF_WORDS:
            t = _parse_time(first)
            last = t
            if word in _OFF_WORDS and off_since is None:
                off_since = t
            elif word in _ON_WORDS and off_since is not None:
                intervals.append((off_since, t))
                off_since = None
        else:
            intervals.append((_parse_time(first), _parse_time(second)))
    if off_since is not None and last is not None and last > off_since:
        intervals.append((off_since, last))
    if not intervals:
        raise ConfigError("outage-csv", name, "no outage in the file")
    shift = lead_in_s - intervals[0][0]
    return Outage(name, tuple((a + shift, b + shift) for a, b in intervals), f"from {name}")


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulation runs; validated once, here."""

    step_s: float = 10.0
    pod_move_s: float = 60.0
    restore_after_s: float = 120.0
    restore_min_charge_pct: float = 50.0  # [restore] restore_min_charge: after a full shutdown, see the docstring
    recharge_h: float = 8.0
    shutdown_at_pct: float = 0.0
    initial_charge_pct: float = 100.0
    peukert_exponent: float = 1.0
    rated_hours: float = 20.0
    start_clock_s: float | None = None  # time of day at t = 0; None: the outage's, else midnight
    # The daemons' OB + LB confirmation ([policy] low_battery_confirm, core.power_state.lb_wait_left_s), with
    # policy piclusterd only (upsmon acts at once). 0, the default, keeps scenarios.md's accounting: the
    # cluster goes down at LB.
    lb_confirm_s: float = 0.0
    orderly_shutdown_s: float = 180.0  # [shutdown] full_shutdown_wait: what the confirmation keeps in reserve
    # Carry out a plan's stops of non-critical work (Plan.scale_down): the stopped pods draw nothing until
    # the restore. On, as in the leader (cluster.scaler); off to measure what keeping the work running costs.
    stop_work: bool = True

    def __post_init__(self) -> None:
        for name in ("step_s", "recharge_h", "rated_hours"):
            if not getattr(self, name) > 0:
                raise ConfigError("simulate", name, f"{getattr(self, name)!r} is not positive")
        for name in ("pod_move_s", "restore_after_s", "lb_confirm_s", "orderly_shutdown_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError("simulate", name, f"{getattr(self, name)!r} is negative")
        for name in ("shutdown_at_pct", "initial_charge_pct", "restore_min_charge_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise ConfigError("simulate", name, f"{getattr(self, name)!r} is not in 0..100")
        if not 1.0 <= self.peukert_exponent <= 2.0:
            raise ConfigError("simulate", "peukert_exponent", f"{self.peukert_exponent!r} is not in 1..2")


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """The state from ``t_s`` until the next row. ``battery_w`` is positive when discharging."""

    t_s: float
    mains: bool
    charge_pct: float
    energy_wh: float
    battery_w: float
    load_w: float
    nodes_powered: int
    critical_up: int
    critical_total: int


@dataclass(frozen=True, slots=True)
class OutageFigures:
    """One mains failure: how long the cluster ran on battery and what was left when mains came back."""

    off_at_s: float
    on_at_s: float
    runtime_s: float  # on battery with the cluster up: until mains returned or the shutdown
    survived: bool  # the cluster was up when mains failed and still up when it returned
    energy_left_wh: float
    charge_left_pct: float
    optimum_runtime_s: float  # the physical optimum from this failure at the charge it started with
    no_shedding_runtime_s: float  # usable energy at that charge / draw with every node on


@dataclass(frozen=True, slots=True)
class SimSummary:
    """The figures scenarios.md asks for, for one policy."""

    policy: Policy
    outages: tuple[OutageFigures, ...]
    critical_up_fraction: float  # of the time without mains, every critical workload had a Ready replica
    power_offs: int
    power_ons: int
    full_shutdowns: int
    refused: tuple[tuple[str, SafetyRule], ...]  # distinct (node, rule) the safety rules refused
    energy_drawn_wh: float  # integral of battery_w while discharging

    @property
    def main_outage(self) -> OutageFigures | None:
        """The longest failure (the one the headline figures are about)."""
        return max(self.outages, key=lambda o: o.on_at_s - o.off_at_s, default=None)


@dataclass(frozen=True, slots=True)
class TimelineFigures:
    """What a timeline says, as the summaries report it (:func:`timeline_figures`): each failure's figures, and
    the seconds without mains, with every critical workload up, in all and in the longest failure."""

    failures: tuple[OutageFigures, ...]
    off_s: float
    critical_up_s: float
    main_off_s: float
    main_critical_up_s: float

    @property
    def main_failure(self) -> OutageFigures | None:
        """The longest failure (the one the headline figures are about)."""
        return max(self.failures, key=lambda o: o.on_at_s - o.off_at_s, default=None)

    @property
    def critical_up_fraction(self) -> float:
        return self.critical_up_s / self.off_s if self.off_s > 0 else 1.0


def optimum_runtime_s(
    scenario: Scenario,
    planner: PlannerPolicy,
    charge_pct: float,
    settings: SimSettings,
    own_charge_pct: Mapping[str, float] | None = None,
) -> float:
    """The physical optimum's runtime from ``charge_pct``, ended as the run ends: at the shutdown level (the
    UPS's LB, ``shutdown_at_pct``, or ``critical_runtime`` of draw), past which, with ``lb_confirm_s``, the
    daemons still confirm OB + LB (:func:`~piclusterd.core.power_state.lb_wait_left_s`). Without that, a run
    near the optimum would report more than the optimum.

    Mixed topology (solar-3): as the run does, the shared battery feeds the set down to its low-voltage
    disconnect, then each node of it runs on its own battery from ``own_charge_pct`` (each node's charge
    when the failure began; a node not in it at 100 %) until that battery's shutdown level. ``None``: the run
    modelled no own batteries (the demo's UPS is the shared one only), so neither does the optimum."""
    if scenario.node_battery is not None and own_charge_pct is not None:
        own = {n.name: own_charge_pct.get(n.name, 100.0) for n in scenario.view.nodes}
        batteries = NodeBatteries(
            Topology.MIXED,
            scenario.node_battery,
            {name: NodeBattery(name, pct, on_battery=False) for name, pct in own.items()},
            "topology mixed (scenario)",
        )
        return physical_optimum(
            scenario.view,
            scenario.battery,
            planner,
            hardware=scenario.hardware,
            charge_pct=charge_pct,
            node_batteries=batteries,
        ).runtime_s
    battery = replace(
        scenario.battery, shutdown_charge_pct=max(scenario.battery.shutdown_charge_pct, settings.shutdown_at_pct)
    )
    optimum = physical_optimum(scenario.view, battery, planner, hardware=scenario.hardware, charge_pct=charge_pct)
    draw_w = battery.battery_draw_w(optimum.load_w)
    if settings.lb_confirm_s <= 0 or draw_w <= 0 or scenario.node_battery is not None:
        return optimum.runtime_s
    # The confirmation starts at LB, or at once when the failure starts under it (a flicker after a full
    # shutdown, the battery still low): the run then rides it for the confirmation too.
    lb_wh = min(battery.usable_energy_wh(battery.shutdown_charge_pct), battery.usable_energy_wh(charge_pct))
    critical_wh = draw_w * battery.shutdown_runtime_s / HOUR
    if lb_wh <= critical_wh:
        return optimum.runtime_s
    policy = PowerPolicy(
        critical_runtime_s=battery.shutdown_runtime_s,
        lb_confirm_s=settings.lb_confirm_s,
        orderly_shutdown_s=settings.orderly_shutdown_s,
    )
    wait_s = lb_wait_left_s(0.0, lb_wh / draw_w * HOUR, policy)
    return optimum.runtime_s + min(wait_s, (lb_wh - critical_wh) / draw_w * HOUR)


def timeline_figures(
    timeline: Sequence[TimelineRow],
    end: tuple[float, float, float],
    scenario: Scenario,
    planner: PlannerPolicy,
    settings: SimSettings,
    own_charge_at: Mapping[float, Mapping[str, float]] | None = None,
) -> TimelineFigures:
    """The summary's figures from a timeline (each row the state until the next; ``end`` is ``(t, energy_wh,
    charge_pct)`` when it stops). One source for the simulator's summary and the demo's, so a summary always
    agrees with the plot drawn from the same rows.

    A failure is a run of rows without mains. Its runtime is the time in it with a node powered; it lasted
    if a node was powered all through it; the energy left is the first row's with mains back (``end`` if it
    never came back). The physical optimum (:func:`~piclusterd.core.planner.physical_optimum`) and the runtime
    without shedding (:func:`no_shedding_runtime_s`) are at the charge the failure started with (mixed
    topology: ``own_charge_at[off_at]``, each node's own battery then, 100 % if not given; the runtime
    without shedding takes the lowest; ``own_charge_at`` ``None``: the run had no own batteries, the demo's
    case); the optimum ends as the run does (:func:`optimum_runtime_s`,
    ``settings``' shutdown level and OB + LB confirmation).
    """
    figures: list[OutageFigures] = []
    off_s = critical_s = 0.0
    spans: list[tuple[float, float, float]] = []  # each failure: off_at, seconds off, seconds critical up
    current: OpenOutage | None = None
    end_t, end_wh, end_pct = end
    for row, following in zip(timeline, [*timeline[1:], None], strict=True):
        until = end_t if following is None else following.t_s
        if row.mains:
            if current is not None:
                figures.append(current.close(row.t_s, row.energy_wh, row.charge_pct))
                current = None
            continue
        if current is None:
            charge = row.charge_pct
            own_each = None if own_charge_at is None else own_charge_at.get(row.t_s, {})
            own = 100.0 if not own_each else min(own_each.values())
            optimum_s = optimum_runtime_s(scenario, planner, charge, settings, own_each)
            current = OpenOutage(row.t_s, optimum_s, no_shedding_runtime_s(scenario, charge, own), False)
            spans.append((row.t_s, 0.0, 0.0))
        dt = max(0.0, until - row.t_s)
        up = row.critical_up == row.critical_total
        off_s += dt
        critical_s += dt if up else 0.0
        at, span_off, span_up = spans[-1]
        spans[-1] = (at, span_off + dt, span_up + (dt if up else 0.0))
        if row.nodes_powered > 0:
            current.runtime_s += dt
        else:
            current.went_down = True
    if current is not None:
        figures.append(current.close(end_t, end_wh, end_pct))
    main = max(figures, key=lambda o: o.on_at_s - o.off_at_s, default=None)
    _, main_off, main_up = next(
        ((a, o, u) for a, o, u in spans if main is not None and a == main.off_at_s), (0, 0.0, 0.0)
    )
    return TimelineFigures(tuple(figures), off_s, critical_s, main_off, main_up)


@dataclass(frozen=True, slots=True)
class SimResult:
    scenario: str
    outage: str
    target_runtime_s: float
    timeline: tuple[TimelineRow, ...]
    summary: SimSummary


class _Phase(enum.Enum):
    ON = "on"
    DRAINING = "draining"
    SHED = "shed"
    DOWN = "down"  # the whole cluster shut down at low battery


def workloads(view: ClusterView, threshold: int) -> dict[str, bool]:
    """Workload key -> critical, for every pod that is not a DaemonSet's, mirror or finished."""
    found: dict[str, bool] = {}
    for pod in view.pods:
        if pod.is_daemonset or pod.is_mirror or pod.is_finished:
            continue
        key = workload_key(pod)
        found[key] = found.get(key, False) or pod.is_critical(threshold)
    return found


def workload_key(pod: Pod) -> str:
    """What a pod is a replica of: its controller, or the pod itself (a replacement keeps the key)."""
    if pod.owner_kind is None:
        return f"{pod.namespace}/{pod.name}"
    return f"{pod.namespace}/{pod.owner_kind}/{pod.owner_name}"


class _World:
    """The mutable state of one run. Private: nothing escapes but the result."""

    def __init__(self, scenario: Scenario, policy: Policy, settings: SimSettings, planner: PlannerPolicy) -> None:
        self.scenario = scenario
        self.policy = policy
        self.settings = settings
        self.planner = planner
        self.battery: BatterySpec = scenario.battery
        self.hardware: PowerConfig = scenario.hardware
        self.full_wh = self.battery.usable_energy_wh(100.0)
        self.energy_wh = self.battery.usable_energy_wh(settings.initial_charge_pct)
        self.original = {p.key: p.node for p in scenario.view.pods}
        self.pods: dict[str, Pod] = {p.key: p for p in scenario.view.pods}
        self.phase: dict[str, _Phase] = {n.name: _Phase.ON for n in scenario.view.nodes}
        self.drain: tuple[str, float, dict[str, str | None]] | None = None  # node, done at, pod -> node
        self.restore_at: float | None = None
        self.shed_before: frozenset[str] = frozenset()  # shed when the last full shutdown began
        self.kept_off: frozenset[str] = frozenset()  # kept off after it, until restore_min_charge
        self.on_battery_since: float | None = None
        self.kinds = workloads(scenario.view, planner.critical_priority_threshold)
        self.critical = sorted(k for k, c in self.kinds.items() if c)
        self.power_offs = self.power_ons = self.shutdowns = 0
        self.refused: set[tuple[str, SafetyRule]] = set()
        self._view: ClusterView | None = None
        self._cache: dict[str, float] = {}  # load_w and critical_up of the current state
        # Mixed topology (solar-3): each node's own battery, usable Wh, charged like the shared one at the start.
        self.solar: SolarProfile | None = scenario.solar
        self.start_clock_s = 0.0
        self.own: BatterySpec | None = scenario.node_battery
        self.own_full_wh = 0.0 if self.own is None else self.own.usable_energy_wh(100.0)
        self.own_wh: dict[str, float] = {
            n.name: 0.0 if self.own is None else self.own.usable_energy_wh(settings.initial_charge_pct)
            for n in scenario.view.nodes
        }

    # -- state -------------------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return all(p is _Phase.DOWN for p in self.phase.values())

    def powered(self) -> list[str]:
        return [name for name, p in self.phase.items() if p in (_Phase.ON, _Phase.DRAINING)]

    def view(self) -> ClusterView:
        """The cluster as the planner would read it from the API server."""
        if self._view is None:
            nodes = []
            for node in self.scenario.view.nodes:
                phase = self.phase[node.name]
                if phase is _Phase.ON:
                    nodes.append(node)
                    continue
                shed = ShedPhase.DRAINING if phase is _Phase.DRAINING else ShedPhase.POWERED_OFF
                record = render_shed_record(ShedRecord(shed, "simulator", "simulated", "2026-01-01T00:00:00Z", False))
                nodes.append(
                    replace(
                        node,
                        annotations={**node.annotations, ANNOTATION_SHED: record},
                        ready=phase is _Phase.DRAINING,
                        unschedulable=True,
                    )
                )
            self._view = ClusterView(tuple(nodes), tuple(self.pods.values()), self.scenario.view.pdbs)
        return self._view

    def changed(self) -> None:
        self._view = None
        self._cache.clear()

    def moving(self) -> set[str]:
        if self.drain is None:
            return set()
        return set(self.drain[2])

    def critical_up(self) -> int:
        if "critical_up" not in self._cache:
            self._cache["critical_up"] = self._critical_up()
        return int(self._cache["critical_up"])

    def _critical_up(self) -> int:
        powered = set(self.powered())
        moving = self.moving()
        up = {
            workload_key(p)
            for p in self.pods.values()
            if p.node in powered and p.key not in moving and not p.is_daemonset and not p.is_finished
        }
        return sum(k in up for k in self.critical)

    def load_w(self) -> float:
        if self.down:
            return 0.0  # the UPS cut its output after the shutdown
        if "load_w" not in self._cache:
            self._cache["load_w"] = cluster_load_w(self.view(), self.hardware, self.powered())
        return self._cache["load_w"]

    def battery_w(self, mains: bool, t: float = 0.0) -> float:
        """Positive: discharging; negative: charging (mains and the sun both charge it)."""
        full = self.energy_wh >= self.full_wh - _EPS
        solar = self.solar_w(t)
        if mains:
            return 0.0 if full else -self.full_wh / self.settings.recharge_h - solar
        draw = 0.0 if self.down or not self.shared_feeds() else self.battery.battery_draw_w(self.load_w())
        net = draw - solar
        return max(0.0, net) if full else net

    def solar_w(self, t: float) -> float:
        """Solar power into the shared battery, averaged over the ``SOLAR_BIN_S`` bin of the day ``t`` is in
        (constant between events, so energy stays exact)."""
        if self.solar is None:
            return 0.0
        start = math.floor((self.start_clock_s + t + _EPS) / SOLAR_BIN_S) * SOLAR_BIN_S
        return self.solar.energy_wh(start, start + SOLAR_BIN_S) * HOUR / SOLAR_BIN_S

    def next_solar_bin(self, t: float) -> float | None:
        if self.solar is None:
            return None
        clock = self.start_clock_s + t
        return (math.floor((clock + _EPS) / SOLAR_BIN_S) + 1) * SOLAR_BIN_S - self.start_clock_s

    def shared_feeds(self) -> bool:
        """Mixed topology: whether the shared battery still feeds the nodes (above its own shutdown level,
        where its low-voltage disconnect opens); the nodes' own batteries take over after that."""
        if self.own is None:
            return True
        return self.energy_wh > self.battery.usable_energy_wh(self.battery.shutdown_charge_pct) + _EPS

    def own_draw_w(self, name: str) -> float:
        """Watts the node's own battery delivers (mixed topology, once the shared battery is gone)."""
        phase = self.phase[name]
        if self.own is None or phase is _Phase.DOWN:
            return 0.0
        running = phase in (_Phase.ON, _Phase.DRAINING)
        return self.own.battery_draw_w(node_load_w(self.view(), self.hardware, name, running))

    def own_w(self, name: str, mains: bool) -> float:
        """Positive: the node's own battery discharging; negative: charging."""
        if self.own is None:
            return 0.0
        if mains:
            full = self.own_wh[name] >= self.own_full_wh - _EPS
            return 0.0 if full else -self.own_full_wh / self.settings.recharge_h
        return 0.0 if self.shared_feeds() else self.own_draw_w(name)

    def own_charge_pct(self, name: str) -> float:
        if not self.own_full_wh:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.own_wh[name] / self.own_full_wh))

    def own_shutdown_wh(self, name: str) -> float:
        assert self.own is not None
        return self.own.shutdown_energy_wh(self.own_draw_w(name))

    def depletion_w(self, draw_w: float) -> float:
        """How fast usable energy goes at ``draw_w`` (Peukert derating when the exponent is above 1)."""
        k = self.settings.peukert_exponent
        if draw_w <= 0 or k == 1.0:
            return draw_w
        rated_w = self.battery.capacity_wh / self.settings.rated_hours
        return draw_w * float((draw_w / rated_w) ** (k - 1.0))

    def shutdown_wh(self) -> float:
        """Energy at which every node shuts down at the present draw: the battery's own shutdown rules
        (charge threshold, ``critical_runtime`` of draw) or ``shutdown_at_pct``, whichever is reached first."""
        return max(self.lb_wh(), self.critical_runtime_wh())

    def lb_wh(self) -> float:
        """Energy at the UPS's low-battery signal (the charge threshold, or ``shutdown_at_pct``)."""
        return max(
            self.battery.usable_energy_wh(self.settings.shutdown_at_pct),
            self.battery.usable_energy_wh(self.battery.shutdown_charge_pct),
        )

    def critical_runtime_wh(self) -> float:
        """Energy at which the runtime at the present draw is ``critical_runtime``: always immediate."""
        draw_w = 0.0 if self.down else self.battery.battery_draw_w(self.load_w())
        return max(0.0, draw_w) * self.battery.shutdown_runtime_s / HOUR

    def lb_wait_left_s(self, lb_for_s: float) -> float:
        """The daemons' OB + LB confirmation still to run, with the runtime to empty a UPS reports."""
        if self.policy is not Policy.PICLUSTERD or self.settings.lb_confirm_s <= 0:
            return 0.0
        draw_w = 0.0 if self.down else self.battery.battery_draw_w(self.load_w())
        runtime_s = self.energy_wh / draw_w * HOUR if draw_w > 0 else None
        policy = PowerPolicy(
            critical_runtime_s=self.battery.shutdown_runtime_s,
            lb_confirm_s=self.settings.lb_confirm_s,
            orderly_shutdown_s=self.settings.orderly_shutdown_s,
        )
        return lb_wait_left_s(lb_for_s, runtime_s, policy)

    @property
    def charge_pct(self) -> float:
        return max(0.0, min(100.0, 100.0 * self.energy_wh / self.full_wh))

    # -- transitions ------------------------------------------------------------------------------------

    def set_phase(self, name: str, phase: _Phase) -> None:
        old = self.phase[name]
        was_on = old in (_Phase.ON, _Phase.DRAINING)
        is_on = phase in (_Phase.ON, _Phase.DRAINING)
        self.power_offs += was_on and not is_on
        self.power_ons += is_on and not was_on
        self.phase[name] = phase
        self.changed()

    def shutdown_all(self) -> None:
        self.drain = None
        # What the outage record keeps: the nodes shed before the full shutdown.
        self.shed_before = frozenset(name for name, phase in self.phase.items() if phase is _Phase.SHED)
        for name in self.phase:
            self.set_phase(name, _Phase.DOWN)
        self.shutdowns += 1

    def boot_after_full_shutdown(self) -> None:
        """Mains is back after a full shutdown: the UPS output returns and the Pis boot, at once, with the pods
        where the snapshot had them. Under restore_min_charge the nodes shed before it stay off (the smallest
        safe set; the demo's leader sheds them again right after the boot, lumped in here), their pods where
        the outage had moved them, or Pending."""
        low = self.charge_pct < self.settings.restore_min_charge_pct
        self.kept_off = self.shed_before if low else frozenset()
        for name in self.phase:
            self.set_phase(name, _Phase.SHED if name in self.kept_off else _Phase.ON)
        for key, pod in self.pods.items():
            home = self.original[key]
            if home not in self.kept_off:
                self.pods[key] = _bind(pod, home)
            elif pod.node in self.kept_off:
                self.pods[key] = _bind(pod, None)
        self.changed()

    def restore(self) -> None:
        """Every node on again (those kept off after a full shutdown once the charge reached restore_min_charge);
        after a full shutdown the pods are where the snapshot had them."""
        was_down = self.down
        if self.charge_pct >= self.settings.restore_min_charge_pct:
            self.kept_off = frozenset()
        for name, phase in self.phase.items():
            if phase in (_Phase.SHED, _Phase.DOWN) and name not in self.kept_off:
                self.set_phase(name, _Phase.ON)
        for key, pod in self.pods.items():
            if was_down or pod.node is None:
                self.pods[key] = _bind(pod, self.original[key])
        self.restore_at = None
        self.changed()

    def finish_drain(self) -> None:
        assert self.drain is not None
        node, _, moves = self.drain
        for key, to_node in moves.items():
            self.pods[key] = _bind(self.pods[key], to_node)
        self.drain = None
        self.set_phase(node, _Phase.SHED)

    def cancel_drain(self) -> None:
        if self.drain is not None:
            self.set_phase(self.drain[0], _Phase.ON)
            self.drain = None

    def node_batteries(self, mains: bool) -> NodeBatteries | None:
        """What the leader reads from the nodes' power records: each powered node's own battery, on battery
        once the shared one stopped feeding; a shed node keeps its charge."""
        if self.own is None:
            return None
        feeding = self.shared_feeds()
        found = {
            name: NodeBattery(
                name,
                self.own_charge_pct(name),
                on_battery=not mains and not feeding and phase in (_Phase.ON, _Phase.DRAINING),
                kept_from_shed=phase is _Phase.SHED,
            )
            for name, phase in self.phase.items()
            if phase is not _Phase.DOWN
        }
        return NodeBatteries(Topology.MIXED, self.own, found, "topology mixed (scenario)")

    def decide(self, now: float, mains: bool) -> None:
        if self.policy is Policy.NO_SHEDDING or mains or not self.powered() or self.drain is not None:
            return
        situation = PowerSituation("on_battery", on_battery_since=self.on_battery_since, charge_pct=self.charge_pct)
        decided = plan(
            self.view(),
            situation,
            self.battery,
            self.planner,
            now,
            hardware=self.hardware,
            node_batteries=self.node_batteries(mains),
        )
        self.refused.update((r.node, r.rule) for r in decided.refused)
        for power_on in decided.power_on:
            # Rotation: the shed node boots on its kept charge (boot lumped in, like the restore).
            if self.phase[power_on.node] is _Phase.SHED:
                self.set_phase(power_on.node, _Phase.ON)
        if not decided.actions:
            return
        action = decided.actions[0]
        evicted = set(action.evicts)
        moves = {p.pod: p.to_node for p in decided.placements if p.pod in evicted}
        for key in evicted:
            moves.setdefault(key, None)
        self.drain = (action.node, now + self.settings.pod_move_s, moves)
        self.set_phase(action.node, _Phase.DRAINING)


def _bind(pod: Pod, node: str | None) -> Pod:
    if pod.node == node:
        return pod
    return replace(pod, node=node, phase=PodPhase.RUNNING if node is not None else PodPhase.PENDING)


def no_shedding_runtime_s(scenario: Scenario, charge_pct: float = 100.0, own_charge_pct: float = 100.0) -> float:
    """scenarios.md's runtime with every node on: usable energy down to the shutdown level / battery draw.
    Mixed topology: the shared battery's, then the longest a node's own battery lasts after it."""
    view, hardware = scenario.view, scenario.hardware
    names = [n.name for n in view.nodes]
    shared_s = scenario.battery.runtime_s(charge_pct, cluster_load_w(view, hardware, names))
    own = scenario.node_battery
    if own is None:
        return shared_s
    return shared_s + max(
        (own.runtime_s(own_charge_pct, node_load_w(view, hardware, name, True)) for name in names), default=0.0
    )


def simulate(
    scenario: Scenario,
    outage: Outage,
    policy: Policy,
    settings: SimSettings | None = None,
    target_runtime_s: float | None = None,
) -> SimResult:
    """Run ``outage`` against ``scenario`` under ``policy``. Pure: same inputs, same result."""
    settings = settings or SimSettings()
    # With ``stop_work`` the simulated world carries out a plan's stops (Plan.scale_down): the stopped pods are
    # left Pending, drawing nothing, and come back with the restore. On by default, as in the leader.
    planner = replace(scenario.policy, can_stop_work=settings.stop_work)
    if target_runtime_s is not None:
        planner = replace(planner, target_runtime_s=target_runtime_s)
    world = _World(scenario, policy, settings, planner)
    clock = settings.start_clock_s if settings.start_clock_s is not None else outage.start_clock_s
    world.start_clock_s = clock or 0.0
    edges = sorted({t for interval in outage.intervals for t in interval})
    stop = outage.stop_s

    def mains_at(t: float) -> bool:
        return not any(off <= t < on for off, on in outage.intervals)

    rows: list[TimelineRow] = []
    own_at: dict[float, dict[str, float]] = {}  # mixed topology: each node's own battery when each failure began
    drawn_wh = 0.0
    t, next_tick = 0.0, 0.0
    lb_since: float | None = None  # the present OB + LB spell (energy at or under the LB level, on battery)
    lb_wait_s = 0.0
    mains = mains_at(0.0)
    while t < stop - _EPS:
        # 1. Events due now: mains, drains, restores, shutdown.
        now_mains = mains_at(t)
        if now_mains != mains or (t == 0.0 and not now_mains):
            if not now_mains:
                world.on_battery_since = t
                world.restore_at = None
                own_at[t] = {n: world.own_charge_pct(n) for n in world.own_wh}
            else:
                world.on_battery_since = None
                world.cancel_drain()
                if world.down and world.own is None:
                    world.boot_after_full_shutdown()
                world.restore_at = t + settings.restore_after_s
            mains = now_mains
        if world.drain is not None and world.drain[1] <= t + _EPS:
            world.finish_drain()
        if world.restore_at is not None and world.restore_at <= t + _EPS and mains:
            world.restore()
        elif (
            world.kept_off
            and world.restore_at is None
            and mains
            and world.charge_pct >= settings.restore_min_charge_pct
        ):
            world.restore()  # the restore policy brings the smallest safe set's nodes back
        if world.own is None:
            lb_wait_s = 0.0
            if mains or world.down or world.energy_wh > world.lb_wh() + _EPS:
                lb_since = None
            elif lb_since is None:
                lb_since = t
            if lb_since is not None and world.energy_wh > world.critical_runtime_wh() + _EPS:
                lb_wait_s = world.lb_wait_left_s(t - lb_since)  # OB + LB, confirmed as the daemons do
            if not mains and not world.down and world.energy_wh <= world.shutdown_wh() + _EPS and lb_wait_s <= _EPS:
                world.shutdown_all()
                lb_since = None
        elif not mains and world.powered() and not world.shared_feeds():
            # Mixed: each node shuts itself down when its own battery reaches its shutdown level.
            for name, phase in list(world.phase.items()):
                if phase is not _Phase.DOWN and world.own_wh[name] <= world.own_shutdown_wh(name) + _EPS:
                    if world.drain is not None and world.drain[0] == name:
                        world.drain = None
                    world.set_phase(name, _Phase.DOWN)
            if not world.powered():  # the last running Pi went: the cluster is down (shed ones stay halted)
                world.drain = None
                world.shutdowns += 1
        if t >= next_tick - _EPS:
            world.decide(t, mains)
            next_tick = t + settings.step_s
        if world.drain is not None and world.drain[1] <= t + _EPS:  # a zero pod-move time
            world.finish_drain()
        # 2. The segment from t: power is constant until the next event.
        battery_w = world.battery_w(mains, t)
        critical_up = world.critical_up()
        rows.append(
            TimelineRow(
                t_s=t,
                mains=mains,
                charge_pct=world.charge_pct,
                energy_wh=world.energy_wh,
                battery_w=battery_w,
                load_w=world.load_w(),
                nodes_powered=len(world.powered()),
                critical_up=critical_up,
                critical_total=len(world.critical),
            )
        )
        candidates = [stop, next_tick, *(e for e in edges if e > t + _EPS)]
        solar_edge = world.next_solar_bin(t)
        if solar_edge is not None:
            candidates.append(solar_edge)
        if world.drain is not None:
            candidates.append(world.drain[1])
        if world.restore_at is not None:
            candidates.append(world.restore_at)
        rate = world.depletion_w(battery_w)
        low = world.shutdown_wh()
        if world.own is None and lb_wait_s > _EPS:  # confirming OB + LB: until it ends, or critical_runtime
            candidates.append(t + lb_wait_s)
            low = world.critical_runtime_wh()
        if world.own is not None:  # mixed: the shared battery stops feeding at its own level; the nodes go on
            low = world.battery.usable_energy_wh(world.battery.shutdown_charge_pct)
        if rate > 0:
            candidates.append(t + max(0.0, world.energy_wh - low) / rate * HOUR)
        elif rate < 0:
            candidates.append(t + (world.full_wh - world.energy_wh) / -rate * HOUR)
        own_rates = {name: world.own_w(name, mains) for name in world.own_wh if world.own is not None}
        for name, own_rate in own_rates.items():
            if own_rate > 0:
                candidates.append(t + max(0.0, world.own_wh[name] - world.own_shutdown_wh(name)) / own_rate * HOUR)
            elif own_rate < 0:
                candidates.append(t + (world.own_full_wh - world.own_wh[name]) / -own_rate * HOUR)
        t_next = max(min(candidates), t + 1e-6)
        dt = t_next - t
        world.energy_wh = min(world.full_wh, max(0.0, world.energy_wh - rate * dt / HOUR))
        if battery_w > 0:
            drawn_wh += battery_w * dt / HOUR
        for name, own_rate in own_rates.items():
            world.own_wh[name] = min(world.own_full_wh, max(0.0, world.own_wh[name] - own_rate * dt / HOUR))
            drawn_wh += max(0.0, own_rate) * dt / HOUR
        t = t_next
    # The figures from the timeline the plot and the CSV show, by the code the demo's summary uses too.
    figures = timeline_figures(
        rows,
        (t, world.energy_wh, world.charge_pct),
        scenario,
        planner,
        replace(settings, lb_confirm_s=settings.lb_confirm_s if policy is Policy.PICLUSTERD else 0.0),
        own_at if world.own is not None else None,
    )
    summary = SimSummary(
        policy=policy,
        outages=figures.failures,
        critical_up_fraction=figures.critical_up_fraction,
        power_offs=world.power_offs,
        power_ons=world.power_ons,
        full_shutdowns=world.shutdowns,
        refused=tuple(sorted(world.refused)),
        energy_drawn_wh=drawn_wh,
    )
    return SimResult(scenario.name, outage.name, planner.target_runtime_s, tuple(rows), summary)


@dataclass(slots=True)
class OpenOutage:
    """The failure under way, while a run (the simulator's or the demo's) goes through it."""

    off_at_s: float
    optimum_runtime_s: float
    no_shedding_runtime_s: float
    went_down: bool
    runtime_s: float = 0.0

    def close(self, on_at_s: float, energy_left_wh: float, charge_left_pct: float) -> OutageFigures:
        """The failure's figures, mains being back at ``on_at_s`` with that much left in the battery."""
        return OutageFigures(
            off_at_s=self.off_at_s,
            on_at_s=on_at_s,
            runtime_s=self.runtime_s,
            survived=not self.went_down,
            energy_left_wh=energy_left_wh,
            charge_left_pct=charge_left_pct,
            optimum_runtime_s=self.optimum_runtime_s,
            no_shedding_runtime_s=self.no_shedding_runtime_s,
        )


def _survives(scenario: Scenario, hours: float, policy: Policy, settings: SimSettings, capacity_wh: float) -> bool:
    trial = replace(scenario, battery=replace(scenario.battery, capacity_wh=capacity_wh))
    outage = Outage(f"{hours} h", ((60.0, 60.0 + hours * HOUR),), end_s=60.0 + hours * HOUR)
    result = simulate(trial, outage, policy, settings, target_runtime_s=hours * HOUR)
    return result.summary.full_shutdowns == 0


def find_battery_for(
    scenario: Scenario,
    hours: float,
    policy: Policy,
    settings: SimSettings | None = None,
    tolerance_wh: float = 0.5,
) -> float:
    """The smallest battery (Wh, rounded up to ``tolerance_wh``) that keeps the cluster (so its critical
    workloads, bar pod moves) up through an outage of ``hours`` from a full charge. piclusterd plans with
    a target of ``hours``. Bisection, which assumes more capacity never shortens the runtime: exact without
    shedding; with it, a bigger battery may mean fewer nodes shed, but to the same target, re-planned as
    the charge falls."""
    settings = settings or SimSettings()
    low, high = 0.0, max(1.0, scenario.battery.capacity_wh)
    while not _survives(scenario, hours, policy, settings, high):
        low, high = high, high * 2
        if high > 1e7:
            raise ConfigError("simulate", "find-battery-for", f"no battery up to {high:.0f} Wh lasts {hours} h")
    while high - low > tolerance_wh:
        middle = (low + high) / 2
        if _survives(scenario, hours, policy, settings, middle):
            high = middle
        else:
            low = middle
    return math.ceil(high / tolerance_wh) * tolerance_wh


def timeline_csv(results: Iterable[SimResult]) -> str:
    """Every result's timeline as CSV text, with a ``policy`` and a ``target_runtime_s`` column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TIMELINE_COLUMNS)
    for result in results:
        for row in result.timeline:
            writer.writerow(
                (
                    result.summary.policy.value,
                    f"{result.target_runtime_s:.0f}",
                    f"{row.t_s:.3f}",
                    int(row.mains),
                    f"{row.charge_pct:.4f}",
                    f"{row.energy_wh:.6f}",
                    f"{row.battery_w:.6f}",
                    f"{row.load_w:.6f}",
                    row.nodes_powered,
                    row.critical_up,
                    row.critical_total,
                )
            )
    return out.getvalue()
