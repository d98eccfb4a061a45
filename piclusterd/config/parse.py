"""Configuration: one TOML file, validated in full before anything starts.

Every problem is reported with the file, the key, what is wrong and what is expected; unknown keys are
errors with a did-you-mean, because a misspelt safety threshold that silently falls back to its default is
exactly the surprise an operator at 2 AM must not get. All problems of a file are reported together.
"""

from __future__ import annotations

import difflib
import enum
import os
import socket
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from piclusterd.core.durations import format_duration, parse_duration
from piclusterd.core.errors import ConfigError, ConfigInvalid, ProfileInvalid
from piclusterd.core.power_record import PublishPolicy

if TYPE_CHECKING:
    from piclusterd.drivers.hat import HatProfile

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DRIVERS",
    "NODE_POWER_METHODS",
    "BatteryConfig",
    "ClusterConfig",
    "Config",
    "DaemonConfig",
    "GpioRelayMethod",
    "ManualMethod",
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
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/piclusterd/piclusterd.toml")


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


#: The values of ``[ups] driver``.
DRIVERS = ("nut", "hat")


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


@dataclass(frozen=True, slots=True)
class HatConfig:
    """``[hat]``: the battery HAT when ``[ups] driver = "hat"``; ``profile`` is resolved and validated."""

    profile_key: str
    profile: HatProfile | None
    i2c_bus: int
    debounce_s: float


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
    pi_model: str
    power_off_on_halt: bool
    switch_w: float
    power_record_max_age_s: float = 180.0


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
    ups_off_delay_s: float = 30.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    runtime_dir: str


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
    node_power: Mapping[str, NodePowerMethod] = field(default_factory=lambda: MappingProxyType({}))

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
        return out


# --- the schema -------------------------------------------------------------------------------------------

_Convert = Callable[[Any], Any]  # raises ValueError with "expected ..." text


@dataclass(frozen=True, slots=True)
class _Key:
    default: Any
    convert: _Convert


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string in quotes")
    return value


def _nonempty_string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string in quotes")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("a whole number from 1 to 65535")
    return value


def _bound(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else format_duration(seconds)


def _duration(low: float, high: float) -> _Convert:
    def convert(value: Any) -> float:
        expected = f'a duration such as "90s", "5m" or "4h", from {_bound(low)} to {_bound(high)}'
        if not isinstance(value, str):
            raise ValueError(expected)
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ValueError(expected) from None
        if not low <= seconds <= high:
            raise ValueError(expected)
        return seconds

    return convert


def _number(low: float, high: float, *, optional: bool = False) -> _Convert:
    def convert(value: Any) -> float | None:
        expected = f"a number from {low:g} to {high:g}" + (" (0 means not set)" if optional else "")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(expected)
        if optional and value == 0:
            return None
        if not low <= value <= high:
            raise ValueError(expected)
        return float(value)

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false (no quotes)")
    return value


def _whole(low: int, high: int) -> _Convert:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return value

    return convert


def _argv(value: Any) -> tuple[str, ...]:
    expected = 'a list of strings, the program first, such as ["systemctl", "poweroff"]'
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(expected)
    return tuple(value)


def _optional_argv(value: Any) -> tuple[str, ...]:
    """An argv, or ``[]`` for none."""
    if value == []:
        return ()
    try:
        return _argv(value)
    except ValueError:
        raise ValueError(
            '[] (none) or a list of strings, the program first, such as ["k3s", "etcd-snapshot", "save"]'
        ) from None


def _drivers(value: Any) -> tuple[str, ...]:
    """``"nut"`` or a list such as ``["nut", "hat"]``: each driver once, at least one."""
    names = ", ".join(f'"{d}"' for d in DRIVERS)
    expected = f'one of {names}, or a list of them such as ["nut", "hat"] (each once)'
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(expected)
    if any(item not in DRIVERS for item in items) or len(set(items)) != len(items):
        raise ValueError(expected)
    return tuple(items)


def _choice(*choices: str) -> _Convert:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError("one of " + ", ".join(f'"{c}"' for c in choices))
        return str(value)

    return convert


_TOP: dict[str, _Key] = {"mode": _Key("dry-run", _choice("dry-run", "enforce"))}

_SCHEMA: dict[str, dict[str, _Key]] = {
    "node": {"name": _Key("", _string)},
    "ups": {
        "driver": _Key("nut", _drivers),
        "host": _Key("127.0.0.1", _nonempty_string),
        "port": _Key(3493, _port),
        "name": _Key("ups", _nonempty_string),
        "username": _Key("", _string),
        "password_file": _Key("", _string),
        "poll_interval": _Key("1s", _duration(0.1, 60)),
        "stale_after": _Key("15s", _duration(1, 3600)),
        "timeout": _Key("5s", _duration(0.1, 60)),
    },
    "battery": {
        "capacity_wh": _Key(0, _number(0, 1e6, optional=True)),
        "usable_fraction": _Key(0.8, _number(0.05, 1)),
        "inverter_efficiency": _Key(0.85, _number(0.3, 1)),
        "overhead_w": _Key(0, _number(0, 1e4)),
        "load_w": _Key(0, _number(0, 1e5, optional=True)),
        "shutdown_charge": _Key(20, _number(0, 99)),
        "topology": _Key("auto", _choice("auto", "shared", "per-node", "mixed")),
        "node_capacity_wh": _Key(0, _number(0, 1e4, optional=True)),
    },
    "policy": {
        "critical_runtime": _Key("5m", _duration(0, 86400)),
        "low_runtime": _Key("10m", _duration(0, 86400)),
        "low_charge": _Key(30, _number(0, 100)),
        "charge_hysteresis": _Key(5, _number(0, 50)),
        "recovery_debounce": _Key("5s", _duration(0, 3600)),
    },
    "hat": {
        "profile": _Key("", _string),
        "i2c_bus": _Key(1, _whole(0, 255)),
        "address": _Key(0, _whole(0, 0x77)),
        "power_loss_debounce": _Key("500ms", _duration(0, 60)),
        "low_battery": _Key(10, _number(0, 99)),
        "chip": _Key("", _string),
        "cells": _Key(1, _whole(1, 8)),
        "chemistry": _Key("li-ion", _string),
        "capacity_wh": _Key(0, _number(0, 1e5, optional=True)),
        "power_loss_pin": _Key(-1, _whole(-1, 27)),
        "power_lost_level": _Key("high", _string),
        "power_loss_pull": _Key("off", _string),
        "power_cut_pin": _Key(-1, _whole(-1, 27)),
        "power_cut_level": _Key("high", _string),
        "power_cut_hold": _Key("3.5s", _duration(0, 60)),
        "discharge_sign": _Key("", _string),
        "discharge_threshold_a": _Key(0.05, _number(0, 10)),
        "shunt_ohm": _Key(0.1, _number(0.0001, 100)),
    },
    "cluster": {
        "enabled": _Key(False, _bool),
        "kubeconfig": _Key("/etc/piclusterd/kubeconfig", _string),
        "lease_namespace": _Key("kube-system", _nonempty_string),
        "lease_name": _Key("piclusterd-leader", _nonempty_string),
        "lease_duration": _Key("15s", _duration(2, 300)),
        "renew_deadline": _Key("10s", _duration(1, 300)),
        "target_runtime": _Key("4h", _duration(60, 7 * 86400)),
        "on_battery_grace": _Key("60s", _duration(0, 3600)),
        "min_nodes": _Key(1, _whole(1, 10_000)),
        "critical_priority": _Key(1_000_000, _whole(-(2**31), 2**31 - 1)),
        "allow_unreplicated": _Key(False, _bool),
        "delete_emptydir_data": _Key(True, _bool),
        "wait_for_replacements": _Key(True, _bool),
        "drain_timeout": _Key("5m", _duration(10, 3600)),
        "poweroff_ack_timeout": _Key("30s", _duration(1, 600)),
        "poweroff_timeout": _Key("3m", _duration(10, 3600)),
        "ssh_key": _Key("/var/lib/piclusterd/id_ed25519", _string),
        "ssh_known_hosts": _Key("/etc/piclusterd/known_hosts", _string),
        "ssh_user": _Key("root", _nonempty_string),
        "ssh_port": _Key(22, _port),
        "pi_model": _Key("pi4b", _choice("pi3b+", "pi4b", "pi5")),
        "power_off_on_halt": _Key(False, _bool),
        "switch_w": _Key(4, _number(0, 1e4)),
        "power_record_max_age": _Key("3m", _duration(10, 86400)),
    },
    "restore": {
        "restore_after": _Key("2m", _duration(0, 86400)),
        "restore_min_charge": _Key(50, _number(0, 100)),
        "restore_stagger": _Key("30s", _duration(0, 3600)),
        "restore_if_charge_unknown": _Key(False, _bool),
    },
    "shutdown": {
        "command": _Key(["systemctl", "poweroff"], _argv),
        "full_shutdown_wait": _Key("3m", _duration(0, 3600)),
        "full_shutdown_hook": _Key([], _optional_argv),
        "drain_timeout": _Key("30s", _duration(1, 600)),
        "ups_shutdown_return": _Key(False, _bool),
        "ups_off_delay": _Key("30s", _duration(1, 3600)),
    },
    "daemon": {"runtime_dir": _Key("/run/piclusterd", _nonempty_string)},
}


def _mac(value: Any) -> str:
    from piclusterd.core.wake_on_lan import parse_mac

    if not isinstance(value, str):
        raise ValueError('a MAC address in quotes, like "dc:a6:32:01:02:03"')
    try:
        parse_mac(value)
    except ValueError:
        raise ValueError('a MAC address in quotes, like "dc:a6:32:01:02:03" (`ip link` on the node)') from None
    return value.strip()


def _ipv4(value: Any) -> str:
    expected = 'an IPv4 broadcast address in quotes, like "192.168.1.255" (`ip -br addr`: brd)'
    if not isinstance(value, str):
        raise ValueError(expected)
    try:
        socket.inet_aton(value)
    except OSError:
        raise ValueError(expected) from None
    return value


#: A key that has no default: leaving it out is a problem of its own ("is missing").
_REQUIRED = object()
#: A nut-outlet key whose default is the [ups] key of the same meaning.
_FROM_UPS = object()

#: ``[node_power.<node>]``: the keys of each ``method`` (``method`` itself is always allowed).
_NODE_POWER: dict[str, dict[str, _Key]] = {
    "manual": {"where": _Key("", _string)},
    "wol": {
        "mac": _Key(_REQUIRED, _mac),
        "broadcast": _Key("255.255.255.255", _ipv4),
        "port": _Key(9, _port),
    },
    "rtc-wake": {
        "recheck": _Key("15m", _duration(60, 86400)),
        "wakealarm": _Key("/sys/class/rtc/rtc0/wakealarm", _nonempty_string),
    },
    "gpio-relay": {
        "via": _Key(_REQUIRED, _nonempty_string),
        "pin": _Key(_REQUIRED, _whole(0, 27)),
        "active": _Key("high", _choice("high", "low")),
        "pulse": _Key("500ms", _duration(0.01, 10)),
    },
    "nut-outlet": {
        "outlet": _Key(_REQUIRED, _whole(0, 1000)),
        "host": _Key(_FROM_UPS, _nonempty_string),
        "port": _Key(_FROM_UPS, _port),
        "ups": _Key(_FROM_UPS, _nonempty_string),
        "username": _Key(_FROM_UPS, _string),
        "password_file": _Key(_FROM_UPS, _string),
        "timeout": _Key(_FROM_UPS, _duration(0.1, 60)),
    },
}

#: The values of ``[node_power.<node>] method``.
NODE_POWER_METHODS = tuple(_NODE_POWER)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_password(file: str, path: str) -> Secret | ConfigError:
    key = "ups.password_file"
    try:
        info = os.stat(path)
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", "a file holding the NUT password")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return ConfigError(
            file,
            key,
            f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o})",
            f"a root-only file: chmod 600 {path}",
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", "a file holding the NUT password")
    password = text.strip("\r\n")
    if not password:
        return ConfigError(file, key, f"{path} is empty", "the NUT password on one line")
    return Secret(password)


_GENERIC_KEYS = (
    "chip",
    "cells",
    "chemistry",
    "power_lost_level",
    "power_loss_pull",
    "power_cut_level",
    "discharge_threshold_a",
    "shunt_ohm",
)


def _hat_profile(file: str, hat: dict[str, Any], problems: list[ConfigError]) -> HatProfile | None:
    """Resolve ``[hat]`` into a validated profile, adding a problem naming the key when it cannot be."""
    from piclusterd.drivers.hat import generic_profile, get_profile

    key = hat["profile"]
    try:
        if not key:
            problems.append(
                ConfigError(
                    file, "hat.profile", 'is empty but ups.driver includes "hat"', 'a profile name or "generic"'
                )
            )
            return None
        if key == "generic":
            if not hat["chip"]:
                problems.append(
                    ConfigError(file, "hat.chip", "is empty", 'the gauge chip, e.g. "max17048" or "ina219"')
                )
                return None
            profile = generic_profile(
                address=hat["address"],
                capacity_wh=hat["capacity_wh"],
                power_loss_pin=None if hat["power_loss_pin"] < 0 else hat["power_loss_pin"],
                power_cut_pin=None if hat["power_cut_pin"] < 0 else hat["power_cut_pin"],
                power_cut_hold_s=hat["power_cut_hold"],
                discharge_sign=hat["discharge_sign"] or None,
                low_battery_pct=hat["low_battery"],
                **{name: hat[name] for name in _GENERIC_KEYS},
            )
        else:
            profile = get_profile(key)
            if hat["address"]:
                profile = profile.with_address(hat["address"])
            if hat["capacity_wh"] is not None:
                profile = profile.with_capacity_wh(hat["capacity_wh"])
            profile = profile.with_low_battery_pct(hat["low_battery"])
    except ProfileInvalid as error:
        problems.append(ConfigError(file, "hat.profile" if key != "generic" else "hat", str(error)))
        return None
    return profile


def _node_power_method(
    file: str,
    node: str,
    table: Mapping[str, Any],
    ups: Mapping[str, Any],
    ups_password: Secret | None,
    problems: list[ConfigError],
) -> NodePowerMethod | None:
    """One ``[node_power.<node>]`` table as its method's dataclass, or None after adding its problems."""
    where = f"node_power.{node}"
    methods = ", ".join(f'"{m}"' for m in _NODE_POWER)
    method = table.get("method", _REQUIRED)
    if method is _REQUIRED:
        problems.append(ConfigError(file, f"{where}.method", "is missing", f"one of {methods}"))
        return None
    if method not in _NODE_POWER:
        close = _did_you_mean(str(method), list(_NODE_POWER))
        problems.append(ConfigError(file, f"{where}.method", f"invalid value {method!r}{close}", f"one of {methods}"))
        return None
    keys = _NODE_POWER[method]
    count = len(problems)
    for name in table:
        if name != "method" and name not in keys:
            problems.append(
                ConfigError(
                    file,
                    f"{where}.{name}",
                    f'unknown key for method = "{method}"' + _did_you_mean(name, list(keys)),
                    f'one of the "{method}" keys: ' + ", ".join(["method", *keys]),
                )
            )
    got: dict[str, Any] = {}
    for name, key in keys.items():
        raw = table.get(name, key.default)
        if raw is _REQUIRED:
            problems.append(ConfigError(file, f"{where}.{name}", f'is missing (method = "{method}" needs it)'))
            continue
        if raw is _FROM_UPS:
            got[name] = None
            continue
        try:
            got[name] = key.convert(raw)
        except ValueError as error:
            problems.append(ConfigError(file, f"{where}.{name}", f"invalid value {raw!r}", str(error)))
    if len(problems) > count:
        return None
    if method == "manual":
        return ManualMethod(where=got["where"])
    if method == "wol":
        return WolMethod(mac=got["mac"], broadcast=got["broadcast"], port=got["port"])
    if method == "rtc-wake":
        return RtcWakeMethod(recheck_s=got["recheck"], wakealarm=got["wakealarm"])
    if method == "gpio-relay":
        if got["via"] == node:
            problems.append(
                ConfigError(
                    file,
                    f"{where}.via",
                    f"is {node} itself: a halted node cannot pulse its own relay",
                    "the name of a node that stays on and drives the relay",
                )
            )
            return None
        return GpioRelayMethod(via=got["via"], pin=got["pin"], active=got["active"], pulse_s=got["pulse"])
    # nut-outlet: each connection key not given is [ups]'s; the login goes as a pair (user and password).
    username, password = ups["username"], ups_password
    if got["username"] is not None or got["password_file"] is not None:
        username, password_file = got["username"] or "", got["password_file"] or ""
        password = None
        if password_file and not username:
            problems.append(
                ConfigError(file, f"{where}.username", "is empty but password_file is set", "the NUT user name")
            )
        elif username and not password_file:
            problems.append(
                ConfigError(
                    file,
                    f"{where}.password_file",
                    "is empty but username is set",
                    "the path of a root-only file holding that user's password",
                )
            )
        if password_file:
            read = _read_password(file, password_file)
            if isinstance(read, ConfigError):
                problems.append(ConfigError(file, f"{where}.password_file", read.problem, read.expected))
                return None
            password = read
        if len(problems) > count:
            return None
    return NutOutletMethod(
        outlet=got["outlet"],
        host=ups["host"] if got["host"] is None else got["host"],
        port=ups["port"] if got["port"] is None else got["port"],
        ups=ups["name"] if got["ups"] is None else got["ups"],
        username=username or None,
        password=password,
        timeout_s=ups["timeout"] if got["timeout"] is None else got["timeout"],
    )


def _node_power(
    file: str, section: Any, ups: Mapping[str, Any], ups_password: Secret | None, problems: list[ConfigError]
) -> dict[str, NodePowerMethod]:
    """``[node_power.<node>]`` tables, one per node that is not powered on by hand."""
    if not isinstance(section, dict):
        return {}  # reported with the other sections
    found: dict[str, NodePowerMethod] = {}
    for node, table in section.items():
        if not isinstance(table, dict):
            problems.append(
                ConfigError(
                    file, f"node_power.{node}", "is not a table", f'a [node_power.{node}] table with method = "..."'
                )
            )
            continue
        method = _node_power_method(file, node, table, ups, ups_password, problems)
        if method is not None:
            found[node] = method
    return found


def parse_config(data: Mapping[str, Any], file: str, *, hostname: str | None = None) -> Config:
    """Validate parsed TOML and build a :class:`Config`; raise :class:`ConfigInvalid` listing every problem."""
    problems: list[ConfigError] = []
    values: dict[str, dict[str, Any]] = {section: {} for section in _SCHEMA}
    top: dict[str, Any] = {}
    allowed_top = list(_TOP) + list(_SCHEMA) + ["node_power"]

    for name, raw in data.items():
        if name in _TOP or (name == "node_power" and isinstance(raw, dict)):
            continue
        if name == "node_power":
            problems.append(ConfigError(file, name, "is not a table", "[node_power.<node>] tables"))
        elif name not in _SCHEMA:
            problems.append(
                ConfigError(
                    file, name, "unknown key" + _did_you_mean(name, allowed_top), "one of " + ", ".join(allowed_top)
                )
            )
        elif not isinstance(raw, dict):
            problems.append(ConfigError(file, name, "is not a table", f"a [{name}] section"))

    for name, key in _TOP.items():
        try:
            top[name] = key.convert(data.get(name, key.default))
        except ValueError as error:
            problems.append(ConfigError(file, name, f"invalid value {data.get(name)!r}", str(error)))

    for section, keys in _SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            continue
        for name in table:
            if name not in keys:
                problems.append(
                    ConfigError(
                        file,
                        f"{section}.{name}",
                        "unknown key" + _did_you_mean(name, list(keys)),
                        f"one of the [{section}] keys: " + ", ".join(keys),
                    )
                )
        for name, key in keys.items():
            raw = table.get(name, key.default)
            try:
                values[section][name] = key.convert(raw)
            except ValueError as error:
                problems.append(ConfigError(file, f"{section}.{name}", f"invalid value {raw!r}", str(error)))

    if problems:
        raise ConfigInvalid(problems)

    ups = values["ups"]
    policy = values["policy"]
    if policy["critical_runtime"] > policy["low_runtime"]:
        problems.append(
            ConfigError(
                file,
                "policy.critical_runtime",
                f"is longer than policy.low_runtime ({format_duration(policy['low_runtime'])})",
                "critical_runtime <= low_runtime: critical is the later, more urgent threshold",
            )
        )
    # The wait starts when the node turns critical, about critical_runtime before the battery ends: a wait as
    # long leaves a node that waited nothing to halt on.
    if values["shutdown"]["full_shutdown_wait"] >= policy["critical_runtime"] > 0:
        problems.append(
            ConfigError(
                file,
                "shutdown.full_shutdown_wait",
                f"is not shorter than policy.critical_runtime ({format_duration(policy['critical_runtime'])})",
                "full_shutdown_wait < critical_runtime, so a node that waited for the leader still has battery "
                "to halt on (the example: 3m with critical_runtime 5m)",
            )
        )
    battery_values = values["battery"]
    if battery_values["topology"] in ("per-node", "mixed") and not battery_values["node_capacity_wh"]:
        problems.append(
            ConfigError(
                file,
                "battery.node_capacity_wh",
                f"is not set, and topology = {battery_values['topology']!r} plans with each node's own battery",
                "the capacity of one node's HAT battery in Wh (2 x 18650 3.6 V 3.0 Ah = 21.6 Wh)",
            )
        )
    # A node whose charge holds steady republishes its record only every publish_every: a shorter age would
    # call every quiet, healthy node unknown between two publishes, and per-node planning would never act.
    republish_s = 2 * PublishPolicy().publish_every_s
    if values["cluster"]["power_record_max_age"] < republish_s:
        problems.append(
            ConfigError(
                file,
                "cluster.power_record_max_age",
                f"is shorter than two of a node's periodic publishes ({format_duration(republish_s)})",
                f"power_record_max_age >= {format_duration(republish_s)}: a node whose charge holds steady "
                f"republishes its record every {format_duration(PublishPolicy().publish_every_s)}",
            )
        )
    if ups["stale_after"] < 2 * ups["poll_interval"]:
        problems.append(
            ConfigError(
                file,
                "ups.stale_after",
                f"is shorter than two polls ({format_duration(2 * ups['poll_interval'])})",
                "stale_after >= 2 x poll_interval, so one slow answer does not count as a dead UPS",
            )
        )
    password: Secret | None = None
    if ups["password_file"]:
        if not ups["username"]:
            problems.append(
                ConfigError(file, "ups.username", "is empty but ups.password_file is set", "the NUT user name")
            )
        read = _read_password(file, ups["password_file"])
        if isinstance(read, ConfigError):
            problems.append(read)
        else:
            password = read
    elif ups["username"]:
        problems.append(
            ConfigError(
                file, "ups.password_file", "is empty but ups.username is set", "the path of a root-only password file"
            )
        )
    cluster = values["cluster"]
    if cluster["enabled"] and values["battery"]["capacity_wh"] is None:
        problems.append(
            ConfigError(
                file,
                "battery.capacity_wh",
                "is not set but [cluster] enabled = true",
                "the UPS battery's capacity in Wh (12 V 7 Ah = 84 Wh): the planner needs it to project runtime",
            )
        )
    lease_s = round(cluster["lease_duration"])
    if cluster["enabled"] and not lease_s > cluster["renew_deadline"] > 1.2 * ups["poll_interval"]:
        # client-go's rule: a leader stops acting (renew deadline) before others may take over (lease duration),
        # and it renews once per poll, so the deadline must outlast a late poll.
        problems.append(
            ConfigError(
                file,
                "cluster.renew_deadline",
                f"is {cluster['renew_deadline']:g} s with lease_duration {lease_s} s and "
                f"ups.poll_interval {ups['poll_interval']:g} s",
                "lease_duration > renew_deadline > 1.2 x ups.poll_interval",
            )
        )
    hat_profile = None
    if "hat" in ups["driver"]:
        hat_profile = _hat_profile(file, values["hat"], problems)
    node_power = _node_power(file, data.get("node_power", {}), ups, password, problems)
    if problems:
        raise ConfigInvalid(problems)

    battery = values["battery"]
    return Config(
        path=file,
        mode=Mode(top["mode"]),
        node=NodeConfig(name=values["node"]["name"] or hostname or socket.gethostname()),
        ups=UpsConfig(
            drivers=ups["driver"],
            host=ups["host"],
            port=ups["port"],
            name=ups["name"],
            username=ups["username"] or None,
            password_file=ups["password_file"] or None,
            password=password,
            poll_interval_s=ups["poll_interval"],
            stale_after_s=ups["stale_after"],
            timeout_s=ups["timeout"],
        ),
        battery=BatteryConfig(
            capacity_wh=battery["capacity_wh"],
            usable_fraction=battery["usable_fraction"],
            inverter_efficiency=battery["inverter_efficiency"],
            overhead_w=battery["overhead_w"],
            load_w=battery["load_w"],
            shutdown_charge_pct=battery["shutdown_charge"],
            topology=battery["topology"],
            node_capacity_wh=battery["node_capacity_wh"],
        ),
        hat=HatConfig(
            profile_key=values["hat"]["profile"],
            profile=hat_profile,
            i2c_bus=values["hat"]["i2c_bus"],
            debounce_s=values["hat"]["power_loss_debounce"],
        ),
        cluster=ClusterConfig(
            enabled=cluster["enabled"],
            kubeconfig=cluster["kubeconfig"],
            lease_namespace=cluster["lease_namespace"],
            lease_name=cluster["lease_name"],
            lease_duration_s=lease_s,
            renew_deadline_s=cluster["renew_deadline"],
            target_runtime_s=cluster["target_runtime"],
            on_battery_grace_s=cluster["on_battery_grace"],
            min_nodes=cluster["min_nodes"],
            critical_priority=cluster["critical_priority"],
            allow_unreplicated=cluster["allow_unreplicated"],
            delete_emptydir_data=cluster["delete_emptydir_data"],
            wait_for_replacements=cluster["wait_for_replacements"],
            drain_timeout_s=cluster["drain_timeout"],
            poweroff_ack_timeout_s=cluster["poweroff_ack_timeout"],
            poweroff_timeout_s=cluster["poweroff_timeout"],
            ssh_key=cluster["ssh_key"],
            ssh_known_hosts=cluster["ssh_known_hosts"],
            ssh_user=cluster["ssh_user"],
            ssh_port=cluster["ssh_port"],
            pi_model=cluster["pi_model"],
            power_off_on_halt=cluster["power_off_on_halt"],
            switch_w=cluster["switch_w"],
            power_record_max_age_s=cluster["power_record_max_age"],
        ),
        policy=PolicyConfig(
            critical_runtime_s=policy["critical_runtime"],
            low_runtime_s=policy["low_runtime"],
            low_charge_pct=policy["low_charge"],
            charge_hysteresis_pct=policy["charge_hysteresis"],
            recovery_debounce_s=policy["recovery_debounce"],
        ),
        shutdown=ShutdownConfig(
            command=values["shutdown"]["command"],
            full_shutdown_wait_s=values["shutdown"]["full_shutdown_wait"],
            full_shutdown_hook=values["shutdown"]["full_shutdown_hook"],
            drain_timeout_s=values["shutdown"]["drain_timeout"],
            ups_shutdown_return=values["shutdown"]["ups_shutdown_return"],
            ups_off_delay_s=values["shutdown"]["ups_off_delay"],
        ),
        daemon=DaemonConfig(runtime_dir=values["daemon"]["runtime_dir"]),
        restore=RestoreConfig(
            restore_after_s=values["restore"]["restore_after"],
            restore_min_charge_pct=values["restore"]["restore_min_charge"],
            restore_stagger_s=values["restore"]["restore_stagger"],
            restore_if_charge_unknown=values["restore"]["restore_if_charge_unknown"],
        ),
        node_power=MappingProxyType(node_power),
    )


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read, parse and validate the file at ``path``; raise :class:`ConfigError` with the fix on any problem."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            file, "", "file not found", "a configuration file: copy examples/piclusterd.toml there, or pass --config"
        ) from None
    except OSError as error:
        raise ConfigError(file, "", f"cannot read: {error.strerror}", "a readable file (are you root?)") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(file, "", "is not UTF-8 text", "a TOML text file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, "", f"is not valid TOML: {error}", 'TOML syntax, e.g. key = "value"') from None
    return parse_config(data, file)
