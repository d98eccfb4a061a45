"""Several power sources read as one: a HAT on this Pi and a shared NUT UPS, say.

:class:`CombinedPowerSource` implements :class:`piclusterd.core.ports.PowerSource` over several sources; each poll
asks every one of them and folds the answers with :func:`combine`, which is pure (no clock, no I/O: ``now``
and each source's last good reading are handed in).

The combination rule, in the order it is applied:

1. **Who counts.** A source counts when this poll gave a reading (*fresh*). A source that failed or whose
   reading was rejected is reported (a :class:`~piclusterd.core.reading.Rejection` naming it, with its error) and
   left out, **unless its last good reading said on battery**: then it keeps counting (rule 2).
2. **Silent on battery stays on battery** (NUT's DEADTIME rule, per source). A source last heard saying OB is
   *held* as on battery with its last values for ``stale_after``; once silent for ``stale_after`` it counts
   as **OB LB** (on battery, low battery), which makes the daemon critical. Without this a HAT that still says
   OL (it is fed by the very UPS that went silent) would mask the outage, and the daemon, seeing OL, would
   go back online after ``recovery_debounce`` -- the one thing NUT's fail-safe exists to prevent.
3. **Mains.** Mains is lost (OB, never OL) if **any** counting source says OB; present (OL) only when every
   counting source says OL.
4. **Flags.** On battery: the flags of the sources on battery (LB, FSD, CAL...), without OL. A low battery
   that is charging on mains (OL LB) is not a reason to act and is dropped. FSD counts from any source: it
   is an order from the NUT primary, not a measurement.
5. **Values.** On battery: charge and runtime are the **lowest** among the sources on battery (the battery
   that runs out first decides); the other values (load, voltage...) are those of the source with the
   lowest runtime (then lowest charge). On mains: the values of the first source, in configured order, that
   answered.
6. **Per battery.** The combined reading keeps in ``parts`` the latest reading of every source ever heard
   (fresh, or the last one, older, for a silent source), so a planner can follow each battery's energy.
7. **Nothing at all.** When no source counts, :meth:`CombinedPowerSource.poll` raises
   :class:`~piclusterd.core.errors.SourceUnavailable` with every source's error: the daemon's own stale rules
   take over, exactly as for one silent source.

A source that fails while on mains is reported and ignored: the others still protect the node, and the
combination cannot tell a dead upsd from a dead UPS (a silent source was last seen on mains, so there is no
outage to hold on to).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.ports import Clock, PowerSource
from piclusterd.core.reading import MainsState, ParsedReading, Rejection, UpsFlag, UpsReading

__all__ = ["CombinedPowerSource", "MemberPoll", "combine", "combined_name"]


@dataclass(frozen=True, slots=True)
class MemberPoll:
    """What one source gave on this poll: its parsed answer, or the error it raised; and its last good reading
    (from an earlier poll, ``None`` if never heard)."""

    name: str
    parsed: ParsedReading | None
    error: str | None
    last_good: UpsReading | None


def combined_name(names: Sequence[str]) -> str:
    """The names joined with ``+``: ``nut:ups@10.0.0.2:3493+hat:geekworm-x1200@i2c-1:0x36``."""
    return "+".join(names)


def _held(member: MemberPoll, now: float, stale_after_s: float) -> tuple[UpsReading, Rejection] | None:
    """Rule 2: the reading a silent source still counts with, and the notice saying why; None if it does not."""
    last = member.last_good
    if last is None or last.mains is not MainsState.LOST:
        return None
    error = member.error or "no usable reading"
    if now - last.timestamp < stale_after_s:
        return last, Rejection(member.name, "", f"{error}; held as on battery (its last reading) until stale_after")
    failsafe = replace(last, flags=last.flags | {UpsFlag.OB, UpsFlag.LB})
    reason = f"{error}; silent for stale_after while on battery: counted as on battery + low battery (fail-safe)"
    return failsafe, Rejection(member.name, "", reason)


def _runtime_key(reading: UpsReading) -> tuple[float, float]:
    runtime = math.inf if reading.runtime_s is None else reading.runtime_s
    charge = math.inf if reading.charge_pct is None else reading.charge_pct
    return runtime, charge


def _lowest(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def combine(
    members: Sequence[MemberPoll], *, name: str, now: float, wall_time: float, stale_after_s: float
) -> ParsedReading | None:
    """Fold one poll of every source into one reading (the rule is in the module docstring). Pure.

    Returns ``None`` when no source counts (rule 7); the caller raises with the errors.
    """
    counting: list[UpsReading] = []  # in configured order
    parts: list[UpsReading] = []
    rejections: list[Rejection] = []
    unknown: list[str] = []
    for member in members:
        parsed = member.parsed
        if parsed is not None:
            rejections.extend(Rejection(f"{member.name} {r.variable}", r.value, r.reason) for r in parsed.rejections)
            unknown.extend(w for w in parsed.unknown_status_words if w not in unknown)
        if parsed is not None and parsed.reading is not None:
            counting.append(parsed.reading)
            parts.append(parsed.reading)
            continue
        # Rule 1: failed or rejected this time.
        if member.last_good is not None:
            parts.append(member.last_good)
        held = _held(member, now, stale_after_s)
        if held is not None:
            counting.append(held[0])
            rejections.append(held[1])
        elif member.error is not None:
            rejections.append(Rejection(member.name, "", member.error))
    if not counting:
        return None

    on_battery = [r for r in counting if r.mains is MainsState.LOST]
    fsd: set[UpsFlag] = {UpsFlag.FSD} if any(UpsFlag.FSD in r.flags for r in counting) else set()
    if on_battery:
        # Rules 3-5: any OB wins; the battery that runs out first gives the figures.
        flags = frozenset[UpsFlag]().union(*(r.flags for r in on_battery)) - {UpsFlag.OL} | fsd
        basis = min(on_battery, key=_runtime_key)
        charge = _lowest([r.charge_pct for r in on_battery])
        runtime = _lowest([r.runtime_s for r in on_battery])
    else:
        flags = frozenset[UpsFlag]().union(*(r.flags for r in counting)) - {UpsFlag.LB} | fsd
        basis = counting[0]
        charge, runtime = basis.charge_pct, basis.runtime_s
    reading = replace(
        basis,
        source=name,
        timestamp=now,
        wall_time=wall_time,
        flags=frozenset(flags),
        charge_pct=charge,
        runtime_s=runtime,
        parts=tuple(parts),
    )
    return ParsedReading(reading, tuple(rejections), tuple(unknown))


class CombinedPowerSource:
    """Implements :class:`piclusterd.core.ports.PowerSource` over several sources (see the module docstring).

    ``sources`` are asked in order on every poll; ``clock`` dates the combined reading and measures how long
    a source on battery has been silent, against ``stale_after_s`` (the daemon's ``[ups] stale_after``).
    Owns the sources: :meth:`close` closes each of them.
    """

    def __init__(self, sources: Sequence[PowerSource], *, clock: Clock, stale_after_s: float) -> None:
        if not sources:
            raise ValueError("a combined power source needs at least one source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"the sources of a combined power source need distinct names, not {names}")
        if not (stale_after_s > 0 and math.isfinite(stale_after_s)):
            raise ValueError(f"stale_after_s must be a positive number of seconds, not {stale_after_s}")
        self._sources = tuple(sources)
        self._clock = clock
        self._stale_after_s = float(stale_after_s)
        self._name = combined_name(names)
        self._last_good: dict[str, UpsReading] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def sources(self) -> tuple[PowerSource, ...]:
        return self._sources

    def poll(self) -> ParsedReading:
        """Ask every source, combine; :class:`SourceUnavailable` (every error) when none counts."""
        members: list[MemberPoll] = []
        for source in self._sources:
            last = self._last_good.get(source.name)
            try:
                parsed = source.poll()
            except SourceUnavailable as error:
                members.append(MemberPoll(source.name, None, str(error), last))
                continue
            members.append(MemberPoll(source.name, parsed, None, last))
            if parsed.reading is not None:
                self._last_good[source.name] = parsed.reading
        combined = combine(
            members,
            name=self._name,
            now=self._clock.monotonic(),
            wall_time=self._clock.wall(),
            stale_after_s=self._stale_after_s,
        )
        if combined is None:
            errors = "; ".join(f"{m.name}: {m.error or 'no usable reading'}" for m in members)
            raise SourceUnavailable(f"no power source answered ({errors})")
        return combined

    def close(self) -> None:
        for source in self._sources:
            source.close()
