"""The full shutdown's order (pure): decision tables per factor, and properties over random clusters."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.full_shutdown_order import (
    RECORD_GRACE_S,
    ClusterContact,
    Cordon,
    FullShutdownPhase,
    PowerOffLastMembers,
    PowerOffPeer,
    RequestUpsReturn,
    RunHook,
    ShutDownLeader,
    WaitFor,
    has_quorum,
    local_shutdown_deferral,
    next_step,
    planned_steps,
)
from piclusterd.core.outage_record import FullShutdownProgress
from piclusterd.testing.clusters import make_node


def cluster(*nodes: Node) -> ClusterView:
    return ClusterView(tuple(nodes), (), ())


def servers(*names: str, **kwargs: object) -> tuple[Node, ...]:
    return tuple(make_node(name, server=True, **kwargs) for name in names)  # type: ignore[arg-type]


def agents(*names: str, **kwargs: object) -> tuple[Node, ...]:
    return tuple(make_node(name, **kwargs) for name in names)  # type: ignore[arg-type]


CLINIC = cluster(*servers("s1", "s2", "s3"), *agents("a1", "a2"))


def progress(**changes: object) -> FullShutdownProgress:
    start = FullShutdownProgress("2026-11-24T20:00:00Z", "s1", ("a1", "a2", "s1", "s2", "s3"))
    return replace(start, **changes)  # type: ignore[arg-type]


CORDONED = progress(cordon_done=True, cordoned=("a1", "a2", "s1", "s2", "s3"))
WORKERS_DONE = replace(CORDONED, requested=("a1", "a2"))
HOOK_DONE = replace(WORKERS_DONE, hook_done=True)


def off(view: ClusterView, *names: str) -> ClusterView:
    return cluster(*(replace(n, ready=False) if n.name in names else n for n in view.nodes))


# --- one factor at a time --------------------------------------------------------------------------------


def test_first_every_node_not_cordoned_yet_is_cordoned_and_an_operators_cordon_is_not_ours() -> None:
    view = cluster(*servers("s1", "s2", "s3"), *agents("a1"), *agents("a2", unschedulable=True))
    assert next_step(view, "s1", progress()) == Cordon(("a1", "s1", "s2", "s3"))


def test_workers_go_first_one_at_a_time_with_a_drain_and_are_not_watched() -> None:
    assert next_step(CLINIC, "s1", CORDONED) == PowerOffPeer("a1", FullShutdownPhase.WORKERS, drain=True, watch=False)
    assert next_step(CLINIC, "s1", replace(CORDONED, requested=("a1",))) == PowerOffPeer(
        "a2", FullShutdownPhase.WORKERS, drain=True, watch=False
    )


@pytest.mark.parametrize(
    ("down", "asked", "expected"),
    [
        ((), ("a1",), "a2"),  # asked and still Ready (not confirmed): not asked twice, not waited for
        (("a1",), (), "a2"),  # already off (shed earlier): nothing to do
        (("a1", "a2"), (), None),  # every worker off: on to the hook
    ],
)
def test_a_worker_already_asked_or_off_is_skipped(
    down: tuple[str, ...], asked: tuple[str, ...], expected: str | None
) -> None:
    step = next_step(off(CLINIC, *down), "s1", replace(CORDONED, requested=asked))
    assert step == (
        RunHook() if expected is None else PowerOffPeer(expected, FullShutdownPhase.WORKERS, drain=True, watch=False)
    )


def test_the_hook_runs_after_the_workers_and_before_any_control_plane_node() -> None:
    assert next_step(CLINIC, "s1", WORKERS_DONE) == RunHook()


def test_control_plane_nodes_go_one_at_a_time_without_a_drain_until_quorum_would_break() -> None:
    assert next_step(CLINIC, "s1", HOOK_DONE) == PowerOffPeer(
        "s2", FullShutdownPhase.CONTROL_PLANE, drain=False, watch=True
    )
    asked_s2 = replace(HOOK_DONE, requested=("a1", "a2", "s2"))
    assert next_step(CLINIC, "s1", asked_s2) == WaitFor("s2")  # still Ready: the next one waits
    assert next_step(off(CLINIC, "s2"), "s1", asked_s2) == PowerOffLastMembers(("s3",))


def test_once_the_next_member_breaks_quorum_every_member_left_goes_at_once() -> None:
    """5 members, 2 already off (shed): 3 of 5 is the bare quorum, so s2 and s3 go together, then s1."""
    view = off(cluster(*servers("s1", "s2", "s3", "s4", "s5")), "s4", "s5")
    step = next_step(view, "s1", progress(cordon_done=True, hook_done=True))
    assert step == PowerOffLastMembers(("s2", "s3"))


def test_control_plane_nodes_outside_etcd_go_before_the_members() -> None:
    outside = make_node("s0", server=True, labels={"picluster.io/etcd-member": "false"})
    view = cluster(*servers("s1", "s2"), outside)
    state = progress(cordon_done=True, hook_done=True)
    assert next_step(view, "s1", state) == PowerOffPeer("s0", FullShutdownPhase.CONTROL_PLANE, drain=False, watch=True)
    assert next_step(off(view, "s0"), "s1", replace(state, requested=("s0",))) == PowerOffLastMembers(("s2",))


def test_then_the_ups_then_the_leader() -> None:
    done = replace(HOOK_DONE, requested=("a1", "a2", "s2", "s3"))
    view = off(CLINIC, "a1", "a2", "s2", "s3")
    assert next_step(view, "s1", done) == RequestUpsReturn()
    assert next_step(view, "s1", replace(done, ups="requested")) == ShutDownLeader()
    assert next_step(view, "s1", replace(done, ups="failed")) == ShutDownLeader()  # a failed UPS step is not retried


def test_a_leader_on_a_worker_still_goes_last() -> None:
    view = cluster(*servers("s1"), *agents("a1", "a2"))
    step = next_step(off(view, "a2"), "a1", progress(cordon_done=True, requested=("a2",), hook_done=True))
    assert step == PowerOffLastMembers(("s1",))


@pytest.mark.parametrize(
    ("members", "up", "quorum"),
    [
        (0, 0, True),
        (1, 1, True),
        (1, 0, False),
        (3, 2, True),
        (3, 1, False),
        (4, 2, False),
        (5, 3, True),
        (5, 2, False),
    ],
)
def test_has_quorum_is_etcds_majority_rule(members: int, up: int, quorum: bool) -> None:
    assert has_quorum(members, up) is quorum


# --- properties over random clusters -----------------------------------------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ClusterView, str]:
    server_count = draw(st.integers(1, 5))
    agent_count = draw(st.integers(0, 4))
    nodes = [
        make_node(
            name,
            server=name.startswith("s"),
            ready=draw(st.booleans()) or index == 0,
            unschedulable=draw(st.booleans()),
        )
        for index, name in enumerate(
            [f"s{i}" for i in range(1, server_count + 1)] + [f"a{i}" for i in range(1, agent_count + 1)]
        )
    ]
    ready = [n.name for n in nodes if n.ready]
    leader = draw(st.sampled_from(ready))
    return cluster(*nodes), leader


def run_to_the_end(view: ClusterView, leader: str, stays_up: frozenset[str] = frozenset()) -> list[object]:
    """Apply each step as a perfect executor would (asked nodes go down, except ``stays_up``)."""
    state = progress(leader=leader, nodes=tuple(n.name for n in view.nodes))
    steps: list[object] = []
    for _ in range(3 * len(view.nodes) + 10):
        step = next_step(view, leader, state)
        steps.append(step)
        if isinstance(step, Cordon):
            state = replace(state, cordon_done=True, cordoned=step.nodes)
            view = cluster(*(replace(n, unschedulable=True) for n in view.nodes))
        elif isinstance(step, PowerOffPeer):
            state = replace(state, requested=(*state.requested, step.node))
            if step.node not in stays_up:
                view = off(view, step.node)
        elif isinstance(step, PowerOffLastMembers):
            # The executor takes the UPS and the leader's own steps right after, without the API.
            state = replace(state, requested=(*state.requested, *step.nodes))
            return [*steps, RequestUpsReturn(), ShutDownLeader()]
        elif isinstance(step, RunHook):
            state = replace(state, hook_done=True)
        elif isinstance(step, RequestUpsReturn):
            state = replace(state, ups="requested")
        elif isinstance(step, ShutDownLeader | WaitFor):
            return steps
    raise AssertionError(f"no end after {len(steps)} steps: {steps[-5:]}")


def asked_in_order(steps: list[object]) -> list[str]:
    names: list[str] = []
    for step in steps:
        if isinstance(step, PowerOffPeer):
            names.append(step.node)
        elif isinstance(step, PowerOffLastMembers):
            names.extend(step.nodes)
    return names


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_every_ready_peer_is_asked_once_workers_first_and_the_leader_last(made: tuple[ClusterView, str]) -> None:
    view, leader = made
    steps = run_to_the_end(view, leader)
    assert steps[0] == Cordon(tuple(sorted(n.name for n in view.nodes if not n.unschedulable)))
    assert steps[-2:] == [RequestUpsReturn(), ShutDownLeader()]
    asked = asked_in_order(steps)
    assert sorted(asked) == sorted(n.name for n in view.nodes if n.ready and n.name != leader)
    kinds = ["cp" if view.node(name).is_control_plane else "worker" for name in asked]
    assert kinds == sorted(kinds, key=lambda k: k == "cp")  # every worker before any control-plane node
    hook = steps.index(RunHook())
    control_plane = [i for i, s in enumerate(steps) if getattr(s, "phase", None) is FullShutdownPhase.CONTROL_PLANE]
    assert all(i > hook for i in control_plane)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_quorum_is_never_broken_before_the_last_members_go_together(made: tuple[ClusterView, str]) -> None:
    view, leader = made
    members = [n for n in view.nodes if n.is_etcd_member]
    up = {n.name for n in members if n.ready}
    steps = run_to_the_end(view, leader)
    last = [s for s in steps if isinstance(s, PowerOffLastMembers)]
    assert len(last) <= 1
    if last:  # only the UPS and the leader follow it
        assert steps[-3:] == [last[0], RequestUpsReturn(), ShutDownLeader()]
    if has_quorum(len(members), len(up)):
        for step in steps:
            if isinstance(step, PowerOffPeer):
                up.discard(step.node)
                assert has_quorum(len(members), len(up)), step  # one at a time, never below quorum


@settings(max_examples=200, deadline=None)
@given(clusters(), st.data())
def test_a_control_plane_node_that_stays_up_is_waited_for_and_no_other_is_asked(
    made: tuple[ClusterView, str], data: st.DataObject
) -> None:
    view, leader = made
    control_plane = [n.name for n in view.nodes if n.is_control_plane and n.ready and n.name != leader]
    if not control_plane:
        return
    stuck = data.draw(st.sampled_from(control_plane))
    steps = run_to_the_end(view, leader, stays_up=frozenset({stuck}))
    asked = asked_in_order(steps)
    if steps[-1] == WaitFor(stuck):
        assert asked[-1] == stuck  # nothing asked after it
    else:  # it went with the last members, whose loss breaks quorum: nobody watches them
        (final,) = [s for s in steps if isinstance(s, PowerOffLastMembers)]
        assert stuck in final.nodes


# --- whether a critical node waits for the leader ---------------------------------------------------------


def contact(**changes: object) -> ClusterContact:
    base = ClusterContact(
        identity="pi3", api_reachable=True, live_leader="pi1", full_shutdown=True, lease_read_since_critical=True
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "critical_for_s", "waits"),
    [
        ({}, 0.0, True),  # a live leader runs the full shutdown: wait to be asked
        ({"api_reachable": False}, 0.0, False),  # no API server: nobody can ask, protect now
        ({"live_leader": None}, 0.0, True),  # the leader died mid-way: the next one resumes from the record
        ({"live_leader": None, "full_shutdown": False}, 0.0, False),  # nobody leads, nothing recorded: now
        ({"live_leader": "pi3"}, 0.0, True),  # this node leads: it goes last
        ({"full_shutdown": False}, 0.0, True),  # the leader may not have polled since the battery fell
        ({"full_shutdown": False}, RECORD_GRACE_S, False),  # ... but only for a moment
        ({"api_reachable": False, "live_leader": "pi3"}, 0.0, False),  # even the leader, cut off, protects itself
        # No leader as of a look older than the low battery (or none yet): it looks again before protecting ...
        ({"live_leader": None, "full_shutdown": False, "lease_read_since_critical": False}, 0.0, True),
        ({"live_leader": None, "full_shutdown": False, "lease_read_since_critical": False}, RECORD_GRACE_S, False),
        ({"api_reachable": False, "live_leader": None, "lease_read_since_critical": False}, 0.0, False),  # no API
    ],
)
def test_a_critical_node_waits_only_for_a_live_leader_it_can_reach(
    changes: dict[str, object], critical_for_s: float, waits: bool
) -> None:
    assert (local_shutdown_deferral(contact(**changes), critical_for_s) is not None) is waits


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_the_dry_run_plan_is_the_order_a_perfect_run_takes(made: tuple[ClusterView, str]) -> None:
    view, leader = made
    assert list(planned_steps(view, leader)) == run_to_the_end(view, leader)
