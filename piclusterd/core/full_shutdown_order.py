"""The order of an orderly full shutdown, and whether a critical node waits for it. Pure: no clock, no I/O.

When the battery is about to end despite shedding, the leader takes the whole cluster down in the order NUT's
upsmon primary does with its secondaries (FSD, then HOSTSYNC), adapted to k3s and etcd:

1. **cordon** every node not yet cordoned (recorded, so the restart uncordons exactly these);
2. **workers** (nodes that are not control-plane), one at a time: a short drain, then a power-off request,
   acknowledged by the node's own daemon;
3. the **hook** (``[shutdown] full_shutdown_hook``, e.g. ``k3s etcd-snapshot save``), while etcd still has
   every remaining member, so a snapshot is taken with quorum;
4. **control plane**: the other control-plane nodes one at a time, each NotReady before the next; once the
   next one would break etcd quorum, all those left are asked together and only their acknowledgements are
   awaited (the API server dies with quorum: nothing can be watched or written after that);
5. the **UPS** is asked to cut its output after a delay and restore it with mains (``shutdown.return``);
6. the **leader** itself, last.

:func:`next_step` reads what is done from the cluster (Ready, cordons) and from the outage record's
:class:`~piclusterd.core.outage_record.FullShutdownProgress`, so a new leader resumes where the last one stopped.
Quorum is never broken before the last phase: no control-plane node is asked before every worker is down
or asked, and never while another control-plane node is still going down.

:func:`local_shutdown_deferral` says whether a critical node waits for the leader's request instead of
powering itself off at once; the daemon bounds the wait by ``full_shutdown_wait`` whatever it says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.outage_record import FullShutdownProgress

__all__ = [
    "RECORD_GRACE_S",
    "ClusterContact",
    "Cordon",
    "FullShutdownPhase",
    "PowerOffLastMembers",
    "PowerOffPeer",
    "RequestUpsReturn",
    "RunHook",
    "ShutDownLeader",
    "Step",
    "WaitFor",
    "has_quorum",
    "local_shutdown_deferral",
    "next_step",
    "planned_steps",
]

#: A live leader may not have seen the critical battery yet (it polls on its own schedule): a critical node
#: waits this long for the full-shutdown record to appear before it stops counting on the leader.
RECORD_GRACE_S = 15.0


class FullShutdownPhase(enum.StrEnum):
    CORDON = "cordon"
    WORKERS = "workers"
    HOOK = "hook"
    CONTROL_PLANE = "control_plane"
    UPS = "ups"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Cordon:
    """Cordon these nodes (possibly none) and record that we did: nothing new gets scheduled."""

    nodes: tuple[str, ...]
    phase: FullShutdownPhase = FullShutdownPhase.CORDON


@dataclass(frozen=True, slots=True)
class PowerOffPeer:
    """Drain (workers only, short timeout) and ask ``node`` to power off.

    ``watch``: wait until it is NotReady before the next step (control-plane nodes, one etcd member at a
    time). A worker's acknowledgement is enough: no quorum depends on it, and the node controller takes 40 s
    or more to see any node NotReady, time the battery does not have.
    """

    node: str
    phase: FullShutdownPhase
    drain: bool
    watch: bool


@dataclass(frozen=True, slots=True)
class PowerOffLastMembers:
    """etcd loses quorum with the next of these, and the API server with it: ask all of them at once, wait
    only for their acknowledgements, then take the last steps (UPS, leader) without the API.

    Without quorum etcd accepts no write, so the order among them no longer matters for consistency.
    """

    nodes: tuple[str, ...]
    phase: FullShutdownPhase = FullShutdownPhase.CONTROL_PLANE


@dataclass(frozen=True, slots=True)
class WaitFor:
    """A control-plane node was asked and is still Ready: the next one waits (one etcd member at a time)."""

    node: str
    phase: FullShutdownPhase = FullShutdownPhase.CONTROL_PLANE


@dataclass(frozen=True, slots=True)
class RunHook:
    phase: FullShutdownPhase = FullShutdownPhase.HOOK


@dataclass(frozen=True, slots=True)
class RequestUpsReturn:
    phase: FullShutdownPhase = FullShutdownPhase.UPS


@dataclass(frozen=True, slots=True)
class ShutDownLeader:
    phase: FullShutdownPhase = FullShutdownPhase.LEADER


Step = Cordon | PowerOffPeer | PowerOffLastMembers | WaitFor | RunHook | RequestUpsReturn | ShutDownLeader


def has_quorum(members: int, up: int) -> bool:
    """etcd's rule: a cluster of ``members`` members works while more than half of them are up."""
    return members == 0 or up >= members // 2 + 1


def _still_up(node: Node, progress: FullShutdownProgress) -> bool:
    return node.ready and node.name not in progress.requested


def next_step(view: ClusterView, leader: str, progress: FullShutdownProgress) -> Step:
    """The next step of the full shutdown led by ``leader``, given the cluster now and what was done. Pure.

    Ordered early returns; each phase starts only when the one before it is over.
    """
    # 1. Nothing new may start anywhere (a node Ready again would receive the pods we are stopping).
    if not progress.cordon_done:
        return Cordon(tuple(sorted(n.name for n in view.nodes if not n.unschedulable)))
    peers = sorted((n for n in view.nodes if n.name != leader), key=lambda n: n.name)
    # 2. Workers first: they hold no etcd member, so their order does not matter; one at a time.
    for node in peers:
        if not node.is_control_plane and _still_up(node, progress):
            return PowerOffPeer(node.name, FullShutdownPhase.WORKERS, drain=True, watch=False)
    # 3. The hook, while every remaining etcd member is still up (a snapshot needs quorum).
    if not progress.hook_done:
        return RunHook()
    # 4. Control plane, one at a time: a node asked and still Ready is still going down.
    for node in peers:
        if node.is_control_plane and node.ready and node.name in progress.requested:
            return WaitFor(node.name)
    members = view.etcd_members
    # Control-plane nodes outside etcd first (they cost no quorum), then etcd members.
    remaining = sorted(
        (n for n in peers if n.is_control_plane and _still_up(n, progress)), key=lambda n: (n.is_etcd_member, n.name)
    )
    if remaining:
        node = remaining[0]
        up = sum(1 for m in members if _still_up(m, progress))
        if node.is_etcd_member and has_quorum(len(members), up) and not has_quorum(len(members), up - 1):
            return PowerOffLastMembers(tuple(n.name for n in remaining))
        # No drain: a control-plane node's own pods are the cluster's, and everything is stopping.
        return PowerOffPeer(node.name, FullShutdownPhase.CONTROL_PLANE, drain=False, watch=True)
    # 5. and 6. Every peer is down or asked: the UPS, then the leader.
    if not progress.ups_done:
        return RequestUpsReturn()
    return ShutDownLeader()


def planned_steps(view: ClusterView, leader: str, started_at: str = "") -> tuple[Step, ...]:
    """Every step of a full shutdown led by ``leader``, if each went as asked (for dry-run's journal). Pure."""
    progress = FullShutdownProgress(started_at, leader, tuple(n.name for n in view.nodes))
    nodes = {n.name: n for n in view.nodes}
    steps: list[Step] = []
    while True:
        step = next_step(ClusterView(tuple(nodes.values()), view.pods, view.pdbs), leader, progress)
        steps.append(step)
        if isinstance(step, Cordon):
            progress = replace(progress, cordon_done=True, cordoned=step.nodes)
            nodes = {name: replace(n, unschedulable=True) for name, n in nodes.items()}
        elif isinstance(step, PowerOffPeer | PowerOffLastMembers):
            asked = (step.node,) if isinstance(step, PowerOffPeer) else step.nodes
            progress = replace(progress, requested=(*progress.requested, *asked))
            nodes = {name: replace(n, ready=False) if name in asked else n for name, n in nodes.items()}
        elif isinstance(step, RunHook):
            progress = replace(progress, hook_done=True)
        elif isinstance(step, RequestUpsReturn):
            progress = replace(progress, ups="requested")
        else:  # ShutDownLeader (WaitFor cannot happen: every node asked goes down here)
            return tuple(steps)


@dataclass(frozen=True, slots=True)
class ClusterContact:
    """What a critical node knows of the cluster when it decides whether to wait for the leader.

    ``api_reachable``: the last read of the outage record got an answer. ``live_leader``: the holder of a
    lease that has not expired on this node's clock, None if none. ``full_shutdown``: the outage record says
    a full shutdown is under way. ``lease_read_since_critical``: this daemon has read the Lease since the node
    became critical (until then, "no live leader" is what an older look saw, not what holds now).
    """

    identity: str
    api_reachable: bool
    live_leader: str | None
    full_shutdown: bool
    lease_read_since_critical: bool


def local_shutdown_deferral(contact: ClusterContact, critical_for_s: float) -> str | None:
    """Why this critical node should wait for the leader's ordered shutdown, or None: protect itself now. Pure.

    Ordered early returns; the daemon caps any wait at ``full_shutdown_wait`` on its own.
    """
    # No API server: no leader can reach us either, so nobody will ask. A clean filesystem comes first.
    if not contact.api_reachable:
        return None
    if contact.live_leader == contact.identity:
        return "this node leads the full shutdown and powers off last"
    if contact.full_shutdown:
        if contact.live_leader is None:
            # Every node is a candidate: the next leader (maybe this one) resumes from the record.
            return "the leader is gone; waiting for the next one to resume the full shutdown"
        return f"{contact.live_leader} leads the full shutdown and will ask this node in turn"
    if contact.live_leader is None:
        if not contact.lease_read_since_critical and critical_for_s < RECORD_GRACE_S:
            # The Lease is read once per retry period: a leader elected since the last look (or a daemon that
            # has not looked yet) is not known. Protecting itself before the next look took a control-plane
            # node down out of the leader's order (the netns long night, a leader elected a second before).
            return "no leader as of its last look at the Lease, which is older than the low battery; looking again"
        return None  # nobody leads and no full shutdown is recorded: nobody will ask
    # A live leader that has not written the record yet may just not have polled since the battery fell.
    if critical_for_s < RECORD_GRACE_S:
        return f"{contact.live_leader} leads; waiting for it to start the full shutdown"
    return None
