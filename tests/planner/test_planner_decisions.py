"""Decision tables for plan(): one parametrize per factor, on clusters small enough to check by hand.

The reference cluster "five": three k3s servers s1-s3 and two agents a1-a2, all Pi 4B with
POWER_OFF_ON_HALT (idle 2.7 W, halted 0.2 W), no pods, a 4 W switch, the clinic UPS (84 Wh x 0.8,
inverter 0.85, overhead 5 W). Load with k nodes shed is 17.5 - 2.5 k W, so the runtime at full charge is
2.63 h, 2.97 h, 3.41 h, 4.01 h for k = 0..3; quorum (2 of 3) allows at most one server to go.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from piclusterd.core.cluster_view import ClusterView, LabelSelector, Node, Pdb, Pod
from piclusterd.core.errors import ConfigError
from piclusterd.core.planner import Decision, GiveUpNoncritical, Plan, PlannerPolicy, physical_optimum, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.core.safety import SafetyRule
from piclusterd.testing.clusters import make_node, make_pod

HOUR = 3600.0
NOW = 10_000.0
UPS = BatterySpec(capacity_wh=84.0, usable_fraction=0.8, inverter_efficiency=0.85, ups_overhead_w=5.0)
HARDWARE = PowerConfig(fixed_loads_w={"switch": 4.0})
POH = {"picluster.io/pi-model": "pi4b", "picluster.io/power-off-on-halt": "true"}
DEFAULT_EEPROM = {"picluster.io/pi-model": "pi4b"}


def node(name: str, *, server: bool = False, labels: dict[str, str] | None = None, **kwargs: object) -> Node:
    return make_node(name, server=server, labels={**POH, **(labels or {})}, **kwargs)  # type: ignore[arg-type]


def five(*agents: Node, pods: tuple[Pod, ...] = (), pdbs: tuple[Pdb, ...] = ()) -> ClusterView:
    servers = tuple(node(f"s{i}", server=True) for i in (1, 2, 3))
    return ClusterView(servers + (agents or (node("a1"), node("a2"))), pods, pdbs)


def on_battery(state: str = "on_battery", *, since: float | None = 0.0, charge: float | None = 100.0) -> PowerSituation:
    return PowerSituation(state, on_battery_since=since, charge_pct=charge)


def run(
    view: ClusterView,
    power: PowerSituation | None = None,
    *,
    target_h: float = 4.1,
    now: float = NOW,
    **policy: object,
) -> Plan:
    settings = PlannerPolicy(target_runtime_s=target_h * HOUR, **policy)  # type: ignore[arg-type]
    return plan(view, power or on_battery(), UPS, settings, now, hardware=HARDWARE)


# --------------------------------------------------------------------------------------------------------
# Factor: the power state


@pytest.mark.parametrize(
    ("state", "decision", "shed"),
    [
        ("unknown", Decision.HOLD_POWER_UNKNOWN, ()),
        ("ONLINE", Decision.HOLD_POWER_UNKNOWN, ()),  # an unknown word is unknown power
        ("", Decision.HOLD_POWER_UNKNOWN, ()),
        ("online", Decision.HOLD_ONLINE, ()),
        ("on_battery", Decision.ESCALATE, ("a1", "a2", "s1")),
        ("low_battery", Decision.ESCALATE, ("a1", "a2", "s1")),
        ("critical", Decision.ESCALATE, ("a1", "a2", "s1")),
    ],
)
def test_power_state_decides_whether_to_act(state: str, decision: Decision, shed: tuple[str, ...]) -> None:
    result = run(five(), on_battery(state))
    assert result.decision is decision
    assert result.nodes_to_shed == shed


def test_critical_battery_sheds_as_much_as_is_safe_even_when_the_target_is_met() -> None:
    assert run(five(), target_h=1.0).decision is Decision.TARGET_MET
    result = run(five(), on_battery("critical"), target_h=1.0)
    assert result.decision is Decision.ESCALATE and result.nodes_to_shed == ("a1", "a2", "s1")


@pytest.mark.parametrize("state", ["unknown", "online"])
def test_holding_states_report_no_projection(state: str) -> None:
    result = run(five(), on_battery(state))
    assert result.actions == () and result.refused == () and result.projected_runtime_s is None


# --------------------------------------------------------------------------------------------------------
# Factor: the grace period


@pytest.mark.parametrize(
    ("state", "since", "decision"),
    [
        ("on_battery", NOW, Decision.HOLD_GRACE),  # a blip: nothing is shed
        ("on_battery", NOW - 59.0, Decision.HOLD_GRACE),
        ("on_battery", NOW - 60.0, Decision.ESCALATE),
        ("on_battery", None, Decision.ESCALATE),  # unknown start counts as past the grace period
        ("low_battery", NOW - 5.0, Decision.ESCALATE),  # low and critical battery do not wait
        ("critical", NOW - 5.0, Decision.ESCALATE),
    ],
)
def test_grace_period(state: str, since: float | None, decision: Decision) -> None:
    result = run(five(), on_battery(state, since=since))
    assert result.decision is decision
    if decision is Decision.HOLD_GRACE:
        assert result.actions == () and "grace period is 60 s" in result.reason


# --------------------------------------------------------------------------------------------------------
# Factor: the runtime target


@pytest.mark.parametrize(
    ("target_h", "decision", "shed"),
    [
        (2.5, Decision.TARGET_MET, ()),
        (2.9, Decision.SHED_TO_TARGET, ("a1",)),
        (3.3, Decision.SHED_TO_TARGET, ("a1", "a2")),
        (4.0, Decision.SHED_TO_TARGET, ("a1", "a2", "s1")),
        (4.1, Decision.ESCALATE, ("a1", "a2", "s1")),
        (24.0, Decision.ESCALATE, ("a1", "a2", "s1")),
    ],
)
def test_fewest_nodes_that_reach_the_target(target_h: float, decision: Decision, shed: tuple[str, ...]) -> None:
    result = run(five(), target_h=target_h)
    assert result.decision is decision
    assert result.nodes_to_shed == shed
    assert result.projected_runtime_s is not None and result.runtime_without_shedding_s is not None
    assert result.runtime_without_shedding_s == pytest.approx(67.2 / (17.5 / 0.85 + 5) * HOUR)
    expected_load = 17.5 - 2.5 * len(shed)
    assert result.projected_load_w == pytest.approx(expected_load)
    if decision is not Decision.ESCALATE:
        assert result.projected_runtime_s >= target_h * HOUR


def test_escalation_reports_why_it_stopped() -> None:
    result = run(five(), target_h=4.1)
    assert [(r.node, r.rule) for r in result.refused] == [
        ("s2", SafetyRule.ETCD_QUORUM),
        ("s3", SafetyRule.ETCD_QUORUM),
    ]
    assert "quorum needs 2" in result.refused[0].detail


@pytest.mark.parametrize(("charge", "shed"), [(100.0, 0), (80.0, 1), (70.0, 2), (60.0, 3)])
def test_less_charge_sheds_more(charge: float, shed: int) -> None:
    result = run(five(), on_battery(charge=charge), target_h=2.3)
    assert len(result.actions) == shed


# --------------------------------------------------------------------------------------------------------
# Factor: preferences (tiers, control plane last, fewest nodes first)


@pytest.mark.parametrize(
    ("tiers", "labels", "first"),
    [
        ({}, {}, "a1"),  # equal: by name
        ({}, {"a1": 2, "a2": 1}, "a2"),  # lower tier label first
        ({"a1": 0}, {"a1": 2, "a2": 1}, "a1"),  # configuration beats labels
    ],
)
def test_lower_tier_is_shed_first(tiers: dict[str, int], labels: dict[str, int], first: str) -> None:
    agents = tuple(node(n, tier=labels.get(n)) for n in ("a1", "a2"))
    result = run(five(*agents), target_h=2.9, tiers=tiers)
    assert result.nodes_to_shed == (first,)


def test_control_plane_goes_last_whatever_its_tier() -> None:
    view = ClusterView(
        (
            node("s1", server=True, tier=0),
            node("s2", server=True),
            node("s3", server=True),
            node("a1", tier=9),
        )
    )
    result = run(view, target_h=3.2)
    assert result.nodes_to_shed == ("a1",)


@pytest.mark.parametrize(
    ("target_h", "shed"),
    [
        (2.7, ("a1",)),  # 0.8 W is enough: the preferred (tier 0) node goes
        (2.9, ("a2",)),  # 2.5 W needed: one node still does it, the one that saves more
        (3.04, ("a1", "a2")),  # 3 W: two nodes, agents before control plane
        (3.2, ("a2", "s1")),  # 3.9 W: two nodes still do it, but not a1 + a2 (3.3 W)
    ],
)
def test_fewest_nodes_first_then_preference(target_h: float, shed: tuple[str, ...]) -> None:
    agents = (
        node("a1", tier=0, labels=DEFAULT_EEPROM | {"picluster.io/power-off-on-halt": "false"}),  # saves 0.8 W
        node("a2", tier=1),  # saves 2.5 W
    )
    result = run(five(*agents), target_h=target_h)
    assert result.nodes_to_shed == shed


# --------------------------------------------------------------------------------------------------------
# Factor: the safety rules, as the plan reports them


def blocking_pdb() -> Pdb:
    return Pdb("default", "db", LabelSelector((("app", "db"),)), disruptions_allowed=0, current_healthy=1)


@pytest.mark.parametrize(
    ("pod", "pdbs", "policy", "rule"),
    [
        (make_pod("db-1", "a1"), (blocking_pdb(),), {}, SafetyRule.PDB_BLOCKS),
        (make_pod("bare-1", "a1", owner_kind=None), (), {}, SafetyRule.UNREPLICATED_POD),
        (
            make_pod("cache-1", "a1", volume_kinds=frozenset({"emptyDir"})),
            (),
            {"evict_emptydir": False},
            SafetyRule.EMPTYDIR_DATA,
        ),
        (make_pod("gpu-1", "a1", node_selector={"gpu": "yes"}), (), {}, SafetyRule.PODS_DO_NOT_FIT),
    ],
)
def test_a_blocked_preferred_node_is_reported_and_another_shed(
    pod: Pod, pdbs: tuple[Pdb, ...], policy: dict[str, object], rule: SafetyRule
) -> None:
    view = five(pods=(pod, make_pod("web-1", "a2")), pdbs=pdbs)  # as many pods on each: a1 is preferred
    result = run(view, target_h=2.9, **policy)
    assert result.nodes_to_shed == ("a2",)
    assert [(r.node, r.rule) for r in result.refused] == [("a1", rule)]
    assert pod.key in result.refused[0].detail


def test_a_blocked_node_the_plan_does_not_need_is_not_reported() -> None:
    view = five(pods=(make_pod("bare-1", "a2", owner_kind=None),))
    result = run(view, target_h=2.9)
    assert result.nodes_to_shed == ("a1",) and result.refused == ()


def test_fewer_pods_to_move_is_preferred_among_equals() -> None:
    view = five(pods=(make_pod("web-1", "a1"),))
    assert run(view, target_h=2.9).nodes_to_shed == ("a2",)


def test_unreplicated_pods_are_moved_when_allowed() -> None:
    view = five(pods=(make_pod("bare-1", "a1", owner_kind=None), make_pod("web-1", "a2")))
    assert run(view, target_h=2.9).nodes_to_shed == ("a2",)
    assert run(view, target_h=2.9, allow_unreplicated=True).nodes_to_shed == ("a1",)


@pytest.mark.parametrize(("min_nodes", "shed"), [(1, 3), (3, 2), (4, 1), (5, 0)])
def test_min_nodes_caps_escalation(min_nodes: int, shed: int) -> None:
    result = run(five(), target_h=24.0, min_nodes=min_nodes)
    assert len(result.actions) == shed
    if shed < 3:
        assert result.refused[0].rule is SafetyRule.MIN_NODES


def test_quorum_counts_members_already_down() -> None:
    view = ClusterView(
        (node("s1", server=True, ready=False), node("s2", server=True), node("s3", server=True), node("a1"))
    )
    result = run(view, target_h=24.0)
    assert result.nodes_to_shed == ("a1",)
    assert {r.rule for r in result.refused} == {SafetyRule.ETCD_QUORUM}


# --------------------------------------------------------------------------------------------------------
# Factor: nodes already being shed


def test_a_node_being_shed_is_not_shed_again_and_its_pods_need_room() -> None:
    draining = node("a1", shed_phase="draining")
    view = five(draining, node("a2"), pods=(make_pod("web-1", "a1", cpu_m=2000),))
    result = run(view, target_h=24.0, give_up_noncritical=GiveUpNoncritical.NEVER)
    assert "a1" not in result.nodes_to_shed and result.shed_in_progress == ("a1",)
    assert any(p.pod == "default/web-1" and p.to_node not in (None, "a1") for p in result.placements)
    # a1 already counts as shed (0.2 W): 4 + 4 x 2.7 + 0.2 + the moved 2000m on some node
    assert result.load_without_shedding_w == pytest.approx(4 + 4 * 2.7 + 0.2 + 3.7 * 0.5)


def test_a_node_with_an_unreadable_record_is_left_alone() -> None:
    odd = replace(node("a1"), annotations={"picluster.io/shed": "{broken"})
    result = run(five(odd, node("a2")), target_h=24.0)
    assert "a1" not in result.nodes_to_shed and result.shed_in_progress == ("a1",)


# --------------------------------------------------------------------------------------------------------
# Factor: what is known about power


def test_moved_pods_raise_the_receivers_draw() -> None:
    view = ClusterView((node("s1", server=True), node("a1")), (make_pod("app-1", "a1", cpu_m=1000, cpu_usage_m=2000),))
    result = run(view, target_h=24.0, give_up_noncritical=GiveUpNoncritical.NEVER)
    assert result.nodes_to_shed == ("a1",)
    # 4 W switch + s1 at 2000m of 4000m (2.7 + 3.7 x 0.5) + a1 halted 0.2 W
    assert result.projected_load_w == pytest.approx(4 + 2.7 + 1.85 + 0.2)
    assert result.load_without_shedding_w == pytest.approx(4 + 2.7 + (2.7 + 1.85))


@pytest.mark.parametrize(
    ("measured_w", "decision", "shed"), [(None, Decision.TARGET_MET, 0), (35.0, Decision.SHED_TO_TARGET, 3)]
)
def test_a_measured_load_scales_the_projection(measured_w: float | None, decision: Decision, shed: int) -> None:
    power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0, measured_load_w=measured_w)
    result = run(five(), power, target_h=2.0)
    assert result.decision is decision and len(result.actions) == shed
    if measured_w is not None:
        assert result.load_without_shedding_w == pytest.approx(measured_w)


@pytest.mark.parametrize(
    ("since", "charge", "estimated"),
    [
        (NOW - HOUR, 100 * (1 - (17.5 / 0.85 + 5) / 67.2), True),  # one hour at today's draw from full
        (None, 50.0, True),  # nothing known: the policy's assumption
    ],
)
def test_an_unknown_charge_is_estimated(since: float | None, charge: float, estimated: bool) -> None:
    result = run(five(), on_battery("low_battery", since=since, charge=None))
    assert result.charge_estimated is estimated
    assert result.charge_pct == pytest.approx(charge)


# --------------------------------------------------------------------------------------------------------
# Plan contents


def test_actions_say_why_and_which_pods_they_evict() -> None:
    view = five(pods=(make_pod("web-1", "a1"), make_pod("web-2", "a1"), make_pod("web-3", "a2")))
    (action,) = run(view, target_h=2.9).actions
    assert action.node == "a2" and action.evicts == ("default/web-3",)
    assert "a2" in action.reason and "2.5" in action.reason and "evicts 1 pod" in action.reason


def test_the_optimum_may_give_up_non_critical_pods() -> None:
    view = ClusterView(
        (node("s1", server=True), node("a1")),
        (make_pod("fill-1", "s1", cpu_m=3900), make_pod("batch-1", "a1", cpu_m=1000)),
    )
    result = run(view, target_h=24.0, give_up_noncritical=GiveUpNoncritical.NEVER)
    assert result.nodes_to_shed == () and result.refused[0].rule is SafetyRule.PODS_DO_NOT_FIT
    assert result.optimum is not None
    assert result.optimum.nodes_shed == ("a1",) and result.optimum.pending_pods == ("default/batch-1",)
    assert result.optimum.runtime_s > (result.projected_runtime_s or 0)
    optimum = physical_optimum(view, UPS, PlannerPolicy(), hardware=HARDWARE)
    load = 4 + (2.7 + 3.7 * 3900 / 4000) + 0.2  # switch, s1 busy with its own pod, a1 halted
    assert optimum.nodes_on == ("s1",) and optimum.runtime_s == pytest.approx(67.2 / (load / 0.85 + 5) * HOUR)


def test_allowing_pending_non_critical_pods_lets_the_plan_shed_more() -> None:
    view = ClusterView(
        (node("s1", server=True), node("a1")),
        (make_pod("fill-1", "s1", cpu_m=3900), make_pod("batch-1", "a1", cpu_m=1000)),
    )
    result = run(view, target_h=24.0, give_up_noncritical=GiveUpNoncritical.ALWAYS)
    assert result.nodes_to_shed == ("a1",)
    assert [(p.pod, p.to_node) for p in result.placements] == [("default/batch-1", None)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_runtime_s", 0.0),
        ("on_battery_grace_s", -1.0),
        ("min_nodes", 0),
        ("unknown_charge_pct", 120.0),
    ],
)
def test_policy_is_validated_once(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        PlannerPolicy(**{field: value})  # type: ignore[arg-type]


def test_a_plan_is_frozen_plain_data_for_the_journal() -> None:
    result = run(five(), target_h=2.9)
    record = json.loads(json.dumps(asdict(result), default=str))
    assert record["decision"] == "shed_to_target" and record["actions"][0]["node"] == "a1"
    with pytest.raises(AttributeError):
        result.actions = ()  # type: ignore[misc]
