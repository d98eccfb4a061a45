"""Every node's own battery as the leader sees it, from the ``picluster.io/power`` records. Pure.

Each node publishes its power record on its Node (:mod:`piclusterd.node.power_publisher`); the leader reads them
all into a :class:`NodeBatteries` view for :func:`piclusterd.core.planner.plan`:

- A node's **own battery** is the record's battery whose source is a HAT (``hat:...``); on a ``per-node``
  cluster whose nodes have no HAT source, the record's single battery.
- A reading older than ``max_age_s`` is **unknown**, never good data (a node that stopped publishing may be
  dying; a node whose HAT went silent republishes its last reading), and so is a missing or unreadable
  record, or one dated more than ``max_age_s`` ahead of the leader's clock. The exception is a node piclusterd shed
  (``powered_off``): it cannot publish, and a halted Pi keeps its charge, so its last record's charge is
  kept and marked ``kept_from_shed``.
- **Topology**: ``shared`` (one battery feeds every node: shedding saves shared energy), ``per-node`` (each
  node lives on its own battery), ``mixed`` (a shared battery feeds every node and each has its own as a
  buffer: the ``solar-3`` cluster). Configured, or inferred from the records (``auto``) and stated.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from piclusterd.core.cluster_view import ClusterView, Node, ShedState
from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.power_draw import BatterySpec
from piclusterd.core.power_record import POWER_ANNOTATION, BatteryRecord, PowerRecord, parse_power_record
from piclusterd.core.reading import UpsFlag

__all__ = [
    "HAT_SOURCE_PREFIX",
    "NodeBatteries",
    "NodeBattery",
    "Topology",
    "nodes_with_own_battery",
    "read_node_batteries",
    "runtime_with_own_batteries_s",
]

#: Sources whose name starts with this are a node's own battery (``drivers/hat.py`` names them so).
HAT_SOURCE_PREFIX = "hat:"


class Topology(enum.StrEnum):
    """How batteries feed the nodes."""

    SHARED = "shared"
    PER_NODE = "per-node"
    MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class NodeBattery:
    """One node's own battery. ``charge_pct`` ``None``: unknown (``why`` says why); ``on_battery``: it is
    discharging (the node lives on it now)."""

    node: str
    charge_pct: float | None
    on_battery: bool
    why: str = ""
    kept_from_shed: bool = False

    @property
    def known(self) -> bool:
        return self.charge_pct is not None


@dataclass(frozen=True, slots=True)
class NodeBatteries:
    """The planner's per-node input: the topology (and how it was found), each node's own battery spec
    (the HAT: capacity, shutdown level) and each node's reading. Nodes missing from ``batteries`` are
    unknown."""

    topology: Topology
    spec: BatterySpec
    batteries: Mapping[str, NodeBattery] = field(default_factory=lambda: MappingProxyType({}))
    stated: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "batteries", MappingProxyType(dict(self.batteries)))

    def of(self, node: str) -> NodeBattery:
        return self.batteries.get(node, NodeBattery(node, None, False, "no power record"))


def _parse_rfc3339(text: str) -> float | None:
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.timestamp()


def _own(record: PowerRecord, topology: Topology | None) -> BatteryRecord | None:
    hats = [b for b in record.batteries if b.source.startswith(HAT_SOURCE_PREFIX)]
    if hats:
        return hats[0]
    if topology is Topology.PER_NODE and len(record.batteries) == 1:
        return record.batteries[0]
    return None


@dataclass(frozen=True, slots=True)
class _Listed:
    """What a readable record lists, for inferring the topology: how many batteries, one of them its own."""

    batteries: int = 0
    own: bool = False


_NOTHING = _Listed()


def _read(node: Node, now_wall: float, max_age_s: float, topology: Topology | None) -> tuple[NodeBattery, _Listed]:
    """The node's own battery and what its record lists."""
    raw = node.annotations.get(POWER_ANNOTATION)
    if raw is None:
        return NodeBattery(node.name, None, False, "no power record"), _NOTHING
    record = parse_power_record(raw)
    if isinstance(record, InvalidRecord):
        return NodeBattery(node.name, None, False, f"unreadable power record: {record.reason}"), _NOTHING
    written = _parse_rfc3339(record.written_at)
    if written is None:
        return NodeBattery(node.name, None, False, f"power record time {record.written_at!r} is not RFC 3339"), _NOTHING
    own = _own(record, topology)
    if own is None:
        why = "its power record lists no battery of its own"
        return NodeBattery(node.name, None, False, why), _Listed(len(record.batteries))
    listed = _Listed(len(record.batteries), own=True)
    read = _parse_rfc3339(own.read_at)
    if read is None:
        why = f"{own.source} reading time {own.read_at!r} is not RFC 3339"
        return NodeBattery(node.name, None, False, why), listed
    # The reading's age, not the record's: a node whose HAT went silent keeps publishing its last reading
    # in fresh records (its power state turns unknown), and that charge is no longer the battery's.
    age = now_wall - min(written, read)
    shed = node.shed_state is ShedState.POWERED_OFF
    if age > max_age_s and not shed:
        why = f"{own.source} reading in its power record is {age:.0f} s old (stale after {max_age_s:.0f} s)"
        return NodeBattery(node.name, None, False, why), listed
    # Dated ahead of the leader's clock: skewed clocks would keep a dying node's last record "fresh".
    if age < -max_age_s and not shed:
        why = f"power record is dated {-age:.0f} s ahead of this node's clock (clock skew?), not trusted"
        return NodeBattery(node.name, None, False, why), listed
    if own.charge_pct is None:
        return NodeBattery(node.name, None, False, f"{own.source} reports no charge"), listed
    on_battery = UpsFlag.OB in own.flags and not shed
    return NodeBattery(node.name, own.charge_pct, on_battery, kept_from_shed=shed), listed


def read_node_batteries(
    view: ClusterView,
    now_wall: float,
    spec: BatterySpec,
    *,
    max_age_s: float,
    topology: Topology | None = None,
) -> NodeBatteries:
    """Every node's own battery from its record, as of ``now_wall`` (Unix seconds). ``topology`` ``None``:
    infer it (no HAT at all: ``shared``; ``mixed`` if the HAT records list a shared battery too, or
    other nodes publish only a shared one; else ``per-node``) and say so in ``stated``."""
    found: dict[str, NodeBattery] = {}
    listed: list[_Listed] = []
    for node in view.nodes:
        battery, lists = _read(node, now_wall, max_age_s, topology)
        found[node.name] = battery
        listed.append(lists)
    if topology is not None:
        return NodeBatteries(topology, spec, found, f"topology {topology.value} (configured)")
    owners = [lists for lists in listed if lists.own]
    if not owners:
        inferred, why = Topology.SHARED, "no node publishes a battery of its own"
    elif any(lists.batteries and not lists.own for lists in listed):
        # Per-node would drop the shared battery's planning for the nodes that live on it.
        inferred, why = Topology.MIXED, "some nodes publish a battery of their own, others only a shared one"
    elif all(lists.batteries >= 2 for lists in owners):
        inferred, why = Topology.MIXED, "every node publishes its own battery and a shared one"
    else:
        inferred, why = Topology.PER_NODE, "nodes publish a battery of their own"
    return NodeBatteries(inferred, spec, found, f"topology {inferred.value} (inferred: {why})")


def nodes_with_own_battery(view: ClusterView) -> tuple[str, ...]:
    """The nodes whose readable power record lists a HAT battery of their own, whatever its age: evidence
    that the cluster has per-node batteries, for a leader that was given no ``node_capacity_wh`` to plan
    with them (it warns instead of silently planning with the shared battery only)."""
    found: list[str] = []
    for node in view.nodes:
        raw = node.annotations.get(POWER_ANNOTATION)
        if raw is None:
            continue
        record = parse_power_record(raw)
        if not isinstance(record, InvalidRecord) and _own(record, None) is not None:
            found.append(node.name)
    return tuple(found)


def runtime_with_own_batteries_s(
    shared: BatterySpec,
    charge_pct: float,
    load_w: float,
    batteries: NodeBatteries,
    node_draw_w: Mapping[str, float],
) -> tuple[float, float]:
    """(seconds on the shared battery, seconds more on the nodes' own) for the nodes in ``node_draw_w``
    (watts at each node's input) on a ``mixed`` cluster, the shared battery delivering ``load_w``. Pure.

    The hardware of scenarios.md's solar-3 (``examples/clusters/solar-3.toml``): the shared 12 V battery
    feeds every Pi through a DC-DC converter until its low-voltage disconnect opens at
    ``shared.shutdown_charge_pct`` (no node shuts down there: each carries on on its HAT, so the shared
    battery's ``critical_runtime`` is no shutdown either); then each Pi lives on its own HAT (2 x 18650
    behind a boost converter, ``batteries.spec``, draw = node watts / converter efficiency, hardware.md
    section 3 with the HAT's ~0.5 W) until that battery's own shutdown level, at the charge it had when the
    shared one gave out (the HATs neither charge nor discharge while fed). The cluster is up while one of
    these nodes runs: the second figure is the longest a node lasts on its own battery. A node whose own
    charge is unknown adds nothing. Other topologies: the shared battery's runtime only (second figure 0).
    """
    if batteries.topology is not Topology.MIXED:
        return shared.runtime_s(charge_pct, load_w), 0.0
    draw_w = shared.battery_draw_w(load_w)
    above_wh = shared.usable_energy_wh(charge_pct) - shared.usable_energy_wh(shared.shutdown_charge_pct)
    shared_s = math.inf if draw_w <= 0 else max(0.0, above_wh) / draw_w * 3600.0
    own_s = 0.0
    for node, watts in node_draw_w.items():
        charge = batteries.of(node).charge_pct
        if charge is not None:
            own_s = max(own_s, batteries.spec.runtime_s(charge, watts))
    return shared_s, own_s
