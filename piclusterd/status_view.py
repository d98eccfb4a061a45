"""The cluster part of ``piclusterctl status``: each node's state and estimated draw. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from piclusterd.cluster import ClusterView, ShedState
from piclusterd.power_model import PowerConfig, node_utilisation

__all__ = ["NodeStatus", "node_statuses"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    role: str  # "control-plane" or "agent"
    ready: bool
    cordoned: bool
    shed: str  # ShedState value: none, draining, powered_off, restoring, unreadable
    draw_w: float  # estimated: running at its pods' load, or its shed draw when off


def node_statuses(view: ClusterView, hardware: PowerConfig) -> tuple[NodeStatus, ...]:
    rows = []
    for node in view.nodes:
        profile = hardware.profile(node)
        off = node.shed_state is ShedState.POWERED_OFF or not node.ready
        draw = profile.shed_w if off else profile.running_w(node_utilisation(view, node.name))
        rows.append(
            NodeStatus(
                node.name,
                "control-plane" if node.is_control_plane else "agent",
                node.ready,
                node.unschedulable,
                node.shed_state.value,
                round(draw, 2),
            )
        )
    return tuple(rows)
