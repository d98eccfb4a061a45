"""The last minute's budget: the seconds a node needs from "critical" to "halted", and whether the reserve
covers them. Pure: no clock, no I/O.

A node at ``critical`` still has to end its pods gracefully, shut its OS down, and, if it is the one that
asks the UPS to cut its output, wait out the UPS's delay; the leader, last in a full shutdown, first gives
every other node its turn. :func:`last_minute_budget` adds these up from the load-independent settings
(seconds, not energy: ``critical_runtime`` is itself runtime at the present load, so seconds compare with
seconds). :func:`check_reserve` says where ``critical_runtime`` (or the UPS's own low-battery threshold,
``battery.charge.low``, as runtime) falls short. It never refuses a configuration: a node whose daemon
refuses to start has no protection at all, which is worse than a reserve that is too small; it warns, in
check-config and in the journal at start.

The OS's own shutdown time (``[shutdown] os_shutdown_time``) defaults to :data:`DEFAULT_OS_SHUTDOWN_S`,
90 s. No published measurement of a Raspberry Pi 4 with k3s powering off was found; 90 s is systemd's
``DefaultTimeoutStopSec``, the longest systemd waits at one stage, and the time k3s nodes are reported to
hang at power-off on leftover ``containerd-shim`` processes (k3s-io/k3s#2400: "the shutdown hangs for
approximately 90 seconds"; k3s.service uses ``KillMode=process``). Measure yours (``docs/install.md``) and
set the key: an idle Pi 4 halts in well under that.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.durations import format_duration

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_OS_SHUTDOWN_S",
    "LastMinuteBudget",
    "ReserveCheck",
    "ReserveVerdict",
    "check_reserve",
    "cluster_last_minute",
    "full_shutdown_turn_s",
    "grace_periods",
    "last_minute_budget",
    "pod_grace_s",
    "pods_time_s",
    "runtime_at_charge_s",
    "self_drain_seconds",
]

#: See the module's docstring: systemd's DefaultTimeoutStopSec, not a measurement.
DEFAULT_OS_SHUTDOWN_S = 90.0


#: Kubernetes' default ``terminationGracePeriodSeconds`` (core/v1 PodSpec).
DEFAULT_GRACE_S = 30
#: A grace period above a day is read as a day: no budget holds one longer anyway.
_MAX_GRACE_S = 86400


def pod_grace_s(raw: Mapping[str, Any]) -> int:
    """A pod's grace period: ``metadata.deletionGracePeriodSeconds`` if it is already terminating, else
    ``spec.terminationGracePeriodSeconds``, else Kubernetes' default of 30 s; bounded to 0..86400."""
    metadata = raw.get("metadata")
    spec = raw.get("spec")
    values = (
        metadata.get("deletionGracePeriodSeconds") if isinstance(metadata, Mapping) else None,
        spec.get("terminationGracePeriodSeconds") if isinstance(spec, Mapping) else None,
    )
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return min(value, _MAX_GRACE_S)
    return DEFAULT_GRACE_S


def grace_periods(snapshot: Mapping[str, Any]) -> dict[str, int]:
    """Each pod's grace period by ``namespace/name``, from a kubectl List (the snapshot ``plan`` reads)."""
    found: dict[str, int] = {}
    items = snapshot.get("items")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or item.get("kind") not in (None, "Pod"):
            continue
        metadata = item.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
            found[f"{metadata.get('namespace') or 'default'}/{metadata['name']}"] = pod_grace_s(item)
    return found


def _seconds(value: float) -> str:
    """Seconds to the second below ten minutes (a budget is read to the second), else as durations read."""
    value = max(0.0, value)
    return f"{round(value)} s" if value < 600 else format_duration(value)


def pods_time_s(grace_periods: Iterable[tuple[float, bool]]) -> float:
    """Seconds to end a node's pods as the kubelet (and the self-drain) does: non-critical pods together,
    then critical pods together, so the largest grace period of each group, added. ``(grace, critical)``."""
    normal = critical = 0.0
    for grace, is_critical in grace_periods:
        if is_critical:
            critical = max(critical, grace)
        else:
            normal = max(normal, grace)
    return normal + critical


def full_shutdown_turn_s(*, drain_s: float, ack_s: float, os_shutdown_s: float, control_plane: bool) -> float:
    """One other node's turn in the full shutdown (:mod:`piclusterd.core.full_shutdown_order`): its short
    drain, then its acknowledgement (a worker: the next one is asked at once), or, for a control-plane node
    (one etcd member at a time), its whole halt until it is NotReady."""
    return drain_s + ack_s + (os_shutdown_s if control_plane else 0.0)


@dataclass(frozen=True, slots=True)
class LastMinuteBudget:
    """The seconds from critical to halted, by part."""

    pods_s: float
    os_shutdown_s: float
    others_first_s: float = 0.0
    others: int = 0
    ups_delay_s: float = 0.0
    pods_from: str = "grace periods"  # or "kubelet shutdownGracePeriod"

    @property
    def total_s(self) -> float:
        return self.pods_s + self.os_shutdown_s + self.others_first_s + self.ups_delay_s

    def describe(self) -> str:
        """One line: where the reserve goes."""
        parts = [f"pods {_seconds(self.pods_s)} ({self.pods_from})", f"OS shutdown {_seconds(self.os_shutdown_s)}"]
        if self.others:
            parts.append(f"{self.others} other node(s) first {_seconds(self.others_first_s)}")
        if self.ups_delay_s:
            parts.append(f"UPS delay {_seconds(self.ups_delay_s)}")
        return " + ".join(parts) + f" = {_seconds(self.total_s)}"


def last_minute_budget(
    *,
    pods_s: float,
    os_shutdown_s: float,
    other_turns_s: Sequence[float] = (),
    ups_delay_s: float = 0.0,
    pods_from: str = "grace periods",
) -> LastMinuteBudget:
    """The budget of one node; ``other_turns_s`` are the turns before it (the leader's: every other node's)."""
    return LastMinuteBudget(
        pods_s=max(0.0, pods_s),
        os_shutdown_s=max(0.0, os_shutdown_s),
        others_first_s=sum(max(0.0, t) for t in other_turns_s),
        others=len(other_turns_s),
        ups_delay_s=max(0.0, ups_delay_s),
        pods_from=pods_from,
    )


def runtime_at_charge_s(
    charge_pct: float, *, capacity_wh: float, usable_fraction: float, load_w: float
) -> float | None:
    """Runtime left at ``charge_pct`` at the given load, or None when it cannot be known (no capacity or load)."""
    if not (capacity_wh > 0 and load_w > 0 and 0 <= charge_pct <= 100 and math.isfinite(charge_pct)):
        return None
    return capacity_wh * usable_fraction * charge_pct / 100.0 / load_w * 3600.0


class ReserveVerdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class ReserveCheck:
    verdict: ReserveVerdict
    key: str
    message: str


def check_reserve(
    budget: LastMinuteBudget,
    *,
    critical_runtime_s: float,
    lb_runtime_s: float | None = None,
    lb_charge_pct: float | None = None,
) -> tuple[ReserveCheck, ...]:
    """Whether ``critical_runtime`` (and the UPS's LB threshold, as runtime, where known) covers the budget.
    One check per threshold, each a warning when short: the reserve runs out before the node has halted."""
    checks = []
    need = budget.total_s
    if critical_runtime_s < need:
        checks.append(
            ReserveCheck(
                ReserveVerdict.WARN,
                "policy.critical_runtime",
                f"critical_runtime {_seconds(critical_runtime_s)} is less than the last minute needs: "
                f"{budget.describe()}; raise it to at least {_seconds(need)}",
            )
        )
    else:
        checks.append(
            ReserveCheck(
                ReserveVerdict.OK,
                "policy.critical_runtime",
                f"critical_runtime {_seconds(critical_runtime_s)} covers the last minute: {budget.describe()}",
            )
        )
    if lb_runtime_s is not None and lb_runtime_s < need:
        at = "" if lb_charge_pct is None else f" ({lb_charge_pct:g} %)"
        checks.append(
            ReserveCheck(
                ReserveVerdict.WARN,
                "battery.charge.low",
                f"the UPS's low-battery threshold{at} leaves about {_seconds(lb_runtime_s)} at this load, less "
                f"than the last minute needs ({_seconds(need)}): raise battery.charge.low on the UPS",
            )
        )
    return tuple(checks)


def self_drain_seconds(
    runtime_left_s: float | None, *, cap_s: float, os_shutdown_s: float, ups_delay_s: float = 0.0
) -> float:
    """How long the self-drain may take now: the runtime left minus what must still follow it (the OS's
    shutdown, the UPS's delay), never more than ``cap_s`` (``[shutdown] self_drain_timeout``). Unknown
    runtime (FSD, a silent UPS, no estimate): ``cap_s``, the bound the operator chose for this case too."""
    if runtime_left_s is None or not math.isfinite(runtime_left_s):
        return max(0.0, cap_s)
    return max(0.0, min(cap_s, runtime_left_s - os_shutdown_s - ups_delay_s))


def cluster_last_minute(
    view: ClusterView,
    grace_by_pod: Mapping[str, int],
    *,
    critical_priority: int,
    os_shutdown_s: float,
    drain_s: float,
    ack_s: float,
    ups_delay_s: float,
    kubelet_grace_by_node: Mapping[str, float] | None = None,
) -> tuple[str, LastMinuteBudget] | None:
    """The longest last minute in the cluster: each Ready node in turn taken as the leader, last in the full
    shutdown after every other Ready node's turn; the node whose budget is largest, and that budget. None
    without a Ready node. A node in ``kubelet_grace_by_node`` (from its power record) has its kubelet's
    graceful shutdown on: its shutdownGracePeriod ends its pods instead."""
    ready = [n for n in view.nodes if n.ready]
    worst: tuple[str, LastMinuteBudget] | None = None
    for leader in ready:
        kubelet_grace_s = (kubelet_grace_by_node or {}).get(leader.name, 0.0)
        if kubelet_grace_s > 0:
            pods, source = kubelet_grace_s, "kubelet shutdownGracePeriod"
        else:
            pods = pods_time_s(
                (float(grace_by_pod.get(p.key, DEFAULT_GRACE_S)), p.is_critical(critical_priority))
                for p in view.pods_on(leader.name)
                if not (p.is_daemonset or p.is_mirror or p.is_finished)
            )
            source = "largest grace periods"
        turns = [
            full_shutdown_turn_s(
                drain_s=drain_s, ack_s=ack_s, os_shutdown_s=os_shutdown_s, control_plane=n.is_control_plane
            )
            for n in ready
            if n.name != leader.name
        ]
        budget = last_minute_budget(
            pods_s=pods, os_shutdown_s=os_shutdown_s, other_turns_s=turns, ups_delay_s=ups_delay_s, pods_from=source
        )
        if worst is None or budget.total_s > worst[1].total_s:
            worst = (leader.name, budget)
    return worst
