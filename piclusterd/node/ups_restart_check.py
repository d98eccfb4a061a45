"""Adapter: at start, read the UPS's restart settings from upsd, set them if the config says so, and say
whether the UPS would restart its output below what an orderly shutdown needs (:mod:`piclusterd.core.ups_restart`).

On a thread of its own: a silent upsd must not hold the daemon's start (its first poll says that loudly
anyway). check-config stays offline, so this is where the UPS's own values are checked: the journal at start
(``ups.restart_settings``). Only ``[ups] set_charge_restart`` / ``set_delay_start`` write anything.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from piclusterd.config.last_minute import last_minute_report
from piclusterd.config.model import Config
from piclusterd.core.last_minute_budget import ReserveCheck, ReserveVerdict
from piclusterd.core.ups_restart import (
    UpsRestartSettings,
    charge_for_runtime_pct,
    parse_restart_settings,
    restart_checks,
)
from piclusterd.drivers.nut import read_ups_variables, set_ups_variable
from piclusterd.node.audit import AuditLogger
from piclusterd.node.kubelet_config import read_kubelet_shutdown

__all__ = ["check_ups_restart", "check_ups_restart_in_background", "judge_restart_settings"]


def check_ups_restart(config: Config, log: AuditLogger) -> None:
    """Set what the config asks, then read and judge the UPS's restart settings. Never raises."""
    ups = config.ups
    password = None if ups.password is None else ups.password.value
    wanted = {"battery.charge.restart": ups.set_charge_restart_pct, "ups.delay.start": ups.set_delay_start_s}
    try:
        for variable, value in wanted.items():
            if value is None:
                continue
            error = set_ups_variable(
                ups.host, ups.port, ups.name, ups.username, password, ups.timeout_s, variable, round(value)
            )
            if error is None:
                log.info("ups.restart_setting_set", variable=variable, value=round(value))
            else:
                log.error("ups.restart_setting_set_failed", variable=variable, value=round(value), error=error)
        variables = read_ups_variables(ups.host, ups.port, ups.name, ups.username, password, ups.timeout_s)
    except Exception as error:  # a start-up check: whatever fails is said, the daemon goes on
        log.warning("ups.restart_settings_unread", error=f"{type(error).__name__}: {error}"[:300])
        return
    settings, checks = judge_restart_settings(config, variables)
    warnings = [f"{c.key}: {c.message}" for c in checks if c.verdict is ReserveVerdict.WARN]
    level = log.warning if warnings else log.info
    level(
        "ups.restart_settings",
        charge_restart=settings.charge_restart_pct,
        delay_start_s=settings.delay_start_s,
        charge_low=settings.charge_low_pct,
        delay_shutdown_s=settings.delay_shutdown_s,
        warnings=warnings,
    )


def judge_restart_settings(
    config: Config, variables: Mapping[str, str]
) -> tuple[UpsRestartSettings, tuple[ReserveCheck, ...]]:
    """The UPS's restart settings from upsd's ``variables`` and what the configuration makes of them: the
    one judgement the daemon's start and ``piclusterctl doctor`` share. Reads kubelet's config file."""
    settings = parse_restart_settings(variables)
    battery = config.battery
    needed = charge_for_runtime_pct(
        config.policy.critical_runtime_s,
        capacity_wh=battery.capacity_wh,
        usable_fraction=battery.usable_fraction,
        load_w=battery.load_w,
    )
    checks = restart_checks(settings, needed_pct=needed, needed_why="that critical_runtime needs at [battery] load_w")
    if settings.charge_low_pct is not None:
        # The UPS's own LB threshold, now that it is known: does the energy left at LB cover the last minute?
        report = last_minute_report(
            config, read_kubelet_shutdown(Path(config.shutdown.k3s_config)), ups_charge_low_pct=settings.charge_low_pct
        )
        checks = (*checks, *(c for c in report.checks if c.key == "battery.charge.low"))
    return settings, checks


def check_ups_restart_in_background(config: Config, log: AuditLogger) -> threading.Thread | None:
    """Run :func:`check_ups_restart` on a daemon thread when this node reads a NUT UPS; None otherwise."""
    if "nut" not in config.ups.drivers:
        return None
    thread = threading.Thread(target=check_ups_restart, args=(config, log), name="piclusterd-ups-restart", daemon=True)
    thread.start()
    return thread
