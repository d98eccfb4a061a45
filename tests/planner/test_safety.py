"""One decision table per safety rule: each predicate allows, or refuses with its rule and the culprit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from piclusterd.core.cluster_view import (
    ClusterView,
    LabelSelector,
    NodeSelectorTerm,
    Pdb,
    PodPhase,
    Requirement,
    SelectorOperator,
    Taint,
    TaintEffect,
    Toleration,
)
from piclusterd.core.pod_packing import PodPacker, can_run_on, may_give_up
from piclusterd.core.safety import (
    Headcount,
    Refusal,
    SafetyRule,
    check_control_plane_remains,
    check_emptydir,
    check_etcd_quorum,
    check_min_nodes,
    check_not_being_shed,
    check_pdbs,
    check_pods_fit,
    check_power_known,
    check_ready,
    check_resume,
    check_shed,
    check_unreplicated,
    headcount,
)
from piclusterd.testing.clusters import GIB, MIB, make_node, make_pod

THRESHOLD = 1_000_000


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        ("unknown", True),
        ("", True),
        ("ONLINE", True),  # state strings are exact
        ("online", False),
        ("on_battery", False),
        ("low_battery", False),
        ("critical", False),
    ],
)
def test_never_act_on_unknown_power(state: str, refused: bool) -> None:
    refusal = check_power_known(state)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.POWER_UNKNOWN


@pytest.mark.parametrize(
    ("phase", "refused"),
    [
        (None, False),
        ("draining", True),
        ("drained", True),
        ("powered_off", True),
        ("restoring", True),
        ("??", True),
    ],
)
def test_never_shed_a_node_already_being_shed(phase: str | None, refused: bool) -> None:
    node = make_node("pi4", shed_phase=phase)
    refusal = check_not_being_shed(node)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.SHED_IN_PROGRESS and "pi4" in refusal.detail


def test_a_not_ready_node_is_not_shed() -> None:
    assert check_ready(make_node("a")) is None
    refusal = check_ready(make_node("a", ready=False))
    assert refusal is not None and refusal.rule is SafetyRule.NODE_NOT_READY


def servers(n: int, *, down: int = 0, shedding: int = 0) -> ClusterView:
    nodes = [
        make_node(
            f"s{i}",
            server=True,
            ready=i >= down,
            shed_phase="powered_off" if down <= i < down + shedding else None,
        )
        for i in range(n)
    ]
    return ClusterView((*nodes, make_node("agent")))


@pytest.mark.parametrize(
    ("members", "down", "shedding", "off", "refused"),
    [
        (3, 0, 0, (), False),  # 3 up, quorum 2: one may go
        (3, 0, 0, ("s1",), True),  # the plan already sheds one
        (3, 1, 0, (), True),  # one already down counts
        (3, 0, 1, (), True),  # one already shed by us counts
        (5, 0, 0, ("s1",), False),  # 5 members, quorum 3: two may go
        (5, 1, 0, ("s1",), True),
        (1, 0, 0, (), True),  # a single member can never go
        (2, 0, 0, (), True),  # 2 members, quorum 2
    ],
)
def test_never_break_etcd_quorum_counting_members_already_down(
    members: int, down: int, shedding: int, off: tuple[str, ...], refused: bool
) -> None:
    view = servers(members, down=down, shedding=shedding)
    node = view.node(f"s{members - 1}")
    refusal = check_etcd_quorum(node, headcount(view, off))
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.ETCD_QUORUM
        assert f"quorum needs {members // 2 + 1}" in refusal.detail


def test_quorum_does_not_concern_agents() -> None:
    view = servers(3, down=2)
    assert check_etcd_quorum(view.node("agent"), headcount(view)) is None


def test_headcount_with_shed_matches_a_recount() -> None:
    view = servers(5, down=1)
    assert headcount(view).with_shed(view.node("s3")) == headcount(view, {"s3"})


@pytest.mark.parametrize(("up", "refused"), [(1, True), (2, False)])
def test_never_shed_the_last_control_plane_node(up: int, refused: bool) -> None:
    # control plane without etcd (k3s with an external datastore)
    nodes = [make_node(f"cp{i}", labels={"node-role.kubernetes.io/control-plane": "true"}) for i in range(up)]
    view = ClusterView(tuple(nodes))
    refusal = check_control_plane_remains(nodes[0], headcount(view))
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.LAST_CONTROL_PLANE


@pytest.mark.parametrize(("nodes", "min_nodes", "refused"), [(3, 1, False), (3, 2, False), (3, 3, True), (1, 1, True)])
def test_min_nodes_stay_up(nodes: int, min_nodes: int, refused: bool) -> None:
    view = ClusterView(tuple(make_node(f"n{i}") for i in range(nodes)))
    refusal = check_min_nodes(view.nodes[0], headcount(view), min_nodes)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.MIN_NODES


@pytest.mark.parametrize(
    ("owner", "phase", "allowed", "refused"),
    [
        ("ReplicaSet", PodPhase.RUNNING, False, False),
        (None, PodPhase.RUNNING, False, True),
        (None, PodPhase.RUNNING, True, False),
        (None, PodPhase.SUCCEEDED, False, False),  # finished pods are just removed
        ("DaemonSet", PodPhase.RUNNING, False, False),
    ],
)
def test_unreplicated_pods_block_unless_allowed(
    owner: str | None, phase: PodPhase, allowed: bool, refused: bool
) -> None:
    view = ClusterView((make_node("a"),), (make_pod("bare-1", "a", owner_kind=owner, phase=phase),))
    refusal = check_unreplicated(view, view.node("a"), allowed)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.UNREPLICATED_POD and "default/bare-1" in refusal.detail


def test_mirror_pods_never_block() -> None:
    mirror = replace(make_pod("static-1", "a", owner_kind="Node"), is_mirror=True)
    view = ClusterView((make_node("a"),), (mirror,))
    assert check_unreplicated(view, view.node("a"), False) is None
    assert check_pdbs(view, view.node("a")) is None


@pytest.mark.parametrize(("evict_emptydir", "refused"), [(True, False), (False, True)])
def test_emptydir_pods_are_evicted_by_default(evict_emptydir: bool, refused: bool) -> None:
    pod = make_pod("cache-1", "a", volume_kinds=frozenset({"emptyDir"}))
    view = ClusterView((make_node("a"),), (pod,))
    refusal = check_emptydir(view, view.node("a"), evict_emptydir)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.EMPTYDIR_DATA and "default/cache-1" in refusal.detail


def pdb(allowed: int, **kwargs: object) -> Pdb:
    values: dict[str, object] = {
        "namespace": "default",
        "name": "web",
        "selector": LabelSelector((("app", "web"),)),
        "disruptions_allowed": allowed,
        "current_healthy": 1,
        "desired_healthy": 1,
        "generation": 1,
        "observed_generation": 1,
    }
    values.update(kwargs)
    return Pdb(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("budgets", "pod_ready", "phase", "refused", "words"),
    [
        ((), True, PodPhase.RUNNING, False, ""),
        ((pdb(1),), True, PodPhase.RUNNING, False, ""),
        ((pdb(0),), True, PodPhase.RUNNING, True, "allows 0 disruptions"),
        ((pdb(0),), True, PodPhase.PENDING, False, ""),  # the eviction API skips the check
        ((pdb(0, unhealthy_pod_eviction_policy="AlwaysAllow"),), False, PodPhase.RUNNING, False, ""),
        ((pdb(0),), False, PodPhase.RUNNING, False, ""),  # IfHealthyBudget: healthy 1 >= desired 1 > 0
        ((pdb(0, current_healthy=0),), False, PodPhase.RUNNING, True, "allows 0"),
        ((pdb(0, namespace="other"),), True, PodPhase.RUNNING, False, ""),
        ((pdb(1), pdb(1, name="web2")), True, PodPhase.RUNNING, True, "more than one"),
        ((pdb(1, generation=2),), True, PodPhase.RUNNING, True, "older than its spec"),
        ((pdb(0, selector=None),), True, PodPhase.RUNNING, False, ""),  # a null selector matches nothing
        ((pdb(0, selector=LabelSelector()),), True, PodPhase.RUNNING, True, "allows 0"),  # empty: everything
    ],
)
def test_a_pdb_allowing_no_disruption_blocks_the_node(
    budgets: tuple[Pdb, ...], pod_ready: bool, phase: PodPhase, refused: bool, words: str
) -> None:
    view = ClusterView((make_node("a"),), (make_pod("web-1", "a", ready=pod_ready, phase=phase),), budgets)
    refusal = check_pdbs(view, view.node("a"))
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.PDB_BLOCKS and words in refusal.detail and "default/web-1" in refusal.detail


@pytest.mark.parametrize(
    ("node_labels", "taints", "selector", "tolerations", "affinity", "fits"),
    [
        ({}, (), {}, (), None, True),
        ({"disk": "ssd"}, (), {"disk": "ssd"}, (), None, True),
        ({}, (), {"disk": "ssd"}, (), None, False),
        ({}, (Taint("gpu", TaintEffect.NO_SCHEDULE, "yes"),), {}, (), None, False),
        (
            {},
            (Taint("gpu", TaintEffect.NO_SCHEDULE, "yes"),),
            {},
            (Toleration("gpu", "Equal", "yes"),),
            None,
            True,
        ),
        (
            {},
            (Taint("gpu", TaintEffect.NO_SCHEDULE, "yes"),),
            {},
            (Toleration("gpu", "Equal", "no"),),
            None,
            False,
        ),
        ({}, (Taint("gpu", TaintEffect.NO_EXECUTE),), {}, (Toleration(operator="Exists"),), None, True),
        (
            {},
            (Taint("gpu", TaintEffect.NO_EXECUTE),),
            {},
            (Toleration("gpu", "Exists", effect="NoSchedule"),),
            None,
            False,
        ),
        ({}, (Taint("slow", TaintEffect.PREFER_NO_SCHEDULE),), {}, (), None, True),
        (
            {"zone": "b"},
            (),
            {},
            (),
            (NodeSelectorTerm((Requirement("zone", SelectorOperator.IN, ("a", "b")),)),),
            True,
        ),
        (
            {"zone": "c"},
            (),
            {},
            (),
            (NodeSelectorTerm((Requirement("zone", SelectorOperator.IN, ("a", "b")),)),),
            False,
        ),
        (
            {"zone": "c"},
            (),
            {},
            (),
            (NodeSelectorTerm((Requirement("zone", SelectorOperator.NOT_IN, ("a",)),)),),
            True,
        ),
        ({}, (), {}, (), (NodeSelectorTerm((Requirement("zone", SelectorOperator.EXISTS),)),), False),
        ({}, (), {}, (), (NodeSelectorTerm((Requirement("zone", SelectorOperator.DOES_NOT_EXIST),)),), True),
        (
            {"zone": "c"},
            (),
            {},
            (),
            (
                NodeSelectorTerm((Requirement("zone", SelectorOperator.IN, ("a",)),)),
                NodeSelectorTerm((Requirement("zone", SelectorOperator.IN, ("c",)),)),
            ),
            True,  # terms are ORed
        ),
        ({}, (), {}, (), (), False),  # no term matches nothing
    ],
)
def test_scheduling_constraints(
    node_labels: dict[str, str],
    taints: tuple[Taint, ...],
    selector: dict[str, str],
    tolerations: tuple[Toleration, ...],
    affinity: tuple[NodeSelectorTerm, ...] | None,
    fits: bool,
) -> None:
    node = make_node("a", labels=node_labels, taints=taints)
    pod = make_pod("p-1", "b", node_selector=selector, tolerations=tolerations, required_node_affinity=affinity)
    assert can_run_on(pod, node) is fits


def fit_view(free_on_keeper_m: int, *, critical: bool = False, selector: dict[str, str] | None = None) -> ClusterView:
    return ClusterView(
        (make_node("keep", labels={"disk": "hdd"}), make_node("go")),
        (
            make_pod("filler-1", "keep", cpu_m=4000 - free_on_keeper_m),
            make_pod("web-1", "go", cpu_m=1000, critical=critical, node_selector=selector),
        ),
    )


@pytest.mark.parametrize(
    ("free_m", "critical", "allow_pending", "selector", "refused", "words"),
    [
        (1000, False, False, None, False, ""),
        (999, False, False, None, True, "roomiest of the 1 matching nodes that stay on, keep, has 999m"),
        (999, True, False, None, True, "critical pod default/web-1"),
        (999, False, True, None, False, ""),  # non-critical pods may be given up when allowed
        (999, True, True, None, True, "critical pod"),  # critical pods never
        (4000, False, False, {"disk": "ssd"}, True, "matches no node that stays on"),
    ],
)
def test_evicted_pods_must_fit_on_the_nodes_that_stay_on(
    free_m: int,
    critical: bool,
    allow_pending: bool,
    selector: dict[str, str] | None,
    refused: bool,
    words: str,
) -> None:
    view = fit_view(free_m, critical=critical, selector=selector)
    refusal = check_pods_fit(
        view, view.node("go"), priority_threshold=THRESHOLD, allow_pending_noncritical=allow_pending
    )
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.rule is SafetyRule.PODS_DO_NOT_FIT and words in refusal.detail


def test_memory_and_pod_slots_count_too() -> None:
    view = ClusterView(
        (make_node("keep", memory_b=2 * GIB, max_pods=2), make_node("go")),
        (
            make_pod("a-1", "keep", memory_b=1 * GIB),
            make_pod("big-1", "go", memory_b=1 * GIB + MIB),
        ),
    )
    assert check_pods_fit(view, view.node("go"), priority_threshold=THRESHOLD) is not None
    small = ClusterView(view.nodes, (view.pods[0], make_pod("small-1", "go", memory_b=MIB)))
    assert check_pods_fit(small, small.node("go"), priority_threshold=THRESHOLD) is None
    full = ClusterView(view.nodes, (view.pods[0], make_pod("b-1", "keep", memory_b=MIB), small.pods[1]))
    assert check_pods_fit(full, full.node("go"), priority_threshold=THRESHOLD) is not None


def test_cordoned_and_draining_nodes_receive_nothing() -> None:
    view = ClusterView(
        (
            make_node("cordoned", unschedulable=True),
            make_node("draining", shed_phase="draining"),
            make_node("go"),
        ),
        (make_pod("web-1", "go"),),
    )
    refusal = check_pods_fit(view, view.node("go"), priority_threshold=THRESHOLD)
    assert refusal is not None and "matches no node that stays on" in refusal.detail


def test_pods_of_nodes_already_leaving_take_their_room_first() -> None:
    view = ClusterView(
        (make_node("keep"), make_node("draining", shed_phase="draining"), make_node("go")),
        (make_pod("old-1", "draining", cpu_m=3500), make_pod("web-1", "go", cpu_m=1000)),
    )
    refusal = check_pods_fit(view, view.node("go"), priority_threshold=THRESHOLD)
    assert refusal is not None and "has 500m" in refusal.detail


def test_critical_pods_are_placed_before_bigger_ordinary_ones() -> None:
    view = ClusterView(
        (make_node("keep"), make_node("go")),
        (
            make_pod("filler-1", "keep", cpu_m=2500),
            make_pod("batch-1", "go", cpu_m=1000),
            make_pod("db-1", "go", cpu_m=900, critical=True),
        ),
    )
    packer = PodPacker(view, ["keep"], priority_threshold=THRESHOLD, allow_pending_noncritical=True)
    moves = packer.shed("go")
    assert not isinstance(moves, Refusal)
    assert [(m.pod, m.to_node) for m in moves] == [("default/db-1", "keep"), ("default/batch-1", None)]


def test_non_critical_pods_get_the_room_left_higher_priority_first() -> None:
    """Issue 16: a non-critical pod that may be given up still gets a home when room is left, and the higher
    PriorityClass gets it first, as the scheduler's preemption would; the lower one is given up (Pending)."""
    view = ClusterView(
        (make_node("keep"), make_node("go")),
        (
            make_pod("filler-1", "keep", cpu_m=2500),
            make_pod("reports-1", "go", cpu_m=1000, priority=10),
            make_pod("wiki-1", "go", cpu_m=1000, priority=500),
        ),
    )
    packer = PodPacker(view, ["keep"], priority_threshold=THRESHOLD, allow_pending_noncritical=True)
    moves = packer.shed("go")
    assert not isinstance(moves, Refusal)
    assert sorted((m.pod, m.to_node) for m in moves) == [("default/reports-1", None), ("default/wiki-1", "keep")]


def test_a_critical_pod_takes_back_the_room_a_non_critical_one_was_given() -> None:
    """Critical pods are placed first across the whole plan: the room an earlier node's non-critical pod got
    goes to a later node's critical pod, and the non-critical one is given up."""
    view = ClusterView(
        (make_node("keep"), make_node("go1"), make_node("go2")),
        (
            make_pod("filler-1", "keep", cpu_m=2500),
            make_pod("reports-1", "go1", cpu_m=1200),
            make_pod("records-1", "go2", cpu_m=1200, critical=True),
        ),
    )
    packer = PodPacker(view, ["keep"], priority_threshold=THRESHOLD, allow_pending_noncritical=True)
    first = packer.shed("go1")
    assert not isinstance(first, Refusal) and [(m.pod, m.to_node) for m in first] == [("default/reports-1", "keep")]
    second = packer.shed("go2")
    assert not isinstance(second, Refusal)
    assert sorted((m.pod, m.from_node, m.to_node) for m in second) == [
        ("default/records-1", "go2", "keep"),
        ("default/reports-1", "keep", None),
    ]


@pytest.mark.parametrize("critical", [False, True])
@pytest.mark.parametrize("allowed", [False, True])
def test_only_a_non_critical_pod_may_be_given_up_and_only_when_allowed(critical: bool, allowed: bool) -> None:
    may = allowed and not critical
    pod = make_pod("p-1", "go", critical=critical)
    assert may_give_up(pod, priority_threshold=THRESHOLD, allow_pending_noncritical=allowed) is may


def test_a_refused_shed_leaves_the_packer_unchanged() -> None:
    view = ClusterView(
        (make_node("keep"), make_node("go1"), make_node("go2")),
        (
            make_pod("a-1", "go1", cpu_m=3000),
            make_pod("b-1", "go2", cpu_m=2000),
            make_pod("c-1", "go2", cpu_m=1000),
        ),
    )
    packer = PodPacker(view, ["keep", "go1"], priority_threshold=THRESHOLD)
    first = packer.shed("go2")  # 3000m onto keep
    assert not isinstance(first, Refusal)
    refusal = packer.shed("go1")  # 3000m more: no room
    assert isinstance(refusal, Refusal) and refusal.rule is SafetyRule.PODS_DO_NOT_FIT
    assert packer.load_m("go1") == 3000 and packer.load_m("keep") == 3000


def test_check_shed_runs_every_rule_first_refusal_wins() -> None:
    view = ClusterView(
        (make_node("s1", server=True), make_node("s2", server=True), make_node("a")),
        (make_pod("bare-1", "a", owner_kind=None, cpu_m=5000),),
    )
    common = {"min_nodes": 1, "evict_emptydir": True, "priority_threshold": THRESHOLD}
    first = check_shed(view, view.node("a"), allow_unreplicated=False, **common)  # type: ignore[arg-type]
    assert first is not None and first.rule is SafetyRule.UNREPLICATED_POD
    second = check_shed(view, view.node("a"), allow_unreplicated=True, **common)  # type: ignore[arg-type]
    assert second is not None and second.rule is SafetyRule.PODS_DO_NOT_FIT
    quorum = check_shed(view, view.node("s1"), allow_unreplicated=True, **common)  # type: ignore[arg-type]
    assert quorum is not None and quorum.rule is SafetyRule.ETCD_QUORUM


def test_headcount_counts() -> None:
    view = servers(3, down=1)
    assert headcount(view) == Headcount(up=3, control_plane_up=2, control_plane_total=3, etcd_up=2, etcd_total=3)


# --- check_resume: a recorded shed is finished only if the rules allow it now ---------------------------------


def _resume(view: ClusterView, name: str) -> Refusal | None:
    return check_resume(view, name, min_nodes=1, allow_unreplicated=False, evict_emptydir=True, priority_threshold=1)


def test_resume_refuses_a_second_etcd_member_whatever_the_records_say() -> None:
    servers = [make_node(n, server=True, shed_phase="draining" if n != "s1" else None) for n in ("s1", "s2", "s3")]
    view = ClusterView(tuple(servers))
    for name in ("s2", "s3"):
        refusal = _resume(view, name)
        assert refusal is not None and refusal.rule is SafetyRule.ETCD_QUORUM


def test_resume_allows_the_one_recorded_shed_the_rules_allow() -> None:
    nodes = [make_node("s1", server=True), make_node("s2", server=True), make_node("s3", server=True)]
    view = ClusterView((*nodes, make_node("a1", shed_phase="draining")))
    assert _resume(view, "a1") is None
