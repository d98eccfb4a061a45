"""Issue 17's goal for API traffic on mains, as a count by request kind (never a timing).

Goal: "no more than the leader election's own traffic (a renew per retry period) plus watch reconnects". On
mains, in steady state, a cluster of ``nodes`` daemons may send, over ``window_s`` seconds:

- ``PUT leases``: the leader's renewal, one per retry period (client-go's ``renew`` loop,
  ``tools/leaderelection/leaderelection.go``: ``wait.Until(... tryAcquireOrRenew ..., RetryPeriod)``), plus one
  for where the window starts; followers read the Lease from their watch, not by a GET;
- ``GET watch <kind>``: a watch (re)started; every node keeps :data:`FOLLOWER_WATCHES` (its own Node, the
  Lease) and the leader :data:`LEADER_WATCHES` more; each lasts at least ``WATCH_IDLE_S`` (a watch silent that
  long is restarted; otherwise it runs ``WATCH_TIMEOUT_S`` to twice that), so each may restart
  ``ceil(window / WATCH_IDLE_S)`` times;
- ``PATCH nodes``: a power record's refresh, one per node per ``refresh_every_s`` plus one, where a leader reads
  the records' age (per-node batteries); ``refresh_every_s`` None: none (a record changes only with its content,
  and on mains in steady state it does not);
- nothing else: no LIST, no GET, no Event.

:func:`over_budget` says which kinds went over, with the count and the allowance.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from piclusterd.cluster.informer import WATCH_IDLE_S
from piclusterd.sim.fake_api_server import RequestRecord
from piclusterd.sim.fake_watch import is_watch

__all__ = ["FOLLOWER_WATCHES", "LEADER_WATCHES", "Excess", "mains_allowance", "over_budget", "request_kind"]

#: Watches every node keeps (``cluster.informer.watched_kinds``, ``leader=False``): its own Node, the Lease.
FOLLOWER_WATCHES = 2
#: Watches the leader adds: nodes, pods, PDBs, PVs, PVCs, the outage record.
LEADER_WATCHES = 6

_SUBRESOURCES = ("status", "eviction")
_KINDS = ("nodes", "pods", "leases", "configmaps", "events", "poddisruptionbudgets")


def request_kind(record: RequestRecord) -> str:
    """``GET pods``, ``GET watch nodes``, ``PUT leases``, ``PATCH nodes``... (namespace and name left out)."""
    path = re.sub(r"/namespaces/[^/]+", "", record.path)
    parts = [p for p in path.split("/") if p]
    resource = parts[-1] if parts else "/"
    if len(parts) >= 2 and parts[-2] in _KINDS:
        resource = parts[-2] + ("/" + parts[-1] if parts[-1] in _SUBRESOURCES else "")
    verb = record.method
    if verb == "GET":
        verb = "GET watch" if is_watch(record.query) else "GET"
    return f"{verb} {resource}"


@dataclass(frozen=True, slots=True)
class Excess:
    """A kind of request sent more often than the goal allows over the window."""

    kind: str
    count: int
    allowed: int


def mains_allowance(
    *, window_s: float, nodes: int, retry_period_s: float, refresh_every_s: float | None
) -> dict[str, int]:
    """What the goal allows over ``window_s`` by kind (``GET watch`` counts every watched kind together)."""
    reconnects = math.ceil(window_s / WATCH_IDLE_S)
    refreshes = 0 if refresh_every_s is None else nodes * (math.floor(window_s / refresh_every_s) + 1)
    return {
        "PUT leases": math.floor(window_s / retry_period_s) + 1,
        "GET watch": (nodes * FOLLOWER_WATCHES + LEADER_WATCHES) * reconnects,
        "PATCH nodes": refreshes,
    }


def over_budget(records: Iterable[RequestRecord], allowance: Mapping[str, int]) -> list[Excess]:
    """Each kind of request over its allowance (:func:`mains_allowance`; any kind not named there: none)."""
    counted = collections.Counter(request_kind(r) for r in records)
    grouped: collections.Counter[str] = collections.Counter()
    for kind, count in counted.items():
        grouped["GET watch" if kind.startswith("GET watch ") else kind] += count
    return [
        Excess(kind, count, allowance.get(kind, 0))
        for kind, count in sorted(grouped.items())
        if count > allowance.get(kind, 0)
    ]
