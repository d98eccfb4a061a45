"""Decision tables for ``decide_restore``: one factor varied per table, everything else as in the baseline.

The baseline powers one node on: mains back for 1000 s, charge 80 %, one agent off for 1000 s, nothing powered
on before.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.power_state import PowerState
from piclusterd.core.restore import (
    PowerOn,
    RestoreHold,
    RestoreInputs,
    RestoreMemory,
    RestorePolicy,
    decide_restore,
    is_settling,
)
from piclusterd.testing.clusters import make_node

NOW = 10_000.0


def cluster(*nodes: Node) -> ClusterView:
    return ClusterView(nodes=(make_node("cp1", server=True), *nodes))


def baseline_memory(*off: str, mains_back_for: float = 1000.0, off_for: float = 1000.0) -> RestoreMemory:
    return RestoreMemory(mains_back_since=NOW - mains_back_for, off_since={name: NOW - off_for for name in off})


def powered_on(actions: tuple[PowerOn, ...]) -> list[str]:
    return [action.node for action in actions]


ONLINE_80 = RestoreInputs(PowerState.ONLINE, charge_pct=80.0)


def test_baseline_powers_the_shed_agent_on_with_a_reason(policy: RestorePolicy) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_restore(view, ONLINE_80, policy, baseline_memory("a1"), NOW)
    assert powered_on(actions) == ["a1"]
    assert "mains back for 16 min" in actions[0].reason and "charge 80 %" in actions[0].reason
    assert memory.hold is RestoreHold.POWERED_ON
    assert memory.powered_on_at["a1"] == NOW


@pytest.mark.parametrize(
    ("state", "expected", "hold"),
    [
        (PowerState.UNKNOWN, [], RestoreHold.POWER_UNKNOWN),
        (PowerState.ON_BATTERY, [], RestoreHold.ON_BATTERY),
        (PowerState.LOW_BATTERY, [], RestoreHold.ON_BATTERY),
        (PowerState.CRITICAL, [], RestoreHold.ON_BATTERY),
        (PowerState.ONLINE, ["a1"], RestoreHold.POWERED_ON),
    ],
)
def test_power_state(policy: RestorePolicy, state: PowerState, expected: list[str], hold: RestoreHold) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_restore(view, RestoreInputs(state, 80.0), policy, baseline_memory("a1"), NOW)
    assert powered_on(actions) == expected
    assert memory.hold is hold


@pytest.mark.parametrize("state", [PowerState.UNKNOWN, PowerState.ON_BATTERY])
def test_any_flicker_restarts_the_mains_back_clock(policy: RestorePolicy, state: PowerState) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, _ = decide_restore(view, RestoreInputs(state, 80.0), policy, baseline_memory("a1"), NOW)
    assert memory.mains_back_since is None
    memory, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 1)
    assert actions == () and memory.mains_back_since == NOW + 1
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 1 + 119.9)
    assert actions == ()
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 1 + 120)
    assert powered_on(actions) == ["a1"]


@pytest.mark.parametrize(
    ("mains_back_for", "expected"), [(0.0, []), (60.0, []), (119.9, []), (120.0, ["a1"]), (3600.0, ["a1"])]
)
def test_mains_back_for(policy: RestorePolicy, mains_back_for: float, expected: list[str]) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory = baseline_memory("a1", mains_back_for=mains_back_for)
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == expected


def test_mains_first_seen_now_starts_the_clock_now(policy: RestorePolicy) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_restore(view, ONLINE_80, policy, RestoreMemory(), NOW)
    assert actions == () and memory.mains_back_since == NOW and memory.hold is RestoreHold.MAINS_NOT_STABLE


@pytest.mark.parametrize(
    ("charge", "if_unknown", "expected", "hold"),
    [
        (None, False, [], RestoreHold.CHARGE_UNKNOWN),
        (None, True, ["a1"], RestoreHold.POWERED_ON),
        (10.0, False, [], RestoreHold.CHARGE_LOW),
        (49.9, False, [], RestoreHold.CHARGE_LOW),
        (50.0, False, ["a1"], RestoreHold.POWERED_ON),
        (100.0, False, ["a1"], RestoreHold.POWERED_ON),
    ],
)
def test_charge(charge: float | None, if_unknown: bool, expected: list[str], hold: RestoreHold) -> None:
    policy = RestorePolicy(restore_if_charge_unknown=if_unknown)
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_restore(view, RestoreInputs(PowerState.ONLINE, charge), policy, baseline_memory("a1"), NOW)
    assert powered_on(actions) == expected
    assert memory.hold is hold


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (None, []),
        ("draining", []),
        ("drained", []),
        ("poweroff_requested", []),
        ("restoring", []),
        ("not-a-phase", []),  # unreadable record: never acted on
        ("powered_off", ["a1"]),
    ],
)
def test_only_powered_off_nodes_come_back(policy: RestorePolicy, phase: str | None, expected: list[str]) -> None:
    view = cluster(make_node("a1", shed_phase=phase))
    _, actions = decide_restore(view, ONLINE_80, policy, baseline_memory("a1"), NOW)
    assert powered_on(actions) == expected


@pytest.mark.parametrize(("last_power_on_ago", "expected"), [(0.0, []), (29.9, []), (30.0, ["a1"]), (100.0, ["a1"])])
def test_stagger(policy: RestorePolicy, last_power_on_ago: float, expected: list[str]) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory = baseline_memory("a1")
    memory = RestoreMemory(memory.mains_back_since, memory.off_since, last_power_on_at=NOW - last_power_on_ago)
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == expected


@pytest.mark.parametrize(("off_for", "expected"), [(0.0, []), (60.0, []), (119.9, []), (120.0, ["a1"])])
def test_never_powered_on_within_restore_after_of_its_power_off(
    policy: RestorePolicy, off_for: float, expected: list[str]
) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    _, actions = decide_restore(view, ONLINE_80, policy, baseline_memory("a1", off_for=off_for), NOW)
    assert powered_on(actions) == expected


def test_a_node_first_seen_off_now_waits_restore_after_from_now(policy: RestorePolicy) -> None:
    """A new leader does not know when the node went off: it counts from its first sighting (fails safe)."""
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, actions = decide_restore(view, ONLINE_80, policy, RestoreMemory(mains_back_since=0.0), NOW)
    assert actions == () and memory.off_since["a1"] == NOW and memory.hold is RestoreHold.ANTI_FLAP
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 120)
    assert powered_on(actions) == ["a1"]


@pytest.mark.parametrize(("powered_on_ago", "expected"), [(1.0, []), (119.9, []), (120.0, ["a1"])])
def test_at_most_one_power_on_per_node_per_restore_after(
    policy: RestorePolicy, powered_on_ago: float, expected: list[str]
) -> None:
    """The power-on did not take (the node is still recorded off): it is retried only after restore_after."""
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory = RestoreMemory(
        mains_back_since=0.0,
        off_since={"a1": 0.0},
        powered_on_at={"a1": NOW - powered_on_ago},
        last_power_on_at=NOW - powered_on_ago,
    )
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == expected


@pytest.mark.parametrize(
    ("nodes", "first"),
    [
        # control plane before agents, whatever the tiers
        (
            (make_node("a1", tier=9, shed_phase="powered_off"), make_node("s2", server=True, shed_phase="powered_off")),
            "s2",
        ),
        # among agents, the highest tier first
        ((make_node("a1", tier=1, shed_phase="powered_off"), make_node("a2", tier=5, shed_phase="powered_off")), "a2"),
        # same tier: by name
        ((make_node("b", shed_phase="powered_off"), make_node("a", shed_phase="powered_off")), "a"),
    ],
    ids=["control-plane-first", "highest-tier-first", "by-name"],
)
def test_restore_order(policy: RestorePolicy, nodes: tuple[Node, ...], first: str) -> None:
    memory = baseline_memory(*(node.name for node in nodes))
    _, actions = decide_restore(cluster(*nodes), ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == [first]


def test_a_node_held_by_anti_flap_does_not_block_the_next_one(policy: RestorePolicy) -> None:
    """The server went off 5 s ago (a late shed): it waits; the agent off for long comes back first."""
    nodes = (make_node("s2", server=True, shed_phase="powered_off"), make_node("a1", shed_phase="powered_off"))
    memory = RestoreMemory(mains_back_since=0.0, off_since={"s2": NOW - 5, "a1": NOW - 1000})
    _, actions = decide_restore(cluster(*nodes), ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == ["a1"]


def test_configured_tiers_win_over_labels() -> None:
    policy = RestorePolicy(tiers={"a1": 7})
    nodes = (make_node("a1", tier=1, shed_phase="powered_off"), make_node("a2", tier=5, shed_phase="powered_off"))
    _, actions = decide_restore(cluster(*nodes), ONLINE_80, policy, baseline_memory("a1", "a2"), NOW)
    assert powered_on(actions) == ["a1"]


def test_one_node_per_decision_then_the_next_after_the_stagger(policy: RestorePolicy) -> None:
    view = cluster(*(make_node(f"a{i}", tier=i, shed_phase="powered_off") for i in (1, 2, 3)))
    memory = baseline_memory("a1", "a2", "a3")
    memory, actions = decide_restore(view, ONLINE_80, policy, memory, NOW)
    assert powered_on(actions) == ["a3"]
    memory, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 29)
    assert actions == () and memory.hold is RestoreHold.STAGGER
    _, actions = decide_restore(view, ONLINE_80, policy, memory, NOW + 30)
    assert powered_on(actions) == ["a2"]


def test_a_restored_node_is_settling_for_restore_after(policy: RestorePolicy) -> None:
    view = cluster(make_node("a1", shed_phase="powered_off"))
    memory, _ = decide_restore(view, ONLINE_80, policy, baseline_memory("a1"), NOW)
    assert is_settling(memory, "a1", NOW + 119, policy)
    assert not is_settling(memory, "a1", NOW + 120, policy)
    assert not is_settling(memory, "cp1", NOW, policy)


@pytest.mark.parametrize(
    ("key", "make"),
    [
        ("restore_after_s", lambda: RestorePolicy(restore_after_s=-1.0)),
        ("restore_min_charge_pct", lambda: RestorePolicy(restore_min_charge_pct=101.0)),
        ("restore_stagger_s", lambda: RestorePolicy(restore_stagger_s=-0.1)),
    ],
)
def test_policy_refuses_impossible_values(key: str, make: Callable[[], RestorePolicy]) -> None:
    with pytest.raises(ValueError, match=key):
        make()
