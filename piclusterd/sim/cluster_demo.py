"""``piclusterd demo``: a reference cluster rides out an outage, with the real code of every node.

Each node runs its real daemon code (power state machine, Lease election, planner, drain, power-off, node
agent) against one scripted UPS and the embedded fake Kubernetes API server, on one accelerated clock
(``sim/cluster_world.py``). The cluster is one of the packaged reference clusters
(``piclusterd/sim/data``, copies of ``examples/clusters``) and the outage one of the simulator's
profiles, so the demo and ``piclusterctl simulate`` run the same scenario through the same core.

The UPS follows the simulator's physics (``core.power_draw.BatterySpec``: battery draw = load / inverter
efficiency + the UPS's own draw; linear recharge on mains) and reports what NUT would: OL/OB, LB at 20 %
charge, charge, its runtime, output watts; its load is the power model's draw of the nodes that are on.
When the battery ends the leader shuts the cluster down in order (``outage_coordinator``) and the UPS cuts
its output (NUT's ``shutdown.return``) and draws nothing; when mains returns the output comes back and every
Pi boots, the shed ones too. Shed nodes of a cluster that lasted stay halted until the leader's restore policy
powers them on, one at a time (``BootInWorld``, as Wake-on-LAN would). The fake API server
listens on loopback for the whole run, so ``kubectl`` can watch it. The timeline printed is the nodes' own
audit trail, condensed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from piclusterd.cluster.power_on import PowerOnBackends
from piclusterd.config.settings import ShedSettings
from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.durations import format_duration
from piclusterd.core.outage_record import energy_used_text
from piclusterd.core.planner import physical_optimum
from piclusterd.core.power_draw import BatterySpec, cluster_load_w
from piclusterd.notify.notifier import Notifier
from piclusterd.sim.cluster_world import FULL_SHUTDOWN_WAIT_S, BootInWorld, ClusterWorld, SimulatedPi
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import Scenario, load_scenario
from piclusterd.sim.simulator import (
    OUTAGES,
    Outage,
    OutageFigures,
    SimSettings,
    TimelineRow,
    timeline_figures,
    workload_key,
    workloads,
)

__all__ = ["DATA", "DemoFigures", "DemoUps", "clusters", "run_cluster_demo"]

DATA = Path(__file__).resolve().parent / "data"
# The simulator's t = 0 (ten minutes before the failure of storm-2am, at 02:00), for outages without a time of day.
START = datetime.datetime(2026, 11, 24, 1, 50, tzinfo=datetime.UTC).timestamp()
DAY = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC).timestamp()
STEP_S = 5.0
LOW_BATTERY_PCT = 20.0  # the UPS sets LB here; every node's daemon then shuts it down (critical)
REPLACEMENT_READY_S = 20.0  # the fake cluster's kubelets: a bound pod is Ready this long after (image cached)
SHOWN = (
    "leader.acquired",
    "leader.stepping_down",
    "outage.started",
    "plan.decided",
    "node.drain_started",
    "node.drained",
    "node.drain_failed",
    "node.powered_off",
    "node.shed_cancelled",
    "shutdown.cluster_started",
    "shutdown.cluster_cordoned",
    "node.poweroff_requested",
    "shutdown.cluster_drain_incomplete",
    "shutdown.cluster_peer_unconfirmed",
    "shutdown.hook_finished",
    "shutdown.hook_failed",
    "shutdown.ups_return",
    "shutdown.leader_last",
    "shutdown.local_started",
    "restore.waiting",
    "node.power_on_requested",
    "node.power_on_failed",
    "node.power_on_unanswered",
    "node.restored",
    "outage.summary",
)
# What a shown event's line says, when it has it (plan.decided, shutdown.local_started and outage.summary have
# their own wording).
DETAIL_KEYS = (
    "target",
    "via",
    "method",
    "outcome",
    "evicted",
    "why",
    "shed",
    "nodes",
    "requested",
    "command",
    "delay_s",
    "charge_pct",
    "reason",
)
BOOT_S = 40.0  # a Pi 4 from power-on to its kubelet Ready
# How the demo's runs end, for the summary's optimum: the nodes shut down at the UPS's LB, once their daemons
# confirmed it for low_battery_confirm ("auto": [shutdown] full_shutdown_wait, ClusterWorld's).
SUMMARY = SimSettings(
    shutdown_at_pct=LOW_BATTERY_PCT, lb_confirm_s=FULL_SHUTDOWN_WAIT_S, orderly_shutdown_s=FULL_SHUTDOWN_WAIT_S
)


def clusters() -> list[str]:
    """The reference clusters the demo can run: every packaged ``<name>.json`` with its ``<name>.toml``."""
    return sorted(p.stem for p in DATA.glob("*.json") if p.with_suffix(".toml").is_file())


@dataclass
class DemoUps:
    """The scenario's UPS, as the simulator models it, reporting NUT variables."""

    battery: BatterySpec
    recharge_h: float = 8.0
    energy_wh: float = math.nan
    _to_empty: BatterySpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if math.isnan(self.energy_wh):
            self.energy_wh = self.full_wh
        self._to_empty = dataclasses.replace(self.battery, shutdown_charge_pct=0.0, shutdown_runtime_s=0.0)

    @property
    def full_wh(self) -> float:
        return self.battery.usable_energy_wh(100.0)

    @property
    def charge_pct(self) -> float:
        return max(0.0, min(100.0, 100.0 * self.energy_wh / self.full_wh))

    def battery_w(self, mains: bool, load_w: float, output_on: bool) -> float:
        """Positive: discharging; negative: charging (as the simulator's timeline)."""
        if mains:
            return -self.full_wh / self.recharge_h if self.energy_wh < self.full_wh else 0.0
        return self.battery.battery_draw_w(load_w) if output_on else 0.0

    def step(self, seconds: float, mains: bool, load_w: float, output_on: bool) -> None:
        watts = self.battery_w(mains, load_w, output_on)
        self.energy_wh = min(self.full_wh, max(0.0, self.energy_wh - watts * seconds / 3600.0))

    def variables(self, mains: bool, load_w: float) -> dict[str, str]:
        flags = "OL CHRG" if mains else "OB DISCHRG"
        if not mains and self.charge_pct <= LOW_BATTERY_PCT:
            flags += " LB"
        # A UPS's battery.runtime runs until its own cut-off (empty), not until the nodes' shutdown level: the
        # daemons compare it with critical_runtime, as the simulator's shutdown_energy_wh does. Counted to the
        # 20 % LB level instead, every node went critical critical_runtime (5 min) before LB.
        runtime = self._to_empty.runtime_s(self.charge_pct, load_w)
        return {
            "ups.status": flags,
            "battery.charge": f"{self.charge_pct:.1f}",
            "battery.runtime": f"{min(runtime, 359_999):.0f}",
            "ups.realpower": f"{load_w:.1f}",
        }


@dataclass
class DemoFigures:
    cluster: str = ""
    outage: str = ""
    outage_s: float = 0.0
    epoch: float = START  # the wall time of t = 0
    critical_up_s: float = 0.0
    on_battery_s: float = 0.0
    cluster_down_s: float = 0.0
    power_offs: int = 0
    local_shutdowns: int = 0
    charge_end_pct: float = 0.0
    runtime_without_s: float | None = None
    runtime_planned_s: float | None = None
    runtime_optimum_s: float | None = None
    shed: list[str] = field(default_factory=list)
    # The leader's orderly full shutdowns: each the nodes it asked to power off in order, then itself (last).
    full_shutdowns: list[list[str]] = field(default_factory=list)
    # (from, to) of each orderly full shutdown: its start to the last node down, in the run's seconds.
    full_shutdown_spans: list[tuple[float, float]] = field(default_factory=list)
    in_full_shutdown: bool = False  # between shutdown.cluster_started and shutdown.leader_last
    powered_on: list[str] = field(default_factory=list)  # shed nodes the restore policy powered on, in order
    restored: list[str] = field(default_factory=list)  # nodes back in service (node.restored), in order
    summaries: list[dict[str, Any]] = field(default_factory=list)  # the leader's outage.summary fields
    # From the timeline, by the simulator's code (timeline_figures), once the run ends: one per mains failure.
    failures: list[OutageFigures] = field(default_factory=list)
    # Seconds without mains inside the longest failure, and how many of them had every critical workload up.
    main_off_s: float = 0.0
    main_critical_up_s: float = 0.0
    timeline: list[TimelineRow] = field(default_factory=list)

    @property
    def main_failure(self) -> OutageFigures | None:
        """The longest failure (the one the headline figures are about, as in the simulator)."""
        return max(self.failures, key=lambda o: o.on_at_s - o.off_at_s, default=None)


def _line(event: dict[str, Any]) -> str:
    clock = str(event["timestamp"])[11:19]
    name = str(event["event"])
    node = str(event["node"])
    if name == "plan.decided":
        runtime = event.get("projected_runtime_s")
        detail = f"shed {', '.join(event['shed']) or 'nothing'}"
        if runtime is not None:
            detail += f"; battery then lasts {format_duration(float(runtime))} (without: "
            detail += f"{format_duration(float(event['runtime_without_shedding_s'] or 0))})"
        detail += f" [{event['decision']}]"
    elif name == "shutdown.local_started":
        detail = str(event.get("reason"))
    elif name == "outage.summary":
        detail = (
            f"{format_duration(float(event['duration_s']))} on battery, shed {', '.join(event['nodes_shed']) or 'none'}"
            f", {'ended in a full shutdown' if event['full_shutdown'] else 'the cluster lasted'}, "
            f"{energy_used_text(event['energy_used_wh'])}, critical services down "
            f"{format_duration(float(event['critical_downtime_s']))}"
        )
    else:
        detail = " ".join(f"{k}={event[k]}" for k in DETAIL_KEYS if event.get(k) is not None)
    return f"{clock}  {node:<4} {name:<24} {detail}"


def _critical_up(view: ClusterView, critical: set[str]) -> int:
    """How many critical workloads have a Ready pod on a Ready node."""
    ready_nodes = {n.name for n in view.nodes if n.ready}
    up = {workload_key(p) for p in view.pods if p.ready and p.node in ready_nodes}
    return len(critical & up)


def _stamp(clock: FakeClock) -> str:
    return f"{datetime.datetime.fromtimestamp(clock.wall(), datetime.UTC):%H:%M:%S}"


def run_cluster_demo(
    outage: str | Outage,
    speed: float,
    out: TextIO,
    *,
    cluster: str = "clinic-5",
    on_serving: Callable[[FakeKubeServer, Path], None] | None = None,
    before_close: Callable[[DemoFigures], None] | None = None,
    notifiers: Callable[[str, Callable[[], float]], Notifier] | None = None,
) -> DemoFigures:
    """Run ``outage`` through ``cluster``; print the timeline to ``out`` and return the figures.

    ``speed`` is simulated seconds per wall second (0: flat out). ``on_serving(server, kubeconfig)`` is
    called once the fake API server listens (with a kubeconfig for it); ``before_close(figures)`` after the
    run, while it still listens.
    """
    profile = OUTAGES[outage] if isinstance(outage, str) else outage
    scenario: Scenario = load_scenario(DATA / f"{cluster}.json")
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    critical = {k for k, c in workloads(scenario.view, scenario.policy.critical_priority_threshold).items() if c}
    # The outage's own time of day (long-night fails at 20:00), so the timeline reads as the night it was.
    epoch = START if profile.start_clock_s is None else DAY + profile.start_clock_s
    clock = FakeClock(start=0.0, epoch=epoch)
    ups = DemoUps(scenario.battery)
    figures = DemoFigures(cluster=cluster, outage=profile.name, outage_s=profile.off_s, epoch=epoch)
    optimum = physical_optimum(scenario.view, scenario.battery, scenario.policy, hardware=scenario.hardware)
    figures.runtime_optimum_s = optimum.runtime_s
    end = profile.stop_s
    shown: dict[int, tuple[SimulatedPi, int]] = {}
    with (
        FakeKubeServer(clock=clock, controller=True, ready_delay_s=REPLACEMENT_READY_S) as server,
        tempfile.TemporaryDirectory(prefix="piclusterd-demo-") as directory,
    ):
        server.load_objects(json.loads((DATA / f"{cluster}.json").read_text()))
        server.run_controller_once()
        if on_serving is not None:
            on_serving(server, server.write_kubeconfig(Path(directory) / "kubeconfig"))
        world = ClusterWorld(
            server,
            clock,
            [n.name for n in scenario.view.nodes],
            settings,
            power_on=lambda w: PowerOnBackends({}, default=BootInWorld(w, BOOT_S)),
            notifiers=notifiers,
        )

        def mains_at(t: float) -> bool:
            return not any(off <= t < on for off, on in profile.intervals)

        def measure() -> tuple[ClusterView, list[str], float]:
            view = parse_kubectl_list(
                {"kind": "List", "items": server.list_objects("Node") + server.list_objects("Pod")}
            )
            running = [name for name, pi in world.pis.items() if pi.alive]
            return view, running, cluster_load_w(view, scenario.hardware, running) if running else 0.0

        # The UPS model is stepped up to the clock wherever the clock moves: here, and inside a leader's long
        # step (ClusterWorld.sleep), so a drain that spans mains coming back sees the UPS go online with it.
        # As last measured: the time, mains, the load and whether any node was powered.
        since, was_mains, was_load, was_powered = clock.monotonic(), True, 0.0, False

        def follow_ups() -> tuple[ClusterView, list[str], float]:
            nonlocal since, was_mains, was_load, was_powered
            now = clock.monotonic()
            view, running, load = measure()
            if now > since:
                ups.step(now - since, was_mains, was_load, was_powered)
                if not running:
                    figures.cluster_down_s += now - since
            since, was_mains, was_load, was_powered = now, mains_at(now), load, bool(running)
            world.ups.variables = ups.variables(was_mains, load)
            return view, running, load

        world.on_time_passed = follow_ups
        paced_from = time.monotonic()
        shutdown_from: float | None = None
        while clock.monotonic() < end:
            view, running, load = follow_ups()
            t = clock.monotonic()
            mains = mains_at(t)
            if shutdown_from is not None and not running:
                figures.full_shutdown_spans.append((shutdown_from, t))
                shutdown_from = None
            critical_up = _critical_up(view, critical) if running else 0
            figures.timeline.append(
                TimelineRow(
                    t_s=t,
                    mains=mains,
                    charge_pct=ups.charge_pct,
                    energy_wh=ups.energy_wh,
                    battery_w=ups.battery_w(mains, load, bool(running)),
                    load_w=load,
                    nodes_powered=len(running),
                    critical_up=critical_up,
                    critical_total=len(critical),
                )
            )
            dead = [name for name, pi in world.pis.items() if not pi.alive]
            if mains and dead and not running:
                # The UPS cut its output when the last node went down (shutdown.return); with mains it powers
                # every Pi again, the shed ones included: they all boot. Shed nodes of a cluster that lasted stay
                # halted until the leader's restore policy powers them on (BootInWorld, the demo's "wol").
                print(f"{_stamp(clock)}  mains back: the UPS output returns and every Pi boots", file=out)
                for name in dead:
                    world.reboot(name)
            world.step(STEP_S)
            shutdowns_before = len(figures.full_shutdowns)
            _report(world, shown, figures, out)
            if len(figures.full_shutdowns) > shutdowns_before:
                shutdown_from = t
            if speed > 0:  # keep pace with the wall clock: the work of a step is part of its time
                time.sleep(max(0.0, paced_from + clock.monotonic() / speed - time.monotonic()))
        follow_ups()  # the last step's energy
        # Every summary figure from the timeline the plot draws, by the simulator's code (issue 16).
        counted = timeline_figures(
            figures.timeline, (clock.monotonic(), ups.energy_wh, ups.charge_pct), scenario, scenario.policy, SUMMARY
        )
        figures.failures = [_optimum_with_the_shutdown(f, figures.full_shutdown_spans) for f in counted.failures]
        figures.on_battery_s, figures.critical_up_s = counted.off_s, counted.critical_up_s
        figures.main_off_s, figures.main_critical_up_s = counted.main_off_s, counted.main_critical_up_s
        world.close()
        figures.charge_end_pct = ups.charge_pct
        if before_close is not None:
            before_close(figures)
    return figures


def _optimum_with_the_shutdown(failure: OutageFigures, spans: list[tuple[float, float]]) -> OutageFigures:
    """The optimum ended as the run is: a failure that ended in an orderly full shutdown ran on through it
    (drains with the pods' grace periods, each node's own self-drain, the leader last), and the optimum's
    node set would have to shut down in order too, so it gets the same span. Without it the summary would
    read an optimum below what was achieved (issue 16)."""
    if failure.survived:
        return failure
    took = sum(until - start for start, until in spans if failure.off_at_s <= start < failure.on_at_s)
    return dataclasses.replace(failure, optimum_runtime_s=failure.optimum_runtime_s + took)


def _report(world: ClusterWorld, shown: dict[int, tuple[SimulatedPi, int]], figures: DemoFigures, out: TextIO) -> None:
    """Print the nodes' new audit events worth showing, in time order, and count what the summary needs."""
    new = []
    for pi in world.pis.values():
        events = pi.audit.events
        # Keyed by the node's life: holding the SimulatedPi keeps its id from being reused by a later boot's,
        # which made the timeline skip the first events of that boot.
        _, seen = shown.get(id(pi), (pi, 0))
        new.extend(events[seen:])
        shown[id(pi)] = (pi, len(events))
    for event in sorted(new, key=lambda e: str(e["timestamp"])):
        if event["event"] in SHOWN:
            print(_line(event), file=out, flush=True)
        if event["event"] == "shutdown.cluster_started":
            figures.full_shutdowns.append([])
            figures.in_full_shutdown = True
        # The leader logs node.poweroff_requested for its sheds too: only the full shutdown's are its order.
        full = str(event.get("reason", "")).startswith("full shutdown")
        if event["event"] == "node.poweroff_requested" and full and figures.full_shutdowns:
            figures.full_shutdowns[-1].append(str(event["target"]))
        if event["event"] == "shutdown.leader_last" and figures.full_shutdowns:
            figures.full_shutdowns[-1].append(str(event["node"]))
            figures.in_full_shutdown = False
        if event["event"] == "node.power_on_requested":
            figures.powered_on.append(str(event["target"]))
        if event["event"] == "node.restored":
            figures.restored.append(str(event["target"]))
        if event["event"] == "outage.summary":
            figures.summaries.append(dict(event))
        if event["event"] == "node.powered_off":
            figures.power_offs += 1
            if not figures.in_full_shutdown:  # the full shutdown's power-offs are not shedding
                figures.shed.append(str(event["target"]))
        if event["event"] == "shutdown.local_started" and "requested" not in str(event.get("reason")):
            figures.local_shutdowns += 1
        if event["event"] == "plan.decided" and event["shed"] and figures.runtime_planned_s is None:
            figures.runtime_planned_s = event["projected_runtime_s"]
            figures.runtime_without_s = event["runtime_without_shedding_s"]
