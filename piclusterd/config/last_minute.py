"""This node's last-minute budget and reserve checks from its configuration: what ``check-config`` prints,
the daemon logs at start, and a future ``piclusterctl doctor`` calls. Pure: the kubelet's settings and the
UPS's values are read by the caller (:mod:`piclusterd.node.kubelet_config`, the NUT driver) and passed in.

Offline, a node knows its own part of the budget: its pods (the kubelet's ``shutdownGracePeriod`` where it is
on, else at most ``self_drain_timeout``), its OS's shutdown and the UPS's delay when it may ask for the cut.
The turns of the other nodes before the leader's need the cluster: ``piclusterctl plan`` adds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from piclusterd.config.model import Config
from piclusterd.core.kubelet_shutdown import K3S_ENABLE_LINES, KubeletShutdown, inhibitor_problem
from piclusterd.core.last_minute_budget import (
    LastMinuteBudget,
    ReserveCheck,
    ReserveVerdict,
    check_reserve,
    last_minute_budget,
    runtime_at_charge_s,
)

__all__ = ["LastMinuteReport", "last_minute_report", "own_budget"]


def own_budget(config: Config, kubelet: KubeletShutdown) -> LastMinuteBudget:
    """This node's own last minute (no other node's turn): pods, OS shutdown, the UPS's delay."""
    shutdown = config.shutdown
    if kubelet.configured:
        pods, source = kubelet.grace_s, "kubelet shutdownGracePeriod"
    else:
        pods, source = shutdown.self_drain_timeout_s, "self-drain, at most self_drain_timeout"
    return last_minute_budget(
        pods_s=pods,
        os_shutdown_s=shutdown.os_shutdown_s,
        ups_delay_s=shutdown.ups_off_delay_s if shutdown.ups_shutdown_return else 0.0,
        pods_from=source,
    )


@dataclass(frozen=True, slots=True)
class LastMinuteReport:
    """What is said about the last minute: the method, the budget, each check (warnings first) and hints."""

    method: str
    budget: LastMinuteBudget
    checks: tuple[ReserveCheck, ...]
    notes: tuple[str, ...]

    @property
    def warnings(self) -> tuple[ReserveCheck, ...]:
        return tuple(c for c in self.checks if c.verdict is ReserveVerdict.WARN)

    def lines(self) -> list[str]:
        """The lines check-config prints."""
        out = [f"pods before a halt: {self.method}"]
        out += [f"  {note}" for note in self.notes]
        out += [f"{'warning' if c.verdict is ReserveVerdict.WARN else 'ok'}: {c.key}: {c.message}" for c in self.checks]
        return out


def last_minute_report(
    config: Config,
    kubelet: KubeletShutdown,
    *,
    ups_charge_low_pct: float | None = None,
    ups_checks: Sequence[ReserveCheck] = (),
) -> LastMinuteReport:
    """The report for this node. ``ups_charge_low_pct`` is the UPS's ``battery.charge.low`` where it is known
    (the daemon reads it at start; check-config stays offline); ``ups_checks`` are the UPS restart checks."""
    budget = own_budget(config, kubelet)
    notes: list[str] = []
    if kubelet.configured:
        method = (
            f"the kubelet's graceful node shutdown (shutdownGracePeriod {kubelet.grace_s:g} s, "
            f"{kubelet.critical_s:g} s of it for critical pods): piclusterd relies on it"
        )
        problem = inhibitor_problem(config.shutdown.command)
        if problem is not None:
            notes.append(f"warning: [shutdown] command {list(config.shutdown.command)}: {problem}")
    else:
        method = (
            "self-drain (the kubelet's graceful node shutdown is off): piclusterd evicts this node's pods "
            f"before its shutdown command, for at most {config.shutdown.self_drain_timeout_s:g} s"
        )
        if config.shutdown.self_drain_timeout_s <= 0:
            method = "none: the kubelet's graceful shutdown is off and self_drain_timeout is 0 s (pods end with the OS)"
        notes.append(
            f"to let the kubelet do it, put these lines in {config.shutdown.k3s_config}.d/90-graceful-shutdown.yaml "
            "and restart k3s (systemctl restart k3s, or k3s-agent on an agent):"
        )
        notes += [f"    {line}" for line in K3S_ENABLE_LINES]
    notes += [f"warning: {problem}" for problem in kubelet.problems]
    extra: list[ReserveCheck] = []
    if config.cluster.enabled:
        notes.append("the leader's last minute also holds every other node's turn: piclusterctl plan shows it")
        # A critical node waits up to full_shutdown_wait for the leader; if none comes, it halts on what is left,
        # and its self-drain gets only what the OS's shutdown and the UPS's delay leave of it.
        left = config.policy.critical_runtime_s - config.shutdown.full_shutdown_wait_s
        after = budget.os_shutdown_s + budget.ups_delay_s
        if left < after:
            extra.append(
                ReserveCheck(
                    ReserveVerdict.WARN,
                    "shutdown.full_shutdown_wait",
                    f"a node that waited the whole full_shutdown_wait for the leader has {left:g} s left, less than "
                    f"its OS shutdown and the UPS delay ({after:g} s): shorten full_shutdown_wait or raise "
                    "critical_runtime",
                )
            )
        else:
            notes.append(
                f"a node that waited the whole full_shutdown_wait for the leader has {left:g} s left: "
                f"{min(left - after, config.shutdown.self_drain_timeout_s):g} s of it for its pods"
            )
    battery = config.battery
    lb_runtime = None
    if ups_charge_low_pct is not None and battery.capacity_wh is not None and battery.load_w is not None:
        lb_runtime = runtime_at_charge_s(
            ups_charge_low_pct,
            capacity_wh=battery.capacity_wh,
            usable_fraction=battery.usable_fraction,
            load_w=battery.load_w,
        )
    checks = check_reserve(
        budget,
        critical_runtime_s=config.policy.critical_runtime_s,
        lb_runtime_s=lb_runtime,
        lb_charge_pct=ups_charge_low_pct,
    )
    ordered = sorted((*checks, *extra, *ups_checks), key=lambda c: c.verdict is not ReserveVerdict.WARN)
    return LastMinuteReport(method, budget, tuple(ordered), tuple(notes))
