"""The reference clusters of scenarios.md (examples/clusters/*.json + .toml) through the planner.

Run with ``-s`` to see the figures: projected runtime vs no shedding vs the physical optimum.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from piclusterd.core.cluster_view import parse_kubectl_list
from piclusterd.core.durations import format_duration
from piclusterd.core.planner import Decision, GiveUpNoncritical, Plan, plan
from piclusterd.core.pod_packing import can_run_on
from piclusterd.core.power_draw import PowerSituation
from piclusterd.core.safety import headcount, is_up
from piclusterd.sim.scenarios import Scenario, load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clusters"
HOUR = 3600.0


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def outage_start(scenario: Scenario, give_up: GiveUpNoncritical | None = None) -> Plan:
    """Mains failed at t=0 with a full battery; the grace period has just passed."""
    power = PowerSituation("on_battery", on_battery_since=0.0, charge_pct=100.0)
    now = scenario.policy.on_battery_grace_s
    policy = scenario.policy
    if give_up is not None:
        policy = dataclasses.replace(policy, give_up_noncritical=give_up)
    return plan(scenario.view, power, scenario.battery, policy, now, hardware=scenario.hardware)


@pytest.mark.parametrize("name", ["clinic-5", "district-10", "solar-3"])
def test_committed_snapshots_are_what_the_generator_writes(name: str) -> None:
    module = generator()
    assert (EXAMPLES / f"{name}.json").read_text() == module.render(module.SNAPSHOTS[name]())


@pytest.mark.parametrize("name", ["clinic-5", "district-10", "solar-3"])
def test_snapshots_parse_whatever_the_listing_order(name: str) -> None:
    obj = json.loads((EXAMPLES / f"{name}.json").read_text())
    view = parse_kubectl_list(obj)
    assert len(view.nodes) == int(name.split("-")[1])
    assert sum(n.is_etcd_member for n in view.nodes) == (1 if name == "solar-3" else 3)  # one k3s server
    exporters = [p for p in view.pods if p.is_daemonset]
    assert sorted(p.node or "" for p in exporters) == sorted(n.name for n in view.nodes)
    shuffled = copy.deepcopy(obj)
    shuffled["items"].reverse()
    again = parse_kubectl_list(shuffled)
    assert sorted(again.nodes, key=lambda n: n.name) == sorted(view.nodes, key=lambda n: n.name)
    assert sorted(again.pods, key=lambda p: p.key) == sorted(view.pods, key=lambda p: p.key)


@pytest.mark.parametrize("name", ["clinic-5", "district-10"])
def test_a_safe_plan_exists_at_the_start_of_an_outage(name: str) -> None:
    scenario = load_scenario(EXAMPLES / f"{name}.json")
    result = outage_start(scenario)
    view = scenario.view
    shed = set(result.nodes_to_shed)
    assert result.decision in (Decision.SHED_TO_TARGET, Decision.ESCALATE) and shed
    # quorum kept, every evicted pod placed on a node that stays on and accepts it, critical ones always; a
    # non-critical one may be given up (the default give_up_noncritical, when the target needs it)
    after = headcount(view, shed)
    assert after.etcd_up >= after.etcd_quorum
    homes = {p.pod: p.to_node for p in result.placements}
    for pod in (p for name_ in shed for p in view.pods_on(name_) if p.must_move):
        home = homes[pod.key]
        if home is None:
            assert not pod.is_critical(scenario.policy.critical_priority_threshold)
            continue
        assert home not in shed
        assert is_up(view.node(home), shed) and can_run_on(pod, view.node(home))
    # the figures scenarios.md asks for
    assert result.optimum is not None
    assert result.projected_runtime_s is not None and result.runtime_without_shedding_s is not None
    assert result.runtime_without_shedding_s < result.projected_runtime_s <= result.optimum.runtime_s
    ratio = result.projected_runtime_s / result.optimum.runtime_s
    print(
        f"\n{name}: {result.decision.value}, shed {', '.join(result.nodes_to_shed)}; "
        f"projected {format_duration(result.projected_runtime_s)} "
        f"vs no shedding {format_duration(result.runtime_without_shedding_s)} "
        f"vs physical optimum {format_duration(result.optimum.runtime_s)} "
        f"(on: {', '.join(result.optimum.nodes_on)}); {ratio:.0%} of the optimum"
    )


def test_clinic_5_figures_by_hand() -> None:
    """scenarios.md arithmetic, done by hand.

    No shedding: 4 W switch + 5 x 2.7 W idle + 3.7 W x (3950m busy / 4000m): 21.15 W at the UPS output,
    21.15 / 0.85 + 5 = 29.89 W from the battery; every node shuts down at 20 % (the UPS's LB), so the
    runtime is that of 67.2 Wh x 0.8 = 53.76 Wh: 53.76 Wh / 29.89 W = 1.80 h (not 2.25 h, to empty).
    Plan: mariadb-0's data is a local-path volume on pi5, so pi5 stays on (rule pinned_volume); pi4 and
    one server go (quorum keeps two servers). pi1, pi2 and pi5 carry every pod (3850m busy: the two shed
    Pis' node-exporters stop) and the two shed Pis draw 0.2 W each: 4 + 8.1 + 0.4 + 3.7 x 0.9625 =
    16.06 W: 2.25 h. Physical optimum: the same nodes on, nothing to give up.
    """
    scenario = load_scenario(EXAMPLES / "clinic-5.json")
    result = outage_start(scenario, GiveUpNoncritical.NEVER)  # every pod keeps a home
    assert result.decision is Decision.ESCALATE  # 4 h is out of reach on 84 Wh
    assert result.nodes_to_shed == ("pi4", "pi3")
    assert result.load_without_shedding_w == pytest.approx(4 + 13.5 + 3.7 * 3950 / 4000)
    assert result.runtime_without_shedding_s == pytest.approx(67.2 * 0.8 / (21.15375 / 0.85 + 5) * HOUR)
    load = 4 + 8.1 + 0.4 + 3.7 * 3850 / 4000
    assert result.projected_load_w == pytest.approx(load)
    assert result.projected_runtime_s == pytest.approx(67.2 * 0.8 / (load / 0.85 + 5) * HOUR)
    assert result.optimum is not None
    assert result.optimum.nodes_on == ("pi1", "pi2", "pi5")
    assert result.optimum.load_w == pytest.approx(load)
    assert [(r.node, r.rule.value) for r in result.refused] == [
        ("pi1", "etcd_quorum"),
        ("pi2", "etcd_quorum"),
        ("pi5", "pinned_volume"),
    ]
    # mariadb-0 stays where its data is: never evicted, never "rescheduled" onto another node.
    assert all(not p.pod.startswith("clinic/mariadb") for p in result.placements)


def test_district_10_keeps_the_database_nodes_and_quorum() -> None:
    """mariadb's two replicas live on local-path volumes on n6 and n7: both stay on (pinned_volume), with
    the two servers quorum needs; everything else goes. The optimum, giving up non-critical pods, keeps
    just those four."""
def test_clinic_5_gives_nothing_up_where_room_is_left() -> None:
    """The evicted lab-reports replica has room on pi1/pi2: by default (give_up_noncritical = "when-needed") it is
    not given up, since the scheduler would bind it there anyway. The plan is the keep-every-pod one."""
    scenario = load_scenario(EXAMPLES / "clinic-5.json")
    result = outage_start(scenario)
    assert result.given_up == ()
    assert result == outage_start(scenario, GiveUpNoncritical.NEVER)


def test_district_10_gives_up_no_critical_pod_and_never_lasts_less_for_it() -> None:
    """Issue 16: by default the plan may give up the non-critical pods no room is left for, never a critical
    one, and it never lasts less for it. Since mariadb's local-path volumes keep n6 and n7 on (issue 14), they
    leave room for every pod: district-10 gives nothing up at the outage's start (it did, 3 pods, when the
    database was taken for movable)."""
    scenario = load_scenario(EXAMPLES / "district-10.json")
    result = outage_start(scenario)
    kept = outage_start(scenario, GiveUpNoncritical.NEVER)
    threshold = scenario.policy.critical_priority_threshold
    pods = {p.key: p for p in scenario.view.pods}
    assert not any(pods[p.pod].is_critical(threshold) for p in result.given_up)
    assert result.projected_runtime_s is not None and kept.projected_runtime_s is not None
    assert result.projected_runtime_s >= kept.projected_runtime_s
    assert result.given_up == ()


def test_district_10_keeps_three_nodes_for_its_pods_when_none_may_be_given_up() -> None:
    """9,250m of requests need three Pi 5s; only the optimum, giving up non-critical pods, runs on two."""
    scenario = load_scenario(EXAMPLES / "district-10.json")
    result = outage_start(scenario, GiveUpNoncritical.NEVER)
    assert result.decision is Decision.ESCALATE
    assert set(result.nodes_to_shed) == {"n1", "n4", "n5", "n8", "n9", "n10"}
    assert {(r.node, r.rule.value) for r in result.refused} >= {("n6", "pinned_volume"), ("n7", "pinned_volume")}
    assert result.optimum is not None and result.optimum.nodes_on == ("n2", "n3", "n6", "n7")
    assert all(not p.startswith("clinic/openmrs") for p in result.optimum.pending_pods)
