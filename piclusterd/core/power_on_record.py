"""What the leader did to bring a shed node back, recorded on its Node so the next leader paces the same. Pure.

The restore policy paces power-ons (:mod:`piclusterd.core.restore`): one node per ``restore_stagger``, a node
back less than ``restore_after`` ago is *settling* (not shed again), a failed power-on is retried a little later.
That memory used to live in the leader's process only, so a new leader forgot it: it could shed a node the old
leader had just brought back, or power the next one on at once. Now each step leaves a record on the Node
(annotation ``picluster.io/power-on``, JSON with a version like every record of
:mod:`piclusterd.core.node_records`), written in the same patch as the step itself:

- ``asked``: the power-on was sent (with the shed record turning ``restoring``);
- ``failed``: the backend failed (with the shed record put back to ``powered_off``);
- ``back``: the node is Ready and rejoined (with the shed record removed).

:func:`recall_power_ons` folds the records into a :class:`~piclusterd.core.restore.RestoreMemory`, so a new
leader paces exactly as the old one would have. Times are wall clock (RFC 3339) on the Node and monotonic in
the memory; a record dated ahead of the reader's clock counts as just now (a longer hold: fails safe), one
that cannot be read is left out (the memory then is what this leader saw itself, as before). The leader
removes a record once it is ``restore_after`` old (:func:`is_spent`).
"""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass, replace

from piclusterd.core.bounded_json import JsonRefused, load_bounded_json
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_records import PREFIX, rfc3339
from piclusterd.core.restore import RestoreMemory, RestorePolicy

__all__ = [
    "MIN_RETRY_S",
    "POWER_ON_ANNOTATION",
    "PowerOnRecord",
    "PowerOnStep",
    "is_spent",
    "parse_power_on_record",
    "recall_power_ons",
    "render_power_on_record",
    "retry_hold_s",
    "settling_from_records",
]

POWER_ON_ANNOTATION = PREFIX + "power-on"
_VERSION = 1

#: A failed power-on is not tried again sooner than this (``cluster.restoring.MIN_POWER_ON_RETRY_S``).
MIN_RETRY_S = 30.0


class PowerOnStep(enum.Enum):
    ASKED = "asked"
    FAILED = "failed"
    BACK = "back"


@dataclass(frozen=True, slots=True)
class PowerOnRecord:
    """The last power-on step for one node: which, and when (RFC 3339, UTC)."""

    step: PowerOnStep
    at: str


def render_power_on_record(record: PowerOnRecord) -> str:
    fields = {"v": _VERSION, "step": record.step.value, "at": record.at}
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def _wall(text: str) -> float | None:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def parse_power_on_record(raw: str) -> tuple[PowerOnRecord, float] | str:
    """The record and its wall time, or why it cannot be read. Never raises."""
    try:
        data = load_bounded_json(raw)
    except JsonRefused as error:
        return str(error)
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        return f"not a version {_VERSION} record"
    step, at = data.get("step"), data.get("at")
    if not isinstance(step, str) or step not in {s.value for s in PowerOnStep} or not isinstance(at, str):
        return "'step' or 'at' missing or unknown"
    wall = _wall(at)
    if wall is None:
        return f"'at' {at[:40]!r} is not RFC 3339 UTC to the second"
    return PowerOnRecord(PowerOnStep(step), rfc3339(wall)), wall


def retry_hold_s(policy: RestorePolicy) -> float:
    """How long a failed power-on holds its node: ``2 x restore_stagger``, at least ``MIN_RETRY_S``."""
    return max(2 * policy.restore_stagger_s, MIN_RETRY_S)


def _records(view: ClusterView) -> dict[str, tuple[PowerOnRecord, float]]:
    found: dict[str, tuple[PowerOnRecord, float]] = {}
    for node in view.nodes:
        raw = node.annotations.get(POWER_ON_ANNOTATION)
        parsed = None if raw is None else parse_power_on_record(raw)
        if isinstance(parsed, tuple):
            found[node.name] = parsed
    return found


def recall_power_ons(
    memory: RestoreMemory, view: ClusterView, now: float, wall: float, policy: RestorePolicy
) -> RestoreMemory:
    """``memory`` with what the records on the Nodes say (``now``: monotonic, ``wall``: the same moment on the
    wall clock). Each node's hold is the later of the memory's and the record's, so a record only ever makes the
    pacing longer: ``asked`` and ``back`` start the node's anti-flap and settling time, ``failed`` holds it for
    :func:`retry_hold_s`; ``asked`` and ``failed`` also start the stagger for the next node."""
    held = dict(memory.powered_on_at)
    last = memory.last_power_on_at
    for name, (record, at_wall) in _records(view).items():
        at = now - max(0.0, wall - at_wall)  # ahead of our clock: just now
        # A failure holds for retry_hold_s: as if asked that long less than restore_after ago.
        failed = record.step is PowerOnStep.FAILED
        hold_from = at - policy.restore_after_s + retry_hold_s(policy) if failed else at
        if now - hold_from >= policy.restore_after_s:
            continue  # spent: nothing to remember
        held[name] = max(held.get(name, hold_from), hold_from)
        if record.step is not PowerOnStep.BACK:
            last = at if last is None else max(last, at)
    if held == dict(memory.powered_on_at) and last == memory.last_power_on_at:
        return memory
    return replace(memory, powered_on_at=held, last_power_on_at=last)


def settling_from_records(view: ClusterView, wall: float, policy: RestorePolicy) -> frozenset[str]:
    """The nodes the records say came back (or were asked back) less than ``restore_after`` before ``wall``:
    what a leader would pass the planner as settling at that time (``piclusterctl plan --as-of``)."""
    recalled = recall_power_ons(RestoreMemory(), view, wall, wall, policy)
    return frozenset(name for name, at in recalled.powered_on_at.items() if wall - at < policy.restore_after_s)


def is_spent(raw: str, wall: float, policy: RestorePolicy) -> bool:
    """Whether a record no longer holds anything at ``wall`` (``restore_after`` old), or cannot be read: the
    leader removes it."""
    parsed = parse_power_on_record(raw)
    if isinstance(parsed, str):
        return True
    return wall - parsed[1] >= policy.restore_after_s
