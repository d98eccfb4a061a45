"""From a :class:`~piclusterd.config.model.Config` to each part's settings, as pure values.

``cli.py`` calls :func:`settings_for` once, after :func:`~piclusterd.config.parse.load_config`, and builds each
part from its own settings object: the elector from :class:`ElectionSettings`, the drains from
:class:`DrainSettings`, the leader's planning from :class:`ShedSettings`, and so on. What a part needs from
the file is decided here, in one place, and not dug out of the ``Config`` by the code that builds it.

A config can be valid and still build no settings (the planner needs a battery capacity): that is a
:class:`~piclusterd.core.errors.ConfigError` from here, which ``run`` and ``check-config`` both report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from types import MappingProxyType

from piclusterd.config.model import Config, GpioRelayMethod, Mode, NodePowerMethod, RtcWakeMethod, Secret
from piclusterd.config.schema import SCHEMA
from piclusterd.core.authority import ClusterKeys
from piclusterd.core.errors import ConfigError
from piclusterd.core.node_batteries import Topology
from piclusterd.core.planner import GiveUpNoncritical, PlannerPolicy
from piclusterd.core.power_draw import BatterySpec, PiModel, PowerConfig, SupplyKind
from piclusterd.core.restore import RestorePolicy

__all__ = [
    "AgentSettings",
    "ClusterSettings",
    "DrainSettings",
    "ElectionSettings",
    "FullShutdownSettings",
    "KubeSettings",
    "PowerOffSettings",
    "PowerOnSettings",
    "SelfDrainSettings",
    "Settings",
    "ShedSettings",
    "UpsReturnSettings",
    "agent_settings",
    "changed_keys",
    "kube_settings",
    "power_on_settings",
    "relays_driven_by",
    "restart_needed",
    "self_drain_settings",
    "settings_for",
    "settings_from_config",
    "ups_return_settings",
]


@dataclass(frozen=True, slots=True)
class ShedSettings:
    policy: PlannerPolicy
    battery: BatterySpec
    hardware: PowerConfig
    dry_run: bool
    # Each node's own battery (per-node / mixed topologies): its spec, the topology (None: inferred from the
    # published records) and the age after which a record is unknown.
    node_battery: BatterySpec | None = None
    topology: Topology | None = None
    power_record_max_age_s: float = 180.0
    restore: RestorePolicy = field(default_factory=RestorePolicy)


def settings_from_config(config: Config, capacity_wh: float | None = None) -> ShedSettings:
    """The planner's inputs from ``[cluster]`` and ``[battery]``; ``capacity_wh`` overrides the file's."""
    cluster, battery = config.cluster, config.battery
    capacity = capacity_wh if capacity_wh is not None else battery.capacity_wh
    if capacity is None or capacity <= 0:
        raise ConfigError(
            config.path, "battery.capacity_wh", "is not set", "the battery's capacity in Wh (12 V 7 Ah = 84 Wh)"
        )
    # A node on its HAT shuts down at the HAT's LB ([hat] low_battery), not the shared UPS's: counting to the
    # wrong one would leave a node's work on it past its own shutdown (when the HAT's level is the higher).
    node_shutdown_pct = (
        config.hat.profile.low_battery_pct if config.hat.profile is not None else battery.shutdown_charge_pct
    )
    return ShedSettings(
        policy=PlannerPolicy(
            target_runtime_s=cluster.target_runtime_s,
            on_battery_grace_s=cluster.on_battery_grace_s,
            min_nodes=cluster.min_nodes,
            critical_priority_threshold=cluster.critical_priority,
            allow_unreplicated=cluster.allow_unreplicated,
            evict_emptydir=cluster.delete_emptydir_data,
            give_up_noncritical=GiveUpNoncritical(cluster.give_up_noncritical),
            # The leader's scaler (cluster.scaler) stops work and puts it back; "never" still stops nothing.
            can_stop_work=True,
        ),
        battery=BatterySpec(
            capacity_wh=capacity,
            usable_fraction=battery.usable_fraction,
            inverter_efficiency=battery.inverter_efficiency,
            ups_overhead_w=battery.overhead_w,
            shutdown_charge_pct=battery.shutdown_charge_pct,
            shutdown_runtime_s=config.policy.critical_runtime_s,
        ),
        hardware=PowerConfig(
            default_model=PiModel(cluster.pi_model),
            fixed_loads_w={"switch": cluster.switch_w},
            default_power_off_on_halt=cluster.power_off_on_halt,
        ),
        dry_run=config.mode is Mode.DRY_RUN,
        node_battery=None
        if not battery.node_capacity_wh
        else BatterySpec(
            capacity_wh=battery.node_capacity_wh,
            kind=SupplyKind.DC,
            shutdown_charge_pct=node_shutdown_pct,
            shutdown_runtime_s=config.policy.critical_runtime_s,
        ),
        topology=None if battery.topology == "auto" else Topology(battery.topology),
        power_record_max_age_s=cluster.power_record_max_age_s,
        restore=RestorePolicy(
            restore_after_s=config.restore.restore_after_s,
            restore_min_charge_pct=config.restore.restore_min_charge_pct,
            restore_stagger_s=config.restore.restore_stagger_s,
            restore_if_charge_unknown=config.restore.restore_if_charge_unknown,
        ),
    )


@dataclass(frozen=True, slots=True)
class FullShutdownSettings:
    namespace: str  # where the outage ConfigMap lives: the lease's namespace
    hook: tuple[str, ...]
    ups_off_delay_s: float
    critical_priority: int
    inverter_efficiency: float
    ups_overhead_w: float
    dry_run: bool
    ack_timeout_s: float = 30.0
    poll_s: float = 2.0


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """The Kubernetes client: ``[cluster] kubeconfig`` (empty: in-cluster); ``file`` names it in errors."""

    file: str
    kubeconfig: str


@dataclass(frozen=True, slots=True)
class ElectionSettings:
    """The Lease election: where the Lease is and client-go's three durations (renewed once per retry period)."""

    namespace: str
    name: str
    lease_duration_s: int
    renew_deadline_s: float
    retry_period_s: float


@dataclass(frozen=True, slots=True)
class DrainSettings:
    """One drain: the leader's before a power-off, or the full shutdown's short one."""

    delete_emptydir_data: bool
    allow_unreplicated: bool
    critical_priority: int
    timeout_s: float
    wait_for_replacements: bool


@dataclass(frozen=True, slots=True)
class PowerOffSettings:
    """Powering a peer off: the request's timeouts and the SSH fallback's key, known hosts, user and port."""

    ssh_key: str
    ssh_known_hosts: str
    ssh_user: str
    ssh_port: int
    ack_timeout_s: float
    off_timeout_s: float


@dataclass(frozen=True, slots=True)
class UpsReturnSettings:
    """``[shutdown] ups_shutdown_return``: the NUT UPS asked to cut its output and restore it with mains."""

    host: str
    port: int
    ups: str
    username: str | None
    password: Secret | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """This node's agent: the relay lines it drives for others, its own RTC alarm, how long it waits."""

    identity: str
    relays: Mapping[str, GpioRelayMethod]  # target -> the gpio-relay table whose via is this node
    wakealarm: str | None  # this node's RTC alarm file when its own method is rtc-wake
    recheck_s: int
    check_in_wait_s: float


@dataclass(frozen=True, slots=True)
class PowerOnSettings:
    """The leader's power-on backends: each configured node's ``[node_power.<node>]`` method."""

    file: str
    methods: Mapping[str, NodePowerMethod]


@dataclass(frozen=True, slots=True)
class SelfDrainSettings:
    """This node's self-drain before its shutdown command (:mod:`piclusterd.cluster.self_drain`)."""

    timeout_s: float = 60.0  # [shutdown] self_drain_timeout: the most it may take (0: off)
    os_shutdown_s: float = 90.0  # [shutdown] os_shutdown_time: what must still follow it
    ups_delay_s: float = 0.0  # [shutdown] ups_off_delay when this node may ask the UPS to cut its output
    critical_priority: int = 1_000_000
    k3s_config: str = "/etc/rancher/k3s/config.yaml"  # [shutdown] k3s_config: the kubelet's settings are read here


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Every part of the cluster side, each with its own settings."""

    identity: str
    kube: KubeSettings
    election: ElectionSettings
    drain: DrainSettings
    shutdown_drain: DrainSettings
    power_off: PowerOffSettings
    shed: ShedSettings
    full_shutdown: FullShutdownSettings
    ups_return: UpsReturnSettings | None
    agent: AgentSettings
    power_on: PowerOnSettings
    keys: ClusterKeys  # the cluster key(s): the leader signs its requests, every node checks them
    runtime_dir: str  # [daemon] runtime_dir (tmpfs): what the leader remembers across a restart, not a boot
    self_drain: SelfDrainSettings = SelfDrainSettings()


@dataclass(frozen=True, slots=True)
class Settings:
    """What :func:`settings_for` makes of a config: the cluster side's settings, None with ``[cluster]`` off.

    The node's own loop (:class:`~piclusterd.node.daemon.PowerDaemon`) and its power source still take the
    ``Config`` itself: it is theirs, and the daemon reloads it on SIGHUP.
    """

    cluster: ClusterSettings | None


def settings_for(config: Config) -> Settings:
    """Each part's settings from ``config``; raise :class:`ConfigError` when a part cannot be set up from it."""
    return Settings(cluster=cluster_settings(config) if config.cluster.enabled else None)


def cluster_settings(config: Config) -> ClusterSettings:
    cluster, shutdown = config.cluster, config.shutdown
    if cluster.signing_keys is None:  # parse_config reads them whenever [cluster] is on
        raise ConfigError(config.path, "cluster.key_file", "was not read", "[cluster] enabled = true and a key file")
    shed = settings_from_config(config)
    return ClusterSettings(
        identity=config.node.name,
        kube=kube_settings(config),
        election=ElectionSettings(
            namespace=cluster.lease_namespace,
            name=cluster.lease_name,
            lease_duration_s=cluster.lease_duration_s,
            renew_deadline_s=cluster.renew_deadline_s,
            # client-go's RetryPeriod (2 s), not the poll: a renew per poll was half the API traffic on mains.
            retry_period_s=max(cluster.retry_period_s, config.ups.poll_interval_s),
        ),
        drain=_drain(config, cluster.drain_timeout_s, cluster.wait_for_replacements),
        # The full shutdown's own drain: short, no waiting for replacements (nothing will be left on to host them).
        shutdown_drain=_drain(config, shutdown.drain_timeout_s, wait_for_replacements=False),
        power_off=PowerOffSettings(
            ssh_key=cluster.ssh_key,
            ssh_known_hosts=cluster.ssh_known_hosts,
            ssh_user=cluster.ssh_user,
            ssh_port=cluster.ssh_port,
            ack_timeout_s=cluster.poweroff_ack_timeout_s,
            off_timeout_s=cluster.poweroff_timeout_s,
        ),
        shed=shed,
        full_shutdown=FullShutdownSettings(
            namespace=cluster.lease_namespace,
            hook=shutdown.full_shutdown_hook,
            ups_off_delay_s=shutdown.ups_off_delay_s,
            critical_priority=cluster.critical_priority,
            inverter_efficiency=shed.battery.inverter_efficiency,
            ups_overhead_w=shed.battery.ups_overhead_w,
            dry_run=shed.dry_run,
            ack_timeout_s=cluster.poweroff_ack_timeout_s,
        ),
        ups_return=ups_return_settings(config),
        agent=agent_settings(config),
        power_on=power_on_settings(config),
        keys=cluster.signing_keys,
        runtime_dir=config.daemon.runtime_dir,
        self_drain=self_drain_settings(config),
    )


def self_drain_settings(config: Config) -> SelfDrainSettings:
    """This node's self-drain from ``[shutdown]`` (the daemon's and the cluster world's, one reading)."""
    shutdown = config.shutdown
    return SelfDrainSettings(
        timeout_s=shutdown.self_drain_timeout_s,
        os_shutdown_s=shutdown.os_shutdown_s,
        ups_delay_s=shutdown.ups_off_delay_s if shutdown.ups_shutdown_return else 0.0,
        critical_priority=config.cluster.critical_priority,
        k3s_config=shutdown.k3s_config,
    )


def kube_settings(config: Config) -> KubeSettings:
    return KubeSettings(file=config.path, kubeconfig=config.cluster.kubeconfig)


def _drain(config: Config, timeout_s: float, wait_for_replacements: bool) -> DrainSettings:
    cluster = config.cluster
    return DrainSettings(
        delete_emptydir_data=cluster.delete_emptydir_data,
        allow_unreplicated=cluster.allow_unreplicated,
        critical_priority=cluster.critical_priority,
        timeout_s=timeout_s,
        wait_for_replacements=wait_for_replacements,
    )


def ups_return_settings(config: Config) -> UpsReturnSettings | None:
    """``[shutdown] ups_shutdown_return`` through NUT, or None when off or when there is no NUT UPS."""
    if not config.shutdown.ups_shutdown_return or "nut" not in config.ups.drivers:
        return None
    ups = config.ups
    return UpsReturnSettings(
        host=ups.host,
        port=ups.port,
        ups=ups.name,
        username=ups.username,
        password=ups.password,
        timeout_s=ups.timeout_s,
    )


def relays_driven_by(methods: Mapping[str, NodePowerMethod], node: str) -> Mapping[str, GpioRelayMethod]:
    """The ``gpio-relay`` tables whose ``via`` is ``node``: target -> table, in target order."""
    return MappingProxyType(
        {
            target: method
            for target, method in sorted(methods.items())
            if isinstance(method, GpioRelayMethod) and method.via == node
        }
    )


def agent_settings(config: Config) -> AgentSettings:
    """This node's agent: its RTC alarm if it is an rtc-wake node, the relay lines it drives for others."""
    identity = config.node.name
    own = config.power_method(identity)
    return AgentSettings(
        identity=identity,
        relays=relays_driven_by(config.node_power, identity),
        wakealarm=own.wakealarm if isinstance(own, RtcWakeMethod) else None,
        recheck_s=round(own.recheck_s) if isinstance(own, RtcWakeMethod) else 900,
        check_in_wait_s=config.ups.stale_after_s,
    )


def power_on_settings(config: Config) -> PowerOnSettings:
    return PowerOnSettings(file=config.path, methods=config.node_power)


# --- what a reload may change ------------------------------------------------------------------------------


def restart_needed(old: Settings, new: Settings) -> bool:
    """Whether ``new`` differs from ``old`` in what a running daemon cannot apply: anything of the cluster side
    (turning it on or off included) except ``mode``, which the running leader takes at once.

    The node's own loop applies the rest of a reload itself (:meth:`piclusterd.node.daemon.PowerDaemon.reload`).
    The cluster side's parts are built once, from their settings: a change there that the journal called
    reloaded would be a lie the leader acts on, so such a reload is refused, loudly, until a restart.
    """
    return _without_mode(old) != _without_mode(new)


def _without_mode(settings: Settings) -> ClusterSettings | None:
    cluster = settings.cluster
    if cluster is None:
        return None
    return replace(
        cluster, shed=replace(cluster.shed, dry_run=False), full_shutdown=replace(cluster.full_shutdown, dry_run=False)
    )


def changed_keys(old: Config, new: Config) -> list[str]:
    """The keys of the file whose values differ between ``old`` and ``new``, as the file spells them."""
    changed: list[str] = []
    if old.mode != new.mode:
        changed.append("mode")
    for section, keys in SCHEMA.items():
        spelled = {key.field_name(name): name for name, key in keys.items()}
        spelled |= {"password": "password_file (the password)", "profile": "profile"}
        before, after = getattr(old, section), getattr(new, section)
        assert is_dataclass(before)
        for item in fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                changed.append(f"{section}.{spelled.get(item.name) or item.name}")
    for node in sorted(set(old.node_power) | set(new.node_power)):
        if old.node_power.get(node) != new.node_power.get(node):
            changed.append(f"node_power.{node}")
    if old.notify != new.notify:
        changed.append("notify")
    return changed
