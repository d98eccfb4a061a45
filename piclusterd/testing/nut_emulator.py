r"""A NUT network protocol server (what ``upsd`` 2.8 answers) with a switchable-outlet UPS/PDU, for tests.

Debian's ``dummy-ups`` lists only ``load.off`` and answers ``ERR CMD-NOT-SUPPORTED`` to every outlet
command, so outlet control cannot be tested against the real :class:`~piclusterd.testing.nut_server.NutServer`.
:class:`NutEmulator` speaks the same wire protocol on 127.0.0.1 and a free port, and models a UPS/PDU with
switchable outlets whose state changes in response to instant commands::

    clock = FakeClock()
    with NutEmulator(outlets={1: True, 2: True, 3: False}, clock=clock) as ups:   # outlet 3 not switchable
        power = NutOutletPower(ups.host, ups.port, ups.ups_name, {"pi2": 2}, "admin", "secret", 5.0)
        power.power_off("pi2")
        assert ups.outlet_is_on(2) is False
        assert ups.received[-1].command == "outlet.2.load.off"
        ups.drive_mains(online=False)
        ...

What it answers, byte for byte as Debian's upsd 2.8.0 does (``tests/nut/test_protocol_contract.py`` runs the
same checks against both, so this emulator cannot drift from the real one unnoticed): ``VER``, ``NETVER``,
``HELP``, ``STARTTLS`` (``ERR FEATURE-NOT-CONFIGURED``), ``LIST UPS/VAR/RW/CMD/CLIENT/ENUM/RANGE``,
``GET VAR/TYPE/DESC/CMDDESC/UPSDESC/NUMLOGINS/TRACKING``, ``SET VAR``, ``SET TRACKING ON|OFF`` (then
``INSTCMD`` and ``SET VAR`` answer ``OK TRACKING <id>`` and ``GET TRACKING <id>`` the result), ``USERNAME``,
``PASSWORD``, ``LOGIN``, ``LOGOUT``, ``PRIMARY``/``MASTER``, ``FSD``, ``INSTCMD``, and the ``ERR`` replies in
upsd's order of checks (found by trying them on the real upsd):

- a command that needs a user (``SET``, ``INSTCMD``, ``LOGIN``, ``PRIMARY``, ``FSD``) first answers
  ``ERR USERNAME-REQUIRED`` / ``ERR PASSWORD-REQUIRED``, before its arguments are even looked at; a wrong
  password is only found out later, as ``ERR ACCESS-DENIED``;
- ``INSTCMD``: ``INVALID-ARGUMENT``, ``UNKNOWN-UPS``, ``CMD-NOT-SUPPORTED``, then ``ACCESS-DENIED``;
- ``SET VAR``: ``INVALID-ARGUMENT``, ``UNKNOWN-UPS``, ``ACCESS-DENIED``, ``VAR-NOT-SUPPORTED``, ``READONLY``;
- a driver that is gone or stale (:meth:`NutEmulator.drive_driver`) makes every request about the UPS answer
  ``ERR DRIVER-NOT-CONNECTED`` / ``ERR DATA-STALE`` right after the UPS name is checked (before any
  password), except ``LIST UPS``, ``GET UPSDESC``, ``LIST CLIENT`` and ``FSD``;
- lines are split into words by NUT's own grammar (:func:`tokenize`: quotes, backslashes, ``#`` comments,
  ``=``, characters upsd drops); commands are case-insensitive, extra words after a ``LIST`` or ``GET``
  are ignored, and ``LOGOUT`` answers ``OK Goodbye`` and closes the connection;
- beyond the hand-written cases, random request lines are sent to both servers at once and must get the
  same answer (the contract test's Hypothesis part).

Where it differs from upsd with dummy-ups, on purpose: instant commands *do* something here. The model:

- ``outlet.N.status`` is ``on``/``off``, ``outlet.N.switchable`` ``yes``/``no``; ``outlet.N.load.on``,
  ``.load.off`` and ``.load.cycle`` are listed for every outlet (as many PDU drivers do) but a
  non-switchable outlet answers ``ERR INSTCMD-FAILED`` and does not change;
- ``load.off.delay`` (optional value: the delay, else ``ups.delay.shutdown``), ``shutdown.return`` and
  ``shutdown.stayoff`` start ``ups.timer.shutdown`` counting down on the injected clock (``-1`` when idle);
  at zero the output goes off: every outlet off, ``OFF`` in ``ups.status``. After ``shutdown.return`` the
  output comes back when mains does (:meth:`NutEmulator.drive_mains`), after ``load.off.delay`` and
  ``shutdown.stayoff`` it stays off; ``load.on`` switches it back on;
- ``status_lag_s`` makes ``outlet.N.status`` show a switch that much later on the clock, as a real
  driver's next poll would; ``read_only`` makes variables read-only (``ups.delay.shutdown`` on some UPSes);
  ``without_commands`` removes instant commands (a UPS without ``shutdown.return``);
  ``max_shutdown_delay_s`` caps ``ups.delay.shutdown``: a larger SET is answered OK, as upsd does, but the
  "driver" fails it and keeps the old value (only ``GET TRACKING`` says ``ERR INVALID-ARGUMENT``);
- users are :class:`EmulatedUser` records (like ``upsd.users``): ``actions`` (``SET``, ``FSD``), ``instcmds``
  (names, or ``ALL``), ``upsmon`` (``primary``/``secondary``, needed for ``LOGIN``; ``primary`` also allows
  ``PRIMARY``/``MASTER`` and ``FSD``), as upsd 2.8.0 answered when tried with such users;
- ``SET VAR`` to ``""`` stores the empty value (dummy-ups deletes the variable instead: a driver's choice);
- every ``INSTCMD`` and ``SET VAR`` that passed upsd's checks is recorded in :attr:`NutEmulator.received`,
  with the user, and whether the device did it.

The clock is read on every request, so a test advances a ``FakeClock`` and reads ``ups.timer.shutdown``
without sleeping. A thread accepts connections and one thread serves each; ``stop()`` closes them all.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import threading
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from piclusterd.core.ports import Clock

__all__ = [
    "DriverState",
    "EmulatedUser",
    "NutEmulator",
    "NutEmulatorError",
    "ReceivedRequest",
    "UnbalancedWord",
    "tokenize",
]

UPSD_VERSION = "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"
NETWORK_PROTOCOL_VERSION = "1.3"
HELP_TEXT = "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"

# NUT's cmdvartab (as upsd 2.8.0 serves it): the descriptions this emulator's UPS uses.
_VAR_DESCRIPTIONS: Mapping[str, str] = {
    "ups.status": "UPS status",
    "ups.timer.shutdown": "Time before the load will be shutdown (seconds)",
    "ups.delay.shutdown": "Interval to wait after shutdown with delay command (seconds)",
    "outlet.status": "Outlet switch status",
    "outlet.switchable": "Outlet switch ability",
    "outlet.desc": "Outlet description",
}
_CMD_DESCRIPTIONS: Mapping[str, str] = {
    "load.off": "Turn off the load immediately",
    "load.on": "Turn on the load immediately",
    "load.off.delay": "Turn off the load with a delay (seconds)",
    "load.on.delay": "Turn on the load with a delay (seconds)",
    "shutdown.return": "Turn off the load and return when power is back",
    "shutdown.stayoff": "Turn off the load and remain off",
    "outlet.load.off": "Turn off the load on outlet {n} immediately",
    "outlet.load.on": "Turn on the load on outlet {n} immediately",
}
_NO_DESCRIPTION = "Description unavailable"
_UPS_COMMANDS = ("load.off", "load.on", "load.off.delay", "shutdown.return", "shutdown.stayoff")
_OUTLET_ACTIONS = ("load.off", "load.on", "load.cycle")
_NEEDS_USER = frozenset({"SET", "INSTCMD", "LOGIN", "PRIMARY", "MASTER", "FSD"})


class DriverState(enum.Enum):
    """How upsd sees the UPS's driver; anything but ``SERVING`` makes upsd refuse the UPS's data and commands."""

    SERVING = None
    GONE = "DRIVER-NOT-CONNECTED"  # the driver died or was never started
    STALE = "DATA-STALE"  # the driver is silent for longer than upsd's MAXAGE (hung, or a dead USB link)


class UnbalancedWord(ValueError):
    """An unescaped ``#`` inside quotes: upsd 2.8.0 logs a parse error and answers nothing for that line."""


class NutEmulatorError(RuntimeError):
    """The emulator could not start, or a test asked it for something it does not model."""


@dataclass(frozen=True, slots=True)
class EmulatedUser:
    """One ``upsd.users`` section: what this user may do (``instcmds=("ALL",)`` allows every command)."""

    password: str
    actions: frozenset[str] = frozenset({"SET", "FSD"})
    instcmds: tuple[str, ...] = ("ALL",)
    upsmon: str | None = None  # "primary" or "secondary": may LOGIN (and PRIMARY when primary)

    def may_run(self, command: str) -> bool:
        return any(allowed.upper() == "ALL" or allowed.lower() == command.lower() for allowed in self.instcmds)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """An ``INSTCMD`` or ``SET VAR`` that passed upsd's checks; ``done`` is whether the device did it."""

    kind: str  # "INSTCMD" or "SET VAR"
    user: str
    ups: str
    command: str  # the instant command, or the variable set
    value: str | None
    done: bool
    at: float  # the clock's monotonic time


@dataclass(slots=True)
class _Variable:
    value: str
    writable: bool = False
    string_length: int | None = None  # STRING:<n> in GET TYPE; None is NUMBER


@dataclass(slots=True)
class _Session:
    address: str
    username: str | None = None
    password: str | None = None
    logged_into: str | None = None
    tracking: bool = False
    results: dict[str, str] = field(default_factory=dict)


_C_SPACE = frozenset(" \t\n\v\f\r")  # C's isspace() in the C locale, as upsd's parser uses it


def _kept(char: str) -> bool:
    """upsd keeps only space to DEL in a word (its CVE-2012-2944 fix): a tab, a newline, any byte >= 0x80 go."""
    return 0x20 <= ord(char) <= 0x7F


def tokenize(line: str) -> list[str] | None:
    """Split a protocol line into words exactly as upsd's parser (NUT's ``parseconf.c``) does.

    ``line`` is one line without its newline, one character per byte received (decode with ``latin-1``).
    Words are separated by C's whitespace; ``"..."`` is one word (a quote only opens one at a word's start);
    ``\\`` takes the next character literally; ``#`` outside quotes ends the line (a comment); ``=`` is a
    word of its own. A character outside space..DEL is dropped from its word (upsd's CVE-2012-2944 fix: a
    tab inside quotes, every byte of a UTF-8 ``é``), yet still starts a word. ``None`` when the line ends
    inside quotes or right after a backslash: upsd then reads the next line as more of the same word (the
    newline dropped) and answers nothing until the line is over. Raises :class:`UnbalancedWord` for an
    unescaped ``#`` inside quotes, which upsd refuses ("Unbalanced word due to unescaped # in quotes").
    """
    words: list[str] = []
    word: list[str] = []
    state = "start"  # parseconf's FINDWORDSTART, COLLECT, COLLECTLITERAL, QUOTECOLLECT, QC_LITERAL, FINDEOL

    def end_word() -> None:
        words.append("".join(word))
        word.clear()

    def add(char: str) -> None:
        if _kept(char):
            word.append(char)

    for char in line + "\n":
        if state == "start":
            if char == "\n":
                return words
            if char == "#":
                state = "comment"
            elif char in _C_SPACE:
                pass
            elif char == "\\":
                state = "literal"
            elif char == '"':
                state = "quoted"
            else:
                add(char)
                if char == "=":
                    end_word()
                else:
                    state = "word"
        elif state == "comment":
            if char == "\n":
                return words
        elif state == "quoted":
            if char == '"':
                end_word()
                state = "start"
            elif char == "\\":
                state = "quoted_literal"
            elif char == "#":
                raise UnbalancedWord(line)
            else:
                add(char)  # a newline is dropped here: the quoted word runs on into the next line
        elif state == "quoted_literal":
            if char != "\n":
                add(char)
            state = "quoted"
        elif state == "literal":
            if char != "\n":
                add(char)
            state = "word"
        else:  # "word"
            if char == "#":
                end_word()
                state = "comment"
            elif char == "\n":
                end_word()
                return words
            elif char in _C_SPACE:
                end_word()
                state = "start"
            elif char == "=":
                end_word()
                word.append("=")
                end_word()
                state = "start"
            elif char == "\\":
                state = "literal"
            else:
                add(char)
    return None  # the newline left a quote or a literal open


def _quote(value: str) -> str:
    """As upsd's ``pconf_encode``: a backslash before each ``\\``, ``"`` and ``#``."""
    return '"' + "".join("\\" + c if c in '\\"#' else c for c in value) + '"'


def _generic_name(name: str) -> tuple[str, str | None]:
    """``outlet.2.status`` -> (``outlet.status``, ``2``): cmdvartab describes outlets once, by ``outlet.N``."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "outlet" and parts[1].isdigit():
        return ".".join([parts[0], *parts[2:]]), parts[1]
    return name, None


class NutEmulator:
    """A NUT server on 127.0.0.1 and a free port, serving one UPS/PDU ``ups_name`` with switchable outlets.

    ``outlets`` maps outlet numbers to whether each is switchable (all start ``on``); ``variables`` are
    extra or replaced variables (all read-write, as with dummy-ups); ``users`` default to ``admin`` /
    ``secret`` allowed ``SET``, ``FSD`` and every instant command, as :class:`NutServer`'s.
    """

    DEFAULT_VARIABLES: Mapping[str, str] = {
        "ups.status": "OL",
        "battery.charge": "100",
        "battery.runtime": "1800",
        "battery.voltage": "13.5",
        "ups.load": "20",
        "ups.realpower.nominal": "600",
        "input.voltage": "230",
    }

    def __init__(
        self,
        *,
        clock: Clock,
        outlets: Mapping[int, bool] | None = None,
        variables: Mapping[str, str] | None = None,
        ups_name: str = "ups1",
        users: Mapping[str, EmulatedUser] | None = None,
        shutdown_delay_s: int = 20,
        tracking: bool = True,
        read_only: Collection[str] = (),
        without_commands: Collection[str] = (),
        status_lag_s: float = 0.0,
        max_shutdown_delay_s: int | None = None,
    ) -> None:
        if not ups_name or any(c.isspace() or c in '"\\' for c in ups_name):
            raise ValueError(f"ups_name must be one word without quotes: {ups_name!r}")
        self.ups_name = ups_name
        self.host = "127.0.0.1"
        self.port = 0
        self._clock = clock
        self._tracking_supported = tracking
        self._own_delay_s = shutdown_delay_s  # the device's built-in delay, used when ups.delay.shutdown is gone
        # A device takes ups.delay.shutdown only up to this (many cap it): above, the driver fails the SET and the
        # value stays (upsd answered OK already; only TRACKING tells).
        self._max_delay_s = max_shutdown_delay_s
        self._users = dict(users if users is not None else {"admin": EmulatedUser("secret")})
        self._lock = threading.RLock()
        self._vars: dict[str, _Variable] = {
            "device.mfr": _Variable("Emulated PDU"),
            "device.model": _Variable("NutEmulator"),
            "device.type": _Variable("pdu"),
            "driver.name": _Variable("nut-emulator"),
            "ups.delay.shutdown": _Variable(str(shutdown_delay_s), writable=True, string_length=None),
            "ups.timer.shutdown": _Variable("-1"),
        }
        for name, value in self.DEFAULT_VARIABLES.items():
            self._vars[name] = _Variable(value, writable=True, string_length=32 if name == "ups.status" else None)
        self._outlets = dict(outlets if outlets is not None else {1: True, 2: True})
        for number, switchable in self._outlets.items():
            if number < 1:
                raise ValueError(f"outlet numbers start at 1, not {number}")
            self._vars[f"outlet.{number}.status"] = _Variable("on")
            self._vars[f"outlet.{number}.switchable"] = _Variable("yes" if switchable else "no")
        for name, value in (variables or {}).items():
            self._vars[name] = _Variable(value, writable=True, string_length=None if _is_number(value) else 32)
        for name in read_only:
            if name not in self._vars:
                raise ValueError(f"read_only: the emulated UPS has no variable {name}")
            self._vars[name].writable = False
        self._commands = set(_UPS_COMMANDS) | {f"outlet.{n}.{a}" for n in self._outlets for a in _OUTLET_ACTIONS}
        unknown = set(without_commands) - self._commands
        if unknown:
            raise ValueError(f"without_commands: the emulated UPS has no command {sorted(unknown)}")
        self._commands -= set(without_commands)
        if status_lag_s < 0:
            raise ValueError("status_lag_s must be >= 0")
        self._status_lag_s = status_lag_s
        self._pending_status: list[tuple[float, int, str]] = []  # (due, outlet, "on"/"off"): the driver's lag
        self._timer_deadline: float | None = None
        self._after_off: str | None = None  # "return" or "stayoff" while a shutdown counts down or is done
        self._output_off = False
        self._fsd = False
        self._driver = DriverState.SERVING
        self._logged_in: list[_Session] = []  # upsmon LOGINs, for LIST CLIENT and NUMLOGINS
        self.received: list[ReceivedRequest] = []
        self.parse_errors = 0  # lines refused as upsd logs "Parse error on sock" (an unescaped # in quotes)
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()

    # -- life cycle -------------------------------------------------------------------------------------

    def __enter__(self) -> NutEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NutEmulator({self.ups_name}@{self.host}:{self.port})"

    @property
    def address(self) -> str:
        """``ups@host:port``, as ``upsc`` takes it."""
        return f"{self.ups_name}@{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise NutEmulatorError("already running")
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self.port))
        server.listen(16)
        self.port = server.getsockname()[1]
        self._server = server
        self._stopping.clear()
        accept = threading.Thread(target=self._accept_loop, args=(server,), name="nut-emulator-accept", daemon=True)
        accept.start()
        self._threads.append(accept)

    def stop(self) -> None:
        """Close the listening socket and every connection; wait for the threads. The port is then refused."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5.0)

    # -- what tests drive and read ----------------------------------------------------------------------

    def drive_mains(self, *, online: bool) -> None:
        """Mains lost (``OB DISCHRG``) or back (``OL``); after ``shutdown.return`` the output comes back on."""
        with self._lock:
            self._refresh()
            self._vars["ups.status"].value = "OL" if online else "OB DISCHRG"
            if online and self._output_off and self._after_off == "return":
                self._switch_output(on=True)

    def drive_output(self, *, on: bool) -> None:
        """Switch the whole output (every outlet) on or off, as someone at the UPS's front panel would."""
        with self._lock:
            self._timer_deadline = None
            self._after_off = None if on else "stayoff"
            self._switch_output(on=on)
            self._refresh()

    def drive_driver(self, state: DriverState) -> None:
        """The driver dies (``GONE``), hangs (``STALE``) or serves again; the device state is kept."""
        with self._lock:
            self._driver = state

    def set(self, variable: str, value: str) -> None:
        """Set a variable directly (as the device would), adding it if new."""
        with self._lock:
            existing = self._vars.get(variable)
            if existing is None:
                self._vars[variable] = _Variable(value, writable=True)
            else:
                existing.value = value

    def delete(self, variable: str) -> None:
        """Remove a variable, as if the device never had it (a UPS whose delay cannot be read or set)."""
        with self._lock:
            if variable in ("ups.status", "ups.timer.shutdown") or variable.startswith("outlet."):
                raise NutEmulatorError(f"{variable} is part of the modelled device and cannot be deleted")
            if self._vars.pop(variable, None) is None:
                raise NutEmulatorError(f"the emulated UPS has no variable {variable}")

    def get(self, variable: str) -> str | None:
        """The value served now (the clock applied), ``None`` when the UPS lacks it."""
        with self._lock:
            self._refresh()
            found = self._vars.get(variable)
            return None if found is None else self._served(variable, found.value)

    def outlet_is_on(self, number: int) -> bool:
        status = self.get(f"outlet.{number}.status")
        if status is None:
            raise NutEmulatorError(f"the emulated UPS has no outlet {number}")
        return status == "on"

    def commands(self) -> list[str]:
        """The instant commands received and accepted, in order (``outlet.2.load.off``, ...)."""
        with self._lock:
            return [r.command for r in self.received if r.kind == "INSTCMD"]

    # -- the device model -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Apply the clock: lagging outlet statuses show up, a shutdown timer that ran out cuts the output."""
        now = self._clock.monotonic()
        due = [change for change in self._pending_status if change[0] <= now]
        self._pending_status = [change for change in self._pending_status if change[0] > now]
        for _, number, value in due:
            self._vars[f"outlet.{number}.status"].value = value
        if self._timer_deadline is None:
            self._vars["ups.timer.shutdown"].value = "-1"
            return
        left = self._timer_deadline - now
        if left > 0:
            self._vars["ups.timer.shutdown"].value = str(int(-(-left // 1)))  # whole seconds, rounded up
            return
        self._timer_deadline = None
        self._vars["ups.timer.shutdown"].value = "-1"
        self._switch_output(on=False)
        # shutdown.return while mains is already back: modelled as a power cycle (off, then straight back on),
        # which is what makes upsmon's late POWERDOWNFLAG harmless on the UPSes that do it.
        if self._after_off == "return" and self._vars["ups.status"].value.split()[:1] == ["OL"]:
            self._switch_output(on=True)

    def _set_outlet_status(self, number: int, value: str) -> None:
        """The outlet switches now; ``outlet.N.status`` shows it ``status_lag_s`` later (the driver's poll)."""
        if self._status_lag_s == 0:
            self._vars[f"outlet.{number}.status"].value = value
        else:
            self._pending_status.append((self._clock.monotonic() + self._status_lag_s, number, value))

    def _switch_output(self, *, on: bool) -> None:
        self._output_off = not on
        self._pending_status.clear()  # the whole output switching overrides any outlet change in flight
        for number in self._outlets:
            self._vars[f"outlet.{number}.status"].value = "on" if on else "off"
        if on:
            self._after_off = None

    def _served(self, name: str, value: str) -> str:
        if name != "ups.status":
            return value
        words = value.split()
        if self._output_off and "OFF" not in words:
            words.append("OFF")
        if self._fsd and "FSD" not in words:
            words.insert(0, "FSD")
        return " ".join(words)

    def _instcmd(self, command: str, value: str | None) -> bool:
        """Do ``command``; ``False`` when the device refuses it (a non-switchable outlet, a bad delay)."""
        name, number = _generic_name(command)
        if number is not None:
            if not self._outlets[int(number)] or (self._output_off and name != "outlet.load.off"):
                return False  # a fixed outlet; or no outlet can come on while the UPS's whole output is off
            self._set_outlet_status(int(number), "off" if name == "outlet.load.off" else "on")
            return True
        if command == "load.off":
            self._timer_deadline = None
            self._after_off = "stayoff"
            self._switch_output(on=False)
            return True
        if command == "load.on":
            self._timer_deadline = None
            self._switch_output(on=True)
            return True
        configured = self._vars.get("ups.delay.shutdown")
        delay_text = value if value is not None else configured.value if configured else str(self._own_delay_s)
        if not delay_text.isdigit():
            return False
        self._timer_deadline = self._clock.monotonic() + int(delay_text)
        self._after_off = "return" if command == "shutdown.return" else "stayoff"
        self._refresh()
        return True

    # -- the protocol -----------------------------------------------------------------------------------

    def _accept_loop(self, server: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = server.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self._connections.append(conn)
            thread = threading.Thread(
                target=self._serve, args=(conn, _Session(peer[0])), name="nut-emulator-conn", daemon=True
            )
            thread.start()
            with self._lock:  # finished connections' threads are dropped, so a long test does not pile them up
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, conn: socket.socket, session: _Session) -> None:
        buffer = b""
        unfinished = ""  # a line whose quote (or trailing backslash) is still open: upsd reads on, newline included
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = unfinished + raw.decode("latin-1")  # one character per byte, as upsd's parser sees it
                    try:
                        words = tokenize(line)
                    except UnbalancedWord:
                        # upsd logs the parse error and drops the rest of what that read() returned, so
                        # later lines sent in the same write go unanswered too.
                        with self._lock:
                            self.parse_errors += 1
                        unfinished, buffer = "", b""
                        break
                    if words is None:
                        unfinished = line + "\n"
                        continue
                    unfinished = ""
                    reply, close = self._answer(session, words)
                    if reply:
                        conn.sendall(_as_upsd_sends(reply))
                    if close:
                        return
        except OSError:
            return
        finally:
            with self._lock:
                if session in self._logged_in:
                    self._logged_in.remove(session)
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def _answer(self, session: _Session, words: Sequence[str]) -> tuple[str, bool]:
        """The reply (lines, each ending in ``\\n``) to one request, and whether to close the connection."""
        with self._lock:
            self._refresh()
            return self._dispatch(session, words)

    def _dispatch(self, session: _Session, words: Sequence[str]) -> tuple[str, bool]:
        if not words:
            return _err("UNKNOWN-COMMAND"), False
        verb, args = words[0].upper(), list(words[1:])
        if verb in _NEEDS_USER:
            if session.username is None:
                return _err("USERNAME-REQUIRED"), False
            if session.password is None:
                return _err("PASSWORD-REQUIRED"), False
        if verb in ("VER", "NETVER", "HELP", "LOGOUT") and args:
            return _err("INVALID-ARGUMENT"), False
        if verb == "VER":
            return UPSD_VERSION + "\n", False
        if verb == "NETVER":
            return NETWORK_PROTOCOL_VERSION + "\n", False
        if verb == "HELP":
            return HELP_TEXT + "\n", False
        if verb == "LOGOUT":
            return "OK Goodbye\n", True
        if verb == "STARTTLS":
            return _err("FEATURE-NOT-CONFIGURED"), False
        if verb in ("USERNAME", "PASSWORD"):
            return self._credentials(session, verb, args), False
        if verb == "LIST":
            return self._list(session, args), False
        if verb == "GET":
            return self._get(session, args), False
        if verb == "SET":
            return self._set(session, args), False
        if verb == "INSTCMD":
            return self._instcmd_request(session, args), False
        if verb in ("LOGIN", "PRIMARY", "MASTER", "FSD"):
            return self._upsmon(session, verb, args), False
        return _err("UNKNOWN-COMMAND"), False

    def _user(self, session: _Session) -> EmulatedUser | None:
        """The session's user if its password is right (upsd checks it only when it matters)."""
        user = self._users.get(session.username or "")
        return user if user is not None and user.password == session.password else None

    def _credentials(self, session: _Session, verb: str, args: list[str]) -> str:
        if len(args) != 1:
            return _err("INVALID-ARGUMENT")
        if verb == "USERNAME":
            if session.username is not None:
                return _err("ALREADY-SET-USERNAME")
            session.username = args[0]
        else:
            if session.password is not None:
                return _err("ALREADY-SET-PASSWORD")
            session.password = args[0]
        return "OK\n"

    def _list(self, session: _Session, args: list[str]) -> str:
        if len(args) < 1:
            return _err("INVALID-ARGUMENT")
        what = args[0].upper()
        if what == "UPS":
            return f'BEGIN LIST UPS\nUPS {self.ups_name} "{_NO_DESCRIPTION}"\nEND LIST UPS\n'
        if what not in ("VAR", "RW", "CMD", "CLIENT", "ENUM", "RANGE") or len(args) < 2:
            return _err("INVALID-ARGUMENT")
        if what in ("ENUM", "RANGE") and len(args) < 3:  # counted before the UPS name is looked up
            return _err("INVALID-ARGUMENT")
        if not self._is_our_ups(args[1]):
            return _err("UNKNOWN-UPS")
        if self._driver.value is not None and what != "CLIENT":
            return _err(self._driver.value)
        ups = args[1]  # upsd echoes the name as asked: it matches names case-insensitively
        names = sorted(self._vars, key=str.lower)
        if what == "VAR":
            lines = [f"VAR {ups} {n} {_quote(self._served(n, self._vars[n].value))}" for n in names]
        elif what == "RW":
            lines = [
                f"RW {ups} {n} {_quote(self._served(n, self._vars[n].value))}" for n in names if self._vars[n].writable
            ]
        elif what == "CMD":
            lines = [f"CMD {ups} {c}" for c in sorted(self._commands, key=str.lower)]
        elif what == "CLIENT":
            lines = [f"CLIENT {ups} {address}" for address in self._logins()]
        else:
            if len(args) < 3:
                return _err("INVALID-ARGUMENT")
            if self._variable_named(args[2]) is None:
                return _err("VAR-NOT-SUPPORTED")
            listed = f"{what} {ups} {args[2]}"  # no enumerations or ranges are modelled
            return f"BEGIN LIST {listed}\nEND LIST {listed}\n"
        body = "".join(line + "\n" for line in lines)
        return f"BEGIN LIST {what} {ups}\n{body}END LIST {what} {ups}\n"

    def _is_our_ups(self, name: str) -> bool:
        return name.lower() == self.ups_name.lower()

    def _variable_named(self, name: str) -> str | None:
        """The variable's own name, matched case-insensitively as upsd does (``UPS.STATUS`` is ups.status)."""
        return next((known for known in self._vars if known.lower() == name.lower()), None)

    def _logins(self) -> list[str]:
        return [logged.address for logged in self._logged_in]

    def _get(self, session: _Session, args: list[str]) -> str:
        if len(args) < 1:
            return _err("INVALID-ARGUMENT")
        what = args[0].upper()
        if what == "TRACKING":
            if len(args) == 1:
                return "ON\n" if session.tracking else "OFF\n"
            if not session.tracking:
                return _err("FEATURE-NOT-CONFIGURED")
            return session.results.get(args[1].upper(), "ERR UNKNOWN") + "\n"
        if what not in ("VAR", "TYPE", "DESC", "CMDDESC", "UPSDESC", "NUMLOGINS"):
            return _err("INVALID-ARGUMENT")
        needed = 2 if what in ("UPSDESC", "NUMLOGINS") else 3
        if len(args) < needed:
            return _err("INVALID-ARGUMENT")
        if not self._is_our_ups(args[1]):
            return _err("UNKNOWN-UPS")
        if self._driver.value is not None and what != "UPSDESC":
            return _err(self._driver.value)
        ups = args[1]
        if what == "UPSDESC":
            return f'UPSDESC {ups} "Unavailable"\n'
        if what == "NUMLOGINS":
            return f"NUMLOGINS {ups} {len(self._logins())}\n"
        name = args[2]
        if what == "DESC":
            text = _VAR_DESCRIPTIONS.get(_generic_name(name.lower())[0], _NO_DESCRIPTION)
            return f"DESC {ups} {name} {_quote(text)}\n"
        if what == "CMDDESC":
            generic, number = _generic_name(name.lower())
            text = _CMD_DESCRIPTIONS.get(generic, _NO_DESCRIPTION).format(n=number)
            return f"CMDDESC {ups} {name} {_quote(text)}\n"
        found = self._variable_named(name)
        if found is None:
            return _err("VAR-NOT-SUPPORTED")
        variable = self._vars[found]
        if what == "VAR":
            return f"VAR {ups} {name} {_quote(self._served(found, variable.value))}\n"
        kind = "NUMBER" if variable.string_length is None else f"STRING:{variable.string_length}"
        return f"TYPE {ups} {name} {'RW ' if variable.writable else ''}{kind}\n"

    def _set(self, session: _Session, args: list[str]) -> str:
        if len(args) < 1:
            return _err("INVALID-ARGUMENT")
        what = args[0].upper()
        if what == "TRACKING":
            if len(args) < 2 or args[1].upper() not in ("ON", "OFF"):  # extra words are ignored, as upsd does
                return _err("INVALID-ARGUMENT")
            if not self._tracking_supported:
                return _err("FEATURE-NOT-SUPPORTED")
            session.tracking = args[1].upper() == "ON"
            return "OK\n"
        if what != "VAR" or len(args) < 4:
            return _err("INVALID-ARGUMENT")
        ups, name, value = args[1], args[2], args[3]
        if not self._is_our_ups(ups):
            return _err("UNKNOWN-UPS")
        if self._driver.value is not None:
            return _err(self._driver.value)
        user = self._user(session)
        if user is None or "SET" not in {a.upper() for a in user.actions}:
            return _err("ACCESS-DENIED")
        found = self._variable_named(name)
        if found is None:
            return _err("VAR-NOT-SUPPORTED")
        variable = self._vars[found]
        if not variable.writable:
            return _err("READONLY")
        if (
            found == "ups.delay.shutdown"
            and self._max_delay_s is not None
            and (not value.isdigit() or int(value) > self._max_delay_s)
        ):
            self._record(session, "SET VAR", found, value, done=False)
            return self._accepted(session, "ERR INVALID-ARGUMENT")
        variable.value = value
        self._record(session, "SET VAR", found, value, done=True)
        return self._accepted(session, "SUCCESS")

    def _instcmd_request(self, session: _Session, args: list[str]) -> str:
        if len(args) < 2:
            return _err("INVALID-ARGUMENT")
        ups, command = args[0], args[1]
        value = args[2] if len(args) > 2 else None
        if not self._is_our_ups(ups):
            return _err("UNKNOWN-UPS")
        if self._driver.value is not None:
            return _err(self._driver.value)
        known = next((c for c in self._commands if c.lower() == command.lower()), None)
        if known is None:
            return _err("CMD-NOT-SUPPORTED")
        command = known  # recorded and run by its own name, however it was spelled
        user = self._user(session)
        if user is None or not user.may_run(command):
            return _err("ACCESS-DENIED")
        done = self._instcmd(command, value)
        self._record(session, "INSTCMD", command, value, done=done)
        if not done and not session.tracking:
            return _err("INSTCMD-FAILED")
        return self._accepted(session, "SUCCESS" if done else "ERR INSTCMD-FAILED")

    def _accepted(self, session: _Session, result: str) -> str:
        if not session.tracking:
            return "OK\n"
        tracking_id = str(uuid.uuid4()).upper()
        session.results[tracking_id] = result
        return f"OK TRACKING {tracking_id}\n"

    def _record(self, session: _Session, kind: str, name: str, value: str | None, *, done: bool) -> None:
        user = session.username or ""
        self.received.append(ReceivedRequest(kind, user, self.ups_name, name, value, done, self._clock.monotonic()))

    def _upsmon(self, session: _Session, verb: str, args: list[str]) -> str:
        if len(args) != 1:  # exactly the UPS name (found by fuzzing against upsd)
            return _err("INVALID-ARGUMENT")
        if not self._is_our_ups(args[0]):
            return _err("UNKNOWN-UPS")
        user = self._user(session)
        if verb == "FSD":
            # upsd 2.8.0 grants FSD to "upsmon primary" users as well as to "actions = FSD" (tried).
            if user is None or ("FSD" not in {a.upper() for a in user.actions} and user.upsmon != "primary"):
                return _err("ACCESS-DENIED")
            self._fsd = True
            return "OK FSD-SET\n"
        if user is None or user.upsmon is None:
            return _err("ACCESS-DENIED")
        if verb == "LOGIN":
            if session.logged_into is not None:
                return _err("ALREADY-LOGGED-IN")
            session.logged_into = self.ups_name
            self._logged_in.append(session)
            return "OK\n"
        if user.upsmon != "primary":
            return _err("ACCESS-DENIED")
        return f"OK {verb}-GRANTED\n"


_ANSWER_MAX = 512  # upsd's NUT_NET_ANSWER_MAX: each line it sends is formatted into a buffer this size


def _as_upsd_sends(reply: str) -> bytes:
    """Each line cut to 512 bytes as upsd's ``sendback`` does: a longer one loses its end and its newline."""
    return b"".join(line[:_ANSWER_MAX] for line in reply.encode().splitlines(keepends=True))


def _err(code: str) -> str:
    return f"ERR {code}\n"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
