"""Decision table for ``decide_rotation``: the pacing a rotation (the plan's ``power_on``, on battery) obeys on
top of the planner's safety rules: anti-flap both ways, one power-on per stagger, only ``powered_off`` nodes."""

from __future__ import annotations

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.restore import PowerOn, RestoreMemory, RestorePolicy, decide_rotation
from piclusterd.testing.clusters import make_node

NOW = 10_000.0
POLICY = RestorePolicy(restore_after_s=120.0, restore_stagger_s=30.0)
WANTED = [("a1", "rotation: a1 kept 90 % while shed; it comes back to relieve a2")]


def cluster(*nodes: Node) -> ClusterView:
    return ClusterView(nodes=(make_node("cp1", server=True), make_node("a2"), *nodes))


def powered_on(actions: tuple[PowerOn, ...]) -> list[str]:
    return [action.node for action in actions]


def test_a_node_off_long_enough_comes_back_with_the_plans_reason() -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_rotation(view, WANTED, POLICY, RestoreMemory(off_since={"a1": NOW - 120.0}), NOW)
    assert actions == (PowerOn("a1", WANTED[0][1]),)
    assert memory.powered_on_at["a1"] == NOW and memory.last_power_on_at == NOW


def test_never_within_restore_after_of_its_power_off() -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_rotation(view, WANTED, POLICY, RestoreMemory(off_since={"a1": NOW - 119.0}), NOW)
    assert actions == ()
    # First seen off now (a new leader, say): it waits restore_after from now, missing data fails safe.
    memory, actions = decide_rotation(view, WANTED, POLICY, RestoreMemory(), NOW)
    assert actions == () and memory.off_since["a1"] == NOW
    _, actions = decide_rotation(view, WANTED, POLICY, memory, NOW + 120.0)
    assert powered_on(actions) == ["a1"]


def test_not_twice_within_restore_after() -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory = RestoreMemory(off_since={"a1": NOW - 1000.0}, powered_on_at={"a1": NOW - 60.0})
    assert decide_rotation(view, WANTED, POLICY, memory, NOW)[1] == ()


def test_one_power_on_per_stagger_whichever_node() -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory = RestoreMemory(off_since={"a1": NOW - 1000.0}, last_power_on_at=NOW - 29.0)
    assert decide_rotation(view, WANTED, POLICY, memory, NOW)[1] == ()
    memory = RestoreMemory(off_since={"a1": NOW - 1000.0}, last_power_on_at=NOW - 30.0)
    assert powered_on(decide_rotation(view, WANTED, POLICY, memory, NOW)[1]) == ["a1"]


def test_only_powered_off_nodes_and_the_first_one_free_goes() -> None:
    view = cluster(make_node("a1", shed_phase="restoring"), make_node("a3", shed_phase="powered_off"))
    wanted = [*WANTED, ("a3", "rotation: a3 kept 80 %")]
    memory = RestoreMemory(off_since={"a3": NOW - 1000.0})
    assert powered_on(decide_rotation(view, wanted, POLICY, memory, NOW)[1]) == ["a3"]
    assert decide_rotation(view, [], POLICY, memory, NOW)[1] == ()
