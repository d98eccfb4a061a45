"""Each node publishes its own power reading on its Node object: the ``picluster.io/power`` annotation.

What the record says and when it is worth a PATCH are pure, in :mod:`piclusterd.core.power_record`;
:class:`PowerPublisher` applies the patch through a :class:`NodePatcher` (``kube_api.KubeClusterApi``) and
reads the clock it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from piclusterd.core.errors import ClusterError
from piclusterd.core.node_records import rfc3339
from piclusterd.core.ports import Clock
from piclusterd.core.power_record import (
    POWER_ANNOTATION,
    PodShutdownRecord,
    PowerRecord,
    PublishPolicy,
    PublishReason,
    power_record,
    publish_reason,
    render_power_record,
)
from piclusterd.core.power_state import PowerMemory
from piclusterd.node.audit import AuditLogger

__all__ = ["NodePatcher", "PowerPublisher"]


class NodePatcher(Protocol):
    """The one Kubernetes call the publisher needs (``kube_api.KubeClusterApi`` has it)."""

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...


class PowerPublisher:
    """Writes this node's :class:`PowerRecord` to its Node, rate-limited (see the module docstring).

    Call :meth:`publish` after every power poll with the daemon's memory and source name. A failed PATCH
    is logged once (``node.power_publish_failed``) until one succeeds again (``node.power_publish_restored``);
    it never raises a :class:`ClusterError`: the node's own protection does not depend on the API server.
    """

    def __init__(
        self,
        api: NodePatcher,
        node: str,
        *,
        clock: Clock,
        log: AuditLogger,
        policy: PublishPolicy | None = None,
        pod_shutdown: PodShutdownRecord | None = None,
    ) -> None:
        self._api = api
        self._pod_shutdown = pod_shutdown
        self._node = node
        self._clock = clock
        self._log = log.bind(component="power_publisher", node=node)
        self._policy = policy if policy is not None else PublishPolicy()
        self._last: PowerRecord | None = None
        self._last_at: float | None = None
        self._failed_at: float | None = None

    @property
    def last_published(self) -> PowerRecord | None:
        return self._last

    def publish(self, memory: PowerMemory, source: str) -> PublishReason | None:
        """PATCH the record if the rate limit allows; the reason it was written, or ``None`` if it was not."""
        now = self._clock.monotonic()
        record = power_record(memory, source, rfc3339(self._clock.wall()), self._pod_shutdown)
        reason = publish_reason(record, self._last, self._last_at, self._failed_at, now, self._policy)
        if reason is None:
            return None
        patch = {"metadata": {"annotations": {POWER_ANNOTATION: render_power_record(record)}}}
        try:
            self._api.patch_node(self._node, patch)
        except ClusterError as error:
            if self._failed_at is None:
                self._log.warning("node.power_publish_failed", error=str(error), state=record.state)
            self._failed_at = now
            return None
        if self._failed_at is not None:
            self._log.info("node.power_publish_restored", state=record.state)
        self._failed_at = None
        self._last, self._last_at = record, now
        return reason
