"""Powering a shed node back on (and, where the hardware allows, off): the ``NodePower`` port and its backends.

**The port.** :class:`NodePower` is what the restore executor calls with the nodes
:func:`piclusterd.restore.decide_restore` chose. A backend *must* implement all three methods; one that cannot
do something raises :class:`~piclusterd.errors.PowerControlUnsupported` (a ``CapabilityMissing``, also a
``NotImplementedError``) instead of doing nothing, so the caller can say so in the journal and an Event and
try another way. A backend that tries and fails raises :class:`~piclusterd.errors.PowerControlFailed`.
``is_powered`` answers ``None`` when the backend cannot tell: the Node's Ready condition is the authority.

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

from piclusterd.drivers.gpio_power import GpioModule, Level
from piclusterd.errors import ConfigError, PinUnavailable, PowerControlFailed, PowerControlUnsupported
from piclusterd.power_state import PowerState

__all__ = [
    "DEFAULT_WAKEALARM",
    "CheckIn",
    "CheckInDecision",
    "GpioRelayPower",
    "ManualPower",
    "NodePower",
    "PowerOutcome",
    "PowerResult",
    "RelayLine",
    "RtcWakeAlarm",
    "RtcWakePower",
    "WakeOnLan",
    "check_in",
    "magic_packet",
    "parse_mac",
]

DEFAULT_WAKEALARM = Path("/sys/class/rtc/rtc0/wakealarm")


class PowerOutcome(enum.StrEnum):
    """What a backend could do."""

    DONE = "done"  # the backend switched the power itself (relay pulsed)
    SENT = "sent"  # a request left, nothing can confirm it arrived (Wake-on-LAN)
    WAKES_ITSELF = "wakes_itself"  # the node will wake on its own (RTC alarm armed before it halted)
    WAITING_FOR_OPERATOR = "waiting_for_operator"  # a person has to do it


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

_MAC = re.compile(r"[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")


def parse_mac(text: str) -> bytes:
    """``"dc:a6:32:01:02:03"`` (or with ``-``, or bare hex) as 6 bytes; ``ValueError`` for anything else."""
    if _MAC.fullmatch(text.strip()) is None:
        raise ValueError(f"{text!r} is not a MAC address (like dc:a6:32:01:02:03)")
    return bytes.fromhex(re.sub(r"[:-]", "", text.strip()))


def magic_packet(mac: bytes) -> bytes:
    """The Wake-on-LAN magic packet: 6 x 0xFF, then the MAC 16 times (102 bytes)."""
    if len(mac) != 6:
        raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
    return b"\xff" * 6 + mac * 16


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
