"""Per-node batteries in the planner: decisions by hand, the leader's view of the records, and properties.

A node that lives on its own battery (HAT, on battery) and would die before the target has its work moved off
while a safe move exists; a shed node keeps its charge and comes back to relieve a low one (rotation).
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ANNOTATION_SHED as SHED_ANNOTATION
from piclusterd.core.cluster_view import ClusterView, Node, PodPhase
from piclusterd.core.node_batteries import NodeBatteries, NodeBattery, Topology, read_node_batteries
from piclusterd.core.node_records import ShedPhase, ShedRecord, render_shed_record, rfc3339
from piclusterd.core.planner import Decision, GiveUpNoncritical, Plan, PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation, SupplyKind
from piclusterd.core.power_record import POWER_ANNOTATION, BatteryRecord, PowerRecord, render_power_record
from piclusterd.core.power_state import PowerState
from piclusterd.core.reading import UpsFlag
from piclusterd.core.safety import SafetyRule, check_shed, headcount, is_up
from piclusterd.testing.clusters import GIB, MIB, make_node, make_pod

from .test_planner_properties import PROPERTY_SETTINGS, THRESHOLD, clusters

HOUR = 3600.0
NOW = 10_000.0
WALL = 1_790_000_000.0
HARDWARE = PowerConfig(fixed_loads_w={"switch": 4.0})
# solar-3's HAT: 2 x 18650 = 21.6 Wh, shutdown at 20 % or 5 min; 4 h target.
HAT = BatterySpec(21.6, 0.8, SupplyKind.DC, converter_efficiency=0.9, shutdown_charge_pct=20.0, shutdown_runtime_s=300)
SHARED_UPS = BatterySpec(256.0, 0.9, SupplyKind.DC)
POLICY = PlannerPolicy(target_runtime_s=4 * HOUR, critical_priority_threshold=THRESHOLD)
ON_BATTERY = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=90.0)


def solar(*, n2_phase: str | None = None, big_pods: bool = False) -> ClusterView:
    """solar-3's shape: one k3s server, two agents; a critical app on n1."""
    nodes = (
        make_node("n0", server=True, memory_b=4 * GIB),
        make_node("n1", memory_b=4 * GIB),
        make_node("n2", memory_b=4 * GIB, shed_phase=n2_phase),
    )
    size = 3 * GIB if big_pods else GIB // 2
    pods = (
        make_pod("emr-1", "n1", cpu_m=1000, memory_b=size, critical=True),
        make_pod("fill-0", "n0", cpu_m=500, memory_b=size),
    )
    return ClusterView(nodes, pods)


def batteries(topology: Topology, **charges: tuple[float | None, bool]) -> NodeBatteries:
    return NodeBatteries(
        topology,
        HAT,
        {
            name: NodeBattery(name, charge, on_battery, "" if charge is not None else "no record")
            for name, (charge, on_battery) in charges.items()
        },
    )


def plan_with(view: ClusterView, nodes: NodeBatteries | None, policy: PlannerPolicy = POLICY) -> Plan:
    return plan(view, ON_BATTERY, SHARED_UPS, policy, NOW, hardware=HARDWARE, node_batteries=nodes)


def test_a_node_whose_own_battery_dies_before_the_target_has_its_work_moved_off() -> None:
    # n1 at 30 %: (30 - 20) % of 17.28 Wh = 1.7 Wh at ~4 W / 0.9 lasts about 25 min, far short of 4 h.
    result = plan_with(solar(), batteries(Topology.PER_NODE, n0=(95.0, True), n1=(30.0, True), n2=(90.0, True)))
    assert result.decision is Decision.PER_NODE
    assert result.nodes_to_shed == ("n1",)
    assert "own battery (30 %)" in result.actions[0].reason
    assert {p.pod: p.to_node for p in result.placements}["default/emr-1"] in ("n0", "n2")
    assert result.runtime_without_shedding_s is not None and result.runtime_without_shedding_s < HOUR
    assert result.topology == "per-node"


def test_pods_go_to_the_node_whose_battery_lasts_longest() -> None:
    result = plan_with(solar(), batteries(Topology.PER_NODE, n0=(60.0, True), n1=(25.0, True), n2=(100.0, True)))
    assert [(p.pod, p.to_node) for p in result.placements] == [("default/emr-1", "n2")]


def test_every_battery_lasting_holds_on_a_per_node_cluster() -> None:
    result = plan_with(solar(), batteries(Topology.PER_NODE, n0=(100.0, False), n1=(100.0, False), n2=(100.0, False)))
    assert result.decision is Decision.PER_NODE_OK and not result.actions and not result.power_on


def test_rotation_brings_a_charged_shed_node_back_before_the_low_one_goes() -> None:
    # n1's 3 Gi critical pod fits nowhere while n2 is shed (n0 holds 3 Gi already): no safe move now.
    view = solar(n2_phase="powered_off", big_pods=True)
    result = plan_with(view, batteries(Topology.PER_NODE, n0=(95.0, True), n1=(25.0, True), n2=(90.0, False)))
    assert result.decision is Decision.PER_NODE
    assert not result.actions  # nothing safe to shed yet
    assert [(p.node, p.relieves) for p in result.power_on] == [("n2", "n1")]
    assert "rotation: n2 kept 90 %" in result.power_on[0].reason
    # n0 (95 %) falls short of 4 h too, but it is the only etcd member.
    assert [(r.node, r.rule) for r in result.refused] == [
        ("n1", SafetyRule.PODS_DO_NOT_FIT),
        ("n0", SafetyRule.ETCD_QUORUM),
    ]
    refused = result.refused[0]
    # The detail says what the rotation is for; the leader carries it out (tests/kube/test_rotation_cycle.py).
    assert "rotation: power n2 on (90 % kept while shed), then n1 can go" in refused.detail


def test_no_rotation_to_a_node_with_barely_more_charge() -> None:
    view = solar(n2_phase="powered_off", big_pods=True)
    result = plan_with(view, batteries(Topology.PER_NODE, n0=(95.0, False), n1=(25.0, True), n2=(40.0, False)))
    assert not result.power_on and [r.node for r in result.refused] == ["n1"]


def test_no_rotation_for_a_node_no_returning_node_can_free() -> None:
    # n0 is the only etcd member: bringing the agent n2 back cannot let it go, it would only be shed again.
    view = solar(n2_phase="powered_off")
    result = plan_with(view, batteries(Topology.PER_NODE, n0=(30.0, True), n1=(100.0, False), n2=(95.0, False)))
    assert not result.power_on
    assert [(r.node, r.rule) for r in result.refused] == [("n0", SafetyRule.ETCD_QUORUM)]


def test_no_rotation_when_the_low_node_can_go_anyway() -> None:
    # n1's pod fits on n0: n1 goes now, and n2 stays shed with its charge for later.
    view = solar(n2_phase="powered_off")
    result = plan_with(view, batteries(Topology.PER_NODE, n0=(100.0, False), n1=(25.0, True), n2=(95.0, False)))
    assert result.nodes_to_shed == ("n1",) and not result.power_on


def test_with_no_own_battery_known_the_runtimes_are_unknown_not_infinite() -> None:
    # An infinite figure would reach the journal (round(inf) raises) and JSON (not a number).
    result = plan_with(solar(), batteries(Topology.PER_NODE, n0=(None, True), n1=(None, True), n2=(None, True)))
    assert result.decision is Decision.PER_NODE_OK and not result.actions
    assert result.runtime_without_shedding_s is None and result.projected_runtime_s is None
    assert {r.rule for r in result.refused} == {SafetyRule.POWER_UNKNOWN}


def test_an_unknown_own_battery_is_never_acted_on_and_said_so() -> None:
    result = plan_with(solar(), batteries(Topology.PER_NODE, n0=(95.0, False), n1=(None, True), n2=(90.0, True)))
    assert not result.actions
    assert [(r.node, r.rule) for r in result.refused] == [("n1", SafetyRule.POWER_UNKNOWN)]


def test_mixed_with_every_node_on_the_shared_battery_plans_as_shared() -> None:
    # The shared battery feeds every node (HATs not discharging): the shared planner decides.
    nodes = batteries(Topology.MIXED, n0=(100.0, False), n1=(100.0, False), n2=(100.0, False))
    mixed = plan_with(solar(), nodes)
    shared = plan_with(solar(), None)
    assert replace(mixed, topology="shared") == shared and mixed.topology == "mixed"


def test_mixed_moves_work_off_a_node_living_on_its_hat() -> None:
    nodes = batteries(Topology.MIXED, n0=(100.0, False), n1=(35.0, True), n2=(100.0, False))
    assert plan_with(solar(), nodes).nodes_to_shed == ("n1",)


def test_holds_state_the_topology_too() -> None:
    # plan.decided's TOPOLOGY during the grace period, on mains or with unknown power: per-node, not "shared".
    nodes = batteries(Topology.PER_NODE, n0=(95.0, True), n1=(30.0, True), n2=(90.0, True))
    situations = (
        PowerSituation("on_battery", on_battery_since=NOW - 1.0, charge_pct=90.0),
        PowerSituation("online", on_battery_since=None, charge_pct=100.0),
        PowerSituation("unknown", on_battery_since=None, charge_pct=None),
    )
    for situation in situations:
        held = plan(solar(), situation, SHARED_UPS, POLICY, NOW, hardware=HARDWARE, node_batteries=nodes)
        assert held.decision.value.startswith("hold") and held.topology == "per-node", held


def test_mixed_with_nodes_on_their_hats_says_which_own_battery_is_unknown() -> None:
    # The shared battery is gone (n1 lives on its HAT): n2's HAT, silent, may be just as short. Never acted
    # on, and said, as on a per-node cluster.
    nodes = batteries(Topology.MIXED, n0=(100.0, False), n1=(35.0, True), n2=(None, False))
    result = plan_with(solar(), nodes)
    assert result.nodes_to_shed == ("n1",)
    assert [(r.node, r.rule) for r in result.refused] == [("n2", SafetyRule.POWER_UNKNOWN)]


# --- the leader's view of the records ---------------------------------------------------------------------


def record(
    charge: float | None,
    *,
    age_s: float = 0.0,
    status: frozenset[UpsFlag] = frozenset({UpsFlag.OB}),
    shared: bool = False,
) -> str:
    at = rfc3339(WALL - age_s)
    parts = [BatteryRecord("hat:x728@i2c-1:0x36", status, charge, 1800.0, at)]
    if shared:
        parts.insert(0, BatteryRecord("nut:ups@10.0.0.1", frozenset({UpsFlag.OL}), 100.0, 9000.0, at))
    return render_power_record(PowerRecord(PowerState.ON_BATTERY, charge, 1800.0, "nut+hat", tuple(parts), at))


def annotated(node: Node, raw: str | None) -> Node:
    return node if raw is None else replace(node, annotations={**node.annotations, POWER_ANNOTATION: raw})


def test_stale_records_are_unknown_but_a_shed_node_keeps_its_charge() -> None:
    view = ClusterView(
        (
            annotated(make_node("fresh"), record(55.0, age_s=30)),
            annotated(make_node("stale"), record(55.0, age_s=600)),
            annotated(make_node("shed", shed_phase="powered_off"), record(80.0, age_s=7200)),
            make_node("silent"),
            annotated(make_node("garbled"), "{not json"),
        ),
        (),
    )
    found = read_node_batteries(view, WALL, HAT, max_age_s=180.0)
    assert found.of("fresh") == NodeBattery("fresh", 55.0, True)
    assert not found.of("stale").known and "600 s old" in found.of("stale").why
    assert found.of("shed").charge_pct == 80.0 and found.of("shed").kept_from_shed and not found.of("shed").on_battery
    assert not found.of("silent").known and not found.of("garbled").known
    assert found.topology is Topology.PER_NODE and "inferred" in found.stated


def test_a_hat_reading_gone_silent_is_unknown_though_its_node_keeps_publishing() -> None:
    # The HAT stopped answering an hour ago: the node still publishes fresh records carrying its last reading
    # (80 %, on battery). That charge is not the battery's any more: unknown, never acted on.
    at = rfc3339(WALL - 10)
    old = BatteryRecord("hat:x728@i2c-1:0x36", frozenset({UpsFlag.OB}), 80.0, 1800.0, rfc3339(WALL - 3600))
    silent = render_power_record(PowerRecord(PowerState.CRITICAL, 80.0, 1800.0, "hat", (old,), at))
    bad = replace(old, read_at="an hour ago")
    garbled = render_power_record(PowerRecord(PowerState.CRITICAL, 80.0, 1800.0, "hat", (bad,), at))
    view = ClusterView((annotated(make_node("a"), silent), annotated(make_node("b"), garbled)), ())
    found = read_node_batteries(view, WALL, HAT, max_age_s=180.0)
    assert not found.of("a").known and "3600 s old" in found.of("a").why
    assert not found.of("b").known and "not RFC 3339" in found.of("b").why
    result = plan_with(solar(), replace(found, batteries={"n1": replace(found.of("a"), node="n1")}))
    assert result.nodes_to_shed == ()


def test_one_node_with_a_hat_among_nodes_on_the_shared_ups_infers_mixed_not_per_node() -> None:
    # A HAT added to one Pi of a cluster on a shared UPS: inferring per-node dropped the shared battery's
    # planning for the other nodes (each "unknown own battery") and shed nothing while the UPS drained.
    at = rfc3339(WALL)
    ups = BatteryRecord("nut:ups@10.0.0.1", frozenset({UpsFlag.OB}), 60.0, 1200.0, at)
    on_ups = render_power_record(PowerRecord(PowerState.ON_BATTERY, 60.0, 1200.0, "nut", (ups,), at))
    hat_only = record(90.0, status=frozenset({UpsFlag.OL}))
    view = ClusterView(
        (
            annotated(make_node("n0", server=True, memory_b=4 * GIB), on_ups),
            annotated(make_node("n1", memory_b=4 * GIB), hat_only),
            annotated(make_node("n2", memory_b=4 * GIB), on_ups),
        ),
        (),
    )
    found = read_node_batteries(view, WALL, HAT, max_age_s=180.0)
    assert found.topology is Topology.MIXED and "others only a shared one" in found.stated
    # ...so the shared battery still decides, as it did before the HAT was added.
    low = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=20.0)
    with_hat = plan(view, low, SHARED_UPS, POLICY, NOW, hardware=HARDWARE, node_batteries=found)
    without = plan(view, low, SHARED_UPS, POLICY, NOW, hardware=HARDWARE)
    assert with_hat.nodes_to_shed == without.nodes_to_shed == ("n1", "n2")


def test_a_record_dated_ahead_of_the_leaders_clock_is_not_trusted() -> None:
    # A node whose clock runs an hour ahead: its last record would otherwise look fresh for an hour more.
    view = ClusterView(
        (
            annotated(make_node("ahead"), record(30.0, age_s=-3600)),
            annotated(make_node("slightly"), record(30.0, age_s=-20)),
        ),
        (),
    )
    found = read_node_batteries(view, WALL, HAT, max_age_s=180.0)
    assert not found.of("ahead").known and "ahead of this node's clock" in found.of("ahead").why
    assert found.of("slightly") == NodeBattery("slightly", 30.0, True)


def test_topology_is_inferred_from_the_records_or_taken_from_the_configuration() -> None:
    mixed = ClusterView((annotated(make_node("a"), record(90.0, shared=True)),), ())
    assert read_node_batteries(mixed, WALL, HAT, max_age_s=180).topology is Topology.MIXED
    nothing = ClusterView((make_node("a"),), ())
    assert read_node_batteries(nothing, WALL, HAT, max_age_s=180).topology is Topology.SHARED
    configured = read_node_batteries(nothing, WALL, HAT, max_age_s=180, topology=Topology.PER_NODE)
    assert configured.topology is Topology.PER_NODE and "configured" in configured.stated


# --- properties ----------------------------------------------------------------------------------------


@st.composite
def per_node_cases(draw: st.DrawFn) -> tuple[ClusterView, NodeBatteries, PlannerPolicy]:
    view = draw(clusters(max_nodes=5))
    charges = {
        n.name: NodeBattery(
            n.name,
            draw(st.sampled_from([None, 5.0, 22.0, 30.0, 45.0, 70.0, 100.0])),
            draw(st.booleans()) and n.shed_state.value != "powered_off",
        )
        for n in view.nodes
    }
    charges = {k: v if v.known else replace(v, why="no record") for k, v in charges.items()}
    topology = draw(st.sampled_from([Topology.PER_NODE, Topology.MIXED]))
    policy = PlannerPolicy(
        target_runtime_s=draw(st.sampled_from([1, 2, 4, 8])) * HOUR,
        min_nodes=draw(st.integers(1, 2)),
        critical_priority_threshold=THRESHOLD,
    )
    return view, NodeBatteries(topology, HAT, charges), policy


def own_runtime_s(view: ClusterView, nodes: NodeBatteries, name: str) -> float:
    """Independent of the planner: the node's draw with its pods as they are, on its own battery."""
    battery = nodes.of(name)
    if battery.charge_pct is None or not battery.on_battery:
        return float("inf")
    node = view.node(name)
    busy = sum(p.cpu_load_m for p in view.pods_on(name) if not p.is_finished)
    profile = HARDWARE.profile(node)
    return HAT.runtime_s(battery.charge_pct, profile.running_w(min(1.0, busy / node.allocatable_cpu_m)))


def safe_alone(view: ClusterView, node: Node, policy: PlannerPolicy) -> bool:
    return (
        check_shed(
            view,
            node,
            min_nodes=policy.min_nodes,
            allow_unreplicated=policy.allow_unreplicated,
            evict_emptydir=policy.evict_emptydir,
            priority_threshold=policy.critical_priority_threshold,
            allow_pending_noncritical=policy.may_give_up_noncritical,
        )
        is None
    )


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_no_node_is_left_on_until_its_own_battery_dies_while_a_safe_move_exists(
    case: tuple[ClusterView, NodeBatteries, PlannerPolicy],
) -> None:
    view, nodes, policy = case
    dying = [
        n
        for n in view.nodes
        if is_up(n) and n.shed_state.value == "none" and own_runtime_s(view, nodes, n.name) < policy.target_runtime_s
    ]
    result = plan_with(view, nodes, policy)
    safe = [n for n in dying if safe_alone(view, n, policy)]
    if safe:
        assert result.decision is Decision.PER_NODE
        assert result.actions, f"{[n.name for n in safe]} could go safely but the plan sheds nothing: {result.refused}"
    if len(dying) == 1 and safe:
        assert result.nodes_to_shed == (dying[0].name,)
    # Only nodes whose own battery is short are shed by the per-node step, and never one with unknown data.
    if result.decision is Decision.PER_NODE:
        assert set(result.nodes_to_shed) <= {n.name for n in dying}


def test_a_draining_nodes_pods_keep_the_room_they_fit_in_and_a_short_node_is_not_shed_into_it() -> None:
    """The example Hypothesis found for the property above. n4 is draining: its three pods fit on n0 and n1
    together only one way (n1 lacks the CPU for both big ones, so one goes to n0, which then has 0.14Gi free).
    n3, dying on its own battery, has a pod pinned to ssd nodes: only n0 matches, and it needs 0.50Gi. Shedding
    n3 would leave one of these pods Pending. The safety check placed n4's pods first-fit, left app0-41 Pending
    though it had a home, gave its room to n3's pod and allowed the shed."""
    ram = 3_980_394_496  # a Pi 4B 4 GB's allocatable memory
    exporters = tuple(
        make_pod(f"exporter-{i}", f"n{i}", cpu_m=50, memory_b=64 * MIB, owner_kind="DaemonSet") for i in range(5)
    )
    view = ClusterView(
        (
            make_node("n0", memory_b=ram, labels={"disk": "ssd"}),
            make_node("n1", memory_b=ram),
            make_node("n2", memory_b=ram, labels={"disk": "ssd"}, ready=False, unschedulable=True),
            make_node("n3", memory_b=ram, labels={"disk": "ssd"}, unschedulable=True),
            make_node(
                "n4", memory_b=ram, labels={"disk": "ssd"}, ready=False, unschedulable=True, shed_phase="draining"
            ),
        ),
        (
            *exporters,
            make_pod("app0-00", "n0", cpu_m=100, memory_b=GIB // 2),
            make_pod("app0-01", "n0", cpu_m=100, memory_b=2 * GIB),
            make_pod("app0-10", "n1", cpu_m=100, memory_b=GIB // 8),
            make_pod("app0-11", "n1", cpu_m=500, memory_b=GIB // 8),
            make_pod("app0-12", "n1", cpu_m=1000, memory_b=GIB // 8),
            make_pod("app0-30", "n3", cpu_m=100, memory_b=GIB // 2, node_selector={"disk": "ssd"}),
            make_pod("app0-40", "n4", cpu_m=100, memory_b=GIB // 2, critical=True),
            make_pod("app0-41", "n4", cpu_m=1000, memory_b=GIB),
            make_pod("app0-42", "n4", cpu_m=1500, memory_b=GIB),
        ),
    )
    # Every pod keeps a home (give_up_noncritical = "never"): the room is what this test is about.
    policy = PlannerPolicy(
        target_runtime_s=HOUR,
        min_nodes=1,
        critical_priority_threshold=THRESHOLD,
        give_up_noncritical=GiveUpNoncritical.NEVER,
    )
    refusal = check_shed(
        view, view.node("n3"), min_nodes=1, allow_unreplicated=False, evict_emptydir=True, priority_threshold=THRESHOLD
    )
    assert refusal is not None and refusal.rule is SafetyRule.PODS_DO_NOT_FIT, refusal
    assert "default/app0-30" in refusal.detail
    # The planner agrees: n3 stays on, and says why.
    nodes = batteries(
        Topology.PER_NODE, n0=(None, False), n1=(5.0, False), n2=(None, False), n3=(5.0, True), n4=(None, False)
    )
    result = plan_with(view, nodes, policy)
    assert result.decision is Decision.PER_NODE and not result.actions
    assert ("n3", SafetyRule.PODS_DO_NOT_FIT) in [(r.node, r.rule) for r in result.refused]


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_rotation_and_per_node_shedding_never_break_the_safety_rules(
    case: tuple[ClusterView, NodeBatteries, PlannerPolicy],
) -> None:
    view, nodes, policy = case
    result = plan_with(view, nodes, policy)
    if result.decision is not Decision.PER_NODE:
        return
    # Brought back: only nodes piclusterd shed, with known charge, more than the node they relieve, and only
    # for a node that cannot go without it (no churn).
    refused_rules = {r.node: r.rule for r in result.refused}
    for power_on in result.power_on:
        assert power_on.relieves in refused_rules and power_on.relieves not in result.nodes_to_shed
        assert view.node(power_on.node).shed_state.value == "powered_off"
        kept, low = nodes.of(power_on.node).charge_pct, nodes.of(power_on.relieves).charge_pct
        assert kept is not None and low is not None and kept >= low + 20.0
    # Every shed, in order, passes every rule with the earlier ones done (quorum, control plane, min_nodes,
    # PDBs, drain filters, critical pods fit on the nodes that stay on).
    off: list[str] = []
    for action in result.actions:
        refusal = check_shed(
            view,
            view.node(action.node),
            off,
            min_nodes=policy.min_nodes,
            allow_unreplicated=policy.allow_unreplicated,
            evict_emptydir=policy.evict_emptydir,
            priority_threshold=policy.critical_priority_threshold,
            allow_pending_noncritical=policy.may_give_up_noncritical,
        )
        assert refusal is None, f"{action.node}: {refusal}"
        off.append(action.node)
    assert headcount(view, off).up >= policy.min_nodes or not result.actions


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_an_unchanged_observation_gives_the_same_plan(case: tuple[ClusterView, NodeBatteries, PlannerPolicy]) -> None:
    view, nodes, policy = case
    first = plan_with(view, nodes, policy)
    assert first == plan_with(view, nodes, policy)
    # Figures go to the journal and JSON: a number or None, never infinite.
    for figure in (first.projected_runtime_s, first.runtime_without_shedding_s):
        assert figure is None or math.isfinite(figure)


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_shared_topology_plans_exactly_as_before(case: tuple[ClusterView, NodeBatteries, PlannerPolicy]) -> None:
    view, nodes, policy = case
    assert plan_with(view, replace(nodes, topology=Topology.SHARED), policy) == plan_with(view, None, policy)


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_mixed_with_no_node_on_its_own_battery_is_the_shared_plan(
    case: tuple[ClusterView, NodeBatteries, PlannerPolicy],
) -> None:
    view, nodes, policy = case
    fed = {name: replace(b, on_battery=False) for name, b in nodes.batteries.items()}
    mixed = plan_with(view, NodeBatteries(Topology.MIXED, HAT, fed), policy)
    assert replace(mixed, topology="shared") == plan_with(view, None, policy)


def test_a_record_time_that_is_not_rfc3339_or_a_hat_without_charge_is_unknown() -> None:
    at = rfc3339(WALL)
    no_charge = PowerRecord(
        PowerState.ON_BATTERY,
        None,
        None,
        "hat",
        (BatteryRecord("hat:x728@i2c-1:0x36", frozenset({UpsFlag.OB}), None, None, at),),
        at,
    )
    bad_time = replace(no_charge, written_at="yesterday")
    view = ClusterView(
        (
            annotated(make_node("a"), render_power_record(no_charge)),
            annotated(make_node("b"), render_power_record(bad_time)),
        ),
        (),
    )
    found = read_node_batteries(view, WALL, HAT, max_age_s=180)
    assert "reports no charge" in found.of("a").why and "not RFC 3339" in found.of("b").why
    assert not found.of("nobody").known  # a node the view does not list


def test_per_node_without_a_hat_source_takes_the_single_battery_and_mixed_does_not() -> None:
    at = rfc3339(WALL)
    ups = BatteryRecord("nut:ups@localhost", frozenset({UpsFlag.OB}), 64.0, 1200.0, at)
    raw = render_power_record(PowerRecord(PowerState.ON_BATTERY, 64.0, 1200.0, "nut", (ups,), at))
    view = ClusterView((annotated(make_node("a"), raw),), ())
    per_node = read_node_batteries(view, WALL, HAT, max_age_s=180, topology=Topology.PER_NODE)
    assert per_node.of("a") == NodeBattery("a", 64.0, True)
    # Inferred, a node publishing only a shared UPS has no battery of its own: the cluster is shared.
    assert read_node_batteries(view, WALL, HAT, max_age_s=180).topology is Topology.SHARED
    mixed = read_node_batteries(view, WALL, HAT, max_age_s=180, topology=Topology.MIXED)
    assert not mixed.of("a").known and "no battery of its own" in mixed.of("a").why


def test_pods_go_to_a_node_whose_battery_is_known_before_one_whose_is_not() -> None:
    # n0 has no record (unknown): n1's pod goes to n2 (known, lasting) though n0 sorts first by name.
    nodes = batteries(Topology.PER_NODE, n0=(None, True), n1=(25.0, True), n2=(60.0, True))
    result = plan_with(solar(), nodes, replace(POLICY, target_runtime_s=HOUR))
    assert [(p.pod, p.to_node) for p in result.placements] == [("default/emr-1", "n2")]


def carried_out(view: ClusterView, result: Plan) -> ClusterView:
    """The cluster once the plan's sheds are done: nodes powered off (their record says so), pods where the
    plan placed them."""
    off = set(result.nodes_to_shed)
    record = render_shed_record(ShedRecord(ShedPhase.POWERED_OFF, "leader", "test", "2026-11-24T02:00:00Z", False))
    nodes = tuple(
        replace(n, annotations={**n.annotations, SHED_ANNOTATION: record}, ready=False, unschedulable=True)
        if n.name in off
        else n
        for n in view.nodes
    )
    homes = {p.pod: p.to_node for p in result.placements}
    pods = tuple(
        replace(p, node=homes[p.key], phase=PodPhase.RUNNING if homes[p.key] else PodPhase.PENDING)
        if p.key in homes
        else p
        for p in view.pods
        if not (p.node in off and p.is_daemonset)
    )
    return ClusterView(nodes, pods, view.pdbs)


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_planning_until_nothing_changes_leaves_no_short_node_on_that_could_go(
    case: tuple[ClusterView, NodeBatteries, PlannerPolicy],
) -> None:
    """Carry out per-node plans until the leader has nothing more to do: then every node still on whose own
    battery dies before the target is one the safety rules keep on."""
    view, nodes, policy = case
    for _ in range(len(view.nodes) + 1):
        result = plan_with(view, nodes, policy)
        if result.decision is not Decision.PER_NODE or not result.actions:
            break
        view = carried_out(view, result)
    else:
        raise AssertionError("the plans never settled")
    short = [
        n
        for n in view.nodes
        if is_up(n) and n.shed_state.value == "none" and own_runtime_s(view, nodes, n.name) < policy.target_runtime_s
    ]
    for node in short:
        assert not safe_alone(view, node, policy), f"{node.name} dies on its own battery but could go"


@PROPERTY_SETTINGS
@given(per_node_cases())
def test_the_placements_of_a_per_node_plan_are_one_packing_that_fits(
    case: tuple[ClusterView, NodeBatteries, PlannerPolicy],
) -> None:
    """Every node the plan sheds has its pods placed in one packing: no receiver ends over its CPU or memory,
    and no pod is sent to a node the plan sheds."""
    view, nodes, policy = case
    result = plan_with(view, nodes, policy)
    if result.decision is not Decision.PER_NODE or not result.actions:
        return
    shed = set(result.nodes_to_shed)
    homes = {p.pod: p.to_node for p in result.placements}
    assert not any(to in shed for to in homes.values())
    leaving = {n.name for n in view.nodes if n.shed_state.is_leaving}
    for node in view.nodes:
        if node.name in shed or node.name in leaving or not is_up(node):
            continue
        staying = [p for p in view.pods_on(node.name) if p.holds_resources and p.key not in homes]
        arriving = [p for p in view.pods if homes.get(p.key) == node.name and p.node in shed]
        cpu = sum(p.cpu_request_m for p in staying + arriving)
        memory = sum(p.memory_request_b for p in staying + arriving)
        if arriving:
            assert cpu <= node.allocatable_cpu_m and memory <= node.allocatable_memory_b, node.name
