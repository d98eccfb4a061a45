"""``piclusterctl status``'s note for a person: only a manual node the leader wants back waits for the button."""

from __future__ import annotations

import pytest

from piclusterd.cluster.status_view import WAITING_FOR_BUTTON, node_statuses
from piclusterd.config.model import ManualMethod, NodePowerMethod, WolMethod
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.power_draw import PowerConfig
from piclusterd.testing.clusters import make_node


@pytest.mark.parametrize(
    ("phase", "method", "note"),
    [
        ("restoring", ManualMethod("rack B, shelf 2"), f"{WAITING_FOR_BUTTON} (rack B, shelf 2)"),
        ("restoring", ManualMethod(), WAITING_FOR_BUTTON),
        ("restoring", WolMethod("dc:a6:32:01:02:03", "255.255.255.255", 9), ""),  # a packet went: nobody to ask
        ("powered_off", ManualMethod("rack B"), ""),  # mains still out, or not stable yet: do not press
        (None, ManualMethod("rack B"), ""),
    ],
)
def test_only_a_manual_node_asked_back_waits_for_the_button(
    phase: str | None, method: NodePowerMethod, note: str
) -> None:
    view = ClusterView((make_node("pi4", shed_phase=phase, ready=phase is None),))
    (row,) = node_statuses(view, PowerConfig(), lambda _node: method)
    assert row.note == note


def test_without_a_configuration_every_node_is_manual() -> None:
    view = ClusterView((make_node("pi4", shed_phase="restoring", ready=False),))
    (row,) = node_statuses(view, PowerConfig())
    assert row.note == WAITING_FOR_BUTTON


def test_a_manual_node_already_up_is_not_waiting_for_the_button() -> None:
    """Pressed, Ready, not yet rejoined by the leader: telling a person to press again would switch it off."""
    view = ClusterView((make_node("pi4", shed_phase="restoring", ready=True),))
    (row,) = node_statuses(view, PowerConfig(), lambda _node: ManualMethod("rack B"))
    assert row.note == ""
