"""What piclusterd changes, against upsmon-style no shedding, on the reference clusters and outages."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.core.safety import SafetyRule
from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import OUTAGES, Outage, Policy, SimSettings, parse_outage_csv, simulate

CLUSTERS = Path(__file__).resolve().parents[2] / "examples" / "clusters"
#: piclusterd can at best match the physical optimum, which is computed from the same snapshot, charge and
#: power model and assumes the optimal set is on from the moment mains fails (piclusterd waits out the
#: grace period and drains one node at a time at a higher draw): only float rounding is allowed over it.
OPTIMUM_TOLERANCE = 1e-6


@pytest.mark.parametrize("outage", ["blip", "brownout-flap"])
@pytest.mark.parametrize("name", ["clinic-5", "district-10"])
def test_short_outages_shed_nothing(outage: str, name: str) -> None:
    result = simulate(load_scenario(CLUSTERS / f"{name}.json"), OUTAGES[outage], Policy.PICLUSTERD)
    summary = result.summary
    assert summary.power_offs == summary.power_ons == 0
    assert summary.critical_up_fraction == 1.0
    assert all(o.survived for o in summary.outages)


def test_storm_on_clinic_5_piclusterd_outlasts_no_shedding_within_the_optimum() -> None:
    scenario = load_scenario(CLUSTERS / "clinic-5.json")
    shed = simulate(scenario, OUTAGES["storm-2am"], Policy.PICLUSTERD).summary
    kept = simulate(scenario, OUTAGES["storm-2am"], Policy.NO_SHEDDING).summary
    assert shed.main_outage is not None and kept.main_outage is not None
    assert shed.main_outage.runtime_s > kept.main_outage.runtime_s
    assert shed.main_outage.runtime_s <= shed.main_outage.optimum_runtime_s * (1 + OPTIMUM_TOLERANCE)
    assert shed.critical_up_fraction > kept.critical_up_fraction
    # the quorum rule kept two of the three servers on, mariadb-0's local-path volume kept pi5, and said so
    assert {(node, rule) for node, rule in shed.refused} == {
        ("pi1", SafetyRule.ETCD_QUORUM),
        ("pi2", SafetyRule.ETCD_QUORUM),
        ("pi5", SafetyRule.PINNED_VOLUME),
    }
    assert kept.refused == ()


def test_storm_on_clinic_5_sheds_two_nodes_one_at_a_time_and_keeps_the_database_node() -> None:
    result = simulate(load_scenario(CLUSTERS / "clinic-5.json"), OUTAGES["storm-2am"], Policy.PICLUSTERD)
    first_failure = [row for row in result.timeline if 600 <= row.t_s < 600 + 4 * 3600]
    powered = [row.nodes_powered for row in first_failure if row.load_w > 0]
    assert sorted(set(powered), reverse=True) == [5, 4, 3]  # pi5 holds mariadb-0's data: it stays
    assert powered == sorted(powered, reverse=True)  # nothing comes back while mains is off


@pytest.mark.parametrize("policy", list(Policy))
def test_long_night_ends_in_one_full_shutdown_and_a_restart(policy: Policy) -> None:
    result = simulate(load_scenario(CLUSTERS / "clinic-5.json"), OUTAGES["long-night"], policy)
    assert result.summary.full_shutdowns == 1
    assert not result.summary.outages[0].survived
    last = result.timeline[-1]
    assert last.mains and last.charge_pct < 50
    # Issue 16: the UPS output returns with mains and the Pis boot; piclusterd keeps the two nodes shed before the
    # full shutdown off while the charge is under restore_min_charge (50 %): the smallest safe set.
    assert last.nodes_powered == (3 if policy is Policy.PICLUSTERD else 5)
    assert last.critical_up == last.critical_total == 3


def test_after_a_full_shutdown_the_smallest_set_boots_at_once_and_the_rest_at_restore_min_charge() -> None:
    """long-night, then 6 h on mains: the Pis boot when mains returns (the UPS output is back), without the nodes
    shed before the full shutdown; those come back once the charge reaches restore_min_charge, not before."""
    night = OUTAGES["long-night"]
    outage = Outage("long-night+6h", night.intervals, end_s=night.intervals[0][1] + 6 * 3600.0)
    result = simulate(load_scenario(CLUSTERS / "clinic-5.json"), outage, Policy.PICLUSTERD)
    back = night.intervals[0][1]
    after = [row for row in result.timeline if row.t_s >= back]
    assert after[0].nodes_powered == 3 and after[0].critical_up == 3  # at once, not restore_after later
    full = next(row for row in after if row.nodes_powered == 5)
    assert 50.0 <= full.charge_pct < 51.0  # back at restore_min_charge
    assert all(row.nodes_powered == 3 for row in after if row.t_s < full.t_s)


def test_a_csv_of_mains_transitions_is_an_outage() -> None:
    text = "time,mains\n2026-11-24T02:00:00Z,off\n2026-11-24T02:30:00Z,on\n2026-11-24T03:00:00Z,off\n"
    text += "2026-11-24T03:00:20Z,on\n"
    outage = parse_outage_csv(text, "ups.log", lead_in_s=600.0)
    assert outage.intervals == ((600.0, 2400.0), (4200.0, 4220.0))


def test_a_csv_of_off_on_pairs_is_an_outage() -> None:
    outage = parse_outage_csv("off_at,on_at\n100,108\n200,260\n", "pairs", lead_in_s=10.0)
    assert outage.intervals == ((10.0, 18.0), (110.0, 170.0))


def test_a_csv_without_an_outage_is_refused() -> None:
    with pytest.raises(ValueError, match="no outage"):
        parse_outage_csv("time,mains\n0,on\n", "empty")


def test_the_ob_lb_confirmation_is_modelled_as_the_daemons_run_it() -> None:
    """[simulate] low_battery_confirm: each failure that ends at LB lasts the confirmation longer (upsmon, with
    no shedding, acts at once); a failure whose battery cannot keep twice the orderly full shutdown does not
    wait. The same core function decides as in the daemons (issue 16)."""
    scenario = load_scenario(CLUSTERS / "clinic-5.json")
    plain = simulate(scenario, OUTAGES["storm-2am"], Policy.PICLUSTERD, SimSettings()).summary
    confirmed = SimSettings(lb_confirm_s=60.0, orderly_shutdown_s=60.0)
    waited = simulate(scenario, OUTAGES["storm-2am"], Policy.PICLUSTERD, confirmed).summary
    assert plain.main_outage is not None and waited.main_outage is not None
    assert waited.main_outage.runtime_s == pytest.approx(plain.main_outage.runtime_s + 60.0, abs=1.0)
    # The cluster boots when mains returns at 06:00, at LB: with no confirmation each 20 s flicker is a full
    # shutdown (the 5); confirmed, only the 4 h failure and the 45 min one at 06:30 are.
    assert plain.full_shutdowns == 5 and waited.full_shutdowns == 2
    upsmon = simulate(scenario, OUTAGES["storm-2am"], Policy.NO_SHEDDING, confirmed).summary
    kept = simulate(scenario, OUTAGES["storm-2am"], Policy.NO_SHEDDING).summary
    assert upsmon.main_outage == kept.main_outage
