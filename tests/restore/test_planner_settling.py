"""The planner's anti-flap rule: a node powered back on less than restore_after ago is not shed again.

The reference cluster is test_planner_decisions.py's "five" (servers s1-s3, agents a1-a2, all Pi 4B with
POWER_OFF_ON_HALT, the clinic UPS): at a 4.1 h target nothing but shedding all it safely can comes close,
so without the rule the plan sheds a1, a2 and one server.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.planner import Decision, PlannerPolicy, plan
from piclusterd.core.power_draw import BatterySpec, PowerConfig, PowerSituation
from piclusterd.core.safety import SafetyRule
from piclusterd.testing.clusters import make_node, make_pod

UPS = BatterySpec(capacity_wh=84.0, usable_fraction=0.8, inverter_efficiency=0.85, ups_overhead_w=5.0)
HARDWARE = PowerConfig(fixed_loads_w={"switch": 4.0})
POH = {"picluster.io/pi-model": "pi4b", "picluster.io/power-off-on-halt": "true"}
POLICY = PlannerPolicy(target_runtime_s=4.1 * 3600)


def five() -> ClusterView:
    servers = tuple(make_node(f"s{i}", server=True, labels=POH) for i in (1, 2, 3))
    return ClusterView((*servers, make_node("a1", labels=POH), make_node("a2", labels=POH)))


@pytest.mark.parametrize(
    ("settling", "shed", "refused"),
    [
        ((), ("a1", "a2", "s1"), ()),
        (("a1",), ("a2", "s1"), ("a1",)),
        (("a1", "a2"), ("s1",), ("a1", "a2")),
        (("s1",), ("a1", "a2", "s2"), ("s1",)),  # another server goes instead: quorum still allows one
        (("gone",), ("a1", "a2", "s1"), ()),  # a name not in the cluster changes nothing
    ],
)
@pytest.mark.parametrize("state", ["on_battery", "critical"])
def test_a_settling_node_is_kept_on_and_the_refusal_says_why(
    settling: tuple[str, ...], shed: tuple[str, ...], refused: tuple[str, ...], state: str
) -> None:
    result = plan(
        five(), PowerSituation(state, 0.0, 100.0), UPS, POLICY, 10_000.0, hardware=HARDWARE, settling=settling
    )
    assert result.nodes_to_shed == shed
    settling_refusals = [r for r in result.refused if r.rule is SafetyRule.SETTLING]
    assert tuple(r.node for r in settling_refusals) == refused
    for refusal in settling_refusals:
        assert "powered back on less than restore_after ago" in refusal.detail


def test_settling_changes_nothing_while_mains_is_present() -> None:
    result = plan(
        five(), PowerSituation("online", None, 100.0), UPS, POLICY, 10_000.0, hardware=HARDWARE, settling=("a1",)
    )
    assert result.decision is Decision.HOLD_ONLINE and result.refused == ()


@st.composite
def clusters_and_settling(draw: st.DrawFn) -> tuple[ClusterView, frozenset[str]]:
    """Up to 6 Pi 4B nodes (0-3 k3s servers), with pods, and any subset of them settling."""
    n = draw(st.integers(1, 6))
    servers = draw(st.integers(0, min(3, n)))
    nodes = [make_node(f"n{i}", server=i < servers, tier=draw(st.integers(0, 2)), labels=POH) for i in range(n)]
    pods = [
        make_pod(f"p{j}", f"n{draw(st.integers(0, n - 1))}", cpu_m=draw(st.sampled_from([100, 500, 1000])))
        for j in range(draw(st.integers(0, 6)))
    ]
    settling = draw(st.frozensets(st.sampled_from([node.name for node in nodes])))
    return ClusterView(tuple(nodes), tuple(pods)), settling


@settings(max_examples=150, deadline=None)
@given(
    case=clusters_and_settling(),
    state=st.sampled_from(["on_battery", "low_battery", "critical"]),
    charge=st.floats(5.0, 100.0),
)
def test_the_planner_never_sheds_a_settling_node(
    case: tuple[ClusterView, frozenset[str]], state: str, charge: float
) -> None:
    view, settling = case
    result = plan(view, PowerSituation(state, 0.0, charge), UPS, POLICY, 10_000.0, hardware=HARDWARE, settling=settling)
    assert not set(result.nodes_to_shed) & settling
    for refusal in result.refused:
        if refusal.rule is SafetyRule.SETTLING:
            assert refusal.node in settling
