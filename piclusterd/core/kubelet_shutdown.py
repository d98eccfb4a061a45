"""The kubelet's graceful node shutdown settings, from k3s's configuration as the files say it. Pure.

Kubernetes' own answer to "a node is going down" is the kubelet's graceful node shutdown (KEP-2000): with
``shutdownGracePeriod`` > 0 the kubelet takes a systemd *delay* inhibitor lock and, when logind announces a
shutdown (``PrepareForShutdown``), ends the node's pods with their grace periods (critical pods last, within
``shutdownGracePeriodCriticalPods``), ignoring PodDisruptionBudgets. It is off unless configured, and k3s
does not configure it. ``systemctl poweroff`` goes through logind, which honours delay locks;
``systemctl poweroff --force`` (and ``-ff``, ``halt -f``, ``reboot -f``) does not go through logind at all.

Where the settings come from, as k3s and the kubelet read them:

- k3s reads ``/etc/rancher/k3s/config.yaml``, then ``config.yaml.d/*.yaml`` in lexical order; a later file's
  key replaces an earlier one's, and a key ending in ``+`` appends (``kubelet-arg+:``). ``kubelet-arg`` is a
  list of ``name=value`` strings (or a single one) passed as ``--name=value`` to the kubelet.
- ``--shutdown-grace-period`` / ``--shutdown-grace-period-critical-pods`` set the two fields directly (the
  flags are deprecated in favour of the file but still honoured, and a flag wins over the file).
- ``--config=FILE`` names a KubeletConfiguration file; ``--config-dir=DIR`` a drop-in directory whose
  ``*.conf`` files are merged in lexical order over it (a later file's field wins).

The adapter (:mod:`piclusterd.node.kubelet_config`) reads the files with bounds and parses YAML; this module
only interprets the parsed documents, and never raises: anything it cannot read is said in ``problems``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "K3S_ENABLE_LINES",
    "KubeletShutdown",
    "ShutdownMethod",
    "config_paths",
    "inhibitor_problem",
    "k3s_kubelet_args",
    "kubelet_shutdown",
    "parse_go_duration",
]

#: The lines that turn the kubelet's graceful shutdown on under k3s (``/etc/rancher/k3s/config.yaml.d/
#: 90-graceful-shutdown.yaml``, then ``systemctl restart k3s``); check-config prints them.
K3S_ENABLE_LINES = (
    "kubelet-arg+:",
    '  - "shutdown-grace-period=60s"',
    '  - "shutdown-grace-period-critical-pods=30s"',
)

#: A grace period longer than a day is not a setting anyone means: refused (the kubelet would accept it).
_MAX_GRACE_S = 86400.0
#: Bounds on what is looked at (a hostile file must not cost more than this).
_MAX_ARGS = 256
_MAX_ARG_CHARS = 4096

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go ``time.Duration`` string (``"30s"``, ``"1m30s"``, ``"0"``), as ``time.ParseDuration``
    reads it (no sign accepted: a negative grace period means nothing here). Raises ``ValueError``."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not a duration")
    compact = text.strip()
    if compact == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _GO_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact) or not math.isfinite(total) or total > _MAX_GRACE_S:
        raise ValueError(f"{text[:64]!r} is not a Go duration such as 30s or 1m30s up to 24h")
    return total


class ShutdownMethod:
    """How this node's pods end before a halt (values published in the power record)."""

    KUBELET = "kubelet"  # the kubelet's graceful node shutdown is configured: piclusterd relies on it
    SELF_DRAIN = "self-drain"  # it is not: piclusterd evicts this node's pods before the shutdown command


@dataclass(frozen=True, slots=True)
class KubeletShutdown:
    """The kubelet's graceful shutdown settings and where they were read.

    ``grace_s`` is ``shutdownGracePeriod`` (0: off), the total the kubelet holds the shutdown for;
    ``critical_s`` is the part of it kept for critical pods. ``sources`` names the files read, ``problems``
    what could not be read (said by check-config and at start; an unreadable setting counts as off).
    """

    grace_s: float = 0.0
    critical_s: float = 0.0
    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return self.grace_s > 0

    @property
    def method(self) -> str:
        return ShutdownMethod.KUBELET if self.configured else ShutdownMethod.SELF_DRAIN


def _args_of(value: Any, where: str, problems: list[str]) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and len(i) <= _MAX_ARG_CHARS for i in items):
        problems.append(f"{where}: kubelet-arg is not a list of strings: ignored")
        return []
    return list(items[:_MAX_ARGS])


def k3s_kubelet_args(documents: Sequence[tuple[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The kubelet arguments k3s passes, from its config files in the order k3s reads them
    (``config.yaml`` first, then ``config.yaml.d/*.yaml`` sorted). Returns (args, problems). Pure."""
    args: list[str] = []
    problems: list[str] = []
    for where, document in documents:
        if document is None:
            continue
        if not isinstance(document, Mapping):
            problems.append(f"{where}: not a YAML mapping of k3s flags: ignored")
            continue
        if "kubelet-arg" in document:
            args = _args_of(document["kubelet-arg"], where, problems)
        if "kubelet-arg+" in document:
            args = (args + _args_of(document["kubelet-arg+"], where, problems))[:_MAX_ARGS]
    return tuple(args), tuple(problems)


def _flag(arg: str) -> tuple[str, str]:
    name, _, value = arg.lstrip("-").partition("=")
    return name.strip(), value.strip()


def config_paths(args: Sequence[str]) -> tuple[str | None, str | None]:
    """The ``--config`` file and ``--config-dir`` directory among the kubelet's arguments (last one wins)."""
    config: str | None = None
    config_dir: str | None = None
    for arg in args:
        name, value = _flag(arg)
        if name == "config" and value:
            config = value
        elif name == "config-dir" and value:
            config_dir = value
    return config, config_dir


def _duration_field(value: Any, where: str, problems: list[str]) -> float | None:
    try:
        return parse_go_duration(value)
    except ValueError as error:
        problems.append(f"{where}: {error}: ignored")
        return None


def kubelet_shutdown(
    args: Sequence[str],
    kubelet_configs: Sequence[tuple[str, Any]] = (),
    *,
    sources: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> KubeletShutdown:
    """The effective settings: the kubelet config file(s) in merge order, then the flags, which win. Pure.

    ``kubelet_configs`` are (where, parsed document) for ``--config`` first, then each ``--config-dir``
    drop-in in lexical order. A value that cannot be read is left out and said in ``problems``."""
    found: list[str] = list(problems)
    grace: float | None = None
    critical: float | None = None
    for where, document in kubelet_configs:
        if document is None:
            continue
        if not isinstance(document, Mapping):
            found.append(f"{where}: not a KubeletConfiguration mapping: ignored")
            continue
        if "shutdownGracePeriod" in document:
            grace = _duration_field(document["shutdownGracePeriod"], f"{where} shutdownGracePeriod", found)
        if "shutdownGracePeriodCriticalPods" in document:
            critical = _duration_field(
                document["shutdownGracePeriodCriticalPods"], f"{where} shutdownGracePeriodCriticalPods", found
            )
    for arg in args:
        name, value = _flag(arg)
        if name == "shutdown-grace-period":
            grace = _duration_field(value, f"kubelet-arg {name}", found)
        elif name == "shutdown-grace-period-critical-pods":
            critical = _duration_field(value, f"kubelet-arg {name}", found)
    total = grace or 0.0
    critical_part = min(critical or 0.0, total)
    if critical is not None and critical > total:
        # The kubelet refuses to start its shutdown manager then (critical must fit in the total).
        found.append(f"shutdownGracePeriodCriticalPods {critical:g} s exceeds shutdownGracePeriod {total:g} s")
    return KubeletShutdown(total, critical_part, tuple(sources), tuple(found))


def inhibitor_problem(argv: Sequence[str]) -> str | None:
    """Why the shutdown command may not wait for the kubelet's delay lock, or None. Pure.

    ``--force`` (``-f``, ``-ff``; also ``halt -f``) skips logind, so no inhibitor lock holds it. ``-i`` /
    ``--ignore-inhibitors`` is documented for *block* locks (systemctl(1)); the kubelet's lock is a delay
    lock, but rather than rely on how a given systemd version treats it, it is said as a risk too."""
    for word in argv[1:]:
        if word in ("--force", "-f", "-ff") or (word.startswith("-") and not word.startswith("--") and "f" in word):
            return f"{word!r} powers off without logind: the kubelet's inhibitor lock cannot delay it"
        if word in ("-i", "--ignore-inhibitors") or (
            word.startswith("-") and not word.startswith("--") and "i" in word
        ):
            return f"{word!r} ignores inhibitor locks: the kubelet's graceful shutdown may be cut short"
    return None
