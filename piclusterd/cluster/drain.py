"""Drain a node the way ``kubectl drain`` does, with a global timeout and an exact rollback.

The pure part, :func:`drain_action`, applies kubectl's filters in kubectl's order (first refusal wins) and
makes each choice explicit in :class:`DrainOptions`. :class:`Drainer` is the loop around it: record intent
and cordon in one patch, evict through the Eviction API (never delete, so PodDisruptionBudgets hold), retry
429 after the server's delay (5 s by default, as kubectl), wait until each pod is gone by UID, optionally
wait until critical pods have a Ready replacement elsewhere. A drain that cannot finish restores the cordon
state as it was, removes our record and says which pods and budgets blocked it; the node stays on.

``fence`` is called before every destructive call (eviction), so a leader that lost its lease stops at once;
``tick`` is called every poll, so the caller keeps renewing its lease and watching power during a long drain.

**Timing follows the pods** (:func:`drain_timeout_s`): an evicted pod may take its own
``terminationGracePeriodSeconds`` to stop (30 s by default), so the drain waits at least the largest grace
period among the pods it evicts plus ``grace_margin_s``, whatever the configured timeout, up to
``max_timeout_s``.

**A node that dies mid-drain** (NotReady: its kubelet stopped reporting) cannot finish deleting its pods:
they stay Terminating until it returns or someone force-deletes them, and a StatefulSet's replacement waits
for that. kubectl drain would wait for them (or, with ``--skip-wait-for-delete-timeout``, skip pods whose
``deletionTimestamp`` is that old). piclusterd ends the drain as soon as every pod still there is
Terminating past its deadline by ``stuck_terminating_s`` on a node that is not Ready: failed, named, rolled
back, never counted as drained (never force-deleted either: the node may only be cut off, its pods running).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from piclusterd.cluster.authority import RequestSigner
from piclusterd.cluster.kube_api import EvictionOutcome, KubeClusterApi
from piclusterd.core.cluster_view import Pod, parse_kubectl_list
from piclusterd.core.node_records import SHED_ANNOTATION, ShedPhase, ShedRecord, rfc3339
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger

__all__ = [
    "FULL_SHUTDOWN_DRAIN_MAX_S",
    "SHED_DRAIN_MAX_S",
    "DrainAction",
    "DrainOptions",
    "DrainResult",
    "Drainer",
    "drain_action",
    "drain_timeout_s",
]

#: A shed's drain waits for the pods' grace periods up to an hour (``[cluster] drain_timeout``'s own maximum).
SHED_DRAIN_MAX_S = 3600.0
#: The full shutdown's drain waits for them up to 2 minutes: the battery is critical by then, and a pod
#: with a longer grace period is stopped by its node's own halt ("drain incomplete: powered off anyway").
FULL_SHUTDOWN_DRAIN_MAX_S = 120.0


class DrainAction(enum.Enum):
    EVICT = "evict"
    SKIP = "skip"  # DaemonSet or mirror pod: stays and dies with the node
    WAIT = "wait"  # already being deleted: wait for it to go
    BLOCK = "block"  # refused by a drain rule: the node must not be powered off


@dataclass(frozen=True, slots=True)
class DrainOptions:
    ignore_daemonsets: bool = True
    delete_emptydir_data: bool = True
    allow_unreplicated: bool = False
    timeout_s: float = 300.0
    poll_s: float = 1.0
    retry_429_s: float = 5.0
    wait_for_critical_replacements: bool = True
    critical_priority_threshold: int = 1_000_000
    grace_period_s: int | None = None  # overrides each pod's terminationGracePeriodSeconds (kubectl --grace-period)
    grace_margin_s: float = 10.0  # on top of the largest grace period: the kubelet's kill, the API's delete
    max_timeout_s: float = 3600.0  # however long a pod's grace period, a drain ends by then
    stuck_terminating_s: float = 30.0  # Terminating this long past its deadline on a NotReady node: stuck


def drain_timeout_s(pods: Iterable[Pod], options: DrainOptions) -> float:
    """How long a drain of ``pods`` may take: the configured timeout, raised to the largest grace period an
    evicted pod may use plus ``grace_margin_s``, at most ``max_timeout_s`` (never below the configured one).
    Pure."""
    grace = max(
        (pod.termination_grace_s if options.grace_period_s is None else options.grace_period_s for pod in pods),
        default=0,
    )
    return max(options.timeout_s, min(grace + options.grace_margin_s, options.max_timeout_s))


def drain_action(pod: Pod, options: DrainOptions) -> tuple[DrainAction, str]:
    """kubectl drain's filters, in its order. Pure."""
    if pod.terminating:
        return DrainAction.WAIT, "already being deleted"
    if pod.is_daemonset:
        if options.ignore_daemonsets:
            return DrainAction.SKIP, "DaemonSet-managed"
        return DrainAction.BLOCK, "DaemonSet-managed and drain.ignore_daemonsets is off"
    if pod.is_mirror:
        return DrainAction.SKIP, "mirror (static) pod"
    if pod.is_finished:
        return DrainAction.EVICT, "finished"
    if "emptyDir" in pod.volume_kinds and not options.delete_emptydir_data:
        return DrainAction.BLOCK, "uses emptyDir (its local data would be lost) and delete_emptydir_data is off"
    if not pod.has_controller and not options.allow_unreplicated:
        return DrainAction.BLOCK, "not managed by a controller: nothing would recreate it elsewhere"
    return DrainAction.EVICT, "managed by " + str(pod.owner_kind)


@dataclass(frozen=True, slots=True)
class DrainResult:
    node: str
    ok: bool
    evicted: tuple[str, ...] = ()
    blocked: tuple[tuple[str, str], ...] = ()  # (namespace/name, why)
    budgets: tuple[str, ...] = ()  # PDB messages seen on 429
    elapsed_s: float = 0.0
    reason: str = ""


@dataclass
class _PodProgress:
    pod: Pod
    evicted: bool = False
    gone: bool = False
    next_try: float = 0.0
    last_error: str = ""
    deadline: float | None = None  # wall time its deletionTimestamp names: it should be gone by then


def _deletion_deadline(raw: Mapping[str, Any] | None) -> float | None:
    """``metadata.deletionTimestamp`` (RFC 3339; the API sets it to the deletion time plus the grace period)
    as wall seconds; ``None`` if absent or unreadable."""
    text = ((raw or {}).get("metadata") or {}).get("deletionTimestamp")
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


@dataclass
class _Blockers:
    pods: dict[str, str] = field(default_factory=dict)
    budgets: set[str] = field(default_factory=set)


def _pods(raw: list[dict[str, Any]]) -> tuple[Pod, ...]:
    items = [{**item, "kind": "Pod", "apiVersion": "v1"} for item in raw]
    return parse_kubectl_list({"kind": "List", "items": items}).pods


class Drainer:
    def __init__(
        self,
        api: KubeClusterApi,
        clock: Clock,
        *,
        sleep: Callable[[float], None],
        options: DrainOptions,
        fence: Callable[[], None],
        log: AuditLogger,
        signer: RequestSigner,
        tick: Callable[[], None] = lambda: None,
    ) -> None:
        """``signer`` signs the shed records written here (the cluster key, the Lease term we lead in)."""
        self._api = api
        self._signer = signer
        self._clock = clock
        self._sleep = sleep
        self._options = options
        self._fence = fence
        self._tick = tick
        self._log = log

    def cordon_with_record(self, node: str, record: ShedRecord) -> None:
        """Record intent and cordon in one patch: a new leader always finds why a node is cordoned."""
        self._fence()
        self._api.patch_node(
            node,
            {
                "metadata": {"annotations": {SHED_ANNOTATION: self._signer.shed_record(node, record)}},
                "spec": {"unschedulable": True},
            },
        )
        self._log.info("node.cordoned", target=node, was_unschedulable=record.was_unschedulable)

    def roll_back(self, node: str, record: ShedRecord, clear: tuple[str, ...] = ()) -> None:
        """Undo exactly what we did: uncordon only if we cordoned, and drop our record (and ``clear``)."""
        patch: dict[str, Any] = {"metadata": {"annotations": {SHED_ANNOTATION: None, **dict.fromkeys(clear)}}}
        if not record.was_unschedulable:
            patch["spec"] = {"unschedulable": None}
        self._fence()  # a leader that lost its lease must not undo what the new one is doing on this node
        self._api.patch_node(node, patch)
        self._log.info("node.rolled_back", target=node, uncordoned=not record.was_unschedulable)

    def drain(self, node: str, record: ShedRecord) -> DrainResult:
        """Cordon (with the record), evict, wait. On failure the node is left as it was found."""
        started = self._clock.monotonic()
        self.cordon_with_record(node, record)
        blockers = _Blockers()
        progress: dict[str, _PodProgress] = {}
        pods = _pods(self._api.pods_on_node(node))
        timeout_s = drain_timeout_s(
            (p for p in pods if drain_action(p, self._options)[0] is not DrainAction.SKIP), self._options
        )
        deadline = started + timeout_s
        self._log.info("node.drain_started", target=node, timeout_s=timeout_s)
        for pod in pods:
            action, why = drain_action(pod, self._options)
            if action is DrainAction.BLOCK:
                blockers.pods[pod.key] = why
            elif action is DrainAction.EVICT:
                progress[pod.key] = _PodProgress(pod)
            elif action is DrainAction.WAIT:
                progress[pod.key] = _PodProgress(pod, evicted=True)
        if blockers.pods:
            # kubectl refuses before evicting anything: nothing has moved yet, undo the cordon.
            return self._fail(node, record, started, progress, blockers, "pods that a drain must not evict")

        critical = [p.pod for p in progress.values() if p.pod.is_critical(self._options.critical_priority_threshold)]
        while True:
            now = self._clock.monotonic()
            for key, item in progress.items():
                if item.gone:
                    continue
                if item.evicted:
                    item.gone = self._is_gone(item.pod, item)
                    continue
                if now < item.next_try:
                    continue
                self._fence()
                result = self._api.evict(item.pod.namespace, item.pod.name, self._options.grace_period_s)
                if result.outcome in (EvictionOutcome.EVICTED, EvictionOutcome.GONE):
                    item.evicted = True
                    item.gone = result.outcome is EvictionOutcome.GONE or self._is_gone(item.pod, item)
                    blockers.pods.pop(key, None)
                elif result.outcome is EvictionOutcome.BLOCKED:
                    item.next_try = now + (result.retry_after_s or self._options.retry_429_s)
                    blockers.pods[key] = result.message
                    blockers.budgets.update(result.blocking_pdbs)
                else:
                    blockers.pods[key] = result.message
                    return self._fail(node, record, started, progress, blockers, "an eviction failed")
            if all(item.gone for item in progress.values()) and self._replacements_ready(node, critical):
                break
            stuck = self._stuck_on_dead_node(node, progress)
            if stuck:
                for key in stuck:
                    blockers.pods[key] = (
                        f"stuck Terminating on {node}, which is not Ready: it goes when {node} is back, or "
                        f"force-delete it (kubectl delete pod --force --grace-period=0) once {node} is known off"
                    )
                return self._fail(node, record, started, progress, blockers, f"{node} went NotReady mid-drain")
            if self._clock.monotonic() >= deadline:
                waiting = [k for k, i in progress.items() if not i.gone]
                for key in waiting:
                    blockers.pods.setdefault(key, "still running when the drain timed out")
                if not waiting:
                    blockers.pods.update({p.key: "no Ready replacement elsewhere yet" for p in critical})
                return self._fail(node, record, started, progress, blockers, "timed out")
            self._tick()
            self._sleep(self._options.poll_s)

        drained = record.with_phase(ShedPhase.DRAINED, rfc3339(self._clock.wall()))
        # Waiting for replacements can outlast our lease (a stalled process): by now another leader may have
        # finished this node and recorded it powered off; writing "drained" over that would re-open it.
        self._fence()
        self._api.patch_node(
            node, {"metadata": {"annotations": {SHED_ANNOTATION: self._signer.shed_record(node, drained)}}}
        )
        evicted = tuple(sorted(progress))
        elapsed = self._clock.monotonic() - started
        self._log.info("node.drained", target=node, evicted=list(evicted), elapsed_s=round(elapsed, 1))
        return DrainResult(node, True, evicted=evicted, elapsed_s=elapsed)

    def _is_gone(self, pod: Pod, item: _PodProgress | None = None) -> bool:
        current = self._api.get_pod(pod.namespace, pod.name)
        gone = current is None or (current.get("metadata") or {}).get("uid") != pod.uid
        if not gone and item is not None:
            item.deadline = _deletion_deadline(current)
        return gone

    def _stuck_on_dead_node(self, node: str, progress: Mapping[str, _PodProgress]) -> list[str]:
        """The pods still there if every one is Terminating more than ``stuck_terminating_s`` past its deadline
        and ``node`` is not Ready (its kubelet cannot finish them); else none."""
        waiting = [(key, item) for key, item in progress.items() if not item.gone]
        now = self._clock.wall()
        limit = self._options.stuck_terminating_s
        if not waiting or not all(
            item.evicted and item.deadline is not None and now - item.deadline > limit for _, item in waiting
        ):
            return []
        conditions = (self._api.get_node(node).get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions if isinstance(c, dict))
        return [] if ready else [key for key, _ in waiting]

    def _replacements_ready(self, node: str, critical: list[Pod]) -> bool:
        """Every evicted critical pod's controller has a Ready pod on another node."""
        if not critical or not self._options.wait_for_critical_replacements:
            return True
        snapshot = parse_kubectl_list(self._api.snapshot())
        ready_elsewhere = {
            (p.namespace, p.owner_kind, p.owner_name)
            for p in snapshot.pods
            if p.node not in (None, node) and p.ready and p.owner_kind is not None
        }
        return all((p.namespace, p.owner_kind, p.owner_name) in ready_elsewhere for p in critical)

    def _fail(
        self,
        node: str,
        record: ShedRecord,
        started: float,
        progress: Mapping[str, _PodProgress],
        blockers: _Blockers,
        why: str,
    ) -> DrainResult:
        self.roll_back(node, record)
        elapsed = self._clock.monotonic() - started
        blocked = tuple(sorted(blockers.pods.items()))
        self._log.warning(
            "node.drain_failed",
            target=node,
            reason=why,
            blocking_pods=[f"{k}: {v}" for k, v in blocked],
            budgets=sorted(blockers.budgets),
            elapsed_s=round(elapsed, 1),
        )
        evicted = tuple(sorted(k for k, item in progress.items() if item.evicted))
        return DrainResult(node, False, evicted, blocked, tuple(sorted(blockers.budgets)), elapsed, why)
