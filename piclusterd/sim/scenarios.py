"""The reference scenarios of scenarios.md as planner inputs: ``examples/clusters/<name>.json`` + ``.toml``.

The JSON is a ``kubectl get nodes,pods,pdb -A -o json`` List; the TOML holds the battery, the fixed loads,
the planner policy and per-node power settings (see ``examples/clusters/clinic-5.toml``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.durations import parse_duration
from piclusterd.core.errors import ConfigError
from piclusterd.core.planner import GiveUpNoncritical, PlannerPolicy
from piclusterd.core.power_draw import BatterySpec, NodePowerConfig, PiModel, PowerConfig, SolarProfile, SupplyKind

__all__ = ["Scenario", "load_scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A reference cluster with everything the planner needs about it."""

    name: str
    view: ClusterView
    battery: BatterySpec
    hardware: PowerConfig
    policy: PlannerPolicy
    # Each node's own battery (a UPS HAT), with a shared ``battery`` feeding every node: solar-3's mixed
    # topology. ``None``: one shared battery only.
    node_battery: BatterySpec | None = None
    # Solar charging into the shared battery (optional): ``[solar] peak_w``, ``sunrise``, ``sunset``.
    solar: SolarProfile | None = None


def _section(data: Mapping[str, Any], key: str, file: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(file, key, "is not a table")
    return value


def load_scenario(snapshot: Path, figures: Path | None = None) -> Scenario:
    """Read ``<name>.json`` (kubectl List) and ``<name>.toml`` (battery, fixed loads, policy, nodes)."""
    figures = figures or snapshot.with_suffix(".toml")
    file = str(figures)
    view = parse_kubectl_list(json.loads(snapshot.read_text()))
    data = tomllib.loads(figures.read_text())
    battery = _section(data, "battery", file)
    policy = _section(data, "policy", file)
    nodes = _section(data, "nodes", file)
    node_battery = _section(data, "node_battery", file)
    solar = _section(data, "solar", file)
    hardware = PowerConfig(
        fixed_loads_w={k: float(v) for k, v in _section(data, "fixed_loads_w", file).items()},
        nodes={
            name: NodePowerConfig(
                model=PiModel(conf["model"]) if "model" in conf else None,
                idle_w=conf.get("idle_w"),
                full_w=conf.get("full_w"),
                halted_w=conf.get("halted_w"),
                hat_overhead_w=conf.get("hat_w"),
                power_off_on_halt=conf.get("power_off_on_halt"),
                supply_switchable=conf.get("supply_switchable"),
            )
            for name, conf in nodes.items()
        },
    )
    shutdown_runtime_s = parse_duration(policy.get("critical_runtime", "0s"))
    try:
        own = (
            None
            if not node_battery
            else BatterySpec(
                capacity_wh=float(node_battery["capacity_wh"]),
                usable_fraction=float(node_battery.get("usable_fraction", 0.8)),
                kind=SupplyKind.DC,
                converter_efficiency=float(node_battery.get("converter_efficiency", 0.9)),
                shutdown_charge_pct=float(node_battery.get("shutdown_charge_pct", 0.0)),
                shutdown_runtime_s=shutdown_runtime_s,
            )
        )
    except KeyError as error:
        raise ConfigError(file, f"node_battery.{error.args[0]}", "missing", "each node's own battery in Wh") from None
    return Scenario(
        name=snapshot.stem,
        view=view,
        battery=BatterySpec(
            capacity_wh=float(battery["capacity_wh"]),
            usable_fraction=float(battery.get("usable_fraction", 0.8)),
            kind=SupplyKind(battery.get("kind", "ac")),
            inverter_efficiency=float(battery.get("inverter_efficiency", 0.85)),
            converter_efficiency=float(battery.get("converter_efficiency", 0.9)),
            ups_overhead_w=float(battery.get("ups_overhead_w", 0.0)),
            shutdown_charge_pct=float(battery.get("shutdown_charge_pct", 0.0)),
            shutdown_runtime_s=shutdown_runtime_s,
        ),
        hardware=hardware,
        policy=PlannerPolicy(
            target_runtime_s=parse_duration(policy.get("target_runtime", "4h")),
            on_battery_grace_s=parse_duration(policy.get("on_battery_grace", "60s")),
            min_nodes=int(policy.get("min_nodes", 1)),
            critical_priority_threshold=int(policy.get("critical_priority_threshold", 1_000_000)),
            give_up_noncritical=_give_up(policy.get("give_up_noncritical", "when-needed"), file),
        ),
        node_battery=own,
        solar=None
        if not solar
        else SolarProfile(
            peak_w=float(solar.get("peak_w", 0.0)),
            sunrise_s=_clock(solar.get("sunrise", "06:00"), file, "solar.sunrise"),
            sunset_s=_clock(solar.get("sunset", "18:00"), file, "solar.sunset"),
        ),
    )


def _give_up(value: object, file: str) -> GiveUpNoncritical:
    try:
        return GiveUpNoncritical(str(value))
    except ValueError:
        choices = ", ".join(repr(g.value) for g in GiveUpNoncritical)
        raise ConfigError(file, "policy.give_up_noncritical", f"{value!r} is not a choice", choices) from None


def clock_time_s(text: str) -> float:
    """``"HH:MM"`` -> seconds after midnight; ValueError if it is not one."""
    hours, _, minutes = str(text).partition(":")
    value = int(hours) * 3600 + int(minutes or 0) * 60
    if not (0 <= int(hours) <= 24 and 0 <= int(minutes or 0) < 60 and value <= 86400):
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    return float(value)


def _clock(text: object, file: str, key: str) -> float:
    try:
        return clock_time_s(str(text))
    except ValueError:
        raise ConfigError(file, key, f"{text!r} is not a time of day", "HH:MM, such as 06:30") from None
