"""What every node's daemon does for the cluster: obey (once) the leader's power-off request for itself.

The leader writes ``picluster.io/poweroff-request`` on this node's Node object; the agent acknowledges it
with ``picluster.io/poweroff-ack`` (the request id) *before* running the local shutdown, so the leader
knows not to fall back to SSH, and so that after the node boots again the old request is not obeyed twice.
"""

from __future__ import annotations

from typing import Any, Protocol

from piclusterd.annotations import ACK_ANNOTATION, REQUEST_ANNOTATION, InvalidRecord, parse_poweroff_request
from piclusterd.kube_api import KubeClusterApi

__all__ = ["LocalShutdownTrigger", "NodeAgent"]


class LocalShutdownTrigger(Protocol):
    def request_local_shutdown(self, reason: str) -> bool: ...


class NodeAgent:
    def __init__(self, api: KubeClusterApi, node: str, shutdown: LocalShutdownTrigger, log: Any) -> None:
        self._api = api
        self._node = node
        self._shutdown = shutdown
        self._log = log
        self._reported_invalid: str | None = None

    def tick(self) -> str | None:
        """Check this node's requests once; returns the id of a request accepted now, else None."""
        annotations = (self._api.get_node(self._node).get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(REQUEST_ANNOTATION)
        if raw is None:
            return None
        request = parse_poweroff_request(raw)
        if isinstance(request, InvalidRecord):
            if raw != self._reported_invalid:  # say it once per distinct bad value, not once per poll
                self._reported_invalid = raw
                self._log.error("node.poweroff_request_invalid", value=raw[:200], why=request.reason)
            return None
        if annotations.get(ACK_ANNOTATION) == request.request_id:
            return None
        self._api.patch_node(self._node, {"metadata": {"annotations": {ACK_ANNOTATION: request.request_id}}})
        self._log.warning("shutdown.remote_requested", request_id=request.request_id, leader=request.leader)
        self._shutdown.request_local_shutdown(f"power-off requested by {request.leader} ({request.request_id})")
        return request.request_id
