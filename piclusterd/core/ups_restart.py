"""When the UPS turns its output back on after a shutdown, and whether that leaves enough for the next one. Pure.

After a full shutdown with ``shutdown.return``, the UPS restores its output when mains returns, after
``ups.delay.start`` seconds, and, where it has the setting, only once the battery is back at
``battery.charge.restart`` percent (NUT's variable names; many UPSes expose neither). If it restarts below what
an orderly shutdown needs, the Pis boot on a battery that cannot carry them through the next outage's orderly
shutdown: a flicker then costs a hard power loss. :func:`restart_checks` says so; the daemon reads the values
from upsd at start (check-config stays offline) and sets them only when the configuration explicitly asks
(``[ups] set_charge_restart`` / ``set_delay_start``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from piclusterd.core.last_minute_budget import ReserveCheck, ReserveVerdict

__all__ = [
    "RESTART_VARIABLES",
    "UpsRestartSettings",
    "charge_for_runtime_pct",
    "parse_restart_settings",
    "restart_checks",
]

#: The variables read (and, when asked, the first two written).
RESTART_VARIABLES = ("battery.charge.restart", "ups.delay.start", "battery.charge.low", "ups.delay.shutdown")


@dataclass(frozen=True, slots=True)
class UpsRestartSettings:
    """The UPS's restart settings as upsd serves them (None: not exposed, or refused in ``problems``)."""

    charge_restart_pct: float | None = None
    delay_start_s: float | None = None
    charge_low_pct: float | None = None
    delay_shutdown_s: float | None = None
    problems: tuple[str, ...] = ()


def _number(variables: Mapping[str, str], name: str, high: float, problems: list[str]) -> float | None:
    raw = variables.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip()[:32])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= high):
        problems.append(f"{name} = {raw[:32]!r} is not a number from 0 to {high:g}: ignored")
        return None
    return value


def parse_restart_settings(variables: Mapping[str, str]) -> UpsRestartSettings:
    """The settings from upsd's variables, each bounded (a percentage 0..100, a delay up to a day)."""
    problems: list[str] = []
    return UpsRestartSettings(
        charge_restart_pct=_number(variables, "battery.charge.restart", 100, problems),
        delay_start_s=_number(variables, "ups.delay.start", 86400, problems),
        charge_low_pct=_number(variables, "battery.charge.low", 100, problems),
        delay_shutdown_s=_number(variables, "ups.delay.shutdown", 86400, problems),
        problems=tuple(problems),
    )


def charge_for_runtime_pct(
    seconds: float, *, capacity_wh: float | None, usable_fraction: float, load_w: float | None
) -> float | None:
    """The charge that holds ``seconds`` of runtime at ``load_w``; None without a capacity and a load."""
    if not capacity_wh or not load_w or capacity_wh <= 0 or load_w <= 0 or usable_fraction <= 0:
        return None
    return min(100.0, seconds * load_w / 3600.0 / (capacity_wh * usable_fraction) * 100.0)


def restart_checks(
    settings: UpsRestartSettings, *, needed_pct: float | None, needed_why: str
) -> tuple[ReserveCheck, ...]:
    """Whether the UPS restarts its output with enough charge for the next orderly shutdown.

    ``needed_pct`` is the charge an orderly shutdown needs at the configured load (None: unknown, then only
    the UPS's own low-battery level is compared)."""
    key = "battery.charge.restart"
    restart = settings.charge_restart_pct
    checks: list[ReserveCheck] = []
    delay = "" if settings.delay_start_s is None else f" (after ups.delay.start {settings.delay_start_s:g} s)"
    if restart is None or restart == 0:
        said = "does not expose battery.charge.restart" if restart is None else "has battery.charge.restart = 0"
        checks.append(
            ReserveCheck(
                ReserveVerdict.WARN
                if needed_pct is not None or settings.charge_low_pct is not None
                else ReserveVerdict.OK,
                key,
                f"the UPS {said}: it restores its output at any charge when mains returns{delay}; a flicker soon "
                "after can find the battery unable to carry an orderly shutdown (set it on the UPS, or [ups] "
                "set_charge_restart where upsd lets piclusterd write it)",
            )
        )
    elif settings.charge_low_pct is not None and restart <= settings.charge_low_pct:
        checks.append(
            ReserveCheck(
                ReserveVerdict.WARN,
                key,
                f"the UPS restores its output at {restart:g} %, at or below its own low-battery level "
                f"({settings.charge_low_pct:g} %){delay}: the Pis would boot into LB and go down again",
            )
        )
    elif needed_pct is not None and restart < needed_pct:
        checks.append(
            ReserveCheck(
                ReserveVerdict.WARN,
                key,
                f"the UPS restores its output at {restart:g} %{delay}, below the {needed_pct:.0f} % {needed_why}",
            )
        )
    else:
        checks.append(ReserveCheck(ReserveVerdict.OK, key, f"the UPS restores its output at {restart:g} %{delay}"))
    checks += [ReserveCheck(ReserveVerdict.WARN, "ups", problem) for problem in settings.problems]
    return tuple(checks)
