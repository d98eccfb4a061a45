"""Runtime estimator: the documented formula, the UPS figure when plausible, and smoothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.reading import UpsFlag, UpsReading
from piclusterd.core.runtime_estimate import BatteryModel, EstimatorMemory, RuntimeSource, estimate_runtime

# clinic-5's UPS: 84 Wh, 80 % usable, inverter 85 %, 5 W overhead
CLINIC = BatteryModel(capacity_wh=84, usable_fraction=0.8, inverter_efficiency=0.85, overhead_w=5)


def reading(
    at: float = 0,
    *,
    runtime: float | None = None,
    charge: float | None = 100,
    realpower: float | None = None,
    load: float | None = None,
    nominal: float | None = None,
    status: str = "OB",
) -> UpsReading:
    return UpsReading(
        "t",
        at,
        at,
        frozenset(UpsFlag(w) for w in status.split()),
        charge_pct=charge,
        runtime_s=runtime,
        load_pct=load,
        realpower_w=realpower,
        realpower_nominal_w=nominal,
    )


def test_energy_formula_matches_the_documented_one() -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(realpower=26.0, charge=50), CLINIC)
    draw = 26.0 / 0.85 + 5
    assert estimate.source is RuntimeSource.ENERGY
    assert estimate.seconds == pytest.approx(84 * 0.8 * 0.5 * 3600 / draw)


def test_load_from_percent_times_nominal_when_realpower_is_absent() -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(load=10, nominal=390), CLINIC)
    assert estimate.load_w == pytest.approx(39.0)


def test_configured_load_is_the_last_resort() -> None:
    battery = BatteryModel(capacity_wh=84, load_w=30)
    _, estimate = estimate_runtime(EstimatorMemory(), reading(), battery)
    assert estimate.load_w == 30 and estimate.source is RuntimeSource.ENERGY


def test_plausible_ups_runtime_is_preferred() -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(runtime=5000, realpower=26), CLINIC)
    assert estimate.source is RuntimeSource.UPS and estimate.seconds == 5000


@pytest.mark.parametrize("runtime", [100.0, 1e6])
def test_implausible_ups_runtime_falls_back_to_energy(runtime: float) -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(runtime=runtime, realpower=26), CLINIC)
    assert estimate.source is RuntimeSource.ENERGY


def test_calibrating_ups_runtime_is_not_trusted() -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(runtime=5000, realpower=26, status="OB CAL"), CLINIC)
    assert estimate.source is RuntimeSource.ENERGY


def test_nothing_to_estimate_from() -> None:
    _, estimate = estimate_runtime(EstimatorMemory(), reading(), BatteryModel())
    assert estimate.seconds is None and estimate.source is RuntimeSource.NONE


def test_one_noisy_sample_does_not_move_the_estimate() -> None:
    memory = EstimatorMemory()
    for at, value in enumerate([3000, 3000, 3000, 60, 3000]):
        memory, estimate = estimate_runtime(memory, reading(at, runtime=value), BatteryModel())
        assert estimate.seconds == 3000


def test_a_real_step_shows_within_three_polls() -> None:
    memory = EstimatorMemory()
    seen = []
    for at, value in enumerate([3000] * 5 + [200] * 3):
        memory, estimate = estimate_runtime(memory, reading(at, runtime=value), BatteryModel())
        seen.append(estimate.seconds)
    assert seen[-1] == 200


def test_old_samples_expire() -> None:
    memory, _ = estimate_runtime(EstimatorMemory(), reading(0, runtime=3000), BatteryModel())
    memory, _ = estimate_runtime(memory, reading(1, runtime=3000), BatteryModel())
    _, estimate = estimate_runtime(memory, reading(200, runtime=100), BatteryModel())
    assert estimate.seconds == 100


@given(st.lists(st.floats(min_value=0, max_value=1e5), min_size=1, max_size=20))
def test_estimate_stays_within_the_samples_seen(values: list[float]) -> None:
    memory = EstimatorMemory()
    for at, value in enumerate(values):
        memory, estimate = estimate_runtime(memory, reading(at, runtime=value), BatteryModel())
        assert estimate.seconds is not None
        assert min(values[: at + 1]) <= estimate.seconds <= max(values[: at + 1])


def test_the_window_restarts_when_mains_fails() -> None:
    memory, _ = estimate_runtime(EstimatorMemory(), reading(0, runtime=3600, status="OL"), BatteryModel())
    _, estimate = estimate_runtime(memory, reading(1, runtime=2460, status="OB"), BatteryModel())
    assert estimate.seconds == 2460
