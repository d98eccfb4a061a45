"""Cutting the UPS's output at the very end of the leader's full shutdown, as NUT's ``nutshutdown`` does.

The full shutdown's UPS step no longer sends anything: it *arms* this flag (:class:`UpsKillFlag`), and the
system-shutdown hook ``/usr/lib/systemd/system-shutdown/piclusterd-power-cut`` sends the UPS its
``shutdown.return`` (or ``load.off.delay``) through upsd once systemd-shutdown has killed every process and
unmounted or remounted every file system read-only (systemd ``src/shutdown/shutdown.c``: the hooks run after
the unmount loop, just before ``reboot()``). ``ups.delay.shutdown`` then only has to cover the hook's own end,
the final sync and the halt, not the leader's whole shutdown (k3s, etcd, its pods), which took an unknown time
when the UPS was asked at the start (issue 19).

Written only when a piclusterd full shutdown reached its UPS step on this node, the leader, the last node:
every other node either NotReady or acknowledged its power-off request (``peers``). The hook checks the boot
id, parses every field as hostile input and sends nothing on anything it would not have written. The flag
holds upsd's credentials (a user with ``instcmds`` and ``actions = SET``): at that stage the config's password
file is still readable, but the flag carries what the hook needs in one root-only file (mode 0600 in the
0700 state directory), so nothing else has to be parsed when nothing can be logged.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from piclusterd.cluster.power_on_backends import PowerOutcome, PowerResult, request_ups_shutdown_return
from piclusterd.config.settings import UpsReturnSettings
from piclusterd.drivers.power_cut import BOOT_ID_PATH, read_boot_id, read_this_boots_flag

__all__ = [
    "DEFAULT_FLAG_PATH",
    "PEER_STATES",
    "FlagInvalid",
    "UpsKillFlag",
    "UpsKillOrder",
    "main",
    "parse_flag",
    "render_flag",
    "root_mount_state",
]

DEFAULT_FLAG_PATH = Path("/var/lib/piclusterd/ups-kill")
"""In the state directory (root only, on the root file system): readable when the hook runs read-only."""

PEER_STATES = ("notready", "acked")
"""How the leader knew each other node was going: NotReady in the API, or it acknowledged its request."""

_MAX_FLAG_BYTES = 8192
_MAX_DELAY_S = 600
_KEYS = {"boot_id", "node", "host", "port", "ups", "username", "password_hex", "delay_s", "timeout_s", "peers"}


class FlagInvalid(ValueError):
    """The flag file is not one piclusterd wrote."""


@dataclass(frozen=True, slots=True)
class UpsKillOrder:
    """What the hook sends, and the facts that allowed it."""

    boot_id: str
    node: str
    host: str
    port: int
    ups: str
    username: str | None
    password: str | None
    delay_s: int
    timeout_s: float
    peers: tuple[tuple[str, str], ...]  # (node, one of PEER_STATES)
    reason: str = ""


def _token(value: str) -> str:
    """A value on one line without spaces, as NUT names, hosts and node names are (anything else: refused)."""
    if not value or len(value) > 253 or any(not c.isascii() or not c.isprintable() or c.isspace() for c in value):
        raise FlagInvalid(f"value {value[:40]!r}")
    return value


def render_flag(order: UpsKillOrder) -> str:
    peers = ",".join(f"{name}:{state}" for name, state in order.peers)
    password = "" if order.password is None else order.password.encode("utf-8").hex()
    return (
        f"boot_id={order.boot_id}\nnode={order.node}\nhost={order.host}\nport={order.port}\nups={order.ups}\n"
        f"username={order.username or ''}\npassword_hex={password}\ndelay_s={order.delay_s}\n"
        f"timeout_s={order.timeout_s:g}\npeers={peers}\nreason={' '.join(order.reason.split())[:200]}\n"
    )


def parse_flag(raw: bytes) -> UpsKillOrder:
    """The order in a flag's bytes; :class:`FlagInvalid` for anything piclusterd would not write."""
    if len(raw) > _MAX_FLAG_BYTES:
        raise FlagInvalid(f"larger than {_MAX_FLAG_BYTES} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise FlagInvalid("not ASCII") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key in fields:
            raise FlagInvalid(f"bad or repeated line {line[:40]!r}")
        fields[key] = value
    if set(fields) - {"reason"} != _KEYS:
        raise FlagInvalid(f"keys {sorted(fields)[:12]}; expected {sorted(_KEYS)} and reason")
    if not fields["port"].isdigit() or not 1 <= int(fields["port"][:6]) <= 65535:
        raise FlagInvalid(f"port {fields['port'][:10]!r}")
    if not fields["delay_s"].isdigit() or not 1 <= int(fields["delay_s"][:6]) <= _MAX_DELAY_S:
        raise FlagInvalid(f"delay_s {fields['delay_s'][:10]!r} outside 1-{_MAX_DELAY_S}")
    try:
        timeout_s = float(fields["timeout_s"])
    except ValueError:
        raise FlagInvalid(f"timeout_s {fields['timeout_s'][:10]!r}") from None
    if not 0.1 <= timeout_s <= 60:  # also refuses nan and inf
        raise FlagInvalid(f"timeout_s {timeout_s} outside 0.1-60")
    try:
        password = bytes.fromhex(fields["password_hex"]).decode("utf-8") if fields["password_hex"] else None
    except ValueError:  # UnicodeDecodeError is one
        raise FlagInvalid("password_hex is not hex of UTF-8") from None
    peers: list[tuple[str, str]] = []
    for item in filter(None, fields["peers"].split(",")):
        name, _, state = item.partition(":")
        if state not in PEER_STATES:
            raise FlagInvalid(f"peer {item[:40]!r}: not NotReady and not acknowledged")
        peers.append((_token(name), state))
    return UpsKillOrder(
        boot_id=fields["boot_id"],
        node=_token(fields["node"]),
        host=_token(fields["host"]),
        port=int(fields["port"]),
        ups=_token(fields["ups"]),
        username=_token(fields["username"]) if fields["username"] else None,
        password=password,
        delay_s=int(fields["delay_s"]),
        timeout_s=timeout_s,
        peers=tuple(peers),
        reason=fields.get("reason", ""),
    )


class UpsKillFlag:
    """The daemon's side: arms (at the full shutdown's UPS step) and clears (at start) the UPS-kill flag.

    Called as ``full_shutdown_runner.UpsShutdownReturn``: ``peers`` is every other node and how the leader
    knew it was going; one that is neither NotReady nor acknowledged leaves the flag unwritten (``REFUSED``),
    because cutting the UPS would cut that node mid-run.
    """

    def __init__(
        self,
        ups: UpsReturnSettings,
        node: str,
        *,
        path: Path = DEFAULT_FLAG_PATH,
        boot_id_path: Path = BOOT_ID_PATH,
    ) -> None:
        self._ups = ups
        self._node = node
        self.path = path
        self._boot_id_path = boot_id_path
        self.clear()

    def clear(self) -> None:
        """A flag from an earlier start is void (the boot id would say so too): this run arms its own."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __call__(self, delay_s: float, peers: Mapping[str, str]) -> PowerResult:
        ups = self._ups
        where = f"{ups.ups}@{ups.host}:{ups.port}"
        unconfirmed = sorted(name for name, state in peers.items() if state not in PEER_STATES)
        if unconfirmed:
            return PowerResult(
                ups.ups,
                PowerOutcome.REFUSED,
                f"not armed: {', '.join(unconfirmed)} neither NotReady nor acknowledged its power-off, and cutting "
                f"{where} would cut it mid-run",
            )
        whole = min(_MAX_DELAY_S, max(1, round(delay_s)))  # upsd takes whole seconds
        try:
            order = UpsKillOrder(
                boot_id=read_boot_id(self._boot_id_path),
                node=self._node,
                host=ups.host,
                port=ups.port,
                ups=ups.ups,
                username=ups.username,
                password=None if ups.password is None else ups.password.value,
                delay_s=whole,
                timeout_s=min(ups.timeout_s, 60.0),
                peers=tuple(sorted(peers.items())),
                reason="full shutdown: this node is the last",
            )
            temporary = self.path.with_name(self.path.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds a password
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(render_flag(order))
            os.replace(temporary, self.path)
        except (OSError, ValueError) as error:
            return PowerResult(ups.ups, PowerOutcome.FAILED, f"cannot arm the UPS kill in {self.path}: {error}")
        return PowerResult(
            ups.ups,
            PowerOutcome.SENT,
            f"armed {self.path}: the system-shutdown hook sends shutdown.return to {where} once this node's file "
            f"systems are read-only, output off {whole} s later; peers down: "
            + (", ".join(f"{name} ({state})" for name, state in sorted(peers.items())) or "none"),
        )


def root_mount_state(mounts: Path = Path("/proc/self/mounts")) -> str:
    """``ro`` or ``rw`` for the root file system (the last mount on /), ``unknown`` if /proc cannot say."""
    state = "unknown"
    try:
        for line in mounts.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[1] == "/":
                state = "ro" if "ro" in fields[3].split(",") else "rw"
    except OSError:
        return "unknown"
    return state


def _boot_id_and_order(raw: bytes) -> tuple[str, UpsKillOrder]:
    order = parse_flag(raw)
    return order.boot_id, order


Sender = Callable[[str, int, str, str | None, str | None, int, float], PowerResult]


def main(
    argv: Sequence[str] | None = None,
    *,
    send: Sender = request_ups_shutdown_return,
    boot_id_path: Path = BOOT_ID_PATH,
    mounts: Path = Path("/proc/self/mounts"),
    sync: Callable[[], None] = os.sync,
) -> int:
    """``python3 -m piclusterd.cluster.ups_kill FLAG``: send the UPS its kill command if the flag is this boot's.

    Exit 0 when there is nothing to do (no flag, an earlier boot's flag) or the command was sent; 1 when the
    flag is unusable or upsd said no (said on stderr, which systemd-shutdown shows on the console).
    """
    code, order = read_this_boots_flag(
        argv,
        _boot_id_and_order,
        module="piclusterd.cluster.ups_kill",
        unreadable_tail="; UPS not told",
        invalid_tail="; UPS not told",
        boot_id_path=boot_id_path,
    )
    if order is None:
        return code
    sync()  # whatever is still writable goes to disk before the UPS is told anything
    where = f"{order.ups}@{order.host}:{order.port}"
    peers = ", ".join(f"{name} {state}" for name, state in order.peers) or "none"
    print(
        f"piclusterd-power-cut: {order.node} is the last node (peers: {peers}); root file system "
        f"{root_mount_state(mounts)}; asking {where} to cut its output in {order.delay_s} s",
        file=sys.stderr,
    )
    result = send(order.host, order.port, order.ups, order.username, order.password, order.delay_s, order.timeout_s)
    print(f"piclusterd-power-cut: {result.outcome.value}: {result.detail}", file=sys.stderr)
    return 0 if result.outcome is PowerOutcome.SENT else 1


if __name__ == "__main__":
    raise SystemExit(main())
