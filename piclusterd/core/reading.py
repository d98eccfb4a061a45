"""UPS readings: status flags parsed once into an enum set, numeric values validated at the boundary. Pure.

Every power source (NUT, I2C HAT, GPIO pin) produces :class:`UpsReading`. A value that cannot be trusted
(not a number, negative runtime, charge over 100 %) never reaches a reading: it becomes a
:class:`Rejection`, which the daemon logs as ``power.reading_rejected``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MainsState",
    "ParsedReading",
    "Rejection",
    "UpsFlag",
    "UpsReading",
    "parse_nut_variables",
    "parse_status",
]


class UpsFlag(enum.Enum):
    """The words of NUT's ``ups.status``."""

    OL = "OL"  # on line (mains present)
    OB = "OB"  # on battery
    LB = "LB"  # low battery (the UPS's own judgement)
    HB = "HB"  # high battery
    RB = "RB"  # replace battery
    CHRG = "CHRG"
    DISCHRG = "DISCHRG"
    BYPASS = "BYPASS"
    CAL = "CAL"  # calibration: runtime figures are unreliable
    OFF = "OFF"  # output off
    OVER = "OVER"  # overload
    TRIM = "TRIM"
    BOOST = "BOOST"
    FSD = "FSD"  # forced shutdown, set by the primary
    ALARM = "ALARM"
    TEST = "TEST"
    ECO = "ECO"


class MainsState(enum.Enum):
    """What a reading says about mains, derived from the flags once."""

    PRESENT = "present"
    LOST = "lost"


def parse_status(text: str) -> tuple[frozenset[UpsFlag], tuple[str, ...]]:
    """Split ``ups.status`` into known flags and the unknown words (to be logged, never fatal).

    Words are matched whole, never as substrings ("OBSOLETE" is not OB).
    """
    known: set[UpsFlag] = set()
    unknown: list[str] = []
    for word in text.split():
        try:
            known.add(UpsFlag(word))
        except ValueError:
            unknown.append(word)
    return frozenset(known), tuple(unknown)


@dataclass(frozen=True, slots=True)
class UpsReading:
    """One trustworthy observation of a power source.

    ``timestamp`` is the monotonic time (seconds) at which it was taken, ``wall_time`` the UNIX time for
    the audit trail; ``source`` names the source (``"nut:ups1@10.0.0.2:3493"``). Optional values are
    ``None`` when the source does not report them or reported garbage. ``parts`` is empty for a reading of
    one source; a reading combined from several (:mod:`piclusterd.node.combined_source`) keeps there the latest
    reading of each source it heard, so each battery can be followed on its own.
    """

    source: str
    timestamp: float
    wall_time: float
    flags: frozenset[UpsFlag]
    charge_pct: float | None = None
    runtime_s: float | None = None
    battery_voltage: float | None = None
    load_pct: float | None = None
    realpower_w: float | None = None
    realpower_nominal_w: float | None = None
    input_voltage: float | None = None
    parts: tuple[UpsReading, ...] = ()

    @property
    def mains(self) -> MainsState:
        """OB wins over OL: a status that says both is treated as on battery (the safe reading)."""
        if UpsFlag.OB in self.flags:
            return MainsState.LOST
        return MainsState.PRESENT

    @property
    def output_watts(self) -> float | None:
        """Load on the UPS output: ``ups.realpower``, else ``ups.load`` x ``ups.realpower.nominal``."""
        if self.realpower_w is not None:
            return self.realpower_w
        if self.load_pct is not None and self.realpower_nominal_w is not None:
            return self.load_pct / 100.0 * self.realpower_nominal_w
        return None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A value that was refused, with the reason in words an operator understands."""

    variable: str
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedReading:
    """The result of parsing one poll: a reading (or ``None`` if nothing usable) and what was refused."""

    reading: UpsReading | None
    rejections: tuple[Rejection, ...] = ()
    unknown_status_words: tuple[str, ...] = ()


# NUT variable -> (reading field, lowest allowed, highest allowed)
_NUMERIC: dict[str, tuple[str, float, float]] = {
    "battery.charge": ("charge_pct", 0.0, 100.0),
    "battery.runtime": ("runtime_s", 0.0, math.inf),
    "battery.voltage": ("battery_voltage", 0.0, 1000.0),
    "ups.load": ("load_pct", 0.0, 1000.0),
    "ups.realpower": ("realpower_w", 0.0, 1e6),
    "ups.realpower.nominal": ("realpower_nominal_w", 0.0, 1e6),
    "input.voltage": ("input_voltage", 0.0, 1000.0),
}


def _number(text: str, low: float, high: float) -> float | str:
    """The value as a float, or a reason why it is refused."""
    try:
        value = float(text)
    except ValueError:
        return "not a number"
    if not math.isfinite(value):
        return "not a finite number"
    if value < low:
        return f"below {low:g}"
    if value > high:
        return f"above {high:g}"
    return value


def parse_nut_variables(
    variables: Mapping[str, str], *, source: str, timestamp: float, wall_time: float
) -> ParsedReading:
    """Turn NUT variables into a reading, refusing every value that cannot be trusted.

    A bad numeric value is dropped on its own (the rest of the reading stays usable); a missing or
    meaningless ``ups.status`` (neither OL nor OB) makes the whole reading unusable, because mains state is
    the one thing every decision needs.
    """
    rejections: list[Rejection] = []
    status_text = variables.get("ups.status")
    if status_text is None:
        return ParsedReading(None, (Rejection("ups.status", "", "missing"),))
    flags, unknown = parse_status(status_text)
    if status_text.split() == ["WAIT"]:
        # NUT's own "driver is still waiting for data" (start-up): no data yet, not bad data.
        return ParsedReading(None)
    if UpsFlag.OL not in flags and UpsFlag.OB not in flags:
        return ParsedReading(None, (Rejection("ups.status", status_text, "says neither OL nor OB"),), unknown)
    values: dict[str, float] = {}
    for variable, (name, low, high) in _NUMERIC.items():
        raw = variables.get(variable)
        if raw is None:
            continue
        parsed = _number(raw, low, high)
        if isinstance(parsed, str):
            rejections.append(Rejection(variable, raw, parsed))
        else:
            values[name] = parsed
    reading = UpsReading(
        source=source,
        timestamp=timestamp,
        wall_time=wall_time,
        flags=flags,
        charge_pct=values.get("charge_pct"),
        runtime_s=values.get("runtime_s"),
        battery_voltage=values.get("battery_voltage"),
        load_pct=values.get("load_pct"),
        realpower_w=values.get("realpower_w"),
        realpower_nominal_w=values.get("realpower_nominal_w"),
        input_voltage=values.get("input_voltage"),
    )
    return ParsedReading(reading, tuple(rejections), unknown)
