"""Fault injection for the test cluster, one line per fault, and the summary every scenario prints.

    faults = Faults(cluster)
    faults.kill_daemon("pi3")              # SIGKILL, as a crash or a yanked cable would
    faults.cut_link("pi2"); faults.heal_link("pi2")
    faults.stop_upsd(); faults.start_upsd()
    summary = faults.summary("leader killed")
    summary.report(tmp_path)               # prints it, writes summary.json
    summary.assert_invariants()            # duplicates == 0, nodes lost == 0

Every fault is logged with its wall time, so the summary can measure from a fault to what the cluster did
about it (time to a new leader). The summary's figures come from what the daemons logged (their JSON audit
lines), the shutdown record and the fake API server's objects, never from the harness's own bookkeeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from piclusterd.core.node_records import SHED_ANNOTATION, InvalidRecord, parse_shed_record

from .cluster import Event, NetnsCluster

__all__ = ["FaultUnavailable", "Faults", "InjectedFault", "ScenarioSummary", "event_wall"]

#: The daemons' events that are actions on the cluster (or on a host), counted in the summary.
ACTIONS = (
    "node.cordoned",
    "node.drain_started",
    "node.drained",
    "node.drain_resumed",
    "node.rolled_back",
    "node.shed_cancelled",
    "node.poweroff_requested",
    "node.poweroff_resumed",
    "node.poweroff_ssh",
    "node.powered_off",
    "node.power_on_requested",
    "node.restored",
    "shutdown.remote_requested",
    "shutdown.local_started",
)


class FaultUnavailable(RuntimeError):
    """This machine cannot inject the fault (e.g. no sch_netem): the message says why."""


def event_wall(event: Event) -> float:
    """An audit event's timestamp (ISO 8601 UTC, as the daemon logged it) as UNIX time."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class InjectedFault:
    wall: float
    kind: str
    target: str
    detail: str = ""


class Faults:
    """The faults a scenario injects into one :class:`NetnsCluster`."""

    def __init__(self, cluster: NetnsCluster) -> None:
        self.cluster = cluster
        self.injected: list[InjectedFault] = []
        self.started = time.time()

    def _log(self, kind: str, target: str, detail: str = "", *, began: float) -> InjectedFault:
        """Note a fault at ``began``, the moment before it was injected (what follows it is what it caused)."""
        fault = InjectedFault(began, kind, target, detail)
        self.injected.append(fault)
        print(f"[fault +{fault.wall - self.started:6.1f} s] {kind} {target} {detail}".rstrip(), flush=True)
        return fault

    # -- daemons --------------------------------------------------------------------------------------

    def kill_daemon(self, node: str, signum: int = signal.SIGKILL) -> InjectedFault:
        """Signal a host's daemon (default SIGKILL: a crash). Whether it led is noted for the summary."""
        began = time.time()
        daemon = self.cluster.hosts[node].daemon
        assert daemon is not None, f"{node} runs no daemon"
        was_leader = self.cluster.leader() == node
        daemon.signal(signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            daemon.wait_exit(timeout_s=30)
        return self._log(
            "kill_daemon", node, f"{signal.Signals(signum).name}{' (leader)' if was_leader else ''}", began=began
        )

    def pause_daemon(self, node: str) -> InjectedFault:
        """SIGSTOP: the process is there but does nothing (a hung daemon, a swapping Pi)."""
        began = time.time()
        daemon = self.cluster.hosts[node].daemon
        assert daemon is not None, f"{node} runs no daemon"
        was_leader = self.cluster.leader() == node
        daemon.signal(signal.SIGSTOP)
        return self._log("pause_daemon", node, "(leader)" if was_leader else "", began=began)

    def resume_daemon(self, node: str) -> InjectedFault:
        began = time.time()
        daemon = self.cluster.hosts[node].daemon
        assert daemon is not None, f"{node} runs no daemon"
        daemon.signal(signal.SIGCONT)
        return self._log("resume_daemon", node, began=began)

    # -- network --------------------------------------------------------------------------------------

    def _link(self, node: str, state: str) -> None:
        host = self.cluster.hosts[node]
        subprocess.run(["ip", "-n", host.namespace, "link", "set", "eth0", state], check=True, timeout=30)

    def cut_link(self, node: str) -> InjectedFault:
        """The host's cable is pulled: it reaches neither the API server, upsd nor its peers."""
        began = time.time()
        was_leader = self.cluster.leader() == node
        self._link(node, "down")
        return self._log("cut_link", node, "(leader)" if was_leader else "", began=began)

    def heal_link(self, node: str) -> InjectedFault:
        began = time.time()
        self._link(node, "up")
        return self._log("heal_link", node, began=began)

    def add_latency(self, node: str, ms: int) -> InjectedFault:
        """Delay every packet the host sends by ``ms`` (tc netem); FaultUnavailable without sch_netem."""
        began = time.time()
        host = self.cluster.hosts[node]
        done = subprocess.run(
            ["tc", "-n", host.namespace, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", f"{ms}ms"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise FaultUnavailable(
                f"cannot add latency with tc netem ({done.stderr.strip()}): this kernel lacks the sch_netem "
                "qdisc (modprobe sch_netem, or a kernel built with CONFIG_NET_SCH_NETEM)"
            )
        return self._log("add_latency", node, f"{ms} ms", began=began)

    def clear_latency(self, node: str) -> InjectedFault:
        began = time.time()
        host = self.cluster.hosts[node]
        subprocess.run(["tc", "-n", host.namespace, "qdisc", "del", "dev", "eth0", "root"], check=True, timeout=30)
        return self._log("clear_latency", node, began=began)

    # -- shared services ------------------------------------------------------------------------------

    def mains_fail(self) -> InjectedFault:
        """The outage itself: the shared UPS goes on battery (OB DISCHRG)."""
        began = time.time()
        self.cluster.set_mains(False)
        return self._log("mains_fail", "ups", began=began)

    def mains_return(self) -> InjectedFault:
        began = time.time()
        self.cluster.set_mains(True)
        return self._log("mains_return", "ups", began=began)

    def stop_upsd(self) -> InjectedFault:
        """upsd crashes (SIGKILL): every host's connection drops, new ones are refused."""
        began = time.time()
        self.cluster.ups.kill_upsd()
        return self._log("stop_upsd", "upsd", began=began)

    def start_upsd(self) -> InjectedFault:
        began = time.time()
        self.cluster.ups.restart_upsd()
        self.cluster.sync_load()
        return self._log("start_upsd", "upsd", began=began)

    def stop_api(self) -> InjectedFault:
        """The API server goes away (connections cut, new ones refused); its objects are kept."""
        began = time.time()
        self.cluster.api.stop()
        return self._log("stop_api", "api", began=began)

    def start_api(self) -> InjectedFault:
        began = time.time()
        self.cluster.api.start()
        return self._log("start_api", "api", began=began)

    def garbage_from_ups(self, values: dict[str, str]) -> InjectedFault:
        began = time.time()
        self.cluster.ups.set_many(values)
        return self._log("garbage_from_ups", "upsd", json.dumps(values), began=began)

    # -- the summary ----------------------------------------------------------------------------------

    def summary(self, scenario: str, *, deliberate_off: set[str] | None = None) -> ScenarioSummary:
        return ScenarioSummary.collect(scenario, self, deliberate_off=deliberate_off)


@dataclass
class ScenarioSummary:
    """What a scenario did, in figures: the test prints it, writes it as JSON, and asserts the invariants.

    - ``duplicates``: a node powered off twice for one request: a second power-off request id for a node
      before it came back, or a second shutdown recorded in one life of a host. Must be empty.
    - ``nodes_lost``: nodes neither Ready nor deliberately off at the end (a recorded shutdown, or a node
      the scenario itself switched off), or Ready but left cordoned by a piclusterd record. Must be empty.
    - ``time_to_new_leader_s``: from a fault on the leader to ``leader.acquired`` by another node.
    """

    scenario: str
    wall_s: float
    faults: list[dict[str, Any]]
    actions: dict[str, int]
    shutdowns: list[str]
    duplicates: list[str]
    nodes_lost: list[str]
    time_to_new_leader_s: float | None
    leaders: list[str]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def collect(cls, scenario: str, faults: Faults, *, deliberate_off: set[str] | None = None) -> ScenarioSummary:
        cluster = faults.cluster
        events = cluster.events()
        actions = Counter(e["event"] for e in events if e["event"] in ACTIONS)
        return cls(
            scenario=scenario,
            wall_s=round(time.time() - faults.started, 1),
            faults=[asdict(f) | {"at_s": round(f.wall - faults.started, 1)} for f in faults.injected],
            actions=dict(sorted(actions.items())),
            shutdowns=cluster.shutdown_nodes(),
            duplicates=duplicates(cluster, events),
            nodes_lost=nodes_lost(cluster, deliberate_off or set()),
            time_to_new_leader_s=time_to_new_leader(faults.injected, events),
            leaders=[e["host"] for e in sorted(_named(events, "leader.acquired"), key=event_wall)],
            notes=list(cluster.watch_errors),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report(self, directory: Path) -> None:
        text = json.dumps(self.as_dict(), indent=1)
        (directory / "summary.json").write_text(text + "\n")
        lead = "n/a" if self.time_to_new_leader_s is None else f"{self.time_to_new_leader_s:.1f} s"
        print(
            f"\n== scenario {self.scenario}: {self.wall_s:.0f} s, faults {len(self.faults)}, "
            f"actions {sum(self.actions.values())} {self.actions}, shutdowns {self.shutdowns}, "
            f"duplicates {len(self.duplicates)}, nodes lost {len(self.nodes_lost)}, time to new leader {lead}, "
            f"leaders {self.leaders}",
            flush=True,
        )

    def assert_invariants(self) -> None:
        assert self.notes == [], f"{self.scenario}: the harness itself failed: {self.notes}"
        assert self.duplicates == [], f"{self.scenario}: powered off twice: {self.duplicates}"
        assert self.nodes_lost == [], f"{self.scenario}: nodes lost: {self.nodes_lost}"


def _named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e["event"] == name]


def duplicates(cluster: NetnsCluster, events: list[Event]) -> list[str]:
    """A node asked to power off under two request ids with no restore between them, or one life of a host
    that recorded two shutdowns (the target obeys a request id once, and a life ends at its shutdown)."""
    found: list[str] = []
    ordered = sorted((e for e in events if e["event"] in ("node.poweroff_requested", "node.restored")), key=event_wall)
    open_request: dict[str, str] = {}
    for event in ordered:
        target = str(event["target"])
        if event["event"] == "node.restored":
            open_request.pop(target, None)
            continue
        if target in open_request and open_request[target] != event["request_id"]:
            found.append(f"{target}: a second power-off request {event['request_id']} after {open_request[target]}")
        open_request[target] = str(event["request_id"])
    for name, host in cluster.hosts.items():
        for life in host.lives:
            started = [e for e in life.drain() if e["event"] == "shutdown.local_started"]
            if len(started) > 1:
                found.append(f"{name}: {len(started)} local shutdowns in one daemon life")
    recorded = Counter(cluster.shutdown_nodes())
    for name, count in recorded.items():
        if count > len(cluster.hosts[name].lives):
            found.append(f"{name}: {count} recorded shutdowns in {len(cluster.hosts[name].lives)} lives")
    return found


def nodes_lost(cluster: NetnsCluster, deliberate_off: set[str]) -> list[str]:
    """Nodes neither Ready nor deliberately off, and Ready nodes left cordoned by a piclusterd record."""
    lost: list[str] = []
    for name, host in cluster.hosts.items():
        annotations = cluster.annotations(name)
        if cluster.ready(name):
            raw = annotations.get(SHED_ANNOTATION)
            if raw is not None and isinstance(parse_shed_record(raw), InvalidRecord):
                continue  # not a record of ours (edited by hand): reported by the leader, left alone
            if raw is not None and not host.powered_off:
                lost.append(f"{name}: Ready but still recorded as shed ({annotations['picluster.io/shed'][:80]})")
            elif cluster.cordoned(name) and "picluster.io/shed" not in annotations:
                pass  # cordoned by someone else (the scenario's starting state), not ours to undo
            continue
        if host.powered_off or name in deliberate_off:
            continue
        lost.append(f"{name}: not Ready and no recorded shutdown")
    return lost


def time_to_new_leader(injected: list[InjectedFault], events: list[Event]) -> float | None:
    """From the first fault on the leader (kill, pause, cut link) to ``leader.acquired`` by another node."""
    for fault in injected:
        if "(leader)" not in fault.detail:
            continue
        later = [
            e for e in _named(events, "leader.acquired") if e["host"] != fault.target and event_wall(e) >= fault.wall
        ]
        if not later:
            return None
        return round(min(event_wall(e) for e in later) - fault.wall, 1)
    return None
