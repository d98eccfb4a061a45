"""Powering a shed node back on (and, where the hardware allows, off): the ``NodePower`` port and its backends.

**The port.** :class:`NodePower` is what the restore executor calls with the nodes
:func:`piclusterd.core.restore.decide_restore` chose. A backend *must* implement all three methods; one that cannot
do something raises :class:`~piclusterd.core.errors.PowerControlUnsupported` (a ``CapabilityMissing``, also a
``NotImplementedError``) instead of doing nothing, so the caller can say so in the journal and an Event and
try another way. A backend that tries and fails raises :class:`~piclusterd.core.errors.PowerControlFailed`.
The exception is ``nut-outlet``, which talks to a network daemon on every call: it returns its refusals and
failures as ``REFUSED`` / ``FAILED`` results instead, so a caller must check ``PowerResult.outcome`` and not
only catch. ``is_powered`` answers ``None`` when the backend cannot tell: the Node's Ready condition is the
authority.

**Backends** (which one when: ``docs/power-on.md``):

``wol`` (:class:`WakeOnLan`)
    A Wake-on-LAN magic packet (6 x ``0xFF`` then 16 x the MAC) to a broadcast address, UDP port 9. For
    non-Pi nodes only: a Pi 4 cannot wake on LAN (rpi-eeprom#160: the hardware cannot), and it is not
    confirmed on a Pi 5. Sending is not knowing: the result is ``SENT``.
``rtc-wake`` (:class:`RtcWakeAlarm`, :func:`check_in`, :class:`RtcWakePower`)
    Pi 5 only (the Pi 4 has no RTC). Before halting, the node arms its own RTC wake alarm; it wakes by
    itself, checks in, and halts again while mains is out and it is still meant to be shed. The leader
    cannot make it wake sooner: ``power_on`` says when it will.
``gpio-relay`` (:class:`GpioRelayPower`)
    Another Pi's GPIO line drives a relay (or a transistor) for a moment: across a node's power button,
    in its supply, or pulling a halted Pi 4's GLOBAL_EN (or GPIO3, with ``WAKE_ON_GPIO=1``) to ground.
``manual`` (:class:`ManualPower`)
    Nobody can power it on but a person: ``power_on`` says "waiting for someone to press the button", and
    the caller logs it and emits an Event.
``nut-outlet`` (:class:`NutOutletPower`, :func:`request_ups_shutdown_return`)
    The node is plugged into a switchable outlet of a UPS or PDU that upsd serves: ``outlet.N.load.on`` /
    ``.load.off`` instant commands, ``outlet.N.status`` for ``is_powered``. It refuses an outlet whose
    ``outlet.N.switchable`` is not ``yes``, and never raises on a network or upsd error: the
    :class:`PowerResult` says ``FAILED`` and why. ``request_ups_shutdown_return`` asks the UPS to cut its
    output after a delay and restore it when mains returns (``shutdown.return``, as upsmon's POWERDOWNFLAG
    does).
"""

from __future__ import annotations

import contextlib
import enum
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from piclusterd.core.errors import ConfigError, PinUnavailable, PowerControlFailed, PowerControlUnsupported
from piclusterd.core.power_state import PowerState
from piclusterd.core.wake_on_lan import magic_packet, parse_mac
from piclusterd.drivers.gpio_power import GpioModule, Level

__all__ = [
    "DEFAULT_WAKEALARM",
    "CheckIn",
    "CheckInDecision",
    "GpioRelayPower",
    "ManualPower",
    "NodePower",
    "NutOutletPower",
    "PowerOutcome",
    "PowerResult",
    "RelayLine",
    "RtcWakeAlarm",
    "RtcWakePower",
    "WakeOnLan",
    "check_in",
    "request_ups_shutdown_return",
]

DEFAULT_WAKEALARM = Path("/sys/class/rtc/rtc0/wakealarm")


class PowerOutcome(enum.StrEnum):
    """What a backend could do."""

    DONE = "done"  # the backend switched the power itself (relay pulsed)
    SENT = "sent"  # a request left, nothing can confirm it arrived (Wake-on-LAN)
    WAKES_ITSELF = "wakes_itself"  # the node will wake on its own (RTC alarm armed before it halted)
    WAITING_FOR_OPERATOR = "waiting_for_operator"  # a person has to do it
    REFUSED = "refused"  # the backend would not act: nothing was sent (outlet not switchable, node unknown)
    FAILED = "failed"  # it tried and the device or the network said no (upsd down, access denied)


@dataclass(frozen=True, slots=True)
class PowerResult:
    """The outcome of a power request, with a sentence for the journal and the Kubernetes Event."""

    node: str
    outcome: PowerOutcome
    detail: str


class NodePower(Protocol):
    """Switches a node's power. Must implement all three; raise ``PowerControlUnsupported`` for what it cannot."""

    @property
    def name(self) -> str:
        """The backend's name in the configuration (``wol``, ``rtc-wake``, ``gpio-relay``, ``manual``)."""
        ...

    def power_off(self, node: str) -> PowerResult: ...

    def power_on(self, node: str) -> PowerResult: ...

    def is_powered(self, node: str) -> bool | None: ...


# --------------------------------------------------------------------------------------------------------
# Wake-on-LAN


class WakeOnLan:
    """``wol``: a magic packet to ``broadcast``:``port`` (UDP). Non-Pi nodes only; cannot power off or tell."""

    name = "wol"

    def __init__(self, macs: Mapping[str, str], broadcast: str = "255.255.255.255", port: int = 9) -> None:
        parsed: dict[str, bytes] = {}
        for node, text in macs.items():
            try:
                parsed[node] = parse_mac(text)
            except ValueError as error:
                raise ConfigError("node_power", f"wol.macs.{node}", str(error)) from None
        if not 0 < port < 65536:
            raise ConfigError("node_power", "wol.port", f"{port!r} is not a UDP port", "1..65535 (usually 9)")
        try:
            socket.inet_aton(broadcast)
        except OSError:
            raise ConfigError(
                "node_power", "wol.broadcast", f"{broadcast!r} is not an IPv4 address", "e.g. 192.168.1.255"
            ) from None
        self._macs = MappingProxyType(parsed)
        self.broadcast = broadcast
        self.port = port

    def power_on(self, node: str) -> PowerResult:
        mac = self._macs.get(node)
        if mac is None:
            raise PowerControlUnsupported(self.name, node, "power on", "no MAC address configured for it")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.sendto(magic_packet(mac), (self.broadcast, self.port))
        except OSError as error:
            raise PowerControlFailed(f"wol: sending the magic packet for {node} failed: {error}") from error
        return PowerResult(
            node, PowerOutcome.SENT, f"magic packet for {mac.hex(':')} sent to {self.broadcast}:{self.port}"
        )

    def power_off(self, node: str) -> PowerResult:
        raise PowerControlUnsupported(self.name, node, "power off", "Wake-on-LAN can only wake a machine")

    def is_powered(self, node: str) -> bool | None:
        return None


# --------------------------------------------------------------------------------------------------------
# Pi 5 RTC wake alarm


class RtcWakeAlarm:
    """The RTC's ``wakealarm`` file (path injectable, for tests and for other RTCs than ``rtc0``).

    The kernel refuses a new alarm while one is armed, so every write clears it with ``0`` first. Reading
    it gives the armed time as epoch seconds, or nothing when no alarm is armed.
    """

    def __init__(self, path: Path = DEFAULT_WAKEALARM) -> None:
        self.path = path

    def _write(self, text: str) -> None:
        try:
            with self.path.open("w") as file:
                file.write(text)
        except FileNotFoundError:
            raise PowerControlUnsupported(
                "rtc-wake", "this node", "arm a wake alarm", f"{self.path} does not exist (a Pi 4 has no RTC)"
            ) from None
        except OSError as error:
            raise PowerControlFailed(f"rtc-wake: writing {text!r} to {self.path} failed: {error}") from error

    def clear(self) -> None:
        self._write("0")

    def arm_in(self, seconds: int) -> None:
        """Wake ``seconds`` from now (``+N``: needs no clock set, unlike an epoch time)."""
        if seconds <= 0:
            raise ValueError(f"wake in {seconds} s: must be in the future")
        self.clear()
        self._write(f"+{seconds}")

    def arm_at(self, epoch: int) -> None:
        """Wake at ``epoch`` (seconds since 1970, UTC); needs a set clock and the RTC battery (J5)."""
        if epoch <= 0:
            raise ValueError(f"wake at epoch {epoch}: not a time")
        self.clear()
        self._write(str(epoch))

    def armed_at(self) -> int | None:
        """The armed wake time (epoch seconds), or None when none is armed."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise PowerControlFailed(f"rtc-wake: reading {self.path} failed: {error}") from error
        return int(text) if text.isdigit() and int(text) > 0 else None


class CheckIn(enum.StrEnum):
    REJOIN = "rejoin"
    HALT_AND_REARM = "halt_and_rearm"


@dataclass(frozen=True, slots=True)
class CheckInDecision:
    action: CheckIn
    reason: str
    rearm_s: int | None = None


def check_in(power: PowerState, still_shed: bool | None, recheck_s: int) -> CheckInDecision:
    """What a node that just woke on its RTC alarm does. Pure: no clock, no I/O.

    Call it once the node's power source has answered (or ``stale_after`` has passed). ``still_shed`` is
    whether its shed record still says ``powered_off`` (None: the API could not be read, e.g. the control
    plane is off too).
    """
    # 1. Mains is back: rejoin; the leader's rejoin step uncordons it once it is Ready.
    if power is PowerState.ONLINE:
        return CheckInDecision(CheckIn.REJOIN, "mains is back")
    # 2. The leader no longer sheds it (it cleared the record): come back even on battery.
    if still_shed is False:
        return CheckInDecision(CheckIn.REJOIN, "no longer meant to be shed")
    # 3. Mains out or unknown, and shed (or cannot tell): missing data fails safe, save the battery.
    why = "power unknown" if power is PowerState.UNKNOWN else "mains is still out"
    shed = "still shed" if still_shed else "shed state unknown"
    return CheckInDecision(CheckIn.HALT_AND_REARM, f"{why}, {shed}: halt and check in again", recheck_s)


class RtcWakePower:
    """``rtc-wake`` as the leader sees it: the node wakes by itself every ``recheck_s``; nothing to send."""

    name = "rtc-wake"

    def __init__(self, recheck_s: int) -> None:
        if recheck_s <= 0:
            raise ConfigError("node_power", "rtc_wake.recheck", f"{recheck_s!r} is not positive")
        self.recheck_s = recheck_s

    def power_on(self, node: str) -> PowerResult:
        return PowerResult(
            node, PowerOutcome.WAKES_ITSELF, f"wakes on its RTC alarm within {self.recheck_s} s and checks in"
        )

    def power_off(self, node: str) -> PowerResult:
        raise PowerControlUnsupported(
            self.name, node, "power off", "the node arms its own alarm and halts on a power-off request"
        )

    def is_powered(self, node: str) -> bool | None:
        return None


# --------------------------------------------------------------------------------------------------------
# GPIO relay


@dataclass(frozen=True, slots=True)
class RelayLine:
    """A GPIO line (BCM) that switches a node on when held at ``active_level`` for ``pulse_ms``."""

    pin: int
    active_level: Level = Level.HIGH
    pulse_ms: int = 500

    def __post_init__(self) -> None:
        if not 0 <= self.pin <= 27:
            raise ConfigError("node_power", "gpio_relay.pin", f"GPIO{self.pin} is not on the header", "0..27 (BCM)")
        if self.pulse_ms <= 0:
            raise ConfigError("node_power", "gpio_relay.pulse", f"{self.pulse_ms!r} ms is not positive")


class GpioRelayPower:
    """``gpio-relay``: pulse a line to power a node on. Lines are set up inactive, so starting switches nothing."""

    name = "gpio-relay"

    def __init__(self, gpio: GpioModule, lines: Mapping[str, RelayLine], sleep: Callable[[float], None]) -> None:
        self._gpio = gpio
        self._lines = MappingProxyType(dict(lines))
        self._sleep = sleep
        with contextlib.suppress(ValueError):  # already BCM is fine; another mode fails below, per pin
            gpio.setmode(gpio.BCM)
        for node, line in self._lines.items():
            try:
                gpio.setup(line.pin, gpio.OUT, initial=self._level(line, active=False))
            except Exception as error:
                raise PinUnavailable(f"cannot set up GPIO{line.pin} as {node}'s power relay: {error}") from error

    def _level(self, line: RelayLine, *, active: bool) -> int:
        high = (line.active_level is Level.HIGH) == active
        return self._gpio.HIGH if high else self._gpio.LOW

    def power_on(self, node: str) -> PowerResult:
        line = self._lines.get(node)
        if line is None:
            raise PowerControlUnsupported(self.name, node, "power on", "no relay line configured for it")
        try:
            self._gpio.output(line.pin, self._level(line, active=True))
            try:
                self._sleep(line.pulse_ms / 1000.0)
            finally:
                self._gpio.output(line.pin, self._level(line, active=False))
        except (RuntimeError, ValueError) as error:
            raise PowerControlFailed(f"gpio-relay: pulsing GPIO{line.pin} for {node} failed: {error}") from error
        return PowerResult(
            node,
            PowerOutcome.DONE,
            f"GPIO{line.pin} held {line.active_level.name.lower()} for {line.pulse_ms} ms",
        )

    def power_off(self, node: str) -> PowerResult:
        raise PowerControlUnsupported(
            self.name, node, "power off", "a relay pulse is not a clean shutdown; use the power-off request"
        )

    def is_powered(self, node: str) -> bool | None:
        return None


# --------------------------------------------------------------------------------------------------------
# Manual


class ManualPower:
    """``manual``: a person powers the node on; ``power_on`` says so, for the journal and an Event.

    ``where`` tells the operator where each node is (``{"pi4": "rack 2, shelf 3"}``).
    """

    name = "manual"

    def __init__(self, where: Mapping[str, str] | None = None) -> None:
        self._where = MappingProxyType(dict(where or {}))

    def power_on(self, node: str) -> PowerResult:
        place = self._where.get(node)
        at = f" ({place})" if place else ""
        return PowerResult(
            node,
            PowerOutcome.WAITING_FOR_OPERATOR,
            f"waiting for someone to press the power button on {node}{at}, or unplug and replug its supply",
        )

    def power_off(self, node: str) -> PowerResult:
        raise PowerControlUnsupported(self.name, node, "power off", "nobody is there to press the button")

    def is_powered(self, node: str) -> bool | None:
        return None


# --------------------------------------------------------------------------------------------------------
# NUT outlet (a switchable UPS/PDU outlet through upsd)


class _UpsdRefused(Exception):
    """upsd answered ``ERR <code>`` to a request whose first word is ``verb`` (never the whole line: passwords)."""

    def __init__(self, verb: str, code: str) -> None:
        self.verb = verb
        self.code = code
        super().__init__(f"upsd answered ERR {code} to {verb}")


class _UpsdBroken(Exception):
    """upsd closed the connection, or answered something that is not NUT's protocol."""


def _quote_word(text: str) -> str:
    """``text`` as one quoted protocol word, escaped as upsd's own ``pconf_encode`` does (``\\``, ``"``, ``#``).

    An unescaped ``#`` inside quotes is a parse error to upsd: it would drop the line and never answer.
    """
    return '"' + "".join("\\" + c if c in '\\"#' else c for c in text) + '"'


def _unquote_word(text: str) -> str:
    inner = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    return re.sub(r"\\(.)", r"\1", inner)


class _UpsdSession:
    """One short connection to upsd: a line out, a line (or a ``BEGIN LIST`` block) back, bounded in time."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._stream = self._sock.makefile("rb")

    def __enter__(self) -> _UpsdSession:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"LOGOUT\n")
        self._stream.close()
        self._sock.close()

    def _line(self, verb: str) -> str:
        raw = self._stream.readline(4096)
        if not raw.endswith(b"\n"):
            raise _UpsdBroken(f"upsd closed the connection (or sent an endless line) after {verb}")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def ask(self, request: str) -> str:
        """Send ``request``; the answer line, or ``_UpsdRefused`` for ``ERR ...``.

        Errors name only the request's first word: the rest may be a password.
        """
        self._sock.sendall(request.encode() + b"\n")
        verb = request.split(" ", 1)[0]
        answer = self._line(verb)
        if answer.startswith("ERR "):
            raise _UpsdRefused(verb, answer[4:].strip())
        return answer

    def ask_list(self, request: str) -> list[str]:
        """The body lines of a ``LIST`` answer."""
        begin = self.ask(request)
        if begin != f"BEGIN {request}":
            raise _UpsdBroken(f"{request}: upsd answered {begin!r}")
        body: list[str] = []
        while (line := self._line(request)) != f"END {request}":
            body.append(line)
            if len(body) > 10_000:
                raise _UpsdBroken(f"{request}: no END after 10000 lines")
        return body

    def get_var(self, ups: str, variable: str) -> str | None:
        """A variable's value, ``None`` when the UPS does not serve it (``ERR VAR-NOT-SUPPORTED``)."""
        try:
            answer = self.ask(f"GET VAR {ups} {variable}")
        except _UpsdRefused as refused:
            if refused.code == "VAR-NOT-SUPPORTED":
                return None
            raise
        prefix = f"VAR {ups} {variable} "
        if not answer.startswith(prefix):
            raise _UpsdBroken(f"GET VAR {variable}: upsd answered {answer!r}")
        return _unquote_word(answer[len(prefix) :])

    def verdict(self, accepted: str) -> str:
        """The driver's result for a command upsd answered ``accepted`` to: ``SUCCESS``, ``PENDING``, an
        ``ERR ...`` line, or ``not tracked`` when the answer carried no tracking id."""
        if not accepted.startswith("OK TRACKING "):
            return "not tracked"
        try:
            return self.ask(f"GET TRACKING {accepted.split()[2]}")
        except _UpsdRefused as refused:
            return f"ERR {refused.code}"

    def try_tracking(self) -> bool:
        """Ask upsd to track the commands' results (``SET TRACKING ON``, NUT >= 2.8); ``False`` if it cannot."""
        try:
            return self.ask("SET TRACKING ON") == "OK"
        except _UpsdRefused:
            return False

    def authenticate(self, username: str | None, password: str | None) -> None:
        if username is not None:
            self.ask(f"USERNAME {_quote_word(username)}")
        if password is not None:
            self.ask(f"PASSWORD {_quote_word(password)}")


def _check_word(key: str, text: str) -> None:
    # Sent unquoted: upsd would split at a space or '=', stop at '#', and drop anything outside ASCII.
    if not text or any(not 0x21 <= ord(c) <= 0x7E or c in '"\\#=' for c in text):
        raise ConfigError(
            "node_power", key, f"{text!r} is not one word", "ASCII letters, digits, '.', '-', '_' (as in ups.conf)"
        )


def _check_upsd(host: str, port: int, ups: str, timeout_s: float) -> None:
    if not host or any(c.isspace() for c in host):
        raise ConfigError("node_power", "host", f"{host!r} is not a host name", "e.g. 127.0.0.1 or ups.local")
    if not 0 < port < 65536:
        raise ConfigError("node_power", "port", f"{port!r} is not a TCP port", "1..65535 (upsd listens on 3493)")
    _check_word("ups", ups)
    if not timeout_s > 0:
        raise ConfigError("node_power", "timeout", f"{timeout_s!r} s is not positive", "e.g. 5")


def _check_credentials(username: str | None, password: str | None) -> None:
    if (username is None) != (password is None):
        raise ConfigError(
            "node_power", "username" if username is None else "password", "is set without the other", "both or none"
        )
    for key, value in (("username", username), ("password", password)):
        if value is None:
            continue
        if not value:
            raise ConfigError("node_power", key, "is empty", "the one in upsd.users")
        # upsd keeps only space..'~' in a word (and DEL): anything else would be dropped and never match.
        if not all(0x20 <= ord(c) <= 0x7E for c in value):
            raise ConfigError(
                "node_power", key, "has characters upsd drops (tabs, accents, control codes)", "printable ASCII"
            )


def _refusal_hint(refused: _UpsdRefused, command: str, username: str | None) -> str:
    """What to do about upsd's refusal, for the operator reading the Event at 2 AM."""
    code = refused.code
    if code == "ACCESS-DENIED":
        who = f"user {username!r}" if username else "no user (set username and password)"
        needs = "actions = SET" if refused.verb == "SET" else f"instcmds = {command}"
        return f"upsd denied {refused.verb} to {who}: upsd.users needs `{needs}` (and the right password)"
    if code in ("USERNAME-REQUIRED", "PASSWORD-REQUIRED"):
        return "upsd wants a user for instant commands: set username and password"
    if code == "CMD-NOT-SUPPORTED":
        return f"the UPS does not offer {command} (see `upscmd -l`)"
    if code == "UNKNOWN-UPS":
        return "upsd serves no UPS by that name (see `upsc -l`)"
    if code in ("DRIVER-NOT-CONNECTED", "DATA-STALE"):
        return f"upsd has no live data from the UPS's driver (ERR {code}): check the NUT driver and its cable"
    return f"upsd answered ERR {code}"


class NutOutletPower:
    """``nut-outlet``: switch a node's UPS/PDU outlet with ``outlet.N.load.on`` / ``.load.off`` through upsd.

    ``outlets`` maps node names to outlet numbers. Every call opens one short connection (bounded by
    ``timeout_s``), checks ``outlet.N.switchable`` is ``yes``, authenticates, sends the instant command and
    reads ``outlet.N.status`` back: ``DONE`` when it already shows the new state, ``SENT`` when upsd
    accepted the command but the driver has not updated the status yet. Nothing here raises on network or
    upsd errors: the result says ``FAILED`` (or ``REFUSED`` when nothing was sent) and why.
    """

    name = "nut-outlet"

    def __init__(
        self,
        host: str,
        port: int,
        ups: str,
        outlets: Mapping[str, int],
        username: str | None,
        password: str | None,
        timeout_s: float,
    ) -> None:
        _check_upsd(host, port, ups, timeout_s)
        _check_credentials(username, password)
        fed_by: dict[int, str] = {}
        for node, outlet in outlets.items():
            if isinstance(outlet, bool) or not isinstance(outlet, int) or outlet < 1:
                # NUT's outlet.0 is the device's whole set of outlets: "powering off" one node would cut them all.
                raise ConfigError(
                    "node_power",
                    f"{node}.outlet",
                    f"{outlet!r} is not one outlet's number",
                    "1, 2... (outlet.N; outlet.0 is every outlet of the UPS at once)",
                )
            if outlet in fed_by:
                raise ConfigError(
                    "node_power",
                    f"{node}.outlet",
                    f"outlet {outlet} also feeds {fed_by[outlet]}: switching it for one node would cut both",
                    "one node per outlet (use another backend for nodes that share one)",
                )
            fed_by[outlet] = node
        self.host = host
        self.port = port
        self.ups = ups
        self._outlets = MappingProxyType(dict(outlets))
        self._username = username
        self._password = password
        self.timeout_s = timeout_s

    @property
    def where(self) -> str:
        return f"{self.ups}@{self.host}:{self.port}"

    def power_on(self, node: str) -> PowerResult:
        return self._switch(node, on=True)

    def power_off(self, node: str) -> PowerResult:
        return self._switch(node, on=False)

    def is_powered(self, node: str) -> bool | None:
        """``outlet.N.status`` is ``on`` / ``off``; ``None`` for anything else (unknown node, error, odd value)."""
        outlet = self._outlets.get(node)
        if outlet is None:
            return None
        try:
            with _UpsdSession(self.host, self.port, self.timeout_s) as upsd:
                status = upsd.get_var(self.ups, f"outlet.{outlet}.status")
        except (OSError, _UpsdRefused, _UpsdBroken):
            return None
        return {"on": True, "off": False}.get((status or "").strip().lower())

    def _switch(self, node: str, *, on: bool) -> PowerResult:
        outlet = self._outlets.get(node)
        if outlet is None:
            return PowerResult(node, PowerOutcome.REFUSED, f"nut-outlet: no outlet configured for {node}")
        state = "on" if on else "off"
        command = f"outlet.{outlet}.load.{state}"
        try:
            with _UpsdSession(self.host, self.port, self.timeout_s) as upsd:
                return self._switch_over(upsd, node, outlet, command, state)
        except _UpsdRefused as refused:
            hint = _refusal_hint(refused, command, self._username)
            return PowerResult(node, PowerOutcome.FAILED, f"nut-outlet: {command} on {self.where}: {hint}")
        except (OSError, _UpsdBroken) as error:
            return PowerResult(
                node, PowerOutcome.FAILED, f"nut-outlet: cannot talk to upsd at {self.host}:{self.port}: {error}"
            )

    def _switch_over(self, upsd: _UpsdSession, node: str, outlet: int, command: str, state: str) -> PowerResult:
        # 1. An outlet the UPS does not describe as switchable is never switched: it may feed other loads.
        switchable = upsd.get_var(self.ups, f"outlet.{outlet}.switchable")
        if switchable is None:
            return PowerResult(
                node,
                PowerOutcome.REFUSED,
                f"nut-outlet: {self.where} has no outlet {outlet} (outlet.{outlet}.switchable not served; "
                f"see `upsc {self.where}`)",
            )
        if switchable.strip().lower() != "yes":
            return PowerResult(
                node,
                PowerOutcome.REFUSED,
                f"nut-outlet: outlet {outlet} of {self.where} is not switchable "
                f"(outlet.{outlet}.switchable = {switchable!r}); nothing sent",
            )
        # 2. Authenticate and send; upsd passes the command to the driver and answers at once. With TRACKING
        #    (upsd >= 2.8) it also keeps the driver's verdict, so a driver's failure is not reported as sent.
        upsd.authenticate(self._username, self._password)
        upsd.try_tracking()
        accepted = upsd.ask(f"INSTCMD {self.ups} {command}")
        # 3. Read back: only a status showing the new state is proof.
        status = upsd.get_var(self.ups, f"outlet.{outlet}.status")
        if status is not None and status.strip().lower() == state:
            return PowerResult(node, PowerOutcome.DONE, f"{command} on {self.where}: outlet.{outlet}.status = {state}")
        verdict = upsd.verdict(accepted)
        if verdict.startswith("ERR "):
            return PowerResult(
                node, PowerOutcome.FAILED, f"nut-outlet: {command} on {self.where}: the driver failed it ({verdict})"
            )
        return PowerResult(
            node,
            PowerOutcome.SENT,
            f"{command} accepted by upsd at {self.where} (driver: {verdict.lower()}); "
            f"outlet.{outlet}.status is still {status!r}",
        )


def request_ups_shutdown_return(
    host: str,
    port: int,
    ups: str,
    username: str | None,
    password: str | None,
    delay_s: int,
    timeout_s: float,
) -> PowerResult:
    """Ask the UPS to cut its output in ``delay_s`` and restore it when mains returns, as upsmon's
    POWERDOWNFLAG step does. Never raises on network or upsd errors.

    Sets ``ups.delay.shutdown`` to ``delay_s`` when the UPS serves it read-write (else the UPS's own delay
    applies, and the result says which; a known own delay shorter than ``delay_s`` is ``REFUSED``), then
    sends ``shutdown.return``; a UPS without it gets ``load.off.delay`` instead, whose output then *stays
    off* when mains returns, which the result says loudly. ``PowerResult.node`` is the UPS name; ``SENT`` on
    success (nothing can confirm a future cut).
    """
    _check_upsd(host, port, ups, timeout_s)
    _check_credentials(username, password)
    # 0 would cut this node's own power before it halts: the delay is what lets the caller finish first.
    if isinstance(delay_s, bool) or not isinstance(delay_s, int) or delay_s < 1:
        raise ValueError(f"delay_s must be a whole number of seconds >= 1, not {delay_s!r}")
    where = f"{ups}@{host}:{port}"
    done: list[str] = []
    command = "shutdown.return"
    verdict = "not tracked"
    try:
        with _UpsdSession(host, port, timeout_s) as upsd:
            offered = {line.split()[-1] for line in upsd.ask_list(f"LIST CMD {ups}") if line.startswith("CMD ")}
            # 1. Prefer shutdown.return (output back with mains); load.off.delay leaves it off for a person.
            if "shutdown.return" not in offered:
                if "load.off.delay" not in offered:
                    return PowerResult(
                        ups,
                        PowerOutcome.REFUSED,
                        f"{where} offers neither shutdown.return nor load.off.delay (see `upscmd -l {where}`); "
                        "nothing sent",
                    )
                command = "load.off.delay"
            # 2. Our delay where the UPS lets us set it; else say whose delay applies. Tracked where upsd can
            #    (>= 2.8): a device that refuses our delay keeps its own, maybe shorter than the halt needs.
            upsd.authenticate(username, password)
            upsd.try_tracking()
            writable = {line.split()[2] for line in upsd.ask_list(f"LIST RW {ups}") if line.startswith("RW ")}
            if "ups.delay.shutdown" in writable:
                set_verdict = upsd.verdict(upsd.ask(f'SET VAR {ups} ups.delay.shutdown "{delay_s}"'))
                if set_verdict.startswith("ERR "):
                    return PowerResult(
                        ups,
                        PowerOutcome.REFUSED,
                        f"{where}: the UPS refused ups.delay.shutdown = {delay_s} s ({set_verdict}): its own delay "
                        "may be shorter than this node needs to halt, so nothing sent",
                    )
                # Unconfirmed (no tracking, or still pending) is said: the device may yet keep its own delay.
                unconfirmed = "" if set_verdict == "SUCCESS" else f" (driver: {set_verdict.lower()})"
                done.append(f"set ups.delay.shutdown to {delay_s} s{unconfirmed}")
                delay = f"{delay_s} s"
            else:
                current = upsd.get_var(ups, "ups.delay.shutdown")
                # A fixed delay shorter than delay_s cuts this node's power before it has halted: the very
                # thing a delay_s of 0 is refused for. Nothing is sent; the halt goes on, on battery.
                if current is not None and current.strip().isdigit() and int(current) < delay_s:
                    return PowerResult(
                        ups,
                        PowerOutcome.REFUSED,
                        f"{where}: the UPS's own ups.delay.shutdown ({current.strip()} s, not writable) is shorter "
                        f"than the {delay_s} s this node needs to halt: nothing sent (set a longer delay on the "
                        "UPS, or let upsd.users write it with `actions = SET`)",
                    )
                delay = f"the UPS's own delay ({current} s)" if current is not None else "the UPS's own delay"
                done.append("ups.delay.shutdown is not writable")
            # 3. The command itself, tracked where upsd can, so a driver's refusal is not "sent".
            verdict = upsd.verdict(upsd.ask(f"INSTCMD {ups} {command}"))
            if verdict.startswith("ERR "):
                return PowerResult(
                    ups,
                    PowerOutcome.FAILED,
                    f"{command} on {where}: the driver failed it ({verdict}) after: {'; '.join(done)}",
                )
    except _UpsdRefused as refused:
        so_far = f" after: {'; '.join(done)}" if done else ""
        return PowerResult(
            ups, PowerOutcome.FAILED, f"{command} on {where}: {_refusal_hint(refused, command, username)}{so_far}"
        )
    except (OSError, _UpsdBroken) as error:
        so_far = f" after: {'; '.join(done)}" if done else ""
        return PowerResult(ups, PowerOutcome.FAILED, f"cannot talk to upsd at {host}:{port}: {error}{so_far}")
    driver = f"driver: {verdict.lower()}"
    if command == "shutdown.return":
        done.append(f"sent shutdown.return ({driver}): output off in {delay}, back on when mains returns")
    else:
        done.append(
            f"sent load.off.delay ({driver}; no shutdown.return on this UPS): output off in {delay} and it STAYS OFF "
            "when mains returns: someone must switch the UPS back on"
        )
    return PowerResult(ups, PowerOutcome.SENT, f"{where}: " + "; ".join(done))
