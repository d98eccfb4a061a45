"""The cluster part of ``piclusterctl status``: each node's state and estimated draw. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from piclusterd.config.model import ManualMethod, NodePowerMethod
from piclusterd.core.cluster_view import ClusterView, ShedState
from piclusterd.core.power_draw import PowerConfig, node_utilisation

#: What ``piclusterctl status`` says of a manual node the leader wants back.
WAITING_FOR_BUTTON = "waiting for someone to press the button"

__all__ = ["WAITING_FOR_BUTTON", "NodeStatus", "node_statuses"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    role: str  # "control-plane" or "agent"
    ready: bool
    cordoned: bool
    shed: str  # ShedState value: none, draining, powered_off, restoring, unreadable
    draw_w: float  # estimated: running at its pods' load, or its shed draw when off
    note: str = ""  # for a person: "waiting for someone to press the button (rack B, shelf 2)"


def _note(shed: ShedState, method: NodePowerMethod, ready: bool) -> str:
    """A node being restored whose method is manual needs a person: say so, and where it is. Not once it is
    Ready (someone pressed it; the leader rejoins it on its next poll): a second press would switch it off."""
    if shed is not ShedState.RESTORING or not isinstance(method, ManualMethod) or ready:
        return ""
    return WAITING_FOR_BUTTON + (f" ({method.where})" if method.where else "")


def node_statuses(
    view: ClusterView, hardware: PowerConfig, power_method: Callable[[str], NodePowerMethod] | None = None
) -> tuple[NodeStatus, ...]:
    """Each node's row; ``power_method`` (``Config.power_method``; default: every node manual) for the note."""
    method_of = power_method if power_method is not None else (lambda _node: ManualMethod())
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
                _note(node.shed_state, method_of(node.name), node.ready),
            )
        )
    return tuple(rows)
