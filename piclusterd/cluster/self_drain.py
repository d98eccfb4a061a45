"""The self-drain: this node ends its own pods gracefully before its shutdown command, when the kubelet won't.

``systemctl poweroff`` stops k3s, whose unit (``KillMode=process``) leaves the containers to systemd's final
SIGTERM/SIGKILL: no preStop hook, no ``terminationGracePeriodSeconds``. The kubelet's graceful node shutdown
fixes that where it is configured (:mod:`piclusterd.core.kubelet_shutdown`), and then piclusterd relies on it.
Where it is not, :class:`SelfDrain` is a :class:`~piclusterd.node.daemon.PreShutdownHook` that does the same
through the API server, before the shutdown command, while the kubelet still runs:

1. cordon this node, unless it already is (recorded in :data:`SELF_DRAIN_ANNOTATION`, so the next start
   uncordons exactly what it cordoned: :meth:`SelfDrain.undo_after_boot`);
2. non-critical pods first, then critical pods (priority at least ``critical_priority`` or labelled
   critical), as the kubelet orders them: each group is evicted with the pod's **own** grace period and
   waited for until gone (the kubelet removes the Pod object once its containers have exited);
3. all within a budget of seconds the caller derives from the energy left (``budget``); the hook returns at
   the budget's end whatever is left, and the shutdown goes on: a pod still terminating keeps its SIGTERM
   and flushes on during the OS's own shutdown.

An eviction refused by a PodDisruptionBudget (429) is retried while there is time; once the budget left is no
more than the pod's grace period (plus one poll), the pod is **deleted** with its grace period instead. That
is what the kubelet's own graceful node shutdown does (it ignores PDBs): the node goes off either way, so the
budget can no longer protect availability, only the pod's data, and a SIGTERM with its grace period is what
protects data. A single-replica database behind ``maxUnavailable: 0`` is exactly the pod this is for.
DaemonSet and mirror (static) pods are left alone, as ``kubectl drain`` leaves them (their controller would
put them straight back); they end with the OS.

The hook never raises: a failing API server costs the graceful end, never the power-off.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piclusterd.cluster.kube_api import EvictionOutcome, KubeClusterApi
from piclusterd.config.settings import SelfDrainSettings
from piclusterd.core.cluster_view import Pod, parse_kubectl_list
from piclusterd.core.kubelet_shutdown import KubeletShutdown
from piclusterd.core.last_minute_budget import DEFAULT_GRACE_S, pod_grace_s, self_drain_seconds
from piclusterd.core.node_records import PREFIX, rfc3339
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger
from piclusterd.node.kubelet_config import read_kubelet_shutdown

__all__ = ["SELF_DRAIN_ANNOTATION", "SelfDrain", "SelfDrainGroup", "build_self_drain", "self_drain_groups"]

#: On a Node: this node's daemon cordoned it for its self-drain at this time (the next start uncordons it).
SELF_DRAIN_ANNOTATION = PREFIX + "self-drained"
class SelfDrainGroup(enum.Enum):
    NON_CRITICAL = "non_critical"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class _Target:
    pod: Pod
    grace_s: int


def self_drain_groups(
    raw_pods: Sequence[Mapping[str, Any]], critical_priority: int
) -> tuple[tuple[_Target, ...], tuple[_Target, ...], tuple[str, ...]]:
    """(non-critical, critical, left alone) for this node's pods, as the self-drain ends them. Pure.

    Left alone: DaemonSet and mirror pods (kubectl drain's filters), and finished pods (nothing to end)."""
    grace = {}
    for item in raw_pods:
        metadata = item.get("metadata") if isinstance(item.get("metadata"), Mapping) else None
        if metadata is not None:
            grace[f"{metadata.get('namespace')}/{metadata.get('name')}"] = pod_grace_s(item)
    items = [{**item, "kind": "Pod", "apiVersion": "v1"} for item in raw_pods]
    pods = parse_kubectl_list({"kind": "List", "items": items}).pods
    normal: list[_Target] = []
    critical: list[_Target] = []
    left: list[str] = []
    for pod in pods:
        if pod.is_daemonset or pod.is_mirror or pod.is_finished:
            left.append(pod.key)
            continue
        target = _Target(pod, grace.get(pod.key, DEFAULT_GRACE_S))
        (critical if pod.is_critical(critical_priority) else normal).append(target)
    return tuple(normal), tuple(critical), tuple(sorted(left))


@dataclass
class _Progress:
    target: _Target
    asked: bool = False
    deleted: bool = False
    gone: bool = False
    next_try: float = 0.0
    refused: str = ""


@dataclass
class _Outcome:
    ended: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)


class SelfDrain:
    """The pre-shutdown hook that ends this node's pods gracefully when the kubelet's graceful shutdown is off.

    ``budget`` says, when called, how many seconds the drain may take (from the energy left); ``tick`` is
    called every poll (power loop and watchdog); ``sleep`` waits (the stop event's wait in the daemon)."""

    #: A reboot (the shutdown button's short press) ends the pods gracefully too.
    runs_before_reboot = True

    def __init__(
        self,
        api: KubeClusterApi,
        node: str,
        clock: Clock,
        *,
        kubelet: KubeletShutdown,
        budget: Callable[[], float],
        sleep: Callable[[float], None],
        log: AuditLogger,
        tick: Callable[[], None] = lambda: None,
        critical_priority: int = 1_000_000,
        poll_s: float = 1.0,
    ) -> None:
        self._api = api
        self._node = node
        self._clock = clock
        self._kubelet = kubelet
        self._budget = budget
        self._sleep = sleep
        self._log = log.bind(component="self-drain")
        self._tick = tick
        self._critical_priority = critical_priority
        self._poll_s = poll_s

    @property
    def kubelet(self) -> KubeletShutdown:
        return self._kubelet

    def before_local_shutdown(self, reason: str) -> None:
        """Never raises: whatever fails, the shutdown command runs next."""
        if self._kubelet.configured:
            self._log.info(
                "shutdown.self_drain_skipped",
                why=f"the kubelet's graceful node shutdown ends the pods (shutdownGracePeriod "
                f"{self._kubelet.grace_s:g} s, {self._kubelet.critical_s:g} s of it for critical pods)",
            )
            return
        try:
            budget = float(self._budget())
        except Exception as error:  # a fault in the budget must not cost the drain: use none, say so
            budget = 0.0
            self._log.error("shutdown.self_drain_failed", error=f"budget: {error!r}", ended=[], left_running=[])
        if not (math.isfinite(budget) and budget > 0):
            self._log.warning(
                "shutdown.self_drain_skipped", why="no energy left for it: the pods end with the OS's shutdown"
            )
            return
        started = self._clock.monotonic()
        outcome = _Outcome()
        try:
            self._drain(started + budget, budget, reason, outcome)
        except Exception as error:  # the API server gone, a bug: the power-off goes on
            self._log.error(
                "shutdown.self_drain_failed",
                error=f"{type(error).__name__}: {error}"[:300],
                ended=outcome.ended,
                left_running=outcome.left_running,
            )

    def _drain(self, deadline: float, budget: float, reason: str, outcome: _Outcome) -> None:
        node = self._api.get_node(self._node)
        if not (node.get("spec") or {}).get("unschedulable"):
            self._api.patch_node(
                self._node,
                {
                    "metadata": {"annotations": {SELF_DRAIN_ANNOTATION: rfc3339(self._clock.wall())}},
                    "spec": {"unschedulable": True},
                },
            )
        normal, critical, left = self_drain_groups(self._api.pods_on_node(self._node), self._critical_priority)
        self._log.warning(
            "shutdown.self_drain_started",
            reason=reason,
            budget_s=round(budget, 1),
            non_critical=[t.pod.key for t in normal],
            critical=[t.pod.key for t in critical],
            left_alone=list(left),
        )
        started = self._clock.monotonic()
        for group in (normal, critical):
            self._end(group, deadline, outcome)
        self._log.warning(
            "shutdown.self_drained",
            ended=outcome.ended,
            deleted_past_budget=outcome.deleted,
            left_running=outcome.left_running,
            elapsed_s=round(self._clock.monotonic() - started, 1),
        )

    def _end(self, group: Sequence[_Target], deadline: float, outcome: _Outcome) -> None:
        """Evict (or, late, delete) every pod of the group and wait until each is gone or the budget is spent."""
        progress = [_Progress(t) for t in group]
        while progress:
            now = self._clock.monotonic()
            for item in progress:
                if not item.gone and not item.asked and now >= item.next_try:
                    self._ask(item, deadline - now)
                elif item.asked and not item.gone:
                    item.gone = self._is_gone(item.target.pod)
            if all(item.gone for item in progress):
                break
            if self._clock.monotonic() >= deadline:
                break
            self._tick()
            self._sleep(min(self._poll_s, max(0.0, deadline - self._clock.monotonic())))
        for item in progress:
            key = item.target.pod.key
            if item.gone:
                outcome.ended.append(key)
            else:
                outcome.left_running.append(f"{key}: {item.refused or 'still terminating'}")
            if item.deleted:
                outcome.deleted.append(key)

    def _ask(self, item: _Progress, left_s: float) -> None:
        pod = item.target.pod
        if left_s <= item.target.grace_s + self._poll_s and item.refused:
            # Past the point where waiting for the budget can help: what the kubelet's shutdown would do.
            item.deleted = self._api.delete_pod(pod.namespace, pod.name, pod.uid)
            item.asked = True
            item.gone = not item.deleted and self._is_gone(pod)
            return
        result = self._api.evict(pod.namespace, pod.name)
        if result.outcome is EvictionOutcome.EVICTED:
            item.asked = True
            item.gone = self._is_gone(pod)
        elif result.outcome is EvictionOutcome.GONE:
            item.asked = item.gone = True
        else:  # refused (429: a PodDisruptionBudget) or failed (500: two budgets): retry, then delete in time
            item.refused = result.message[:200] or result.outcome.value
            # Retry after the server's delay, but never later than the last moment to delete in time.
            wait = min(result.retry_after_s or self._poll_s, left_s - item.target.grace_s - self._poll_s)
            item.next_try = self._clock.monotonic() + max(0.0, wait)

    def _is_gone(self, pod: Pod) -> bool:
        current = self._api.get_pod(pod.namespace, pod.name)
        return current is None or (current.get("metadata") or {}).get("uid") != pod.uid

    def undo_after_boot(self) -> None:
        """Uncordon this node if its last self-drain cordoned it (and only then). Never raises."""
        try:
            node = self._api.get_node(self._node)
            annotations = (node.get("metadata") or {}).get("annotations") or {}
            if SELF_DRAIN_ANNOTATION not in annotations:
                return
            self._api.patch_node(
                self._node,
                {"metadata": {"annotations": {SELF_DRAIN_ANNOTATION: None}}, "spec": {"unschedulable": None}},
            )
            self._log.info("node.self_drain_undone", cordoned_at=str(annotations[SELF_DRAIN_ANNOTATION])[:40])
        except Exception as error:  # the API server may not be up yet at boot: the next start tries again
            self._log.warning("node.self_drain_undo_failed", error=f"{type(error).__name__}: {error}"[:300])


def build_self_drain(
    own: SelfDrainSettings,
    api: KubeClusterApi,
    node: str,
    clock: Clock,
    *,
    runtime_left: Callable[[], float | None],
    log: AuditLogger,
    sleep: Callable[[float], None],
    tick: Callable[[], None],
) -> SelfDrain:
    """This node's self-drain before its shutdown command, unless its kubelet's graceful shutdown is on (read
    from k3s's files here, once). The budget is the energy left when it runs (``runtime_left``, seconds),
    capped by self_drain_timeout. The one wiring: the daemon's (cli.py) and the cluster world's."""
    kubelet = read_kubelet_shutdown(Path(own.k3s_config))
    log.info(
        "node.graceful_shutdown",
        method=kubelet.method,
        grace_s=kubelet.grace_s,
        critical_s=kubelet.critical_s,
        sources=list(kubelet.sources),
        problems=list(kubelet.problems),
    )

    def budget() -> float:
        if own.timeout_s <= 0:
            return 0.0
        return self_drain_seconds(
            runtime_left(), cap_s=own.timeout_s, os_shutdown_s=own.os_shutdown_s, ups_delay_s=own.ups_delay_s
        )

    drain = SelfDrain(
        api,
        node,
        clock,
        kubelet=kubelet,
        budget=budget,
        sleep=sleep,
        log=log,
        tick=tick,
        critical_priority=own.critical_priority,
    )
    drain.undo_after_boot()
    return drain
