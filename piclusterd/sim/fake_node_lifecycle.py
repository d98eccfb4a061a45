"""The node lifecycle and taint-eviction controllers of kube-controller-manager (as k3s runs them), for the
fake API server.

- A node whose kubelet stops posting status turns Ready=Unknown only after the node-monitor grace period
  (``--node-monitor-grace-period``, 40 s in Kubernetes and k3s; pkg/controller/nodelifecycle/
  node_lifecycle_controller.go ``tryUpdateNodeHealth``). Tests may shorten it; it is never zero.
- Taints follow the node's state (``doNoScheduleTaintingPass`` and ``doNoExecuteTaintingPass``):
  ``node.kubernetes.io/unschedulable:NoSchedule`` while cordoned, ``node.kubernetes.io/not-ready`` for
  Ready=False and ``node.kubernetes.io/unreachable`` for Ready=Unknown, each with NoSchedule and NoExecute.
- Pods on a node that stops being Ready turn not Ready (``MarkPodsNotReady``).
- pkg/controller/tainteviction/taint_eviction.go deletes a pod on a node with NoExecute taints at once if it
  does not tolerate them all, after the smallest ``tolerationSeconds`` of the tolerations used if they all
  have one, never if one tolerates forever. The DefaultTolerationSeconds admission plugin gives every pod
  300 s for not-ready and unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_NODE_MONITOR_GRACE_S",
    "NOT_READY_TAINT",
    "UNREACHABLE_TAINT",
    "UNSCHEDULABLE_TAINT",
    "eviction_delay_s",
    "reconcile_taints",
    "tolerates",
]

JsonObj = dict[str, Any]

DEFAULT_NODE_MONITOR_GRACE_S = 40.0
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_MANAGED = (UNREACHABLE_TAINT, NOT_READY_TAINT, UNSCHEDULABLE_TAINT)


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first toleration that tolerates ``taint`` (``Toleration.ToleratesTaint``), or None."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return toleration
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return toleration
    return None


def _ready_status(node: Mapping[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


def _wanted(node: Mapping[str, Any]) -> set[tuple[str, str]]:
    wanted: set[tuple[str, str]] = set()
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((UNSCHEDULABLE_TAINT, "NoSchedule"))
    ready = _ready_status(node)
    if ready != "True":
        key = NOT_READY_TAINT if ready == "False" else UNREACHABLE_TAINT
        wanted |= {(key, "NoSchedule"), (key, "NoExecute")}
    return wanted


def reconcile_taints(node: JsonObj, now_text: str) -> bool:
    """Make the node's lifecycle taints match its state; others are kept as they are. A NoExecute taint
    carries ``timeAdded`` (the taint manager counts tolerationSeconds from it). Returns whether it changed."""
    spec = node.setdefault("spec", {})
    taints: list[JsonObj] = list(spec.get("taints") or [])
    wanted = _wanted(node)
    kept = [t for t in taints if t.get("key") not in _MANAGED or (t.get("key"), t.get("effect")) in wanted]
    present = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in sorted(wanted - present):
        taint: JsonObj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = now_text
        kept.append(taint)
    if kept == taints:
        return False
    if kept:
        spec["taints"] = kept
    else:
        spec.pop("taints", None)
    return True


def eviction_delay_s(tolerations: Sequence[Mapping[str, Any]], taints: Sequence[Mapping[str, Any]]) -> float | None:
    """How long after the NoExecute taints appeared the taint manager deletes the pod: 0 if one taint is not
    tolerated, else the smallest tolerationSeconds among the tolerations used, or None (never) when none of
    them has one (``getMinTolerationTime``; a negative value counts as 0)."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    smallest: float | None = None
    for taint in no_execute:
        toleration = tolerates(tolerations, taint)
        if toleration is None:
            return 0.0
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            continue
        value = max(0.0, float(seconds))
        smallest = value if smallest is None else min(smallest, value)
    return smallest
