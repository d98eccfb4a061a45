"""How many watts the cluster draws from the battery, and for how long the battery lasts. Pure.

The accounting is the one ``docs/reference/scenarios.md`` fixes, so figures compare across changes:

- a running node draws ``idle_w + (full_w - idle_w) * utilisation + hat_overhead_w``; a halted node
  ``halted_w`` (a halted Pi is not an unpowered Pi); a node whose supply is cut draws nothing;
- fixed loads (the network switch...) draw their watts whatever the nodes do;
- an AC UPS takes ``load / inverter_efficiency + ups_overhead_w`` from its battery, a DC supply
  ``load / converter_efficiency``;
- usable energy is ``capacity_wh * usable_fraction * charge / 100`` and runtime is the energy above the
  nodes' shutdown level (``BatterySpec.shutdown_charge_pct`` / ``shutdown_runtime_s``) / battery draw:
  the energy below it is never the cluster's, every node has shut itself down by then;
- with per-node batteries (a UPS HAT on each node, :mod:`piclusterd.core.node_batteries`) a node's own battery
  delivers :func:`node_load_w` (its own draw) through its own converter.

**Utilisation rule.** A node's utilisation is the CPU its pods keep busy divided by its allocatable CPU,
capped at 1. A pod keeps busy its measured usage when known (annotation ``picluster.io/cpu-usage``, which
a metrics adapter or the operator sets) and otherwise its CPU request. Finished pods count for nothing.
When a node is drained its pods' CPU moves with them to the nodes that receive them, so the receivers'
utilisation (and draw) rises; DaemonSet pods die with their node and their load goes away.

Per-node figures come, most specific first, from the configuration (:class:`NodePowerConfig`), then from
node labels (``picluster.io/pi-model``, ``picluster.io/idle-w``, ``picluster.io/full-w``,
``picluster.io/halted-w``, ``picluster.io/hat-w``, ``picluster.io/power-off-on-halt``,
``picluster.io/supply-switchable``), then from the Pi model's defaults (hardware.md section 3).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.errors import ConfigError

__all__ = [
    "MODEL_FIGURES",
    "BatterySpec",
    "ModelFigures",
    "NodeHardware",
    "NodePowerConfig",
    "NodePowerProfile",
    "PiModel",
    "PowerConfig",
    "PowerSituation",
    "SolarProfile",
    "SupplyKind",
    "battery_draw_for",
    "cluster_load_w",
    "node_load_m",
    "node_load_w",
    "node_utilisation",
    "projected_runtime_s",
]

LABEL_PI_MODEL = "picluster.io/pi-model"
LABEL_IDLE_W = "picluster.io/idle-w"
LABEL_FULL_W = "picluster.io/full-w"
LABEL_HALTED_W = "picluster.io/halted-w"
LABEL_HAT_W = "picluster.io/hat-w"
LABEL_POWER_OFF_ON_HALT = "picluster.io/power-off-on-halt"
LABEL_SUPPLY_SWITCHABLE = "picluster.io/supply-switchable"
LABEL_ARCH = "kubernetes.io/arch"
_PI_ARCHES = frozenset({"arm", "arm64"})


class PiModel(enum.StrEnum):
    """Boards with known power figures."""

    PI3BPLUS = "pi3b+"
    PI4B = "pi4b"
    PI5 = "pi5"


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """Watts at the 5 V input of one board model (hardware.md section 3)."""

    idle_w: float
    full_w: float
    halted_w: float
    halted_power_off_w: float


#: Defaults per model. The Pi 3B+ has no published halted figure: it is taken equal to idle, so the
#: planner expects nothing from halting one unless its supply can be cut (fails safe: never overstates a
#: saving). The Pi 5's idle figure is uncertain (1.8-5 W reported); 3 W is the scenarios' figure.
MODEL_FIGURES: Mapping[PiModel, ModelFigures] = MappingProxyType(
    {
        PiModel.PI3BPLUS: ModelFigures(idle_w=1.9, full_w=5.1, halted_w=1.9, halted_power_off_w=1.9),
        PiModel.PI4B: ModelFigures(idle_w=2.7, full_w=6.4, halted_w=1.9, halted_power_off_w=0.2),
        PiModel.PI5: ModelFigures(idle_w=3.0, full_w=7.9, halted_w=1.4, halted_power_off_w=0.01),
    }
)


@dataclass(frozen=True, slots=True)
class NodePowerProfile:
    """The resolved power figures of one node.

    ``supply_switchable`` says piclusterd can cut the node's supply after halting it (switched outlet,
    PoE port), so a shed node then draws nothing instead of ``halted_w``.
    """

    idle_w: float
    full_w: float
    halted_w: float
    hat_overhead_w: float = 0.0
    supply_switchable: bool = False

    def __post_init__(self) -> None:
        for name in ("idle_w", "full_w", "halted_w", "hat_overhead_w"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError("power", name, f"{value!r} is not a non-negative number of watts")
        if self.full_w < self.idle_w:
            raise ConfigError("power", "full_w", f"{self.full_w} W is below idle {self.idle_w} W")

    def running_w(self, utilisation: float) -> float:
        """Draw while running at ``utilisation`` (clamped to 0..1)."""
        u = min(1.0, max(0.0, utilisation))
        return self.idle_w + (self.full_w - self.idle_w) * u + self.hat_overhead_w

    @property
    def shed_w(self) -> float:
        """Draw once piclusterd has shed the node: 0 if it can cut the supply, else halted."""
        return 0.0 if self.supply_switchable else self.halted_w


@dataclass(frozen=True, slots=True)
class NodePowerConfig:
    """Per-node settings from the configuration file; ``None`` means "not set here"."""

    model: PiModel | None = None
    idle_w: float | None = None
    full_w: float | None = None
    halted_w: float | None = None
    hat_overhead_w: float | None = None
    power_off_on_halt: bool | None = None
    supply_switchable: bool | None = None


def _label_float(node: Node, key: str) -> float | None:
    text = node.labels.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _label_bool(node: Node, key: str) -> bool | None:
    text = node.labels.get(key)
    return None if text not in ("true", "false") else text == "true"


def _label_model(node: Node) -> PiModel | None:
    text = node.labels.get(LABEL_PI_MODEL)
    try:
        return None if text is None else PiModel(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NodeHardware:
    """Where a node's power figures come from, for an operator to check (``piclusterctl plan``).

    ``model_source`` and ``figures_source`` are ``"config"``, ``"label"`` or ``"default"``; ``is_pi`` is
    false when ``kubernetes.io/arch`` is not arm/arm64 (then the Pi figures are an assumption, not a fact);
    ``known_model`` is false when neither configuration nor label names the board. ``halt_saving_w`` is what
    POWER_OFF_ON_HALT=1 would save on this node once halted (0 when set, when its supply is cut, or when its
    halted draw is given explicitly).
    """

    model: PiModel
    model_source: str
    figures_source: str
    arch: str | None
    is_pi: bool
    known_model: bool
    profile: NodePowerProfile
    power_off_on_halt: bool
    halt_saving_w: float


@dataclass(frozen=True, slots=True)
class PowerConfig:
    """Power figures of the whole installation: per-node settings and fixed loads.

    ``default_model`` and ``default_power_off_on_halt`` apply to nodes that neither the configuration nor a
    label describes.
    ``fixed_loads_w`` names everything else on the UPS (``{"switch": 4.0}``).
    """

    default_model: PiModel = PiModel.PI4B
    default_power_off_on_halt: bool = False
    nodes: Mapping[str, NodePowerConfig] = field(default_factory=lambda: MappingProxyType({}))
    fixed_loads_w: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
        object.__setattr__(self, "fixed_loads_w", MappingProxyType(dict(self.fixed_loads_w)))
        for name, watts in self.fixed_loads_w.items():
            if not math.isfinite(watts) or watts < 0:
                raise ConfigError("power", f"fixed_loads_w.{name}", f"{watts!r} is not a number of watts")

    @property
    def fixed_w(self) -> float:
        """Sum of the fixed loads."""
        return math.fsum(self.fixed_loads_w.values())

    def profile(self, node: Node) -> NodePowerProfile:
        """The figures for ``node``: configuration, then labels, then the model's defaults."""
        conf = self.nodes.get(node.name, NodePowerConfig())
        model = conf.model or _label_model(node) or self.default_model
        figures = MODEL_FIGURES[model]

        def pick(configured: float | None, label: str, default: float) -> float:
            if configured is not None:
                return configured
            labelled = _label_float(node, label)
            return default if labelled is None else labelled

        power_off_on_halt = conf.power_off_on_halt
        if power_off_on_halt is None:
            labelled = _label_bool(node, LABEL_POWER_OFF_ON_HALT)
            power_off_on_halt = self.default_power_off_on_halt if labelled is None else labelled
        supply_switchable = conf.supply_switchable
        if supply_switchable is None:
            supply_switchable = _label_bool(node, LABEL_SUPPLY_SWITCHABLE) or False
        halted_default = figures.halted_power_off_w if power_off_on_halt else figures.halted_w
        return NodePowerProfile(
            idle_w=pick(conf.idle_w, LABEL_IDLE_W, figures.idle_w),
            full_w=pick(conf.full_w, LABEL_FULL_W, figures.full_w),
            halted_w=pick(conf.halted_w, LABEL_HALTED_W, halted_default),
            hat_overhead_w=pick(conf.hat_overhead_w, LABEL_HAT_W, 0.0),
            supply_switchable=supply_switchable,
        )

    def describe(self, node: Node) -> NodeHardware:
        """The figures :meth:`profile` uses for ``node`` and where each came from."""
        conf = self.nodes.get(node.name, NodePowerConfig())
        labelled_model = _label_model(node)
        if conf.model is not None:
            model, model_source = conf.model, "config"
        elif labelled_model is not None:
            model, model_source = labelled_model, "label"
        else:
            model, model_source = self.default_model, "default"
        configured = [conf.idle_w, conf.full_w, conf.halted_w]
        labelled = [_label_float(node, key) for key in (LABEL_IDLE_W, LABEL_FULL_W, LABEL_HALTED_W)]
        if all(c is not None or lab is not None for c, lab in zip(configured, labelled, strict=True)):
            figures_source = "config" if all(c is not None for c in configured) else "label"
        else:
            figures_source = model_source
        profile = self.profile(node)
        power_off_on_halt = conf.power_off_on_halt
        if power_off_on_halt is None:
            power_off_on_halt = _label_bool(node, LABEL_POWER_OFF_ON_HALT)
        if power_off_on_halt is None:
            power_off_on_halt = self.default_power_off_on_halt
        explicit_halted = conf.halted_w is not None or _label_float(node, LABEL_HALTED_W) is not None
        figures = MODEL_FIGURES[model]
        saving = (
            0.0
            if power_off_on_halt or profile.supply_switchable or explicit_halted
            else max(0.0, figures.halted_w - figures.halted_power_off_w)
        )
        arch = node.labels.get(LABEL_ARCH)
        return NodeHardware(
            model=model,
            model_source=model_source,
            figures_source=figures_source,
            arch=arch,
            is_pi=arch is None or arch in _PI_ARCHES,
            known_model=model_source != "default",
            profile=profile,
            power_off_on_halt=power_off_on_halt,
            halt_saving_w=saving,
        )


class SupplyKind(enum.StrEnum):
    """An AC UPS (battery -> inverter -> Pi power supplies) or a DC supply (battery -> DC-DC -> Pis)."""

    AC = "ac"
    DC = "dc"


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """The battery that carries the cluster through an outage. Validated once, here.

    **Runtime counts until the shutdown, not until empty.** Every node shuts itself down when the battery
    reaches ``shutdown_charge_pct`` (the UPS raises LB at ``battery.charge.low``) or when its runtime
    estimate falls under ``shutdown_runtime_s`` (``critical_runtime``), whichever comes first; the energy
    below that is never the cluster's. Both default to 0 (until empty), the accounting of scenarios.md.
    """

    capacity_wh: float
    usable_fraction: float = 0.8
    kind: SupplyKind = SupplyKind.AC
    inverter_efficiency: float = 0.85
    converter_efficiency: float = 0.9
    ups_overhead_w: float = 0.0
    shutdown_charge_pct: float = 0.0
    shutdown_runtime_s: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.capacity_wh) or self.capacity_wh <= 0:
            raise ConfigError("battery", "capacity_wh", f"{self.capacity_wh!r} is not positive")
        for name in ("usable_fraction", "inverter_efficiency", "converter_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError("battery", name, f"{value!r} is outside (0, 1]")
        if not math.isfinite(self.ups_overhead_w) or self.ups_overhead_w < 0:
            raise ConfigError("battery", "ups_overhead_w", f"{self.ups_overhead_w!r} is negative")
        if not 0 <= self.shutdown_charge_pct < 100:
            raise ConfigError("battery", "shutdown_charge_pct", f"{self.shutdown_charge_pct!r} is not in 0..100")
        if not (math.isfinite(self.shutdown_runtime_s) and self.shutdown_runtime_s >= 0):
            raise ConfigError("battery", "shutdown_runtime_s", f"{self.shutdown_runtime_s!r} is negative")

    def battery_draw_w(self, load_w: float) -> float:
        """Watts taken from the battery to deliver ``load_w`` to the nodes and fixed loads."""
        if self.kind is SupplyKind.AC:
            return load_w / self.inverter_efficiency + self.ups_overhead_w
        return load_w / self.converter_efficiency

    def usable_energy_wh(self, charge_pct: float) -> float:
        """Energy still usable at ``charge_pct`` (clamped to 0..100), down to empty."""
        return self.capacity_wh * self.usable_fraction * min(100.0, max(0.0, charge_pct)) / 100.0

    def shutdown_energy_wh(self, draw_w: float) -> float:
        """Energy left when the nodes shut down at a battery draw of ``draw_w``: the charge threshold or
        ``shutdown_runtime_s`` of draw, whichever is more."""
        return max(self.usable_energy_wh(self.shutdown_charge_pct), max(0.0, draw_w) * self.shutdown_runtime_s / 3600.0)

    def runtime_s(self, charge_pct: float, load_w: float) -> float:
        """Seconds until the shutdown at ``charge_pct`` delivering ``load_w``; infinite with no draw."""
        draw = self.battery_draw_w(load_w)
        if draw <= 0:
            return math.inf
        above_wh = self.usable_energy_wh(charge_pct) - self.shutdown_energy_wh(draw)
        return max(0.0, above_wh) / draw * 3600.0

    def max_load_w(self, charge_pct: float, runtime_s: float) -> float:
        """The largest load that still lasts ``runtime_s`` before the shutdown at ``charge_pct`` (negative if
        none does)."""
        if runtime_s <= 0:
            return math.inf
        energy_wh = self.usable_energy_wh(charge_pct)
        # Both shutdown rules must hold: energy above the charge threshold lasts runtime_s, and what is left
        # after runtime_s still gives shutdown_runtime_s.
        draw = min(
            (energy_wh - self.usable_energy_wh(self.shutdown_charge_pct)) * 3600.0 / runtime_s,
            energy_wh * 3600.0 / (runtime_s + self.shutdown_runtime_s),
        )
        if self.kind is SupplyKind.AC:
            return (draw - self.ups_overhead_w) * self.inverter_efficiency
        return draw * self.converter_efficiency


DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SolarProfile:
    """Solar charging into the shared battery: a clear day's half sine from ``sunrise_s`` to ``sunset_s``
    (seconds after midnight) peaking at ``peak_w`` at the battery, after the charge controller. Mains or not,
    the panels charge the battery; a cloudy day is a smaller ``peak_w``."""

    peak_w: float
    sunrise_s: float = 6 * 3600.0
    sunset_s: float = 18 * 3600.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.peak_w) and self.peak_w >= 0):
            raise ConfigError("solar", "peak_w", f"{self.peak_w!r} is not a non-negative number of watts")
        if not 0 <= self.sunrise_s < self.sunset_s <= DAY_S:
            raise ConfigError("solar", "sunrise", "sunrise must come before sunset, both within the day")

    def energy_wh(self, start_s: float, end_s: float) -> float:
        """Energy into the battery between two times of day (seconds after midnight, any day; end >= start)."""
        if end_s <= start_s or self.peak_w <= 0:
            return 0.0
        day = self.sunset_s - self.sunrise_s

        def cumulative(t: float) -> float:
            """Wh from midnight of day 0 to ``t``: whole days, then the part of the sine arc before t."""
            days, into = divmod(t, DAY_S)
            whole_day_wh = self.peak_w * 2.0 * day / math.pi / 3600.0
            x = min(max(into - self.sunrise_s, 0.0), day)
            return days * whole_day_wh + self.peak_w * day / math.pi * (1.0 - math.cos(math.pi * x / day)) / 3600.0

        return cumulative(end_s) - cumulative(start_s)


@dataclass(frozen=True, slots=True)
class PowerSituation:
    """What the planner knows about power. Times are on the same monotonic clock as ``now``.

    ``state`` is the power state machine's state: ``"unknown"``, ``"online"``, ``"on_battery"``,
    ``"low_battery"`` or ``"critical"``; anything else counts as unknown.

    ``measured_load_w`` is the UPS output load (NUT ``ups.realpower``) while the cluster is as the view
    shows it; when known, projections are scaled by measured / modelled.
    """

    state: str
    on_battery_since: float | None = None
    charge_pct: float | None = None
    measured_load_w: float | None = None


def node_load_m(view: ClusterView, node: str) -> int:
    """CPU (millicores) the pods on ``node`` keep busy: usage if known, else requests; finished pods 0."""
    return sum(pod.cpu_load_m for pod in view.pods_on(node) if not pod.is_finished)


def node_utilisation(view: ClusterView, node: str, extra_load_m: int = 0) -> float:
    """The utilisation rule: busy CPU (plus ``extra_load_m`` moved in) / allocatable CPU, capped at 1."""
    allocatable = view.node(node).allocatable_cpu_m
    if allocatable <= 0:
        return 1.0
    return min(1.0, (node_load_m(view, node) + extra_load_m) / allocatable)


def node_load_w(view: ClusterView, config: PowerConfig, node: str, running: bool) -> float:
    """Watts at one node's input: running with its pods, else its shed draw. With per-node batteries
    (mixed topology, solar-3) this is what the node's own battery delivers once the shared one is gone."""
    profile = config.profile(view.node(node))
    return profile.running_w(node_utilisation(view, node)) if running else profile.shed_w


def cluster_load_w(
    view: ClusterView,
    config: PowerConfig,
    running: Iterable[str],
    extra_load_m: Mapping[str, int] | None = None,
) -> float:
    """Watts at the UPS output with ``running`` nodes up and every other node shed.

    A node not in ``running`` draws its ``shed_w`` (halted, or nothing once its supply is cut).
    ``extra_load_m`` adds CPU moved onto running nodes by drains.
    """
    up = set(running)
    extra = extra_load_m or {}
    total = [config.fixed_w]
    for node in view.nodes:
        profile = config.profile(node)
        if node.name in up:
            total.append(profile.running_w(node_utilisation(view, node.name, extra.get(node.name, 0))))
        else:
            total.append(profile.shed_w)
    return math.fsum(total)


def battery_draw_for(
    view: ClusterView,
    config: PowerConfig,
    battery: BatterySpec,
    running: Iterable[str],
    extra_load_m: Mapping[str, int] | None = None,
) -> float:
    """Watts taken from the battery with ``running`` nodes up (see :func:`cluster_load_w`)."""
    return battery.battery_draw_w(cluster_load_w(view, config, running, extra_load_m))


def projected_runtime_s(
    view: ClusterView,
    config: PowerConfig,
    battery: BatterySpec,
    charge_pct: float,
    running: Iterable[str],
    extra_load_m: Mapping[str, int] | None = None,
) -> float:
    """Seconds the battery lasts at ``charge_pct`` with ``running`` nodes up."""
    return battery.runtime_s(charge_pct, cluster_load_w(view, config, running, extra_load_m))
