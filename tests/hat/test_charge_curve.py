"""Voltage -> charge curves for chips that measure only voltage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.drivers.charge_curve import CURVES, ChargeCurve, Chemistry, charge_from_voltage, voltage_from_charge


@pytest.mark.parametrize(
    ("chemistry", "cells", "volts", "charge"),
    [
        (Chemistry.LI_ION, 1, 4.20, 100.0),
        (Chemistry.LI_ION, 1, 3.00, 0.0),
        (Chemistry.LI_ION, 1, 3.79, 50.0),
        (Chemistry.LI_ION, 2, 7.58, 50.0),  # 2S: per cell 3.79 V
        (Chemistry.LI_ION, 2, 9.00, 100.0),  # clamped above
        (Chemistry.LI_ION, 1, 2.50, 0.0),  # clamped below
        (Chemistry.LIFEPO4, 1, 3.40, 100.0),
        (Chemistry.LIFEPO4, 4, 10.0, 0.0),
        (Chemistry.LIFEPO4, 4, 13.12, 50.0),
    ],
)
def test_known_points(chemistry: Chemistry, cells: int, volts: float, charge: float) -> None:
    assert charge_from_voltage(chemistry, cells, volts) == pytest.approx(charge)


def test_between_points_is_linear() -> None:
    # Li-ion: 3.85 V = 60 %, 3.92 V = 70 %
    assert charge_from_voltage(Chemistry.LI_ION, 1, 3.885) == pytest.approx(65.0)


@pytest.mark.parametrize("chemistry", list(Chemistry))
@given(low=st.floats(2.0, 4.5), high=st.floats(2.0, 4.5))
def test_charge_never_falls_as_voltage_rises(chemistry: Chemistry, low: float, high: float) -> None:
    low, high = sorted((low, high))
    assert charge_from_voltage(chemistry, 1, low) <= charge_from_voltage(chemistry, 1, high)


@pytest.mark.parametrize("chemistry", list(Chemistry))
@given(charge=st.floats(0.0, 100.0), cells=st.integers(1, 4))
def test_voltage_from_charge_inverts_charge_from_voltage(chemistry: Chemistry, charge: float, cells: int) -> None:
    volts = voltage_from_charge(chemistry, cells, charge)
    assert charge_from_voltage(chemistry, cells, volts) == pytest.approx(charge, abs=1e-6)


def test_curves_cover_0_to_100() -> None:
    for curve in CURVES.values():
        assert curve.points[0][1] == 0.0 and curve.points[-1][1] == 100.0


def test_a_curve_must_rise() -> None:
    with pytest.raises(ValueError, match="rise"):
        ChargeCurve(((3.0, 0.0), (3.5, 60.0), (3.4, 80.0)))


def test_a_pack_has_cells() -> None:
    with pytest.raises(ValueError, match="at least one cell"):
        charge_from_voltage(Chemistry.LI_ION, 0, 3.7)
