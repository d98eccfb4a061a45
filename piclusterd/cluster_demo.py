"""``piclusterd demo``: the clinic-5 cluster rides out an outage, with the real code of all five nodes.

Each node runs its real daemon code (power state machine, Lease election, planner, drain, power-off, node
agent) against one scripted UPS and the embedded fake Kubernetes API server, on one accelerated clock
(``testing/cluster_world.py``). The UPS is clinic-5's: 84 Wh lead-acid, 80 % usable, inverter 85 %, 5 W own
draw, low battery at 20 %; its load is the power model's draw of the nodes that are on. When mains returns
the UPS output comes back and the Pis that were off boot (as with NUT's ``shutdown.return``, or a HAT that
powers on with mains): shed nodes rejoin. The timeline printed is the nodes' own audit trail, condensed.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from piclusterd.cluster import parse_kubectl_list
from piclusterd.cluster_controller import ShedSettings
from piclusterd.demo import OUTAGES, LeadAcidUps
from piclusterd.durations import format_duration
from piclusterd.planner import physical_optimum
from piclusterd.power_model import cluster_load_w
from piclusterd.testing.clock import FakeClock
from piclusterd.testing.cluster_world import ClusterWorld
from piclusterd.testing.fake_kube import FakeKubeServer
from piclusterd.testing.scenarios import load_scenario

__all__ = ["DemoFigures", "run_cluster_demo"]

DATA = Path(__file__).resolve().parent / "testing" / "data"
START = datetime.datetime(2026, 11, 24, 1, 55, tzinfo=datetime.UTC).timestamp()
PRE_ROLL_S = 300.0
STEP_S = 5.0
SHOWN = (
    "leader.acquired",
    "leader.stepping_down",
    "plan.decided",
    "node.drain_started",
    "node.drained",
    "node.drain_failed",
    "node.powered_off",
    "node.restored",
    "node.shed_cancelled",
    "shutdown.local_started",
)


@dataclass
class DemoFigures:
    outage_s: float = 0.0
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
    else:
        detail = " ".join(f"{k}={event[k]}" for k in ("target", "via", "evicted", "reason") if k in event)
    return f"{clock}  {node:<4} {name:<24} {detail}"


def _is_ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


def _critical_up(server: FakeKubeServer, apps: set[str]) -> bool:
    """Every critical app has a Ready pod on a Ready node."""
    ready_nodes = {n["metadata"]["name"] for n in server.list_objects("Node") if _is_ready(n)}
    ready: set[str] = set()
    for pod in server.list_objects("Pod"):
        app = (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
        if app in apps and _is_ready(pod) and pod["spec"].get("nodeName") in ready_nodes:
            ready.add(app)
    return ready == apps


def run_cluster_demo(outage: str, speed: float, out: TextIO) -> DemoFigures:
    scenario = load_scenario(DATA / "clinic-5.json")
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    critical_apps = {
        str(p.labels.get("app.kubernetes.io/name")) for p in scenario.view.pods if p.is_critical(1_000_000)
    }
    clock = FakeClock(start=0.0, epoch=START)
    ups = LeadAcidUps()
    figures = DemoFigures(outage_s=sum(on - off for off, on in OUTAGES[outage]))
    optimum = physical_optimum(scenario.view, scenario.battery, scenario.policy, hardware=scenario.hardware)
    figures.runtime_optimum_s = optimum.runtime_s
    end = PRE_ROLL_S + max(on for _, on in OUTAGES[outage]) + 900
    shown: dict[str, int] = {}
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(json.loads((DATA / "clinic-5.json").read_text()))
        server.run_controller_once()
        world = ClusterWorld(server, clock, [n.name for n in scenario.view.nodes], settings)
        while clock.monotonic() < end:
            t = clock.monotonic() - PRE_ROLL_S
            mains = not any(off <= t < on for off, on in OUTAGES[outage])
            view = parse_kubectl_list(
                {"kind": "List", "items": server.list_objects("Node") + server.list_objects("Pod")}
            )
            running = [name for name, pi in world.pis.items() if pi.alive]
            load = cluster_load_w(view, scenario.hardware, running) if running else 0.0
            ups.step(STEP_S, mains, load)
            world.ups.variables = ups.variables(mains, load)
            dead = [name for name, pi in world.pis.items() if not pi.alive]
            if mains and dead:
                # The UPS output (or each HAT) powers the Pis again with mains: they boot and rejoin.
                if not running:
                    stamp = datetime.datetime.fromtimestamp(clock.wall(), datetime.UTC)
                    print(f"{stamp:%H:%M:%S}  mains back: the UPS output returns and the Pis boot", file=out)
                for name in dead:
                    world.reboot(name)
            world.step(STEP_S)
            if not mains and t >= 0:
                figures.on_battery_s += STEP_S
                figures.critical_up_s += STEP_S if _critical_up(server, critical_apps) else 0.0
            if not any(pi.alive for pi in world.pis.values()):
                figures.cluster_down_s += STEP_S
            new = []
            for name, pi in world.pis.items():
                events = pi.audit.events
                key = f"{name}:{id(pi)}"
                new.extend(events[shown.get(key, 0) :])
                shown[key] = len(events)
            for event in sorted(new, key=lambda e: str(e["timestamp"])):
                if event["event"] in SHOWN:
                    print(_line(event), file=out)
                if event["event"] == "node.powered_off":
                    figures.power_offs += 1
                    figures.shed.append(str(event["target"]))
                if event["event"] == "shutdown.local_started" and "requested" not in str(event.get("reason")):
                    figures.local_shutdowns += 1
                if event["event"] == "plan.decided" and event["shed"] and figures.runtime_planned_s is None:
                    figures.runtime_planned_s = event["projected_runtime_s"]
                    figures.runtime_without_s = event["runtime_without_shedding_s"]
            if speed > 0:
                time.sleep(STEP_S / speed)
        world.close()
    figures.charge_end_pct = ups.charge_pct
    return figures
