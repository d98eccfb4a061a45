"""Battery charge from voltage, for chips that measure only voltage (INA219). Pure.

Piecewise-linear tables of cell voltage -> charge, per chemistry; a pack of N cells in series is read as N
equal cells. These are rough, resting-voltage curves: under load the voltage sags (charge reads low, the safe
side), on a charger it rises (charge reads high while on mains, when it matters least). LiFePO4 is nearly flat
between 20 % and 90 %, so its middle readings are coarse; trust its ends, not its middle.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["CURVES", "ChargeCurve", "Chemistry", "charge_from_voltage", "voltage_from_charge"]


class Chemistry(enum.Enum):
    """Cell chemistry, which decides the voltage curve."""

    LI_ION = "li-ion"  # Li-ion / Li-polymer, 3.0-4.2 V per cell (18650s, LiPo pouches)
    LIFEPO4 = "lifepo4"  # 2.5-3.65 V per cell


@dataclass(frozen=True, slots=True)
class ChargeCurve:
    """Points (cell volts, charge %) in rising order; linear between them, clamped outside."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a curve needs at least two points")
        for (v0, c0), (v1, c1) in pairwise(self.points):
            if not (v1 > v0 and c1 > c0):
                raise ValueError("curve points must rise in both voltage and charge")

    def charge_pct(self, cell_volts: float) -> float:
        """Charge (0-100 %) for one cell's voltage."""
        volts = [v for v, _ in self.points]
        if cell_volts <= volts[0]:
            return self.points[0][1]
        if cell_volts >= volts[-1]:
            return self.points[-1][1]
        i = bisect_right(volts, cell_volts)
        (v0, c0), (v1, c1) = self.points[i - 1], self.points[i]
        return c0 + (c1 - c0) * (cell_volts - v0) / (v1 - v0)

    def cell_volts(self, charge_pct: float) -> float:
        """The inverse: one cell's voltage at a charge (used by the emulators)."""
        charges = [c for _, c in self.points]
        if charge_pct <= charges[0]:
            return self.points[0][0]
        if charge_pct >= charges[-1]:
            return self.points[-1][0]
        i = bisect_right(charges, charge_pct)
        (v0, c0), (v1, c1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (charge_pct - c0) / (c1 - c0)


# Sources: common resting-voltage tables for 18650 Li-ion and LiFePO4 cells (battery vendors' charts); the
# exact figures vary by cell and temperature by a few percent.
CURVES: dict[Chemistry, ChargeCurve] = {
    Chemistry.LI_ION: ChargeCurve(
        (
            (3.00, 0.0),
            (3.30, 5.0),
            (3.45, 10.0),
            (3.60, 20.0),
            (3.68, 30.0),
            (3.74, 40.0),
            (3.79, 50.0),
            (3.85, 60.0),
            (3.92, 70.0),
            (4.00, 80.0),
            (4.08, 90.0),
            (4.20, 100.0),
        )
    ),
    Chemistry.LIFEPO4: ChargeCurve(
        (
            (2.50, 0.0),
            (3.00, 9.0),
            (3.20, 14.0),
            (3.22, 17.0),
            (3.25, 20.0),
            (3.26, 30.0),
            (3.27, 40.0),
            (3.28, 50.0),
            (3.29, 60.0),
            (3.30, 70.0),
            (3.32, 90.0),
            (3.35, 99.0),
            (3.40, 100.0),
        )
    ),
}


def charge_from_voltage(chemistry: Chemistry, cells: int, pack_volts: float) -> float:
    """Charge (0-100 %) of a pack of ``cells`` in series from its voltage."""
    if cells < 1:
        raise ValueError("a pack has at least one cell")
    return CURVES[chemistry].charge_pct(pack_volts / cells)


def voltage_from_charge(chemistry: Chemistry, cells: int, charge_pct: float) -> float:
    """Pack voltage at a charge: the inverse of :func:`charge_from_voltage`."""
    if cells < 1:
        raise ValueError("a pack has at least one cell")
    return CURVES[chemistry].cell_volts(charge_pct) * cells
