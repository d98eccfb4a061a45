"""The power accounting of scenarios.md: node draw, fixed loads, battery draw, usable energy, runtime."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ClusterView, PodPhase
from piclusterd.core.errors import ConfigError
from piclusterd.core.power_draw import (
    BatterySpec,
    NodePowerConfig,
    NodePowerProfile,
    PiModel,
    PowerConfig,
    SupplyKind,
    battery_draw_for,
    cluster_load_w,
    node_utilisation,
    projected_runtime_s,
)
from piclusterd.testing.clusters import make_node, make_pod

CLINIC_UPS = BatterySpec(capacity_wh=84.0, usable_fraction=0.8, inverter_efficiency=0.85, ups_overhead_w=5.0)


@pytest.mark.parametrize(
    ("model", "power_off_on_halt", "idle", "full", "halted"),
    [
        (PiModel.PI4B, False, 2.7, 6.4, 1.9),
        (PiModel.PI4B, True, 2.7, 6.4, 0.2),
        (PiModel.PI5, False, 3.0, 7.9, 1.4),
        (PiModel.PI5, True, 3.0, 7.9, 0.01),
        (PiModel.PI3BPLUS, False, 1.9, 5.1, 1.9),  # no published halted figure: assume no saving
    ],
)
def test_model_defaults_from_hardware_md(
    model: PiModel, power_off_on_halt: bool, idle: float, full: float, halted: float
) -> None:
    config = PowerConfig(nodes={"n": NodePowerConfig(model=model, power_off_on_halt=power_off_on_halt)})
    profile = config.profile(make_node("n"))
    assert (profile.idle_w, profile.full_w, profile.halted_w, profile.hat_overhead_w) == (
        idle,
        full,
        halted,
        0.0,
    )


@pytest.mark.parametrize(
    ("utilisation", "watts"),
    [(0.0, 2.7 + 0.5), (0.5, 2.7 + 3.7 * 0.5 + 0.5), (1.0, 6.4 + 0.5), (1.7, 6.4 + 0.5), (-0.2, 2.7 + 0.5)],
)
def test_running_draw_is_linear_in_utilisation_and_capped(utilisation: float, watts: float) -> None:
    profile = NodePowerProfile(idle_w=2.7, full_w=6.4, halted_w=1.9, hat_overhead_w=0.5)
    assert profile.running_w(utilisation) == pytest.approx(watts)


@pytest.mark.parametrize(("switchable", "watts"), [(False, 1.9), (True, 0.0)])
def test_a_shed_node_draws_halted_unless_its_supply_is_cut(switchable: bool, watts: float) -> None:
    profile = NodePowerProfile(idle_w=2.7, full_w=6.4, halted_w=1.9, supply_switchable=switchable)
    assert profile.shed_w == watts


def test_configuration_beats_labels_beat_model_defaults() -> None:
    labelled = make_node(
        "n",
        labels={
            "picluster.io/pi-model": "pi5",
            "picluster.io/idle-w": "3.3",
            "picluster.io/hat-w": "0.5",
            "picluster.io/power-off-on-halt": "true",
            "picluster.io/supply-switchable": "true",
        },
    )
    from_labels = PowerConfig().profile(labelled)
    assert (from_labels.idle_w, from_labels.full_w, from_labels.halted_w) == (3.3, 7.9, 0.01)
    assert from_labels.hat_overhead_w == 0.5 and from_labels.supply_switchable
    configured = PowerConfig(nodes={"n": NodePowerConfig(idle_w=2.9, supply_switchable=False)}).profile(labelled)
    assert configured.idle_w == 2.9 and not configured.supply_switchable and configured.full_w == 7.9


def test_unreadable_labels_fall_back_to_defaults() -> None:
    node = make_node("n", labels={"picluster.io/idle-w": "lots", "picluster.io/pi-model": "pi9"})
    assert PowerConfig(default_model=PiModel.PI4B).profile(node).idle_w == 2.7


def test_utilisation_is_busy_cpu_over_allocatable_usage_first_capped_at_one() -> None:
    view = ClusterView(
        (make_node("a"), make_node("b")),
        (
            make_pod("openmrs-1", "a", cpu_m=1000, cpu_usage_m=1200),  # measured usage wins over request
            make_pod("db-1", "a", cpu_m=500),
            make_pod("done-1", "a", cpu_m=4000, owner_kind="Job", phase=PodPhase.SUCCEEDED),
            make_pod("big-1", "b", cpu_m=3000, cpu_usage_m=5000),
        ),
    )
    assert node_utilisation(view, "a") == pytest.approx(1700 / 4000)
    assert node_utilisation(view, "a", extra_load_m=1000) == pytest.approx(2700 / 4000)
    assert node_utilisation(view, "b") == 1.0


def test_cluster_load_counts_running_shed_and_fixed_loads() -> None:
    view = ClusterView((make_node("a"), make_node("b")), (make_pod("web-1", "a", cpu_m=2000),))
    config = PowerConfig(nodes={n: NodePowerConfig(model=PiModel.PI4B) for n in "ab"}, fixed_loads_w={"switch": 4.0})
    both = cluster_load_w(view, config, ["a", "b"])
    assert both == pytest.approx(4.0 + (2.7 + 3.7 * 0.5) + 2.7)
    only_a = cluster_load_w(view, config, ["a"])
    assert only_a == pytest.approx(4.0 + (2.7 + 3.7 * 0.5) + 1.9)
    # after a drain, the moved pod's load raises the receiver's draw
    only_b = cluster_load_w(view, config, ["b"], extra_load_m={"b": 2000})
    assert only_b == pytest.approx(4.0 + 1.9 + (2.7 + 3.7 * 0.5))


@pytest.mark.parametrize(
    ("battery", "load_w", "draw_w"),
    [
        (CLINIC_UPS, 17.0, 17.0 / 0.85 + 5.0),
        (BatterySpec(256.0, 0.9, SupplyKind.DC, converter_efficiency=0.9), 18.0, 20.0),
        (BatterySpec(256.0, 0.9, SupplyKind.DC, converter_efficiency=0.9, ups_overhead_w=5.0), 18.0, 20.0),
    ],
)
def test_battery_draw_ac_and_dc(battery: BatterySpec, load_w: float, draw_w: float) -> None:
    assert battery.battery_draw_w(load_w) == pytest.approx(draw_w)


@pytest.mark.parametrize(("charge", "energy"), [(100, 67.2), (50, 33.6), (0, 0.0), (130, 67.2), (-5, 0.0)])
def test_usable_energy_scales_with_charge(charge: float, energy: float) -> None:
    assert CLINIC_UPS.usable_energy_wh(charge) == pytest.approx(energy)


def test_clinic_runtime_by_hand() -> None:
    # 17 W load: 17 / 0.85 + 5 = 25 W from the battery; 67.2 Wh / 25 W = 2.688 h
    assert CLINIC_UPS.runtime_s(100.0, 17.0) == pytest.approx(2.688 * 3600)


def test_runtime_is_infinite_without_draw() -> None:
    assert BatterySpec(100.0, kind=SupplyKind.DC).runtime_s(100.0, 0.0) == math.inf


def test_runtime_counts_until_the_shutdown_level_not_empty() -> None:
    # The nodes shut down at 20 % (LB): 25 W from 67.2 Wh x (1 - 0.2) = 53.76 Wh lasts 2.1504 h, not 2.688 h.
    battery = replace(CLINIC_UPS, shutdown_charge_pct=20.0, shutdown_runtime_s=300.0)
    assert battery.runtime_s(100.0, 17.0) == pytest.approx(53.76 / 25 * 3600)
    assert battery.runtime_s(20.0, 17.0) == 0.0  # at the threshold: shutting down now
    assert battery.runtime_s(10.0, 17.0) == 0.0  # never negative


def test_critical_runtime_wins_when_the_draw_is_high() -> None:
    # 400 W from the battery: 5 min of it (33.3 Wh) is more than 20 % of 67.2 Wh (13.44 Wh), so the nodes go
    # when the estimate falls under critical_runtime: (67.2 - 33.33) Wh / 400 W.
    battery = replace(CLINIC_UPS, shutdown_charge_pct=20.0, shutdown_runtime_s=300.0)
    load = (400.0 - 5.0) * 0.85
    assert battery.runtime_s(100.0, load) == pytest.approx((67.2 - 400 * 300 / 3600) / 400 * 3600)


@pytest.mark.parametrize("field", ["shutdown_charge_pct", "shutdown_runtime_s"])
def test_shutdown_thresholds_are_validated(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        replace(CLINIC_UPS, **{field: -1.0})


@given(
    st.floats(min_value=1.0, max_value=2000.0),
    st.floats(min_value=1.0, max_value=100.0),
    st.floats(min_value=60.0, max_value=48 * 3600.0),
    st.sampled_from(list(SupplyKind)),
    st.sampled_from([0.0, 10.0, 20.0]),
    st.sampled_from([0.0, 300.0]),
)
def test_max_load_is_the_inverse_of_runtime(
    capacity: float, charge: float, runtime: float, kind: SupplyKind, shutdown_pct: float, shutdown_s: float
) -> None:
    battery = BatterySpec(
        capacity,
        0.8,
        kind,
        ups_overhead_w=0.0 if kind is SupplyKind.DC else 3.0,
        shutdown_charge_pct=shutdown_pct,
        shutdown_runtime_s=shutdown_s,
    )
    load = battery.max_load_w(charge, runtime)
    if load > 0:
        assert battery.runtime_s(charge, load) == pytest.approx(runtime, rel=1e-9)


def test_whole_cluster_helpers_agree_with_the_battery() -> None:
    view = ClusterView((make_node("a"),), ())
    config = PowerConfig(fixed_loads_w={"switch": 4.0})
    draw = battery_draw_for(view, config, CLINIC_UPS, ["a"])
    assert draw == pytest.approx((4.0 + 2.7) / 0.85 + 5.0)
    assert projected_runtime_s(view, config, CLINIC_UPS, 50.0, ["a"]) == pytest.approx(33.6 / draw * 3600)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"capacity_wh": 0.0}, "capacity_wh"),
        ({"capacity_wh": 84.0, "usable_fraction": 1.2}, "usable_fraction"),
        ({"capacity_wh": 84.0, "inverter_efficiency": 0.0}, "inverter_efficiency"),
        ({"capacity_wh": 84.0, "ups_overhead_w": -1.0}, "ups_overhead_w"),
    ],
)
def test_battery_spec_is_validated_once(kwargs: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        BatterySpec(**kwargs)


def test_power_figures_are_validated() -> None:
    with pytest.raises(ConfigError, match="full_w"):
        NodePowerProfile(idle_w=3.0, full_w=2.0, halted_w=1.0)
    with pytest.raises(ConfigError, match="switch"):
        PowerConfig(fixed_loads_w={"switch": -4.0})
