"""Configuration: one TOML file, validated in full before anything starts.

Every problem is reported with the file, the key, what is wrong and what is expected; unknown keys are
errors with a did-you-mean, because a misspelt safety threshold that silently falls back to its default is
exactly the surprise an operator at 2 AM must not get. All problems of a file are reported together.

The keys, their types and defaults are in :mod:`piclusterd.config.schema`; each section's dataclass
(:mod:`piclusterd.config.model`) is built from it in one generic step (:func:`_build`). What the table cannot
say is here, each in a function of its own: the checks between keys, the password files, the ``[hat]``
profile and the ``[node_power.<node>]`` methods.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
import socket
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from piclusterd.config.cluster_key import read_key_file
from piclusterd.config.model import Config, Mode, NodePowerMethod, NutOutletMethod, Secret
from piclusterd.config.notify import parse_notify
from piclusterd.config.schema import FROM_UPS, MODELS, NODE_POWER, NODE_POWER_MODELS, REQUIRED, SCHEMA, TOP, Key
from piclusterd.core.authority import ClusterKeys
from piclusterd.core.durations import format_duration
from piclusterd.core.errors import ConfigError, ConfigInvalid, ProfileInvalid
from piclusterd.core.nut_words import password_problem
from piclusterd.core.power_record import PUBLISH_EVERY_S

if TYPE_CHECKING:
    from piclusterd.drivers.hat import HatProfile

__all__ = ["DEFAULT_CONFIG_PATH", "load_config", "parse_config"]

DEFAULT_CONFIG_PATH = Path("/etc/piclusterd/piclusterd.toml")


def _build(model: type, keys: Mapping[str, Key], values: Mapping[str, Any], **special: Any) -> Any:
    """``model`` from the checked ``values`` of its keys (each to its field, :attr:`Key.to`) and the fields
    a special case fills. Every field must be filled: a field the table forgot is a bug, not a default."""
    filled = dict(special)
    for name, key in keys.items():
        field_name = key.field_name(name)
        if field_name is not None and field_name not in filled:
            filled[field_name] = key.build(values[name])
    missing = {item.name for item in fields(model)} - set(filled)
    if missing:
        raise AssertionError(f"{model.__name__}: no key fills {sorted(missing)}")
    return model(**filled)


def _did_you_mean(word: str, choices: list[str]) -> str:
    if len(word) > 64:
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: How a value is shown in an error: short and on one line, however long or deep it is in the file.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def _shown(value: object) -> str:
    return _SHOWN.repr(value)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _key(name: str) -> str:
    """A key of the file as an error names it: as written if plain, else quoted and cut (one line)."""
    return name if _PLAIN_KEY.fullmatch(name) else _shown(name)


# A Node's name: a DNS-1123 subdomain (Kubernetes' rule for object names).
_NODE_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: Nesting deeper than this is not a piclusterd config (the deepest key is [node_power.<node>] method = ...).
MAX_DEPTH = 16
#: A config file larger than this is not a piclusterd config (the annotated example is about 20 KiB).
MAX_CONFIG_BYTES = 1 << 20


def _too_deep(data: Mapping[str, Any], file: str) -> ConfigError | None:
    """The first value nested deeper than MAX_DEPTH, as a problem naming its key; walked without recursion."""
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return ConfigError(
                file,
                where,
                f"is nested more than {MAX_DEPTH} levels deep",
                "the plain values examples/piclusterd.toml shows",
            )
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{_key(str(k))}".lstrip("."), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, where, depth + 1) for v in value)
    return None


#: A password file larger than this is not a password file (upsd keeps 512 bytes of a word).
MAX_PASSWORD_FILE = 4096


def _read_password(file: str, path: str, key: str = "ups.password_file") -> Secret | ConfigError:
    """The NUT password in ``path``: a root-only regular file, one line, as upsd can take it (never shown)."""
    try:
        info = os.stat(path)
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", "a file holding the NUT password")
    if not stat.S_ISREG(info.st_mode):
        return ConfigError(file, key, f"{path} is not a regular file", "a file holding the NUT password")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return ConfigError(
            file,
            key,
            f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o})",
            f"a root-only file: chmod 600 {path}",
        )
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_PASSWORD_FILE + 1)
    except OSError as error:
        return ConfigError(file, key, f"cannot read {path}: {error.strerror}", "a file holding the NUT password")
    if len(raw) > MAX_PASSWORD_FILE:
        return ConfigError(
            file, key, f"{path} is larger than {MAX_PASSWORD_FILE} bytes", "the NUT password on one line"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ConfigError(file, key, f"{path} is not UTF-8 text", "the NUT password on one line, in ASCII")
    password = text.strip("\r\n")  # the line end an editor or `echo` adds; one inside is refused below
    if not password:
        return ConfigError(file, key, f"{path} is empty", "the NUT password on one line")
    problem = password_problem(password)
    if problem:
        return ConfigError(file, key, f"{path} holds a password upsd cannot take", problem)
    return Secret(password)


def _cluster_keys(file: str, cluster: Mapping[str, Any], problems: list[ConfigError]) -> ClusterKeys | None:
    """With ``[cluster]`` on, the cluster key (and the previous one during a rotation): every request is signed."""
    if not cluster["enabled"]:
        return None
    if not cluster["key_file"]:
        problems.append(ConfigError(file, "cluster.key_file", "is empty", "the path of the cluster key file"))
        return None
    current = read_key_file(file, "cluster.key_file", cluster["key_file"])
    previous: bytes | ConfigError | None = None
    if cluster["previous_key_file"]:
        previous = read_key_file(file, "cluster.previous_key_file", cluster["previous_key_file"])
    for read in (current, previous):
        if isinstance(read, ConfigError):
            problems.append(read)
    if isinstance(current, ConfigError) or isinstance(previous, ConfigError):
        return None
    return ClusterKeys(current, previous)


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
    methods = ", ".join(f'"{m}"' for m in NODE_POWER)
    method = table.get("method", REQUIRED)
    if method is REQUIRED:
        problems.append(ConfigError(file, f"{where}.method", "is missing", f"one of {methods}"))
        return None
    if not isinstance(method, str) or method not in NODE_POWER:
        close = _did_you_mean(str(method), list(NODE_POWER))
        problems.append(
            ConfigError(file, f"{where}.method", f"invalid value {_shown(method)}{close}", f"one of {methods}")
        )
        return None
    keys = NODE_POWER[method]
    count = len(problems)
    for name in table:
        if name != "method" and name not in keys:
            problems.append(
                ConfigError(
                    file,
                    f"{where}.{_key(name)}",
                    f'unknown key for method = "{method}"' + _did_you_mean(name, list(keys)),
                    f'one of the "{method}" keys: ' + ", ".join(["method", *keys]),
                )
            )
    got: dict[str, Any] = {}
    for name, key in keys.items():
        raw = table.get(name, key.default)
        if raw is REQUIRED:
            problems.append(ConfigError(file, f"{where}.{name}", f'is missing (method = "{method}" needs it)'))
            continue
        if raw is FROM_UPS:
            got[name] = None
            continue
        try:
            got[name] = key.convert(raw)
        except ValueError as error:
            problems.append(ConfigError(file, f"{where}.{name}", f"invalid value {_shown(raw)}", str(error)))
    if len(problems) > count:
        return None
    if method == "gpio-relay" and got["via"] == node:
        problems.append(
            ConfigError(
                file,
                f"{where}.via",
                f"is {node} itself: a halted node cannot pulse its own relay",
                "the name of a node that stays on and drives the relay",
            )
        )
        return None
    if method == "nut-outlet":
        return _nut_outlet(file, where, got, ups, ups_password, problems)
    built: NodePowerMethod = _build(NODE_POWER_MODELS[method], keys, got)
    return built


def _nut_outlet(
    file: str,
    where: str,
    got: Mapping[str, Any],
    ups: Mapping[str, Any],
    ups_password: Secret | None,
    problems: list[ConfigError],
) -> NutOutletMethod | None:
    """``method = "nut-outlet"`` from its checked keys, or None after adding its problems."""
    count = len(problems)
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
            read = _read_password(file, password_file, f"{where}.password_file")
            if isinstance(read, ConfigError):
                problems.append(read)
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
        if not _NODE_NAME.fullmatch(node):
            problems.append(
                ConfigError(
                    file,
                    f"node_power.{_key(node)}",
                    "is not a Kubernetes node name",
                    "the node's name as `kubectl get nodes` shows it (lower-case letters, digits, '-' and '.')",
                )
            )
            continue
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
    values: dict[str, dict[str, Any]] = {section: {} for section in SCHEMA}
    top: dict[str, Any] = {}
    allowed_top = list(TOP) + list(SCHEMA) + ["node_power", "notify"]
    deep = _too_deep(data, file)
    if deep is not None:
        raise ConfigInvalid([deep])

    for name, raw in data.items():
        if name in TOP or (name in ("node_power", "notify") and isinstance(raw, dict)):
            continue
        if name == "node_power":
            problems.append(ConfigError(file, name, "is not a table", "[node_power.<node>] tables"))
        elif name == "notify":
            problems.append(ConfigError(file, name, "is not a table", "a [notify] section"))
        elif name not in SCHEMA:
            problems.append(
                ConfigError(
                    file,
                    _key(name),
                    "unknown key" + _did_you_mean(name, allowed_top),
                    "one of " + ", ".join(allowed_top),
                )
            )
        elif not isinstance(raw, dict):
            problems.append(ConfigError(file, name, "is not a table", f"a [{name}] section"))

    for name, key in TOP.items():
        try:
            top[name] = key.convert(data.get(name, key.default))
        except ValueError as error:
            problems.append(ConfigError(file, name, f"invalid value {_shown(data.get(name))}", str(error)))

    for section, keys in SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            continue
        for name in table:
            if name not in keys:
                problems.append(
                    ConfigError(
                        file,
                        f"{section}.{_key(name)}",
                        "unknown key" + _did_you_mean(name, list(keys)),
                        f"one of the [{section}] keys: " + ", ".join(keys),
                    )
                )
        for name, key in keys.items():
            raw = table.get(name, key.default)
            try:
                values[section][name] = key.convert(raw)
            except ValueError as error:
                problems.append(ConfigError(file, f"{section}.{name}", f"invalid value {_shown(raw)}", str(error)))

    if problems:
        raise ConfigInvalid(problems)

    _check_between_keys(file, values, problems)
    password = _ups_password(file, values["ups"], problems)
    _check_cluster(file, values, problems)
    cluster_keys = _cluster_keys(file, values["cluster"], problems)
    hat_profile = _hat_profile(file, values["hat"], problems) if "hat" in values["ups"]["driver"] else None
    node_power = _node_power(file, data.get("node_power", {}), values["ups"], password, problems)
    notify = parse_notify(file, data.get("notify"), problems)
    if problems:
        raise ConfigInvalid(problems)

    special: dict[str, dict[str, Any]] = {
        "node": {"name": values["node"]["name"] or hostname or socket.gethostname()},
        "ups": {"password": password},
        "hat": {"profile": hat_profile},
        "cluster": {"signing_keys": cluster_keys},
    }
    sections = {
        section: _build(MODELS[section], keys, values[section], **special.get(section, {}))
        for section, keys in SCHEMA.items()
    }
    return Config(
        path=file, mode=Mode(top["mode"]), node_power=MappingProxyType(node_power), notify=notify, **sections
    )


def _check_between_keys(file: str, values: Mapping[str, Mapping[str, Any]], problems: list[ConfigError]) -> None:
    """The rules between keys of ``[policy]``, ``[shutdown]``, ``[battery]``, ``[cluster]`` and ``[ups]``."""
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
    republish_s = 2 * PUBLISH_EVERY_S
    if values["cluster"]["power_record_max_age"] < republish_s:
        problems.append(
            ConfigError(
                file,
                "cluster.power_record_max_age",
                f"is shorter than two of a node's periodic publishes ({format_duration(republish_s)})",
                f"power_record_max_age >= {format_duration(republish_s)}: a node whose charge holds steady "
                f"republishes its record every {format_duration(PUBLISH_EVERY_S)}",
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


def _ups_password(file: str, ups: Mapping[str, Any], problems: list[ConfigError]) -> Secret | None:
    """``[ups]``'s login: a user name and its password file go together; the file is read here."""
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
    return password


def _check_cluster(file: str, values: Mapping[str, Mapping[str, Any]], problems: list[ConfigError]) -> None:
    """With ``[cluster]`` on: a battery capacity to plan with, and client-go's order of the lease timings."""
    ups = values["ups"]
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
    retry_s = max(cluster["retry_period"], ups["poll_interval"])  # the cluster side ticks once per poll at most
    if cluster["enabled"] and not lease_s > cluster["renew_deadline"] > 1.2 * retry_s:
        # client-go's rule: a leader stops acting (renew deadline) before others may take over (lease duration),
        # and it renews once per retry period, so the deadline must outlast a late renewal.
        problems.append(
            ConfigError(
                file,
                "cluster.renew_deadline",
                f"is {cluster['renew_deadline']:g} s with lease_duration {lease_s} s and a retry period of "
                f"{retry_s:g} s (the larger of cluster.retry_period and ups.poll_interval)",
                "lease_duration > renew_deadline > 1.2 x the retry period",
            )
        )


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read, parse and validate the file at ``path``; raise :class:`ConfigError` with the fix on any problem."""
    file = str(path)
    try:
        raw = _read_bounded(Path(path), MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(
            file, "", "file not found", "a configuration file: copy examples/piclusterd.toml there, or pass --config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(file, "", "is not a regular file", "the path of a TOML configuration file") from None
    except OSError as error:
        raise ConfigError(file, "", f"cannot read: {error.strerror}", "a readable file (are you root?)") from None
    if raw is None:
        raise ConfigError(
            file, "", f"is not a regular file of at most {MAX_CONFIG_BYTES // 1024} KiB", "a TOML configuration file"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(file, "", "is not UTF-8 text", "a TOML text file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, "", f"is not valid TOML: {error}", 'TOML syntax, e.g. key = "value"') from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(
            file, "", f"is nested more than {MAX_DEPTH} levels deep", "the plain values examples/piclusterd.toml shows"
        ) from None
    return parse_config(data, file)


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file at ``path``, or None if it is not one or is larger than ``limit``
    (``/dev/zero`` or a FIFO must not hang ``check-config``, nor a huge file fill the memory)."""
    with path.open("rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        raw = stream.read(limit + 1)
    return None if len(raw) > limit else raw
