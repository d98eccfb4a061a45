"""The power state machine: unknown, online, on_battery, low_battery, critical. Pure, no clock.

``decide(memory, observation, policy) -> (memory, events)``. The daemon, the simulator and the demo all
feed it the same way; it never reads the clock (``observation.now`` is given) and does no I/O.

Rules, in the order they are applied (first match wins):

1. No fresh reading, and the last good one is younger than ``stale_after``: hold the present state.
2. No fresh reading for ``stale_after``: if we were on battery, NUT's fail-safe rule applies (a UPS that
   goes silent while on battery counts as on battery + low battery), so **critical**; otherwise **unknown**.
   Missing data never reads as online.
3. ``FSD`` (forced shutdown, set by the NUT primary): **critical**, as upsmon does.
4. On battery and ``LB``, or an estimated runtime under ``critical_runtime``: **critical**. Critical then
   latches for as long as mains stays out: the local shutdown it triggers cannot be taken back.
   OB + LB is confirmed first, in the spirit of upsmon's ``OBLBDURATION`` (upsmon.conf(5), NUT 2.8): it must
   hold ``lb_confirm`` before it counts, so a 20 s flicker on a battery that is low after an outage is ridden
   through instead of power-cycling the cluster. It is waited for only while the runtime projection (load and
   reserve) says the battery, after the rest of the wait, still holds an orderly full shutdown
   ``LB_RESERVE_MARGIN`` times over; with no projection it is not waited for at all. Meanwhile the state is
   **low_battery**. FSD, a UPS silent on battery and a runtime under ``critical_runtime`` stay immediate.
5. On battery and charge <= ``low_charge`` or runtime < ``low_runtime``: **low_battery**; it is left only
   when charge rises ``charge_hysteresis`` points above ``low_charge`` and runtime 10 % above ``low_runtime``.
6. On battery otherwise: **on_battery**.
7. Mains present: **online**, but leaving a battery state needs mains seen present for
   ``recovery_debounce`` (any on-battery reading restarts the count). From unknown, one fresh OL suffices.

Escalation is immediate because acting late is the danger; recovery is debounced because oscillating is.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from piclusterd.core.reading import MainsState, UpsFlag, UpsReading

__all__ = [
    "BATTERY_STATES",
    "Observation",
    "PowerEvent",
    "PowerMemory",
    "PowerPolicy",
    "PowerState",
    "SourceLost",
    "SourceRestored",
    "StateChanged",
    "decide",
    "lb_wait_left_s",
]

LOW_RUNTIME_HYSTERESIS = 1.10

#: After confirming OB + LB, the battery must still hold an orderly full shutdown this many times over.
LB_RESERVE_MARGIN = 2.0


class PowerState(enum.Enum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    ON_BATTERY = "on_battery"
    LOW_BATTERY = "low_battery"
    CRITICAL = "critical"


BATTERY_STATES = frozenset({PowerState.ON_BATTERY, PowerState.LOW_BATTERY, PowerState.CRITICAL})


@dataclass(frozen=True, slots=True)
class PowerPolicy:
    stale_after_s: float = 15.0
    critical_runtime_s: float = 300.0
    low_runtime_s: float = 600.0
    low_charge_pct: float = 30.0
    charge_hysteresis_pct: float = 5.0
    recovery_debounce_s: float = 5.0
    #: How long OB + LB must hold before it is critical (0: at once, upsmon's default). Capped, poll by poll,
    #: by the energy above ``LB_RESERVE_MARGIN`` orderly full shutdowns (see :func:`lb_wait_left_s`).
    lb_confirm_s: float = 0.0
    #: How long an orderly full shutdown takes (``[shutdown] full_shutdown_wait``): the energy it needs is
    #: this at the present draw.
    orderly_shutdown_s: float = 180.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What one poll produced: a fresh reading (or None: the source failed or was rejected), the runtime
    estimate for it, and the monotonic time of the poll."""

    now: float
    reading: UpsReading | None
    runtime_s: float | None = None


@dataclass(frozen=True, slots=True)
class PowerMemory:
    """Everything the machine remembers between polls."""

    state: PowerState = PowerState.UNKNOWN
    since: float | None = None
    reason: str = "no reading yet"
    last_reading: UpsReading | None = None
    last_runtime_s: float | None = None
    mains_back_since: float | None = None
    source_ok: bool = True
    lb_since: float | None = None  # when the present unbroken OB + LB spell began

    @property
    def on_battery(self) -> bool:
        return self.state in BATTERY_STATES


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: PowerState
    new: PowerState
    reason: str
    reading: UpsReading | None
    runtime_s: float | None


@dataclass(frozen=True, slots=True)
class SourceLost:
    """The source stopped giving usable readings (first failed poll after a good one)."""

    last_state: PowerState


@dataclass(frozen=True, slots=True)
class SourceRestored:
    """The source gives usable readings again."""

    silent_s: float | None


PowerEvent = StateChanged | SourceLost | SourceRestored


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s"


def lb_wait_left_s(lb_for_s: float, runtime_s: float | None, policy: PowerPolicy) -> float:
    """How much longer OB + LB is confirmed before it counts (0: critical now). Pure.

    The wait is ``lb_confirm`` from the first OB + LB reading, but only while the runtime projection at the
    present draw covers the rest of it plus ``LB_RESERVE_MARGIN`` orderly full shutdowns: so it can never
    outlast the battery. An unknown runtime cannot promise that: no wait."""
    left = policy.lb_confirm_s - lb_for_s
    if left <= 0 or runtime_s is None:
        return 0.0
    if runtime_s < left + LB_RESERVE_MARGIN * policy.orderly_shutdown_s or runtime_s < policy.critical_runtime_s:
        return 0.0
    return left


def _holds_a_silent_battery(reading: UpsReading, now: float, policy: PowerPolicy) -> bool:
    """A combined reading counting a source silent on battery for stale_after: its LB is NUT's DEADTIME
    fail-safe, which stays immediate."""
    return any(p.mains is MainsState.LOST and now - p.timestamp >= policy.stale_after_s for p in reading.parts)


def _classify_on_battery(
    reading: UpsReading, runtime_s: float | None, previous: PowerState, policy: PowerPolicy, lb_for_s: float
) -> tuple[PowerState, str]:
    """Rules 4 to 6: which battery state a fresh on-battery reading means."""
    # The wait must be covered by the most pessimistic figure known: the UPS's own battery.runtime counts even
    # where the estimate preferred the energy figure (at LB a lead-acid estimate is least reliable).
    known = [r for r in (runtime_s, reading.runtime_s) if r is not None]
    lb_left = lb_wait_left_s(lb_for_s, min(known, default=None), policy) if UpsFlag.LB in reading.flags else 0.0
    if UpsFlag.LB in reading.flags and lb_left <= 0:
        confirmed = policy.lb_confirm_s > 0 and policy.lb_confirm_s <= lb_for_s < math.inf
        held = f" for {_fmt_s(lb_for_s)}" if confirmed else ""
        return PowerState.CRITICAL, f"UPS reports low battery (OB LB){held}"
    if runtime_s is not None and runtime_s < policy.critical_runtime_s:
        return (
            PowerState.CRITICAL,
            f"runtime {_fmt_s(runtime_s)} is under critical_runtime {_fmt_s(policy.critical_runtime_s)}",
        )
    if previous is PowerState.CRITICAL:
        return PowerState.CRITICAL, "critical holds until mains returns"
    if lb_left > 0:
        # No wording with the seconds left: the reason would change every poll and log a transition each time.
        return PowerState.LOW_BATTERY, (
            f"UPS reports low battery (OB LB): confirming it for up to {_fmt_s(policy.lb_confirm_s)} "
            "(low_battery_confirm) while the battery holds"
        )
    charge = reading.charge_pct
    if charge is not None and charge <= policy.low_charge_pct:
        return PowerState.LOW_BATTERY, f"charge {charge:g} % is at or under low_charge {policy.low_charge_pct:g} %"
    if runtime_s is not None and runtime_s < policy.low_runtime_s:
        return (
            PowerState.LOW_BATTERY,
            f"runtime {_fmt_s(runtime_s)} is under low_runtime {_fmt_s(policy.low_runtime_s)}",
        )
    if previous is PowerState.LOW_BATTERY:
        # Hysteresis: a charge reading that wobbles around the threshold must not flap the state.
        if charge is not None and charge < policy.low_charge_pct + policy.charge_hysteresis_pct:
            return PowerState.LOW_BATTERY, "charge not yet above low_charge + charge_hysteresis"
        if runtime_s is not None and runtime_s < policy.low_runtime_s * LOW_RUNTIME_HYSTERESIS:
            return PowerState.LOW_BATTERY, "runtime not yet 10 % above low_runtime"
    return PowerState.ON_BATTERY, "UPS reports on battery (OB)"


def _move(
    memory: PowerMemory, target: PowerState, reason: str, obs: Observation, events: list[PowerEvent]
) -> PowerMemory:
    if target is memory.state:
        return memory
    events.append(StateChanged(memory.state, target, reason, obs.reading, obs.runtime_s))
    return replace(memory, state=target, since=obs.now, reason=reason)


def decide(memory: PowerMemory, obs: Observation, policy: PowerPolicy) -> tuple[PowerMemory, tuple[PowerEvent, ...]]:
    """Fold one observation into the state. Pure: no side effects, no clock; events only on transitions."""
    events: list[PowerEvent] = []
    reading = obs.reading

    # Source health is reported on its transitions only, never once per poll.
    if reading is None and memory.source_ok:
        events.append(SourceLost(memory.state))
        memory = replace(memory, source_ok=False)
    elif reading is not None and not memory.source_ok:
        last = memory.last_reading
        events.append(SourceRestored(None if last is None else obs.now - last.timestamp))
        memory = replace(memory, source_ok=True)

    if reading is None:
        last = memory.last_reading
        # Rule 1: a missed poll or two is not an outage of data; hold what we know.
        if last is not None and obs.now - last.timestamp < policy.stale_after_s:
            return memory, tuple(events)
        silent = "no reading yet" if last is None else f"no usable reading for {_fmt_s(obs.now - last.timestamp)}"
        # Rule 2: fail safe. Silent on battery counts as on battery + low battery (NUT's DEADTIME rule).
        if memory.on_battery:
            memory = _move(memory, PowerState.CRITICAL, f"{silent} while on battery (fail-safe: OB LB)", obs, events)
        else:
            memory = _move(memory, PowerState.UNKNOWN, silent, obs, events)
        return memory, tuple(events)

    memory = replace(memory, last_reading=reading, last_runtime_s=obs.runtime_s)

    # Rule 3: the NUT primary has ordered a shutdown; nothing else matters.
    if UpsFlag.FSD in reading.flags:
        memory = replace(memory, mains_back_since=None, lb_since=None)
        return _move(memory, PowerState.CRITICAL, "UPS forced shutdown (FSD)", obs, events), tuple(events)

    # Rules 4-6: on battery. Escalation is immediate.
    if reading.mains is MainsState.LOST:
        lb_since = None
        if UpsFlag.LB in reading.flags:
            lb_since = memory.lb_since if memory.lb_since is not None else obs.now
        memory = replace(memory, mains_back_since=None, lb_since=lb_since)
        lb_for = 0.0 if lb_since is None else obs.now - lb_since
        if _holds_a_silent_battery(reading, obs.now, policy):
            lb_for = math.inf  # its LB is the fail-safe of a silent source (combined_source rule 2): no wait
        target, reason = _classify_on_battery(reading, obs.runtime_s, memory.state, policy, lb_for)
        return _move(memory, target, reason, obs, events), tuple(events)

    # Rule 7: mains present. From a battery state, only after it has held for recovery_debounce.
    memory = replace(memory, lb_since=None)
    if memory.on_battery:
        back_since = memory.mains_back_since if memory.mains_back_since is not None else obs.now
        memory = replace(memory, mains_back_since=back_since)
        if obs.now - back_since < policy.recovery_debounce_s:
            return memory, tuple(events)
    memory = replace(memory, mains_back_since=None)
    return _move(memory, PowerState.ONLINE, "UPS reports on line (OL)", obs, events), tuple(events)
