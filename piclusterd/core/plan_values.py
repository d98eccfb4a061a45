"""The planner's values: the :class:`PlannerPolicy` it is given and the :class:`Plan` it returns, with its parts. Pure.

Frozen dataclasses and one enum; no logic beyond validating the policy. :mod:`piclusterd.core.planner` is the
public entry and exports every name here; the search (:mod:`piclusterd.core.shed_search`) and the per-node
step (:mod:`piclusterd.core.per_node_step`) build these values, so they live below all three.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from piclusterd.core.cluster_view import Node, node_tier
from piclusterd.core.errors import ConfigError
from piclusterd.core.node_batteries import Topology
from piclusterd.core.refusal import SafetyRule

__all__ = [
    "Decision",
    "GiveUpNoncritical",
    "Optimum",
    "Placement",
    "Plan",
    "PlannerPolicy",
    "PowerOnNode",
    "RefusedNode",
    "ScaleDown",
    "ShedNode",
]


class Decision(enum.StrEnum):
    """Which branch of :func:`plan` produced the plan."""

    HOLD_POWER_UNKNOWN = "hold_power_unknown"
    HOLD_ONLINE = "hold_online"
    HOLD_GRACE = "hold_grace"
    TARGET_MET = "target_met"
    SHED_TO_TARGET = "shed_to_target"
    ESCALATE = "escalate"
    PER_NODE = "per_node"  # a node's own battery runs out before the target: move its work off (rotate)
    PER_NODE_OK = "per_node_ok"  # per-node batteries, every one lasts the target
    # Booted from a full shutdown under restore_min_charge: the nodes shed before it are shed again.
    KEEP_OFF_AFTER_FULL_SHUTDOWN = "keep_off_after_full_shutdown"


class GiveUpNoncritical(enum.StrEnum):
    """Whether the plan may leave non-critical pods Pending (given up) so that their nodes can be shed
    (``[policy] give_up_noncritical``). Critical pods always need a home, whatever this says."""

    NEVER = "never"  # every pod keeps a home: a node whose non-critical pods fit nowhere stays on
    WHEN_NEEDED = "when-needed"  # only when the target cannot be reached with every pod kept
    ALWAYS = "always"  # whenever that lets a node go: plan as if only critical pods needed a home


@dataclass(frozen=True, slots=True)
class PlannerPolicy:
    """How the planner trades service for runtime. Validated once, here.

    ``tiers`` maps node names to tiers and wins over the ``picluster.io/tier`` label; nodes with neither
    get ``default_tier``. ``give_up_noncritical`` says when non-critical pods may be given up (left
    Pending) instead of requiring a home for them (:class:`GiveUpNoncritical`). ``unknown_charge_pct`` is
    assumed when the charge is unknown and so is the start of the outage.
    """

    target_runtime_s: float = 4 * 3600.0
    on_battery_grace_s: float = 60.0
    min_nodes: int = 1
    critical_priority_threshold: int = 1_000_000
    tiers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    default_tier: int = 0
    allow_unreplicated: bool = False
    evict_emptydir: bool = True
    give_up_noncritical: GiveUpNoncritical = GiveUpNoncritical.WHEN_NEEDED
    unknown_charge_pct: float = 50.0
    #: Whether whoever carries the plan out can stop non-critical work (:attr:`Plan.scale_down`: scale a
    #: controller down, suspend a Job) and put it back with the restore: the leader's scaler
    #: (``cluster.scaler``; on from the configuration) and the simulator's world can. Off, plans never count
    #: on it (the drains would evict the pods and the scheduler would run them on the kept nodes, drawing
    #: what the plan said was saved).
    can_stop_work: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))
        if not self.target_runtime_s > 0:
            raise ConfigError("policy", "target_runtime_s", f"{self.target_runtime_s!r} is not positive")
        if not self.on_battery_grace_s >= 0:
            raise ConfigError("policy", "on_battery_grace_s", f"{self.on_battery_grace_s!r} is negative")
        if self.min_nodes < 1:
            raise ConfigError("policy", "min_nodes", f"{self.min_nodes!r} is below 1")
        if not 0 <= self.unknown_charge_pct <= 100:
            raise ConfigError("policy", "unknown_charge_pct", f"{self.unknown_charge_pct!r} not in 0..100")

    def tier(self, node: Node) -> int:
        """The node's tier: configuration, then label, then ``default_tier``."""
        return node_tier(node, self.tiers, self.default_tier)

    @property
    def may_give_up_noncritical(self) -> bool:
        """Whether some plan under this policy may leave non-critical pods Pending (a recorded shed is
        re-checked with that allowance: the plan that started it may have needed it)."""
        return self.give_up_noncritical is not GiveUpNoncritical.NEVER


@dataclass(frozen=True, slots=True)
class ShedNode:
    """Drain ``node`` (cordon, evict ``evicts``), then halt it and cut its supply if possible."""

    node: str
    reason: str
    evicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PowerOnNode:
    """Rotation: bring the shed ``node`` back (its own battery kept its charge) to take over from
    ``relieves``, whose own battery runs low; ``relieves`` is shed by a later plan once ``node`` is Ready.
    The simulator carries it out at once; the leader powers the node on through its power-on backend, paced
    by :func:`~piclusterd.core.restore.decide_rotation` (``cluster.restoring.Restorer.rotate``)."""

    node: str
    relieves: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefusedNode:
    """A node the plan would have shed but a safety rule refused."""

    node: str
    rule: SafetyRule
    detail: str


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the plan found room for an evicted pod (``to_node`` ``None``: given up, left Pending)."""

    pod: str
    from_node: str
    to_node: str | None


@dataclass(frozen=True, slots=True)
class ScaleDown:
    """Stop non-critical work so that ``pods`` draw nothing although room is left for them: lower the
    replicas of the controller ``owner_kind``/``owner_name`` (in ``namespace``) by ``len(pods)`` through its
    scale subresource (``kubectl scale``; a ReplicaSet owned by a Deployment through that Deployment), or
    suspend it when it is a Job (``spec.suspend``). The restore puts the count back (resumes the Job)."""

    namespace: str
    owner_kind: str
    owner_name: str
    pods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Optimum:
    """The physical optimum: as much shed as the safety rules allow when only critical pods need a home."""

    nodes_on: tuple[str, ...]
    nodes_shed: tuple[str, ...]
    runtime_s: float
    load_w: float
    pending_pods: tuple[str, ...] = ()
    search_cut: bool = False  # its search ran out of work units: the largest saving found within them
    #: Of ``runtime_s``, the seconds the nodes on run from their own batteries once a mixed cluster's shared
    #: battery gives out (:func:`~piclusterd.core.node_batteries.runtime_with_own_batteries_s`); 0 otherwise.
    own_runtime_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer. ``actions`` are in execution order; runtimes are from ``now``.

    ``runtime_without_shedding_s`` is what the battery gives if no action here is taken (nodes already
    being shed count as shed); ``projected_runtime_s`` is with every action done. ``search_cut``: the
    search ran out of its work budget (:mod:`piclusterd.core.work_budget`), so the plan is the best safe
    one found within it, maybe not the best there is (the reason says so too).
    """

    decision: Decision
    reason: str
    target_runtime_s: float
    actions: tuple[ShedNode, ...] = ()
    refused: tuple[RefusedNode, ...] = ()
    shed_in_progress: tuple[str, ...] = ()
    placements: tuple[Placement, ...] = ()
    projected_runtime_s: float | None = None
    runtime_without_shedding_s: float | None = None
    projected_load_w: float | None = None
    load_without_shedding_w: float | None = None
    charge_pct: float | None = None
    charge_estimated: bool = False
    optimum: Optimum | None = None
    power_on: tuple[PowerOnNode, ...] = ()
    topology: str = Topology.SHARED.value
    search_cut: bool = False
    #: Non-critical work stopped to reach the target (``give_up_noncritical``): its pods are among
    #: :attr:`given_up`; the controllers are scaled down before the drains and back with the restore.
    scale_down: tuple[ScaleDown, ...] = ()

    @property
    def given_up(self) -> tuple[Placement, ...]:
        """The non-critical pods this plan leaves Pending (no home), by pod: they come back with the restore
        (the scheduler binds them once their nodes are back)."""
        return tuple(p for p in self.placements if p.to_node is None)

    @property
    def nodes_to_shed(self) -> tuple[str, ...]:
        """The nodes the actions shed, in order."""
        return tuple(action.node for action in self.actions)
