"""The planner's work budget (issue 17): a bounded search whose cut result is still safe, and the exact packing
that made the few-large-pods family slow.

No timing here (benchmarks/bench_planner.py measures): work is counted in units, so these are exact.
"""

from __future__ import annotations

from piclusterd.core.exact_packing import pack_exactly
from piclusterd.core.planner import Decision, PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.core.work_budget import WorkBudget
from piclusterd.testing.clusters import GIB, few_large_pods_cluster

HARDWARE = PowerConfig(fixed_loads_w={"switch": 4.0})
POWER = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)


# --------------------------------------------------------------------------------------------------------
# The fallback (the safety properties of a cut plan are in test_planner_properties.py)


def test_no_budget_at_all_sheds_nothing_and_says_so() -> None:
    """Zero work units: the search stops before its first node; holding is the safe plan, and the plan
    says the budget cut it (an operator must not read it as "nothing could be shed")."""
    view = few_large_pods_cluster(10, 1, seed=10)
    battery = BatterySpec(capacity_wh=30.0, usable_fraction=0.8, inverter_efficiency=0.85)
    result = plan(view, POWER, battery, PlannerPolicy(), 600.0, hardware=HARDWARE, work_units=0)
    assert result.actions == ()
    assert result.decision is Decision.ESCALATE
    assert result.search_cut
    assert "cut short by its work budget" in result.reason
    assert result.optimum is not None and result.optimum.search_cut


def test_the_default_budget_does_not_cut_a_reference_sized_plan() -> None:
    """Ten nodes with one large pod each: the whole search fits the budget, so the plan is the search's
    own answer, not a fallback."""
    view = few_large_pods_cluster(10, 1, seed=10)
    battery = BatterySpec(capacity_wh=30.0, usable_fraction=0.8, inverter_efficiency=0.85)
    result = plan(view, POWER, battery, PlannerPolicy(), 600.0, hardware=HARDWARE)
    assert result.actions
    assert not result.search_cut and result.optimum is not None and not result.optimum.search_cut


# --------------------------------------------------------------------------------------------------------
# The exact packing (the cause of the slow family)

MIB = 1024**2
# 21 critical pods of three CPU and three memory sizes onto 14 nodes left with room by their own pods: taken
# from the physical optimum's search on few-large-pods-like synthetic_cluster(100, 100). The ten pods of
# 2,074m each need a node of their own, which leaves too little for the rest: no packing exists.
HOPELESS_PODS = (
    [(691, 1422 * MIB, 0)] * 3
    + [(691, 2845 * MIB, 0)] * 2
    + [(691, 4267 * MIB, 0)] * 3
    + [(1382, 1422 * MIB, 0)]
    + [(1382, 2845 * MIB, 0)] * 2
    + [(2074, 1422 * MIB, 0)] * 3
    + [(2074, 2845 * MIB, 0)] * 4
    + [(2074, 4267 * MIB, 0)] * 3
)
HOPELESS_ROOM = [
    (2568, 3861),
    (2568, 3861),
    (3259, 3861),
    (1876, 3861),
    (1876, 3861),
    (2568, 5283),
    (3259, 3861),
    (2568, 6706),
    (2568, 5283),
    (3259, 6706),
    (2568, 6706),
    (1876, 5283),
    (2568, 5283),
    (1876, 6706),
]


def _room(rooms: list[tuple[int, int]]) -> tuple[list[int], list[int], list[int]]:
    return [c for c, _ in rooms], [m * MIB for _, m in rooms], [108] * len(rooms)


def test_a_hopeless_packing_of_large_pods_is_proven_so_at_once() -> None:
    """Before issue 17 the exhaustive search spent its whole allowance on each such question (20,024 steps,
    35 ms here) and gave up, hundreds of times per plan; the counting bounds prove it before placing a pod."""
    budget = WorkBudget(1_000_000)
    where, proven = pack_exactly(HOPELESS_PODS, {0: list(range(14))}, _room(HOPELESS_ROOM), budget, 100_000)
    assert where is None and proven
    assert budget.spent < 1_000
    assert not budget.cut


def test_identical_pods_on_identical_nodes_are_placed_without_trying_their_permutations() -> None:
    """Twelve pods of 1.5 CPU on eight nodes with room for two each but 3.2 CPU: a packing exists; the
    symmetry rules find it in a handful of steps (every node alike, every pod alike)."""
    budget = WorkBudget(1_000_000)
    pods = [(1500, 1 * GIB, 0)] * 12 + [(200, 1 * GIB, 0)] * 4
    free = ([3200] * 8, [4 * GIB] * 8, [108] * 8)
    where, proven = pack_exactly(pods, {0: list(range(8))}, free, budget, 100_000)
    assert where is not None and proven
    assert budget.spent < 2_000
    for i in range(8):
        assert sum(pods[k][0] for k, w in enumerate(where) if w == i) <= 3200


def test_nodes_with_the_same_room_but_other_labels_are_not_taken_for_the_same_home() -> None:
    """Two nodes with room for one pod each, only the first labelled for the small pod: the big pod must
    take the unlabelled one. The old exhaustive search skipped a node whose room equalled one already tried
    for the same pod and missed this packing; equal room counts as the same home only with the same labels."""
    budget = WorkBudget(1_000)
    pods = [(1000, GIB, 0), (500, GIB, 1)]  # kind 0 runs anywhere, kind 1 only on node 0 (disk=ssd)
    free = ([1000, 1000], [GIB, GIB], [1, 1])
    where, proven = pack_exactly(pods, {0: [0, 1], 1: [0]}, free, budget, 1_000)
    assert where == [1, 0] and proven


def test_an_exact_search_past_its_allowance_gives_up_as_no_home_and_marks_the_search_cut() -> None:
    budget = WorkBudget(50)
    where, proven = pack_exactly(HOPELESS_PODS[8:], {0: list(range(14))}, _room(HOPELESS_ROOM), budget, 10)
    assert where is None
    if not proven:
        assert budget.cut


def test_a_large_few_pods_cluster_plans_within_the_budget_with_the_same_plan_as_unbounded_work() -> None:
    """30 nodes with one large pod each (issue 17's 7.8-8.7 s family): the default budget gives the plan
    that ten times the budget gives, so the budget is not what decides it."""
    view = few_large_pods_cluster(30, 1, seed=30)
    battery = BatterySpec(capacity_wh=80.0, usable_fraction=0.8, inverter_efficiency=0.85)
    policy = PlannerPolicy()
    default = plan(view, POWER, battery, policy, 600.0, hardware=HARDWARE)
    roomy = plan(view, POWER, battery, policy, 600.0, hardware=HARDWARE, work_units=6_000_000)
    assert default.nodes_to_shed == roomy.nodes_to_shed
    assert default.projected_runtime_s is not None and roomy.projected_runtime_s is not None
    assert abs(default.projected_runtime_s - roomy.projected_runtime_s) < 1e-6


# --------------------------------------------------------------------------------------------------------
# The per-node step's packers are under the same budget


def test_a_per_node_plan_out_of_work_units_sheds_nothing_and_says_its_search_was_cut() -> None:
    """The per-node step (nodes on their own HAT) packs pods too: with no work units it moves nothing (the
    safe answer) and the plan says its search was cut, as the shared-battery search does."""
    from piclusterd.core.node_batteries import Topology

    from .test_per_node_batteries import HARDWARE as SOLAR_HARDWARE
    from .test_per_node_batteries import NOW, ON_BATTERY, POLICY, SHARED_UPS, batteries, plan_with, solar

    charges = batteries(Topology.PER_NODE, n0=(95.0, True), n1=(30.0, True), n2=(90.0, True))
    assert plan_with(solar(), charges).nodes_to_shed == ("n1",)  # with the default budget, n1's work moves
    cut = plan(
        solar(), ON_BATTERY, SHARED_UPS, POLICY, NOW, hardware=SOLAR_HARDWARE, node_batteries=charges, work_units=0
    )
    assert cut.decision is Decision.PER_NODE
    assert cut.actions == ()
    assert cut.search_cut
    assert "cut short by its work budget" in cut.reason
