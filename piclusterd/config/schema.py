"""The schema of ``piclusterd.toml``: every section and key, its type, bounds and default, and the field of
the section's dataclass (:mod:`piclusterd.config.model`) it fills.

A key's ``convert`` turns the TOML value into the field's value or raises :class:`ValueError` whose text is
what was expected (the error message's last part). :mod:`piclusterd.config.parse` applies the table and
builds each section's dataclass from it in one generic step.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from piclusterd.config.model import (
    BatteryConfig,
    ClusterConfig,
    DaemonConfig,
    GpioRelayMethod,
    HatConfig,
    ManualMethod,
    MetricsConfig,
    NodeConfig,
    PolicyConfig,
    RestoreConfig,
    RtcWakeMethod,
    ShutdownConfig,
    UpsConfig,
    WolMethod,
)
from piclusterd.core.durations import format_duration, parse_duration
from piclusterd.core.nut_words import host_problem, word_problem

__all__ = [
    "DRIVERS",
    "FROM_UPS",
    "MODELS",
    "NODE_POWER",
    "NODE_POWER_METHODS",
    "NODE_POWER_MODELS",
    "REQUIRED",
    "SCHEMA",
    "TOP",
    "Key",
]

#: The values of ``[ups] driver``.
DRIVERS = ("nut", "hat")

_Convert = Callable[[Any], Any]  # raises ValueError with "expected ..." text


def _as_is(value: Any) -> Any:
    return value


def _none_if_empty(value: str) -> str | None:
    return value or None


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its default as the file would say it, and ``convert``, which checks a value and turns it into
    what the checks between keys see.

    ``to`` is the field of the section's dataclass the key fills ("": the field of the key's own name; None: no
    field, the key is read only by a special case such as the ``[hat]`` profile), and ``build`` turns the
    converted value into the field's value (``""`` into None for an optional login, say).
    """

    default: Any
    convert: _Convert
    to: str | None = ""
    build: Callable[[Any], Any] = _as_is

    def field_name(self, name: str) -> str | None:
        """The dataclass field key ``name`` fills, or None."""
        return None if self.to is None else self.to or name


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string in quotes")
    return value


def _nonempty_string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string in quotes")
    return value


def _nut_host(value: Any) -> str:
    """A host upsd listens on, as PyNUTClient connects to it (:func:`piclusterd.core.nut_words.host_problem`)."""
    problem = host_problem(value) if isinstance(value, str) else "a host name or IP address in quotes"
    if problem:
        raise ValueError(problem)
    return str(value)


def _nut_word(value: Any) -> str:
    """A UPS name or user name, as upsd reads it (:func:`piclusterd.core.nut_words.word_problem`)."""
    problem = word_problem(value) if isinstance(value, str) else "a string in quotes"
    if problem:
        raise ValueError(problem)
    return str(value)


def _optional_nut_word(value: Any) -> str:
    """``""`` (none) or a NUT user name."""
    if value == "":
        return ""
    try:
        return _nut_word(value)
    except ValueError as error:
        raise ValueError(f'"" (none) or {error}') from None


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("a whole number from 1 to 65535")
    return value


def _listen_address(value: Any) -> tuple[str, int] | None:
    """``"127.0.0.1:9847"``, ``"[::1]:9847"`` or ``"0.0.0.0:9847"``: an IP literal and a port; "" is off.

    Only IP literals: a host name would be resolved once at start, silently, on a network that may be down."""
    expected = 'an IP address and port in quotes, like "127.0.0.1:9847" or "[::1]:9847", or "" for none'
    if not isinstance(value, str):
        raise ValueError(expected)
    if value == "":
        return None
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except (OSError, ValueError):
        raise ValueError(expected) from None
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(expected)
    return host, int(port)


def _textfile(value: Any) -> str | None:
    expected = (
        'an absolute path ending in .prom, like "/var/lib/prometheus/node-exporter/piclusterd.prom", '
        'or "" for none'
    )
    if not isinstance(value, str):
        raise ValueError(expected)
    if value == "":
        return None
    if not value.startswith("/") or not value.endswith(".prom") or "\0" in value or len(value) > 4096:
        raise ValueError(expected)
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


def _duration_or_auto(low: float, high: float) -> _Convert:
    """A duration, or ``"auto"`` (None: the part that uses it works it out)."""
    duration = _duration(low, high)

    def convert(value: Any) -> float | None:
        if value == "auto":
            return None
        try:
            return float(duration(value))
        except ValueError:
            expected = f'"auto" or a duration such as "30s" or "3m", from {_bound(low)} to {_bound(high)}'
            raise ValueError(expected) from None

    return convert


def _duration_or_leave(low: float, high: float) -> _Convert:
    """A duration, or ``"leave"`` (None: the device keeps its own value)."""
    duration = _duration(low, high)

    def convert(value: Any) -> float | None:
        if value == "leave":
            return None
        try:
            return float(duration(value))
        except ValueError:
            expected = f'"leave" or a duration such as "30s", from {_bound(low)} to {_bound(high)}'
            raise ValueError(expected) from None

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


TOP: dict[str, Key] = {"mode": Key("dry-run", _choice("dry-run", "enforce"))}

SCHEMA: dict[str, dict[str, Key]] = {
    "node": {"name": Key("", _string)},
    "ups": {
        "driver": Key("nut", _drivers, to="drivers"),
        "host": Key("127.0.0.1", _nut_host),
        "port": Key(3493, _port),
        "name": Key("ups", _nut_word),
        "username": Key("", _optional_nut_word, build=_none_if_empty),
        "password_file": Key("", _string, build=_none_if_empty),
        "poll_interval": Key("1s", _duration(0.1, 60), to="poll_interval_s"),
        "stale_after": Key("15s", _duration(1, 3600), to="stale_after_s"),
        "timeout": Key("5s", _duration(0.1, 60), to="timeout_s"),
        "set_charge_restart": Key(0, _number(0, 100, optional=True), to="set_charge_restart_pct"),
        "set_delay_start": Key("leave", _duration_or_leave(0, 3600), to="set_delay_start_s"),
    },
    "battery": {
        "capacity_wh": Key(0, _number(0, 1e6, optional=True)),
        "usable_fraction": Key(0.8, _number(0.05, 1)),
        "inverter_efficiency": Key(0.85, _number(0.3, 1)),
        "overhead_w": Key(0, _number(0, 1e4)),
        "load_w": Key(0, _number(0, 1e5, optional=True)),
        "shutdown_charge": Key(20, _number(0, 99), to="shutdown_charge_pct"),
        "topology": Key("auto", _choice("auto", "shared", "per-node", "mixed")),
        "node_capacity_wh": Key(0, _number(0, 1e4, optional=True)),
    },
    "policy": {
        "critical_runtime": Key("5m", _duration(0, 86400), to="critical_runtime_s"),
        "low_runtime": Key("10m", _duration(0, 86400), to="low_runtime_s"),
        "low_charge": Key(30, _number(0, 100), to="low_charge_pct"),
        "charge_hysteresis": Key(5, _number(0, 50), to="charge_hysteresis_pct"),
        "recovery_debounce": Key("5s", _duration(0, 3600), to="recovery_debounce_s"),
        "low_battery_confirm": Key("auto", _duration_or_auto(0, 3600), to="low_battery_confirm_s"),
    },
    "hat": {
        "profile": Key("", _string, to="profile_key"),
        "i2c_bus": Key(1, _whole(0, 255)),
        "address": Key(0, _whole(0, 0x77), to=None),
        "power_loss_debounce": Key("500ms", _duration(0, 60), to="debounce_s"),
        "shutdown_button": Key(True, _bool),
        "low_battery": Key(10, _number(0, 99), to=None),
        "chip": Key("", _string, to=None),
        "cells": Key(1, _whole(1, 8), to=None),
        "chemistry": Key("li-ion", _string, to=None),
        "capacity_wh": Key(0, _number(0, 1e5, optional=True), to=None),
        "power_loss_pin": Key(-1, _whole(-1, 27), to=None),
        "power_lost_level": Key("high", _string, to=None),
        "power_loss_pull": Key("off", _string, to=None),
        "power_cut_pin": Key(-1, _whole(-1, 27), to=None),
        "power_cut_level": Key("high", _string, to=None),
        "power_cut_hold": Key("3.5s", _duration(0, 60), to=None),
        "discharge_sign": Key("", _string, to=None),
        "discharge_threshold_a": Key(0.05, _number(0, 10), to=None),
        "shunt_ohm": Key(0.1, _number(0.0001, 100), to=None),
    },
    "cluster": {
        "enabled": Key(False, _bool),
        "kubeconfig": Key("/etc/piclusterd/kubeconfig", _string),
        "lease_namespace": Key("piclusterd", _nonempty_string),
        "lease_name": Key("piclusterd-leader", _nonempty_string),
        "lease_duration": Key("15s", _duration(2, 300), to="lease_duration_s", build=round),
        "renew_deadline": Key("10s", _duration(1, 300), to="renew_deadline_s"),
        "retry_period": Key("2s", _duration(0.1, 60), to="retry_period_s"),
        "target_runtime": Key("4h", _duration(60, 7 * 86400), to="target_runtime_s"),
        "on_battery_grace": Key("60s", _duration(0, 3600), to="on_battery_grace_s"),
        "min_nodes": Key(1, _whole(1, 10_000)),
        "critical_priority": Key(1_000_000, _whole(-(2**31), 2**31 - 1)),
        "allow_unreplicated": Key(False, _bool),
        "give_up_noncritical": Key("when-needed", _choice("never", "when-needed", "always")),
        "delete_emptydir_data": Key(True, _bool),
        "wait_for_replacements": Key(True, _bool),
        "drain_timeout": Key("5m", _duration(10, 3600), to="drain_timeout_s"),
        "poweroff_ack_timeout": Key("30s", _duration(1, 600), to="poweroff_ack_timeout_s"),
        "poweroff_timeout": Key("3m", _duration(10, 3600), to="poweroff_timeout_s"),
        "ssh_key": Key("/var/lib/piclusterd/id_ed25519", _string),
        "ssh_known_hosts": Key("/etc/piclusterd/known_hosts", _string),
        "ssh_user": Key("root", _nonempty_string),
        "ssh_port": Key(22, _port),
        "key_file": Key("/etc/piclusterd/cluster.key", _string),
        "previous_key_file": Key("", _string),
        "pi_model": Key("pi4b", _choice("pi3b+", "pi4b", "pi5")),
        "power_off_on_halt": Key(False, _bool),
        "switch_w": Key(4, _number(0, 1e4)),
        "power_record_max_age": Key("3m", _duration(10, 86400), to="power_record_max_age_s"),
    },
    "restore": {
        "restore_after": Key("2m", _duration(0, 86400), to="restore_after_s"),
        "restore_min_charge": Key(50, _number(0, 100), to="restore_min_charge_pct"),
        "restore_stagger": Key("30s", _duration(0, 3600), to="restore_stagger_s"),
        "restore_if_charge_unknown": Key(False, _bool),
    },
    "shutdown": {
        "command": Key(["systemctl", "poweroff"], _argv),
        "local_protection": Key(True, _bool),
        "full_shutdown_wait": Key("3m", _duration(0, 3600), to="full_shutdown_wait_s"),
        "full_shutdown_hook": Key([], _optional_argv),
        "drain_timeout": Key("30s", _duration(1, 600), to="drain_timeout_s"),
        "ups_shutdown_return": Key(False, _bool),
        "ups_off_delay": Key("10s", _duration(1, 600), to="ups_off_delay_s"),
        "os_shutdown_time": Key("90s", _duration(0, 3600), to="os_shutdown_s"),
        "self_drain_timeout": Key("60s", _duration(0, 3600), to="self_drain_timeout_s"),
        "k3s_config": Key("/etc/rancher/k3s/config.yaml", _nonempty_string),
    },
    "daemon": {"runtime_dir": Key("/run/piclusterd", _nonempty_string)},
    "metrics": {
        "listen": Key("", _listen_address),
        "textfile": Key("", _textfile),
    },
}

#: The dataclass each section builds: the field of each key (:attr:`Key.to`), plus the fields a special case
#: fills (``[ups]`` password, ``[hat]`` profile) given by :func:`piclusterd.config.parse.parse_config`.
MODELS: dict[str, type] = {
    "node": NodeConfig,
    "ups": UpsConfig,
    "battery": BatteryConfig,
    "policy": PolicyConfig,
    "hat": HatConfig,
    "cluster": ClusterConfig,
    "restore": RestoreConfig,
    "shutdown": ShutdownConfig,
    "daemon": DaemonConfig,
    "metrics": MetricsConfig,
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
REQUIRED = object()
#: A nut-outlet key whose default is the [ups] key of the same meaning.
FROM_UPS = object()

#: ``[node_power.<node>]``: the keys of each ``method`` (``method`` itself is always allowed).
NODE_POWER: dict[str, dict[str, Key]] = {
    "manual": {"where": Key("", _string)},
    "wol": {
        "mac": Key(REQUIRED, _mac),
        "broadcast": Key("255.255.255.255", _ipv4),
        "port": Key(9, _port),
    },
    "rtc-wake": {
        "recheck": Key("15m", _duration(60, 86400), to="recheck_s"),
        "wakealarm": Key("/sys/class/rtc/rtc0/wakealarm", _nonempty_string),
    },
    "gpio-relay": {
        "via": Key(REQUIRED, _nonempty_string),
        "pin": Key(REQUIRED, _whole(0, 27)),
        "active": Key("high", _choice("high", "low")),
        "pulse": Key("500ms", _duration(0.01, 10), to="pulse_s"),
    },
    "nut-outlet": {
        "outlet": Key(REQUIRED, _whole(0, 1000)),
        "host": Key(FROM_UPS, _nut_host),
        "port": Key(FROM_UPS, _port),
        "ups": Key(FROM_UPS, _nut_word),
        "username": Key(FROM_UPS, _optional_nut_word),
        "password_file": Key(FROM_UPS, _string),
        "timeout": Key(FROM_UPS, _duration(0.1, 60)),
    },
}

#: The dataclass each ``method`` builds from its keys; ``nut-outlet``'s is built by a special case (its
#: connection falls back to ``[ups]``'s, its password is read from a file).
NODE_POWER_MODELS: dict[str, type] = {
    "manual": ManualMethod,
    "wol": WolMethod,
    "rtc-wake": RtcWakeMethod,
    "gpio-relay": GpioRelayMethod,
}

#: The values of ``[node_power.<node>] method``.
NODE_POWER_METHODS = tuple(NODE_POWER)
