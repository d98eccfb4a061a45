"""When to bring shed nodes back: ``decide_restore(view, power, policy, memory, now) -> (memory, actions)``. Pure.

No side effects, no clock (``now`` is the caller's monotonic time), no Kubernetes: the result is a tuple of
:class:`PowerOn` values, each with its reason, that an executor carries out through a
:class:`~piclusterd.cluster.power_on_backends.NodePower` backend (and records on the Node as phase ``restoring``).

**Decision** (ordered early returns in :func:`decide_restore`, first match wins):

1. Power unknown: nothing, and the mains-back clock is reset (we cannot tell whether mains flickered).
2. On battery (any battery state, including a new outage still inside the planner's grace period): nothing,
   and the mains-back clock is reset.
3. Mains back for less than ``restore_after_s``: nothing. Any flicker (rules 1-2) restarts the count.
4. Battery charge unknown (unless ``restore_if_charge_unknown``) or under ``restore_min_charge_pct``: nothing;
   the cluster would go back to full draw on a battery that could not carry it through the next outage.
5. No shed node (``ShedState.POWERED_OFF``): nothing.
6. Another node was powered on less than ``restore_stagger_s`` ago: nothing (one at a time, so the inrush and
   the k3s rejoin of one node settle before the next).
7. Otherwise power on *one* node: control plane before agents, then the highest tier first, then by name,
   skipping nodes held by the anti-flap rules: a node is never powered on within ``restore_after_s`` of its
   power-off, nor more than once per ``restore_after_s``.

**Power-off times.** The moment a node was powered off is the first time this memory saw it as
``powered_off`` (:attr:`RestoreMemory.off_since`). That is at or after the real power-off, so the anti-flap
wait can only come out longer, never shorter; after a leader change the new leader waits ``restore_after_s``
from its own first sighting (missing data fails safe).

**Rotation.** On battery the planner may ask a charged shed node back to relieve a low one (``Plan.power_on``,
per-node batteries); :func:`decide_rotation` paces it with the same anti-flap and stagger rules (rules 6-7).

**After a full shutdown** (:func:`smallest_set_after_full_shutdown`). When the cluster boots from a full
shutdown with the charge under ``restore_min_charge_pct``, the nodes shed before it stay off, or go off again
(drained, every safety rule) right after the boot, until the charge reaches it; then rules 1-7 bring them back.
A flicker on that battery then costs the least: the smallest safe set rides it, not the whole cluster.

**The other direction.** A node powered on less than ``restore_after_s`` ago is *settling*
(:func:`is_settling`); the shedder should not shed it again until it has settled, or a flapping mains would
cycle it. The leader passes the settling nodes to the planner, which refuses them (rule ``settling``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from piclusterd.core.cluster_view import ClusterView, Node, ShedState, node_tier
from piclusterd.core.durations import format_duration
from piclusterd.core.errors import ConfigError
from piclusterd.core.power_state import BATTERY_STATES, PowerState

__all__ = [
    "KeptOff",
    "PowerOn",
    "RestoreHold",
    "RestoreInputs",
    "RestoreMemory",
    "RestorePolicy",
    "decide_restore",
    "decide_rotation",
    "is_settling",
    "restore_order",
    "smallest_set_after_full_shutdown",
]


@dataclass(frozen=True, slots=True)
class RestorePolicy:
    """When shed nodes may come back. Validated once, here.

    ``tiers`` and ``default_tier`` mean what they mean to the planner (configuration wins over the
    ``picluster.io/tier`` label); restore goes the other way round: highest tier first.
    """

    restore_after_s: float = 120.0
    restore_min_charge_pct: float = 50.0
    restore_stagger_s: float = 30.0
    restore_if_charge_unknown: bool = False
    tiers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    default_tier: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))
        if not self.restore_after_s >= 0:
            raise ConfigError("policy", "restore_after_s", f"{self.restore_after_s!r} is negative")
        if not 0 <= self.restore_min_charge_pct <= 100:
            raise ConfigError("policy", "restore_min_charge_pct", f"{self.restore_min_charge_pct!r} not in 0..100")
        if not self.restore_stagger_s >= 0:
            raise ConfigError("policy", "restore_stagger_s", f"{self.restore_stagger_s!r} is negative")

    def tier(self, node: Node) -> int:
        """The node's tier: configuration, then label, then ``default_tier``."""
        return node_tier(node, self.tiers, self.default_tier)


@dataclass(frozen=True, slots=True)
class RestoreInputs:
    """What restore needs to know about power: the power state machine's state and the battery charge."""

    state: PowerState
    charge_pct: float | None = None


class RestoreHold(enum.StrEnum):
    """Why the last decision powered nothing on (``POWERED_ON`` when it did). For logging on change."""

    POWER_UNKNOWN = "power_unknown"
    ON_BATTERY = "on_battery"
    MAINS_NOT_STABLE = "mains_not_stable"
    CHARGE_UNKNOWN = "charge_unknown"
    CHARGE_LOW = "charge_low"
    NOTHING_SHED = "nothing_shed"
    STAGGER = "stagger"
    ANTI_FLAP = "anti_flap"
    POWERED_ON = "powered_on"


def _frozen(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(sorted(values.items())))


@dataclass(frozen=True, slots=True)
class RestoreMemory:
    """What restore remembers between decisions (times on the caller's monotonic clock).

    ``mains_back_since``: mains seen present, without a break, since then. ``off_since``: each node seen
    ``powered_off``, since then (dropped once it is seen otherwise). ``powered_on_at``: when restore last
    powered each node on (kept for ``restore_after_s``). ``last_power_on_at``: the last power-on, any node.
    """

    mains_back_since: float | None = None
    off_since: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    powered_on_at: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    last_power_on_at: float | None = None
    hold: RestoreHold = RestoreHold.POWER_UNKNOWN

    def __post_init__(self) -> None:
        object.__setattr__(self, "off_since", _frozen(self.off_since))
        object.__setattr__(self, "powered_on_at", _frozen(self.powered_on_at))

    def with_power_on(self, node: str, now: float) -> RestoreMemory:
        return replace(
            self,
            powered_on_at={**self.powered_on_at, node: now},
            last_power_on_at=now,
            hold=RestoreHold.POWERED_ON,
        )


@dataclass(frozen=True, slots=True)
class PowerOn:
    """Power ``node`` on (through its NodePower backend), for ``reason``."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class KeptOff:
    """Nodes to keep off (shed again if they booted) after a full shutdown, and why, for the plan and the journal."""

    nodes: frozenset[str]
    reason: str


def smallest_set_after_full_shutdown(
    shed_before: Sequence[str], power: RestoreInputs, policy: RestorePolicy
) -> KeptOff | None:
    """The nodes the cluster boots without after a full shutdown, or None. Pure.

    ``shed_before``: the nodes the outage record says were shed before the full shutdown, passed only while
    the cluster has booted from it and the record is open (``()`` otherwise). Ordered early returns:
    """
    # Nothing was shed before the full shutdown: the whole cluster was the smallest set already.
    if not shed_before:
        return None
    # Unknown power or charge: never act on it (missing data: nothing is shed on mains; restore holds anyway).
    if power.state is PowerState.UNKNOWN or power.charge_pct is None:
        return None
    # Critical: the full shutdown decides. (On a low battery, a flicker's OB + LB being confirmed, they stay
    # kept off; the planner's own escalation decides what more to shed.)
    if power.state is PowerState.CRITICAL:
        return None
    # Charged enough to carry the cluster through the next outage: the restore policy brings them back.
    if power.charge_pct >= policy.restore_min_charge_pct:
        return None
    names = frozenset(shed_before)
    return KeptOff(
        names,
        f"booted after a full shutdown with the charge at {power.charge_pct:g} %, under restore_min_charge "
        f"{policy.restore_min_charge_pct:g} %: {', '.join(sorted(names))}, shed before it, stay off until it is "
        "reached (a flicker then costs the smallest safe set, not the cluster)",
    )


def restore_order(node: Node, policy: RestorePolicy) -> tuple[bool, int, str]:
    """Sort key: control plane first (agents need it), then the highest tier, then the name."""
    return (not node.is_control_plane, -policy.tier(node), node.name)


def is_settling(memory: RestoreMemory, node: str, now: float, policy: RestorePolicy) -> bool:
    """Anti-flap, the other direction: a node powered on less than ``restore_after_s`` ago must not be shed
    again yet (a flapping mains would otherwise cycle it off and on)."""
    at = memory.powered_on_at.get(node)
    return at is not None and now - at < policy.restore_after_s


def _is_held(memory: RestoreMemory, node: str, now: float, policy: RestorePolicy) -> bool:
    """Anti-flap: never power a node on within ``restore_after_s`` of its power-off, nor more than once per
    ``restore_after_s``."""
    off = memory.off_since.get(node, now)
    return now - off < policy.restore_after_s or is_settling(memory, node, now, policy)


def _observe(view: ClusterView, memory: RestoreMemory, now: float, policy: RestorePolicy) -> RestoreMemory:
    """Fold the cluster into the memory: when each node was first seen off; forget old power-ons."""
    off = {
        node.name: memory.off_since.get(node.name, now)
        for node in view.nodes
        if node.shed_state is ShedState.POWERED_OFF
    }
    recent = {name: at for name, at in memory.powered_on_at.items() if now - at < policy.restore_after_s}
    if off == memory.off_since and recent == memory.powered_on_at:
        return memory
    return replace(memory, off_since=off, powered_on_at=recent)


def _hold(memory: RestoreMemory, reason: RestoreHold) -> tuple[RestoreMemory, tuple[PowerOn, ...]]:
    return (memory if memory.hold is reason else replace(memory, hold=reason)), ()


def decide_restore(
    view: ClusterView, power: RestoreInputs, policy: RestorePolicy, memory: RestoreMemory, now: float
) -> tuple[RestoreMemory, tuple[PowerOn, ...]]:
    """Decide which shed node (at most one) to power on now. Pure: no clock, no I/O; same inputs, same answer."""
    memory = _observe(view, memory, now, policy)

    # 1. Unknown power: never act, and restart the mains-back clock: a flicker may have gone unseen.
    if power.state is PowerState.UNKNOWN:
        return _hold(replace(memory, mains_back_since=None), RestoreHold.POWER_UNKNOWN)

    # 2. On battery, even a new outage still inside the planner's grace period: nothing comes back.
    if power.state in BATTERY_STATES:
        return _hold(replace(memory, mains_back_since=None), RestoreHold.ON_BATTERY)

    # 3. Mains must have been back, without a break, for restore_after_s.
    back_since = memory.mains_back_since if memory.mains_back_since is not None else now
    memory = replace(memory, mains_back_since=back_since)
    if now - back_since < policy.restore_after_s:
        return _hold(memory, RestoreHold.MAINS_NOT_STABLE)

    # 4. Enough charge to ride through the next outage at full draw (unknown charge fails safe).
    charge = power.charge_pct
    if charge is None and not policy.restore_if_charge_unknown:
        return _hold(memory, RestoreHold.CHARGE_UNKNOWN)
    if charge is not None and charge < policy.restore_min_charge_pct:
        return _hold(memory, RestoreHold.CHARGE_LOW)

    # 5. Nothing shed, nothing to bring back.
    candidates = sorted(
        (node for node in view.nodes if node.shed_state is ShedState.POWERED_OFF),
        key=lambda node: restore_order(node, policy),
    )
    if not candidates:
        return _hold(memory, RestoreHold.NOTHING_SHED)

    # 6. One at a time: the previous power-on must be restore_stagger_s old.
    if memory.last_power_on_at is not None and now - memory.last_power_on_at < policy.restore_stagger_s:
        return _hold(memory, RestoreHold.STAGGER)

    # 7. The first node in restore order that the anti-flap rules let through.
    for node in candidates:
        if _is_held(memory, node.name, now, policy):
            continue
        role = "control plane" if node.is_control_plane else "agent"
        reason = (
            f"mains back for {format_duration(max(0.0, now - back_since))}, charge "
            f"{'unknown' if charge is None else f'{charge:g} %'}; {role} tier {policy.tier(node)}, "
            f"next in restore order of {len(candidates)} shed node(s)"
        )
        return memory.with_power_on(node.name, now), (PowerOn(node.name, reason),)
    return _hold(memory, RestoreHold.ANTI_FLAP)


def decide_rotation(
    view: ClusterView, wanted: Sequence[tuple[str, str]], policy: RestorePolicy, memory: RestoreMemory, now: float
) -> tuple[RestoreMemory, tuple[PowerOn, ...]]:
    """Which rotation (at most one) to carry out now: ``wanted`` is the plan's ``(node, reason)`` pairs, each a
    shed node the planner asks back, on battery, to relieve a low one. Pure.

    The planner already checked the safety rules; this adds only the pacing every power-on obeys: one node per
    ``restore_stagger_s``, and the anti-flap rules (never within ``restore_after_s`` of its power-off, nor
    more than once per ``restore_after_s``). A node no longer ``powered_off`` is skipped.
    """
    memory = _observe(view, memory, now, policy)
    if memory.last_power_on_at is not None and now - memory.last_power_on_at < policy.restore_stagger_s:
        return memory, ()
    off = {node.name for node in view.nodes if node.shed_state is ShedState.POWERED_OFF}
    for name, reason in wanted:
        if name in off and not _is_held(memory, name, now, policy):
            return memory.with_power_on(name, now), (PowerOn(name, reason),)
    return memory, ()
