"""Runtime estimator: how long the battery will last at the present load. Pure, no clock.

Formula (documented in ARCHITECTURE.md too)::

    battery draw (W) = output load (W) / inverter_efficiency + overhead_w
    usable energy (Wh) = capacity_wh x usable_fraction x charge / 100
    energy runtime (s) = usable energy x 3600 / battery draw

The output load is ``ups.realpower``, else ``ups.load`` x ``ups.realpower.nominal``, else the configured
``[battery] load_w``. The UPS's own ``battery.runtime`` is preferred when it is *plausible*: present, the UPS
is not calibrating (CAL), and, when an energy runtime can be computed as well, within a factor of
:data:`PLAUSIBLE_FACTOR` of it (consumer UPSes often report a fixed or absurd runtime).

Smoothing: the estimate is the median of the last :data:`WINDOW` raw estimates taken within
:data:`MAX_AGE_S` from the same source and the same mains state, so one noisy sample never moves it, while
a real step shows after three polls.
"""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass

from piclusterd.core.reading import MainsState, UpsFlag, UpsReading

__all__ = [
    "MAX_AGE_S",
    "PLAUSIBLE_FACTOR",
    "WINDOW",
    "BatteryModel",
    "EstimatorMemory",
    "RuntimeEstimate",
    "RuntimeSource",
    "energy_runtime_s",
    "estimate_runtime",
]

WINDOW = 5
MAX_AGE_S = 60.0
PLAUSIBLE_FACTOR = 3.0


class RuntimeSource(enum.Enum):
    """Where an estimate came from, so the audit trail can say it."""

    UPS = "ups"  # the UPS's battery.runtime
    ENERGY = "energy"  # usable energy / measured or configured load
    NONE = "none"  # nothing to estimate from


@dataclass(frozen=True, slots=True)
class BatteryModel:
    """What piclusterd knows of the battery behind the UPS. ``capacity_wh`` None: not configured."""

    capacity_wh: float | None = None
    usable_fraction: float = 0.8
    inverter_efficiency: float = 0.85
    overhead_w: float = 0.0
    load_w: float | None = None

    def battery_draw_w(self, output_w: float) -> float:
        return output_w / self.inverter_efficiency + self.overhead_w


@dataclass(frozen=True, slots=True)
class RuntimeEstimate:
    seconds: float | None
    source: RuntimeSource
    load_w: float | None = None


@dataclass(frozen=True, slots=True)
class EstimatorMemory:
    """The last raw estimates as (timestamp, seconds, source, on battery); the estimator's only state."""

    samples: tuple[tuple[float, float, RuntimeSource, bool], ...] = ()


def energy_runtime_s(reading: UpsReading, battery: BatteryModel) -> tuple[float | None, float | None]:
    """(runtime in seconds, output load in watts) from energy and load, or None where unknown."""
    load_w = reading.output_watts
    if load_w is None:
        load_w = battery.load_w
    if battery.capacity_wh is None or reading.charge_pct is None or load_w is None:
        return None, load_w
    draw = battery.battery_draw_w(load_w)
    if draw <= 0:
        return None, load_w
    usable_wh = battery.capacity_wh * battery.usable_fraction * reading.charge_pct / 100.0
    return usable_wh * 3600.0 / draw, load_w


def _is_plausible(ups_runtime: float, energy_runtime: float | None) -> bool:
    if energy_runtime is None or energy_runtime <= 0:
        return True
    ratio = ups_runtime / energy_runtime
    return 1.0 / PLAUSIBLE_FACTOR <= ratio <= PLAUSIBLE_FACTOR


def estimate_runtime(
    memory: EstimatorMemory, reading: UpsReading, battery: BatteryModel
) -> tuple[EstimatorMemory, RuntimeEstimate]:
    """Fold one reading into the estimate. No side effects; same inputs, same outputs."""
    energy_s, load_w = energy_runtime_s(reading, battery)
    ups_s = reading.runtime_s
    raw: tuple[float, RuntimeSource] | None = None
    if ups_s is not None and UpsFlag.CAL not in reading.flags and _is_plausible(ups_s, energy_s):
        raw = (ups_s, RuntimeSource.UPS)
    elif energy_s is not None:
        raw = (energy_s, RuntimeSource.ENERGY)

    now = reading.timestamp
    kept = tuple(s for s in memory.samples if now - MAX_AGE_S <= s[0] <= now)
    if raw is None:
        # Nothing to estimate from in this reading: forget history rather than report an old figure.
        return EstimatorMemory(), RuntimeEstimate(None, RuntimeSource.NONE, load_w)
    # A change of source (UPS figure became implausible) or of mains restarts the window: figures taken
    # on mains are what the UPS guesses, on battery what it measures; never mix them.
    on_battery = reading.mains is MainsState.LOST
    kept = tuple(s for s in kept if s[2] is raw[1] and s[3] is on_battery)
    samples = (*kept, (now, raw[0], raw[1], on_battery))[-WINDOW:]
    seconds = statistics.median(s[1] for s in samples)
    return EstimatorMemory(samples), RuntimeEstimate(seconds, raw[1], load_w)
