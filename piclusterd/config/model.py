"""The configuration as values: the frozen dataclasses a parsed ``piclusterd.toml`` becomes.

One dataclass per TOML section (``[ups]`` is :class:`UpsConfig`, and so on), one per ``[node_power.<node>]``
method, and :class:`Config` holding them. No parsing here: :mod:`piclusterd.config.schema` says which key fills
which field, :mod:`piclusterd.config.parse` reads the file and builds these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from piclusterd.config.notify import NotifyConfig
from piclusterd.core.authority import ClusterKeys

if TYPE_CHECKING:
    from piclusterd.drivers.hat import HatProfile

__all__ = [
    "BatteryConfig",
    "ClusterConfig",
    "Config",
    "DaemonConfig",
    "GpioRelayMethod",
    "HatConfig",
    "ManualMethod",
    "MetricsConfig",
    "Mode",
    "NodeConfig",
    "NodePowerMethod",
    "NutOutletMethod",
    "PolicyConfig",
    "RestoreConfig",
    "RtcWakeMethod",
    "Secret",
    "ShutdownConfig",
    "UpsConfig",
    "WolMethod",
]


class Mode(enum.Enum):
    """``dry-run`` decides, logs and reports but changes nothing; ``enforce`` acts."""

    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class Secret:
    """A password read from its own file; never shown in a repr, a log line or an error."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str


@dataclass(frozen=True, slots=True)
class UpsConfig:
    """``[ups]``. ``drivers`` are the power sources, in the configured order: one, or several read as one
    (:mod:`piclusterd.node.combined_source`)."""

    drivers: tuple[str, ...]
    host: str
    port: int
    name: str
    username: str | None
    password_file: str | None
    password: Secret | None
    poll_interval_s: float
    stale_after_s: float
    timeout_s: float
    #: Set battery.charge.restart / ups.delay.start through NUT at start; None: leave the UPS's own values.
    set_charge_restart_pct: float | None = None
    set_delay_start_s: float | None = None

    @property
    def driver(self) -> str:
        """The drivers as written in a log line: ``"nut"``, ``"nut+hat"``."""
        return "+".join(self.drivers)


@dataclass(frozen=True, slots=True)
class BatteryConfig:
    capacity_wh: float | None
    usable_fraction: float
    inverter_efficiency: float
    overhead_w: float
    load_w: float | None
    shutdown_charge_pct: float = 20.0
    topology: str = "auto"
    node_capacity_wh: float | None = None


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    critical_runtime_s: float
    low_runtime_s: float
    low_charge_pct: float
    charge_hysteresis_pct: float
    recovery_debounce_s: float
    #: How long OB + LB must hold before it is critical; None ("auto"): [shutdown] full_shutdown_wait, the
    #: time an orderly full shutdown takes. Capped by the energy left either way (core.power_state).
    low_battery_confirm_s: float | None = None


@dataclass(frozen=True, slots=True)
class HatConfig:
    """``[hat]``: the battery HAT when ``[ups] driver = "hat"``; ``profile`` is resolved and validated."""

    profile_key: str
    profile: HatProfile | None
    i2c_bus: int
    debounce_s: float
    #: Honour the board's shutdown button (X728 GPIO5) when the profile has one.
    shutdown_button: bool = True


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """``[cluster]``: election, planning, drain and power-off of peers. Off: single-node protection only."""

    enabled: bool
    kubeconfig: str
    lease_namespace: str
    lease_name: str
    lease_duration_s: int
    renew_deadline_s: float
    target_runtime_s: float
    on_battery_grace_s: float
    min_nodes: int
    critical_priority: int
    allow_unreplicated: bool
    delete_emptydir_data: bool
    wait_for_replacements: bool
    drain_timeout_s: float
    poweroff_ack_timeout_s: float
    poweroff_timeout_s: float
    ssh_key: str
    ssh_known_hosts: str
    ssh_user: str
    ssh_port: int
    key_file: str
    previous_key_file: str
    pi_model: str
    power_off_on_halt: bool
    switch_w: float
    power_record_max_age_s: float = 180.0
    #: client-go's RetryPeriod: the Lease is read or renewed once per this (or per poll, if polls are slower).
    retry_period_s: float = 2.0
    give_up_noncritical: str = "when-needed"  # core.plan_values.GiveUpNoncritical's values
    signing_keys: ClusterKeys | None = None  # read from key_file (and previous_key_file) when enabled


@dataclass(frozen=True, slots=True)
class RestoreConfig:
    """``[restore]``: when the leader brings shed nodes back (:class:`piclusterd.core.restore.RestorePolicy`)."""

    restore_after_s: float
    restore_min_charge_pct: float
    restore_stagger_s: float
    restore_if_charge_unknown: bool


# --- [node_power.<node>]: how the leader powers each shed node back on (docs/power-on.md) ----------------


@dataclass(frozen=True, slots=True)
class WolMethod:
    """``method = "wol"``: a Wake-on-LAN magic packet (non-Pi nodes)."""

    method: ClassVar[str] = "wol"
    mac: str
    broadcast: str
    port: int


@dataclass(frozen=True, slots=True)
class RtcWakeMethod:
    """``method = "rtc-wake"``: a Pi 5 arms its RTC alarm before halting and wakes every ``recheck_s``."""

    method: ClassVar[str] = "rtc-wake"
    recheck_s: float
    wakealarm: str


@dataclass(frozen=True, slots=True)
class GpioRelayMethod:
    """``method = "gpio-relay"``: node ``via`` pulses GPIO ``pin`` (BCM) to power this node on."""

    method: ClassVar[str] = "gpio-relay"
    via: str
    pin: int
    active: str  # "high" or "low": the level that presses
    pulse_s: float


@dataclass(frozen=True, slots=True)
class NutOutletMethod:
    """``method = "nut-outlet"``: switch ``outlet`` of a UPS/PDU through upsd (``[ups]``'s unless overridden)."""

    method: ClassVar[str] = "nut-outlet"
    outlet: int
    host: str
    port: int
    ups: str
    username: str | None
    password: Secret | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class ManualMethod:
    """``method = "manual"``: a person presses the button; ``where`` tells them where the node is."""

    method: ClassVar[str] = "manual"
    where: str = ""


NodePowerMethod = WolMethod | RtcWakeMethod | GpioRelayMethod | NutOutletMethod | ManualMethod


@dataclass(frozen=True, slots=True)
class ShutdownConfig:
    command: tuple[str, ...]
    full_shutdown_wait_s: float = 180.0
    full_shutdown_hook: tuple[str, ...] = ()
    drain_timeout_s: float = 30.0
    ups_shutdown_return: bool = False
    ups_off_delay_s: float = 10.0
    #: This node shuts itself down at critical in every mode (upsmon's job). False only where another tool
    #: (NUT's upsmon) keeps that job: then piclusterd never powers this node off on its own reading.
    local_protection: bool = True
    #: The OS's own shutdown, from the shutdown command to halted (the last-minute budget's part).
    os_shutdown_s: float = 90.0
    #: The most the self-drain may take before the shutdown command (0: no self-drain).
    self_drain_timeout_s: float = 60.0
    #: k3s's config file, where this node's kubelet graceful-shutdown settings are read (and its .d/ drop-ins).
    k3s_config: str = "/etc/rancher/k3s/config.yaml"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    runtime_dir: str


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: Prometheus metrics, off unless asked for (docs/metrics.md says why)."""

    #: (address, port) of the ``/metrics`` endpoint, or None: no listening socket at all.
    listen: tuple[str, int] | None = None
    #: A ``.prom`` file in node_exporter's textfile collector directory, rewritten every 30 s, or None.
    textfile: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    mode: Mode
    node: NodeConfig
    ups: UpsConfig
    battery: BatteryConfig
    hat: HatConfig
    cluster: ClusterConfig
    policy: PolicyConfig
    shutdown: ShutdownConfig
    daemon: DaemonConfig
    restore: RestoreConfig = RestoreConfig(120.0, 50.0, 30.0, False)
    metrics: MetricsConfig = MetricsConfig()
    node_power: Mapping[str, NodePowerMethod] = field(default_factory=lambda: MappingProxyType({}))
    notify: NotifyConfig = field(default_factory=NotifyConfig)

    def power_method(self, node: str) -> NodePowerMethod:
        """How ``node`` is powered back on: its ``[node_power.<node>]`` table, else ``manual``."""
        return self.node_power.get(node) or ManualMethod()

    def summary(self) -> dict[str, object]:
        """The effective configuration as flat key/values for the start-up log (no secrets)."""
        out: dict[str, object] = {"config": self.path, "mode": self.mode.value}
        sections = (
            self.node,
            self.ups,
            self.battery,
            self.hat,
            self.cluster,
            self.policy,
            self.restore,
            self.shutdown,
            self.daemon,
            self.metrics,
        )
        for section in sections:
            prefix = type(section).__name__.removesuffix("Config").lower()
            for item in fields(section):
                value = getattr(section, item.name)
                if isinstance(value, Secret) or item.name == "profile":
                    continue
                out[f"{prefix}.{item.name}"] = list(value) if isinstance(value, tuple) else value
        for node, method in sorted(self.node_power.items()):
            out[f"node_power.{node}.method"] = method.method
        for sink in self.notify.sinks:
            out[f"notify.{sink.name}.type"] = type(sink.sink).__name__.removesuffix("Sink").lower()
        return out
