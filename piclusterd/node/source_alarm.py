"""Loss of UPS data said on the cluster too: a Warning Event on this node's own Node when the power source
stops giving readings, a Normal one when it gives them again.

The journal alone is not loud enough: the one-person IT team watches ``kubectl get events``, and a node
that cannot read its UPS will do nothing on an outage (or, silent on battery, go critical by NUT's
fail-safe and power itself off). Once per loss and once per return, never per poll; best effort: an API
failure is logged and never stops the tick.
"""

from __future__ import annotations

import enum
from typing import Protocol

from piclusterd.core.errors import ClusterError
from piclusterd.core.power_state import PowerMemory, PowerState
from piclusterd.node.audit import AuditLogger

__all__ = ["SOURCE_LOST_REASON", "SOURCE_RESTORED_REASON", "SourceAlarm", "SourceChange", "source_change"]

SOURCE_LOST_REASON = "PowerSourceLost"
SOURCE_RESTORED_REASON = "PowerSourceRestored"


class SourceChange(enum.Enum):
    LOST = "lost"
    RESTORED = "restored"


def source_change(said_ok: bool, memory: PowerMemory) -> SourceChange | None:
    """What to say, given whether the source was last said to be readable. Pure."""
    if said_ok and not memory.source_ok:
        return SourceChange.LOST
    if not said_ok and memory.source_ok:
        return SourceChange.RESTORED
    return None


def _lost_message(memory: PowerMemory) -> str:
    if memory.state is PowerState.CRITICAL:
        return (
            f"UPS data lost while on battery: fail-safe critical ({memory.reason}); this node shuts down. "
            "Check upsd and the network: upsc UPS@HOST"
        )
    return (
        f"UPS data lost (last known state: {memory.state.value}): piclusterd will not act on stale power data "
        "and goes critical if it stays silent on battery. Check upsd and the network: upsc UPS@HOST"
    )


class EventSink(Protocol):
    """:class:`~piclusterd.cluster.kube_api.EventRecorder`'s ``emit``."""

    def emit(self, node: str, reason: str, message: str, *, warning: bool = False) -> None: ...


class SourceAlarm:
    """Call :meth:`observe` with the power memory every tick."""

    def __init__(self, identity: str, events: EventSink, log: AuditLogger) -> None:
        self._identity = identity
        self._events = events
        self._log = log
        self._said_ok = True  # a daemon that never read its UPS says so at its first failed poll

    def observe(self, memory: PowerMemory) -> None:
        change = source_change(self._said_ok, memory)
        if change is None:
            return
        self._said_ok = change is SourceChange.RESTORED  # once per change, even if the Event fails
        try:
            if change is SourceChange.LOST:
                self._events.emit(self._identity, SOURCE_LOST_REASON, _lost_message(memory), warning=True)
            else:
                self._events.emit(self._identity, SOURCE_RESTORED_REASON, "UPS data is readable again")
        except ClusterError as error:
            self._log.warning("cluster.api_failed", step=f"record the UPS data {change.value} Event", error=str(error))
