"""Issue 16, item 2: after a full shutdown on a low battery the cluster comes back in its smallest safe set. Pure
decisions: which nodes stay off (core.restore), and the plan that sheds them again on mains (core.planner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.core.plan_values import Decision, Plan
from piclusterd.core.planner import plan
from piclusterd.core.power_draw import PowerSituation
from piclusterd.core.power_state import PowerState
from piclusterd.core.refusal import SafetyRule
from piclusterd.core.restore import RestoreInputs, RestorePolicy, smallest_set_after_full_shutdown
from piclusterd.sim.scenarios import load_scenario

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
POLICY = RestorePolicy()  # restore_min_charge 50 %


@pytest.mark.parametrize(
    ("shed", "state", "charge", "kept"),
    [
        (("pi2", "pi4"), PowerState.ONLINE, 20.0, {"pi2", "pi4"}),  # the case: booted on a low battery
        (("pi2", "pi4"), PowerState.ON_BATTERY, 20.0, {"pi2", "pi4"}),  # a flicker: still kept off
        (("pi2", "pi4"), PowerState.ONLINE, 50.0, None),  # restore_min_charge reached: the restore policy
        (("pi2", "pi4"), PowerState.ONLINE, None, None),  # unknown charge: never act on unknown data
        (("pi2", "pi4"), PowerState.UNKNOWN, 20.0, None),  # unknown power
        (("pi2", "pi4"), PowerState.LOW_BATTERY, 20.0, {"pi2", "pi4"}),  # OB + LB being confirmed: still
        (("pi2", "pi4"), PowerState.CRITICAL, 20.0, None),  # the full shutdown decides
        ((), PowerState.ONLINE, 20.0, None),  # nothing was shed before it (or no record: not booted from one)
    ],
)
def test_which_nodes_stay_off_after_a_full_shutdown(
    shed: tuple[str, ...], state: PowerState, charge: float | None, kept: set[str] | None
) -> None:
    decided = smallest_set_after_full_shutdown(shed, RestoreInputs(state, charge), POLICY)
    assert (None if decided is None else set(decided.nodes)) == kept
    if decided is not None:
        assert "restore_min_charge 50 %" in decided.reason and "pi2, pi4" in decided.reason


def scenario_plan(state: str, kept: set[str] | None, on_battery_since: float | None = None) -> Plan:
    scenario = load_scenario(CLINIC)
    kept_off = smallest_set_after_full_shutdown(sorted(kept or ()), RestoreInputs(PowerState(state), 20.0), POLICY)
    return plan(
        scenario.view,
        PowerSituation(state, on_battery_since=on_battery_since, charge_pct=20.0),
        scenario.battery,
        scenario.policy,
        1000.0,
        hardware=scenario.hardware,
        kept_off=kept_off,
    )


def test_on_mains_the_plan_sheds_the_recorded_nodes_and_no_other() -> None:
    decided = scenario_plan("online", {"pi2", "pi4"})
    assert decided.decision is Decision.KEEP_OFF_AFTER_FULL_SHUTDOWN
    assert {a.node for a in decided.actions} == {"pi2", "pi4"}
    assert all("kept off after a full shutdown" in a.reason for a in decided.actions)
    assert decided.refused == ()  # the other nodes were never candidates


def test_on_mains_without_the_flag_nothing_is_shed() -> None:
    decided = scenario_plan("online", None)
    assert decided.decision is Decision.HOLD_ONLINE and decided.actions == ()


def test_within_a_flickers_grace_period_the_recorded_nodes_still_go_off() -> None:
    decided = scenario_plan("on_battery", {"pi2", "pi4"}, on_battery_since=990.0)
    assert decided.decision is Decision.KEEP_OFF_AFTER_FULL_SHUTDOWN


def test_every_safety_rule_still_applies_the_last_etcd_members_stay() -> None:
    """Asked to keep pi1, pi2 and pi3 (the three etcd members) off, the plan sheds at most one: quorum."""
    decided = scenario_plan("online", {"pi1", "pi2", "pi3"})
    shed = {a.node for a in decided.actions}
    assert len(shed) <= 1
    assert {r.rule for r in decided.refused} == {SafetyRule.ETCD_QUORUM}
    assert {r.node for r in decided.refused} | shed == {"pi1", "pi2", "pi3"}
