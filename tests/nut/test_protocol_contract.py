"""One protocol contract, run against the real upsd 2.8.0 (dummy-ups) and against ``NutEmulator``.

Everything both support is checked byte for byte on the wire (raw sockets) and through PyNUTClient, so the
emulator that the outlet tests rely on cannot drift from what upsd really answers. Where they differ on
purpose (dummy-ups has no outlet commands), the test says so by name and checks each side. At the end,
random request lines go to both at once and must get the same answer (differential fuzzing).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from piclusterd._vendor.PyNUT import PyNUTError
from piclusterd.cluster.power_on_backends import _quote_word
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import DriverState, NutEmulator, UnbalancedWord, tokenize
from piclusterd.testing.nut_server import NutServer

from .conftest import pynut

_UPS = "ups1"
_USER, _PASSWORD = "admin", "secret"
_UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


@dataclass(frozen=True, slots=True)
class Backend:
    """Where a NUT server listens, and which kind it is."""

    kind: str  # "upsd" or "emulator"
    host: str
    port: int
    emulator: NutEmulator | None = None
    upsd_log: Callable[[], str] | None = None  # the real upsd's recent log lines


def _start(kind: str) -> Iterator[Backend]:
    if kind == "upsd":
        with NutServer() as server:
            yield Backend(kind, server.host, server.port, upsd_log=server.logs)
    else:
        with NutEmulator(clock=FakeClock(), variables=NutServer.DEFAULT_VARIABLES) as emulator:
            yield Backend(kind, emulator.host, emulator.port, emulator)


@pytest.fixture(scope="module", params=["upsd", "emulator"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A server shared by the tests that change nothing a later test reads (or change only ups.load)."""
    yield from _start(request.param)


@pytest.fixture(params=["upsd", "emulator"])
def fresh_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A server of its own, for a test that changes state for good (FSD)."""
    yield from _start(request.param)


@pytest.fixture(autouse=True)
def _output_back_on(request: pytest.FixtureRequest) -> Iterator[None]:
    """``load.off`` does nothing on dummy-ups but switches the emulator's output off: undo it after a test."""
    yield
    if "backend" in request.fixturenames:
        shared: Backend = request.getfixturevalue("backend")
        if shared.emulator is not None:
            shared.emulator.drive_output(on=True)


class Wire:
    """One raw connection: send a line, read the whole answer (a ``BEGIN LIST`` block up to its ``END``)."""

    def __init__(self, backend: Backend) -> None:
        self._sock = socket.create_connection((backend.host, backend.port), timeout=10.0)
        self._stream = self._sock.makefile("rb")

    def ask(self, line: str) -> str:
        return self.ask_bytes(line.encode())

    def ask_bytes(self, line: bytes) -> str:
        self._sock.sendall(line + b"\n")
        first = self._stream.readline().decode("latin-1")
        if not first.startswith("BEGIN LIST "):
            return first
        end = "END " + first[len("BEGIN ") :]
        lines = [first]
        while lines[-1] != end:
            raw = self._stream.readline()
            if not raw:
                raise AssertionError(f"{line!r}: connection closed mid-list after {lines!r}")
            lines.append(raw.decode("latin-1"))
        return "".join(lines)

    def read_line(self) -> str:
        raw = self._stream.readline()
        if not raw:
            raise AssertionError("the server closed the connection")
        return raw.decode("latin-1")

    def read_exactly(self, size: int) -> bytes:
        return self._stream.read(size)

    def send_raw(self, data: bytes) -> None:
        self._sock.sendall(data)

    def send_only(self, line: str) -> None:
        self._sock.sendall(line.encode() + b"\n")

    def login(self, password: str = _PASSWORD) -> None:
        assert self.ask(f"USERNAME {_USER}") == "OK\n"
        assert self.ask(f"PASSWORD {password}") == "OK\n"

    def at_eof(self) -> bool:
        return self._stream.read() == b""

    def close(self) -> None:
        self._stream.close()
        self._sock.close()


def _ask_once(backend: Backend, line: str) -> str:
    conn = Wire(backend)
    try:
        return conn.ask(line)
    finally:
        conn.close()


@pytest.fixture
def wire(backend: Backend) -> Iterator[Wire]:
    conn = Wire(backend)
    yield conn
    conn.close()


def _eventually(read: Callable[[], str], expected: str) -> str:
    """upsd forwards a SET to the driver and answers at once: wait (bounded) for the value to be served."""
    deadline = time.monotonic() + 10.0
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = read()
    return seen


# --- greeting and help --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("VER", "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"),
        ("NETVER", "1.3\n"),
        ("HELP", "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"),
        ("VER x", "ERR INVALID-ARGUMENT\n"),
        ("HELP x", "ERR INVALID-ARGUMENT\n"),
        ("STARTTLS", "ERR FEATURE-NOT-CONFIGURED\n"),
        ("FOO", "ERR UNKNOWN-COMMAND\n"),
        ("", "ERR UNKNOWN-COMMAND\n"),
        ("LIST", "ERR INVALID-ARGUMENT\n"),
        ("LIST FOO ups1", "ERR INVALID-ARGUMENT\n"),
        ("GET", "ERR INVALID-ARGUMENT\n"),
        ("GET FOO ups1", "ERR INVALID-ARGUMENT\n"),
    ],
)
def test_simple_requests_are_answered_as_upsd_does(wire: Wire, line: str, reply: str) -> None:
    assert wire.ask(line) == reply


def test_an_open_quote_runs_on_into_the_next_line(wire: Wire) -> None:
    """upsd answers nothing until the quote closes; the newline becomes part of the word."""
    wire.send_only('GET VAR ups1 "ups.status')
    assert wire.ask('x"') == "ERR VAR-NOT-SUPPORTED\n"  # the variable "ups.status\nx"
    wire.send_only("GET VAR ups1 ups.status\\")
    assert wire.ask("VER") == "ERR VAR-NOT-SUPPORTED\n"  # a trailing backslash escapes the newline
    assert wire.ask("GET VAR ups1 ups.status extra words") == 'VAR ups1 ups.status "OL"\n'


def test_an_answer_longer_than_512_bytes_is_cut_without_its_newline(wire: Wire) -> None:
    """upsd formats each line into a 512-byte buffer: the rest, newline included, is lost."""
    wire.send_only("GET DESC ups1 " + "a" * 600)
    assert wire.read_exactly(512) == b"DESC ups1 " + b"a" * 502
    assert wire.ask("NETVER") == "1.3\n"  # nothing more came: the next answer follows directly


def test_logout_says_goodbye_and_closes(wire: Wire) -> None:
    assert wire.ask("LOGOUT") == "OK Goodbye\n"
    assert wire.at_eof()


# --- reading ------------------------------------------------------------------------------------------


def test_list_ups_names_the_ups(wire: Wire) -> None:
    assert wire.ask("LIST UPS") == 'BEGIN LIST UPS\nUPS ups1 "Description unavailable"\nEND LIST UPS\n'


def test_list_var_is_sorted_quoted_and_holds_every_value(wire: Wire) -> None:
    reply = wire.ask(f"LIST VAR {_UPS}").splitlines()
    assert reply[0] == f"BEGIN LIST VAR {_UPS}"
    assert reply[-1] == f"END LIST VAR {_UPS}"
    body = reply[1:-1]
    assert all(re.fullmatch(rf'VAR {_UPS} [a-z0-9.]+ "[^"]*"', line) for line in body), body
    names = [line.split()[2] for line in body]
    assert names == sorted(names, key=str.lower)
    for name, value in NutServer.DEFAULT_VARIABLES.items():
        if name != "ups.load":  # another test sets it
            assert f'VAR {_UPS} {name} "{value}"' in body


_ODD_NAMES = {"ups.Zeta": "1", "ups.alpha": "2", "ups.Beta": "3", "ups.b_x": "4", "ups.b.y": "5", "ups.B-z": "6"}
_ODD_NAMES |= {"outlet.10.x": "7", "outlet.2.x": "8"}


@pytest.mark.parametrize("kind", ["upsd", "emulator"])
def test_list_var_sorts_names_as_upsd_does(kind: str) -> None:
    """Case-insensitively in byte order (strcasecmp), so outlet.10 comes before outlet.2."""
    variables = {**NutServer.DEFAULT_VARIABLES, **_ODD_NAMES}
    expected = ["outlet.10.x", "outlet.2.x", "ups.alpha", "ups.B-z", "ups.b.y", "ups.b_x", "ups.Beta", "ups.Zeta"]
    if kind == "upsd":
        with NutServer(variables) as server:
            body = _ask_once(Backend(kind, server.host, server.port), "LIST VAR ups1").splitlines()
    else:
        with NutEmulator(clock=FakeClock(), variables=variables, outlets={}) as emulator:
            body = _ask_once(Backend(kind, emulator.host, emulator.port), "LIST VAR ups1").splitlines()
    assert [line.split()[2] for line in body[1:-1] if line.split()[2] in _ODD_NAMES] == expected


def test_given_the_same_variables_list_var_is_byte_for_byte_the_same() -> None:
    """Everything upsd serves for dummy-ups (driver.* and device.* included), served by the emulator."""
    variables = {**NutServer.DEFAULT_VARIABLES, "ups.delay.shutdown": "20", "ups.timer.shutdown": "-1"}
    with NutServer(variables) as server:
        upsd_list = _ask_once(Backend("upsd", server.host, server.port), "LIST VAR ups1")
    served = {}
    for line in upsd_list.splitlines()[1:-1]:
        _, _, name, quoted = line.split(" ", 3)
        served[name] = quoted[1:-1]  # dummy-ups serves no quotes or backslashes to unescape
    assert "driver.version" in served and "device.model" in served
    with NutEmulator(clock=FakeClock(), variables=served, outlets={}) as emulator:
        assert _ask_once(Backend("emulator", emulator.host, emulator.port), "LIST VAR ups1") == upsd_list


def test_words_may_be_quoted_and_commands_are_case_insensitive(wire: Wire) -> None:
    assert wire.ask(f'get var "{_UPS}" "ups.status"') == f'VAR {_UPS} ups.status "OL"\n'
    assert wire.ask(f"GET  VAR  {_UPS}  battery.charge") == f'VAR {_UPS} battery.charge "100"\n'


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("GET VAR ups1 battery.runtime", 'VAR ups1 battery.runtime "1800"\n'),
        ("GET VAR ups1 nope.var", "ERR VAR-NOT-SUPPORTED\n"),
        ("GET VAR nope ups.status", "ERR UNKNOWN-UPS\n"),
        ("GET VAR ups1", "ERR INVALID-ARGUMENT\n"),
        ("LIST VAR nope", "ERR UNKNOWN-UPS\n"),
        ("LIST VAR", "ERR INVALID-ARGUMENT\n"),
        ("LIST CMD nope", "ERR UNKNOWN-UPS\n"),
        ("LIST RW nope", "ERR UNKNOWN-UPS\n"),
        ("LIST CLIENT ups1", "BEGIN LIST CLIENT ups1\nEND LIST CLIENT ups1\n"),
        ("LIST ENUM ups1 nope.var", "ERR VAR-NOT-SUPPORTED\n"),
        ("LIST ENUM ups1 ups.status", "BEGIN LIST ENUM ups1 ups.status\nEND LIST ENUM ups1 ups.status\n"),
        ("LIST RANGE ups1 ups.load", "BEGIN LIST RANGE ups1 ups.load\nEND LIST RANGE ups1 ups.load\n"),
        ("GET UPSDESC ups1", 'UPSDESC ups1 "Unavailable"\n'),
        ("GET UPSDESC nope", "ERR UNKNOWN-UPS\n"),
        ("GET NUMLOGINS ups1", "NUMLOGINS ups1 0\n"),
        ("GET TYPE ups1 ups.status", "TYPE ups1 ups.status RW STRING:32\n"),
        ("GET TYPE ups1 battery.charge", "TYPE ups1 battery.charge RW NUMBER\n"),
        ("GET TYPE ups1 device.model", "TYPE ups1 device.model NUMBER\n"),
        ("GET TYPE ups1 nope.var", "ERR VAR-NOT-SUPPORTED\n"),
        ("GET DESC ups1 ups.status", 'DESC ups1 ups.status "UPS status"\n'),
        ("GET DESC ups1 outlet.2.status", 'DESC ups1 outlet.2.status "Outlet switch status"\n'),
        ("GET DESC ups1 outlet.2.switchable", 'DESC ups1 outlet.2.switchable "Outlet switch ability"\n'),
        (
            "GET DESC ups1 ups.timer.shutdown",
            'DESC ups1 ups.timer.shutdown "Time before the load will be shutdown (seconds)"\n',
        ),
        (
            "GET DESC ups1 ups.delay.shutdown",
            'DESC ups1 ups.delay.shutdown "Interval to wait after shutdown with delay command (seconds)"\n',
        ),
        ("GET DESC ups1 nope.x", 'DESC ups1 nope.x "Description unavailable"\n'),
        ("GET DESC nope ups.status", "ERR UNKNOWN-UPS\n"),
        ("GET CMDDESC ups1 load.off", 'CMDDESC ups1 load.off "Turn off the load immediately"\n'),
        (
            "GET CMDDESC ups1 outlet.2.load.on",
            'CMDDESC ups1 outlet.2.load.on "Turn on the load on outlet 2 immediately"\n',
        ),
        (
            "GET CMDDESC ups1 outlet.1.load.off",
            'CMDDESC ups1 outlet.1.load.off "Turn off the load on outlet 1 immediately"\n',
        ),
        (
            "GET CMDDESC ups1 shutdown.return",
            'CMDDESC ups1 shutdown.return "Turn off the load and return when power is back"\n',
        ),
        (
            "GET CMDDESC ups1 shutdown.stayoff",
            'CMDDESC ups1 shutdown.stayoff "Turn off the load and remain off"\n',
        ),
        (
            "GET CMDDESC ups1 load.off.delay",
            'CMDDESC ups1 load.off.delay "Turn off the load with a delay (seconds)"\n',
        ),
        ("GET CMDDESC ups1 outlet.2.load.cycle", 'CMDDESC ups1 outlet.2.load.cycle "Description unavailable"\n'),
        ("GET CMDDESC ups1", "ERR INVALID-ARGUMENT\n"),
        ("GET TRACKING", "OFF\n"),
        ("GET TRACKING 00000000-0000-0000-0000-000000000000", "ERR FEATURE-NOT-CONFIGURED\n"),
    ],
)
def test_reads_are_answered_as_upsd_does(wire: Wire, line: str, reply: str) -> None:
    assert wire.ask(line) == reply


@pytest.mark.parametrize(
    ("word", "parsed"),
    [
        ('a"b', 'a"b'),
        ("a b", "a b"),
        ("x\\y", "x\\y"),
        ("ends\\", "ends\\"),
        ('"', '"'),
        ("'single'", "'single'"),
        ("del\x7f", "del\x7f"),
        ("pass#word", "pass#word"),  # escaped: an unescaped # in quotes is a parse error
        # upsd keeps only space..DEL (its CVE-2012-2944 fix): a tab, and both bytes of a UTF-8 ü, are dropped
        ("tab\there", "tabhere"),
        ("ümlaut", "mlaut"),
    ],
)
def test_a_quoted_word_reaches_upsd_as_upsd_keeps_it(wire: Wire, word: str, parsed: str) -> None:
    """GET DESC echoes the name it parsed, so the tokenizer and nut-outlet's quoting are checked on upsd too."""
    assert wire.ask(f"GET DESC ups1 {_quote_word(word)}") == f'DESC ups1 {parsed} "Description unavailable"\n'


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"GET\tDESC\tups1\tx", 'DESC ups1 x "Description unavailable"\n'),  # a tab separates words
        (b"GET DESC ups1 a\x0bb", 'DESC ups1 a "Description unavailable"\n'),  # so does \v: "b" is ignored
        (b"GET DESC ups1 a\x01b", 'DESC ups1 ab "Description unavailable"\n'),  # a control character is dropped
        (b"GET DESC ups1 \x80\xff", 'DESC ups1  "Description unavailable"\n'),  # dropped, yet a word
    ],
)
def test_bytes_outside_ascii_are_handled_as_upsd_does(wire: Wire, line: bytes, reply: str) -> None:
    assert wire.ask_bytes(line) == reply


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("GET VAR UPS1 ups.status", 'VAR UPS1 ups.status "OL"\n'),
        ("GET VAR ups1 UPS.STATUS", 'VAR ups1 UPS.STATUS "OL"\n'),
        ("GET TYPE ups1 UPS.STATUS", "TYPE ups1 UPS.STATUS RW STRING:32\n"),
        ("GET DESC ups1 UPS.STATUS", 'DESC ups1 UPS.STATUS "UPS status"\n'),
        ("GET CMDDESC ups1 LOAD.OFF", 'CMDDESC ups1 LOAD.OFF "Turn off the load immediately"\n'),
        ("LIST ENUM ups1 UPS.STATUS", "BEGIN LIST ENUM ups1 UPS.STATUS\nEND LIST ENUM ups1 UPS.STATUS\n"),
        ("LIST CMD Ups1", "BEGIN LIST CMD Ups1\nCMD Ups1 load.off\n"),  # the first lines; the emulator lists more
    ],
)
def test_names_match_case_insensitively_and_are_echoed_as_asked(wire: Wire, line: str, reply: str) -> None:
    assert wire.ask(line).startswith(reply)


def test_writes_match_names_case_insensitively(wire: Wire) -> None:
    wire.login()
    assert wire.ask("INSTCMD UPS1 LOAD.OFF") == "OK\n"
    assert wire.ask("SET VAR UPS1 UPS.LOAD 41") == "OK\n"
    assert (
        _eventually(lambda: wire.ask("GET VAR ups1 ups.load"), 'VAR ups1 ups.load "41"\n') == 'VAR ups1 ups.load "41"\n'
    )


def test_list_cmd_lists_one_unquoted_command_a_line(wire: Wire) -> None:
    reply = wire.ask(f"LIST CMD {_UPS}").splitlines()
    assert reply[0] == f"BEGIN LIST CMD {_UPS}" and reply[-1] == f"END LIST CMD {_UPS}"
    assert f"CMD {_UPS} load.off" in reply[1:-1]
    assert all(re.fullmatch(rf"CMD {_UPS} [a-z0-9.]+", line) for line in reply[1:-1])


def test_list_rw_lists_writable_variables_only(wire: Wire) -> None:
    body = wire.ask(f"LIST RW {_UPS}").splitlines()[1:-1]
    assert f'RW {_UPS} battery.charge "100"' in body
    assert not any(line.split()[2] == "device.model" for line in body)


# --- authentication -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["INSTCMD ups1 load.off", 'SET VAR ups1 ups.load "30"', "LOGIN ups1", "FSD ups1"])
def test_writes_need_a_username_first(wire: Wire, line: str) -> None:
    assert wire.ask(line) == "ERR USERNAME-REQUIRED\n"


def test_a_username_alone_is_not_enough(wire: Wire) -> None:
    assert wire.ask(f"USERNAME {_USER}") == "OK\n"
    assert wire.ask("INSTCMD ups1 load.off") == "ERR PASSWORD-REQUIRED\n"


def test_a_password_alone_is_not_enough(wire: Wire) -> None:
    assert wire.ask(f"PASSWORD {_PASSWORD}") == "OK\n"
    assert wire.ask("INSTCMD ups1 load.off") == "ERR USERNAME-REQUIRED\n"


def test_credentials_are_set_once(wire: Wire) -> None:
    wire.login()
    assert wire.ask(f"USERNAME {_USER}") == "ERR ALREADY-SET-USERNAME\n"
    assert wire.ask(f"PASSWORD {_PASSWORD}") == "ERR ALREADY-SET-PASSWORD\n"


def test_credentials_take_exactly_one_word(wire: Wire) -> None:
    assert wire.ask("USERNAME") == "ERR INVALID-ARGUMENT\n"
    assert wire.ask("USERNAME a b") == "ERR INVALID-ARGUMENT\n"
    assert wire.ask("PASSWORD") == "ERR INVALID-ARGUMENT\n"


def test_quoted_credentials_are_accepted(wire: Wire) -> None:
    assert wire.ask(f'USERNAME "{_USER}"') == "OK\n"
    assert wire.ask(f'PASSWORD "{_PASSWORD}"') == "OK\n"
    assert wire.ask("INSTCMD ups1 load.off") == "OK\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("INSTCMD ups1 load.off", "ERR ACCESS-DENIED\n"),
        ('SET VAR ups1 ups.load "30"', "ERR ACCESS-DENIED\n"),
        ("FSD ups1", "ERR ACCESS-DENIED\n"),
        ("LOGIN ups1", "ERR ACCESS-DENIED\n"),
        # upsd checks the command before the password, and the password before the variable:
        ("INSTCMD ups1 nope.cmd", "ERR CMD-NOT-SUPPORTED\n"),
        ("INSTCMD nope load.off", "ERR UNKNOWN-UPS\n"),
        ("SET VAR ups1 nope.var 1", "ERR ACCESS-DENIED\n"),
        ("SET VAR nope ups.load 1", "ERR UNKNOWN-UPS\n"),
    ],
)
def test_a_wrong_password_is_found_out_only_when_it_matters(wire: Wire, line: str, reply: str) -> None:
    wire.login(password="wrong")
    assert wire.ask(line) == reply


def test_an_unknown_user_is_denied(wire: Wire) -> None:
    assert wire.ask("USERNAME nobody") == "OK\n"
    assert wire.ask(f"PASSWORD {_PASSWORD}") == "OK\n"
    assert wire.ask("INSTCMD ups1 load.off") == "ERR ACCESS-DENIED\n"


def test_login_needs_an_upsmon_role(wire: Wire) -> None:
    """NutServer's and the emulator's default user has ``actions = SET FSD`` but no ``upsmon`` line."""
    wire.login()
    assert wire.ask("LOGIN ups1") == "ERR ACCESS-DENIED\n"
    assert wire.ask("PRIMARY ups1") == "ERR ACCESS-DENIED\n"
    assert wire.ask("LOGIN") == "ERR INVALID-ARGUMENT\n"
    assert wire.ask("LOGIN nope") == "ERR UNKNOWN-UPS\n"


# --- writing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("INSTCMD ups1 load.off", "OK\n"),
        ("INSTCMD ups1 load.off 5", "OK\n"),
        ("INSTCMD ups1 nope.cmd", "ERR CMD-NOT-SUPPORTED\n"),
        ("INSTCMD nope load.off", "ERR UNKNOWN-UPS\n"),
        ("INSTCMD ups1", "ERR INVALID-ARGUMENT\n"),
        ("SET VAR ups1 nope.var 1", "ERR VAR-NOT-SUPPORTED\n"),
        ("SET VAR ups1 device.model x", "ERR READONLY\n"),
        ("SET VAR nope ups.load 1", "ERR UNKNOWN-UPS\n"),
        ("SET VAR ups1 ups.load", "ERR INVALID-ARGUMENT\n"),
        ("SET FOO ups1", "ERR INVALID-ARGUMENT\n"),
        ("SET TRACKING MAYBE", "ERR INVALID-ARGUMENT\n"),
        ("SET TRACKING OFF extra", "OK\n"),
        ("FSD nope", "ERR UNKNOWN-UPS\n"),
        ("FSD", "ERR INVALID-ARGUMENT\n"),
    ],
)
def test_authorised_writes_are_answered_as_upsd_does(wire: Wire, line: str, reply: str) -> None:
    wire.login()
    assert wire.ask(line) == reply


def test_set_var_changes_the_served_value(wire: Wire) -> None:
    wire.login()
    assert wire.ask('SET VAR ups1 ups.load "37"') == "OK\n"
    served = _eventually(lambda: wire.ask("GET VAR ups1 ups.load"), 'VAR ups1 ups.load "37"\n')
    assert served == 'VAR ups1 ups.load "37"\n'


def test_a_value_with_spaces_is_set_and_listed_quoted(wire: Wire) -> None:
    wire.login()
    assert wire.ask('SET VAR ups1 ups.load "12 34"') == "OK\n"
    served = _eventually(lambda: wire.ask("GET VAR ups1 ups.load"), 'VAR ups1 ups.load "12 34"\n')
    assert served == 'VAR ups1 ups.load "12 34"\n'
    assert 'VAR ups1 ups.load "12 34"' in wire.ask("LIST VAR ups1").splitlines()
    assert 'RW ups1 ups.load "12 34"' in wire.ask("LIST RW ups1").splitlines()


def test_outlet_commands_are_where_the_two_differ(wire: Wire, backend: Backend) -> None:
    """dummy-ups 2.8.0 has no outlet commands (the reason the emulator exists); the emulator has them."""
    wire.login()
    listed = wire.ask("LIST CMD ups1")
    reply = wire.ask("INSTCMD ups1 outlet.1.load.off")
    if backend.kind == "upsd":
        assert listed == "BEGIN LIST CMD ups1\nCMD ups1 load.off\nEND LIST CMD ups1\n"
        assert reply == "ERR CMD-NOT-SUPPORTED\n"
    else:
        assert "CMD ups1 outlet.1.load.off\n" in listed
        assert reply == "OK\n"
        assert wire.ask("GET VAR ups1 outlet.1.status") == 'VAR ups1 outlet.1.status "off"\n'
        assert wire.ask("INSTCMD ups1 outlet.1.load.on") == "OK\n"


def test_load_off_is_listed_by_both_but_only_the_emulator_does_it(wire: Wire, backend: Backend) -> None:
    """dummy-ups 2.8.0 lists load.off yet its driver fails it ("instcmd: unknown command"): TRACKING shows it."""
    wire.login()
    assert wire.ask("SET TRACKING ON") == "OK\n"
    accepted = wire.ask("INSTCMD ups1 load.off")
    assert accepted.startswith("OK TRACKING ")
    expected = "ERR UNKNOWN\n" if backend.kind == "upsd" else "SUCCESS\n"
    assert _eventually(lambda: wire.ask(f"GET TRACKING {accepted.split()[2]}"), expected) == expected


def test_set_tracking_needs_a_user(wire: Wire) -> None:
    assert wire.ask("SET TRACKING ON") == "ERR USERNAME-REQUIRED\n"
    assert wire.ask("GET TRACKING") == "OFF\n"


def test_tracking_gives_an_id_and_the_result_of_a_set(wire: Wire) -> None:
    wire.login()
    assert wire.ask("SET TRACKING ON") == "OK\n"
    assert wire.ask("GET TRACKING") == "ON\n"
    reply = wire.ask('SET VAR ups1 ups.load "38"')
    assert reply.startswith("OK TRACKING ")
    tracking_id = reply.split()[2]
    assert _UUID.fullmatch(tracking_id), reply
    assert _eventually(lambda: wire.ask(f"GET TRACKING {tracking_id}"), "SUCCESS\n") == "SUCCESS\n"
    assert wire.ask("GET TRACKING 00000000-0000-0000-0000-000000000000") == "ERR UNKNOWN\n"
    assert wire.ask("INSTCMD ups1 load.off").startswith("OK TRACKING ")
    assert wire.ask("SET TRACKING OFF") == "OK\n"
    assert wire.ask(f"GET TRACKING {tracking_id}") == "ERR FEATURE-NOT-CONFIGURED\n"


def _parse_error_seen(backend: Backend) -> bool:
    if backend.emulator is not None:
        return backend.emulator.parse_errors > 0
    assert backend.upsd_log is not None
    return "Parse error on sock: Unbalanced word due to unescaped # in quotes" in backend.upsd_log()


def test_an_unescaped_hash_in_quotes_drops_the_rest_of_the_write(fresh_backend: Backend) -> None:
    """upsd 2.8.0 logs a parse error and drops the rest of that read: NETVER, sent in the same write, too."""
    wire = Wire(fresh_backend)
    try:
        wire.send_raw(b'GET DESC ups1 "a#b"\nNETVER\n')
        deadline = time.monotonic() + 10.0
        while not _parse_error_seen(fresh_backend) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _parse_error_seen(fresh_backend)
        assert wire.ask("VER") == "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"
        assert wire.ask("GET DESC ups1 a#b") == 'DESC ups1 a "Description unavailable"\n'  # outside quotes: a comment
    finally:
        wire.close()


def test_fsd_sets_the_flag_in_ups_status(fresh_backend: Backend) -> None:
    wire = Wire(fresh_backend)
    try:
        wire.login()
        assert wire.ask("FSD ups1") == "OK FSD-SET\n"
        assert wire.ask("FSD ups1") == "OK FSD-SET\n"
        assert wire.ask("GET VAR ups1 ups.status") == 'VAR ups1 ups.status "FSD OL"\n'
    finally:
        wire.close()


# --- the client's view (PyNUTClient, as piclusterd's NUT driver uses it) ----------------------------------


def test_pynut_reads_the_ups_list_and_variables(backend: Backend) -> None:
    with pynut(backend.host, backend.port) as client:
        assert client.GetUPSList() == {b"ups1": b"Description unavailable"}
        variables = client.GetUPSVars(_UPS)
        assert variables[b"ups.status"] == b"OL"
        assert variables[b"battery.charge"] == b"100"
        assert client.CheckUPSAvailable(_UPS) is True
        assert client.CheckUPSAvailable("nope") is False
        assert client.ver() == b"Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"


def test_pynut_lists_commands_and_rw_variables(backend: Backend) -> None:
    with pynut(backend.host, backend.port) as client:
        # PyNUTClient 1.9.0 formats the command name as bytes (GET CMDDESC ups1 b'load.off'), so upsd, and
        # the emulator alike, answer "Description unavailable": the same wrong answer from both is the contract.
        assert client.GetUPSCommands(_UPS)[b"load.off"] == b"Description unavailable"
        assert client.GetRWVars(_UPS)[b"battery.charge"] == b"100"


def test_pynut_runs_a_command_and_sets_a_variable_when_logged_in(backend: Backend) -> None:
    with pynut(backend.host, backend.port, login=_USER, password=_PASSWORD) as client:
        assert client.RunUPSCommand(_UPS, "load.off") == "OK"
        assert client.SetRWVar(_UPS, "ups.load", "39") == "OK"


def test_pynut_sees_errors_as_upsd_words(backend: Backend) -> None:
    with pynut(backend.host, backend.port, login=_USER, password="wrong") as client:
        with pytest.raises(PyNUTError, match=r"^ERR ACCESS-DENIED$"):
            client.RunUPSCommand(_UPS, "load.off")
        with pytest.raises(PyNUTError, match=r"^ERR UNKNOWN-UPS$"):
            client.GetUPSVars("nope")
        with pytest.raises(PyNUTError, match=r"^ERR ACCESS-DENIED$"):
            client.DeviceLogin(_UPS)


# --- a driver that died or hangs ----------------------------------------------------------------------


@pytest.fixture(
    params=[
        ("upsd", "DRIVER-NOT-CONNECTED"),
        ("upsd", "DATA-STALE"),
        ("emulator", "DRIVER-NOT-CONNECTED"),
        ("emulator", "DATA-STALE"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def driverless(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, str]]:
    """A connection to a server whose driver is gone (killed) or stale (stopped past MAXAGE), and the code."""
    kind, code = request.param
    if kind == "upsd":
        with NutServer(maxage_s=1) as server:
            backend = Backend(kind, server.host, server.port)
            if code == "DRIVER-NOT-CONNECTED":
                server.kill_driver()  # returns once upsd answers DRIVER-NOT-CONNECTED
            else:
                server.pause_driver()
            wire = Wire(backend)
            if code == "DATA-STALE":  # upsd notices after MAXAGE (1 s here)
                _eventually(lambda: wire.ask("GET VAR ups1 ups.status"), "ERR DATA-STALE\n")
            yield wire, code
            wire.close()
    else:
        with NutEmulator(clock=FakeClock()) as emulator:
            emulator.drive_driver(DriverState.GONE if code == "DRIVER-NOT-CONNECTED" else DriverState.STALE)
            wire = Wire(Backend(kind, emulator.host, emulator.port))
            yield wire, code
            wire.close()


def test_without_a_driver_upsd_refuses_the_ups_data_and_commands(driverless: tuple[Wire, str]) -> None:
    wire, code = driverless
    for line in (
        "GET VAR ups1 ups.status",
        "LIST VAR ups1",
        "LIST CMD ups1",
        "LIST RW ups1",
        "GET DESC ups1 ups.status",
        "GET CMDDESC ups1 load.off",
        "LIST ENUM ups1 ups.status",
    ):
        assert wire.ask(line) == f"ERR {code}\n", line
    # ...before it looks at the password:
    wire.login(password="wrong")
    assert wire.ask("INSTCMD ups1 load.off") == f"ERR {code}\n"
    assert wire.ask("INSTCMD ups1 nope.cmd") == f"ERR {code}\n"
    assert wire.ask('SET VAR ups1 ups.load "5"') == f"ERR {code}\n"
    assert wire.ask("INSTCMD nope load.off") == "ERR UNKNOWN-UPS\n"


def test_without_a_driver_upsd_still_names_the_ups(driverless: tuple[Wire, str]) -> None:
    wire, _ = driverless
    assert wire.ask("LIST UPS") == 'BEGIN LIST UPS\nUPS ups1 "Description unavailable"\nEND LIST UPS\n'
    assert wire.ask("GET UPSDESC ups1") == 'UPSDESC ups1 "Unavailable"\n'
    assert wire.ask("LIST CLIENT ups1") == "BEGIN LIST CLIENT ups1\nEND LIST CLIENT ups1\n"


# --- differential: random lines to both servers at once ----------------------------------------------


@pytest.fixture(scope="module")
def both_servers() -> Iterator[tuple[Backend, Backend]]:
    with NutServer() as server, NutEmulator(clock=FakeClock(), variables=NutServer.DEFAULT_VARIABLES) as emulator:
        yield Backend("upsd", server.host, server.port), Backend("emulator", emulator.host, emulator.port, emulator)


@pytest.fixture(scope="module")
def both(both_servers: tuple[Backend, Backend]) -> Iterator[tuple[Wire, Wire]]:
    """One connection to the real upsd and one to the emulator, kept for many examples."""
    upsd, emulated = Wire(both_servers[0]), Wire(both_servers[1])
    yield upsd, emulated
    upsd.close()
    emulated.close()


@pytest.fixture(scope="module", params=[_PASSWORD, "wrong"], ids=["logged_in", "wrong_password"])
def both_logged_in(
    request: pytest.FixtureRequest, both_servers: tuple[Backend, Backend]
) -> Iterator[tuple[Wire, Wire]]:
    """The same, after USERNAME and PASSWORD (right or wrong): the write commands' checks and their order."""
    upsd, emulated = Wire(both_servers[0]), Wire(both_servers[1])
    upsd.login(password=request.param)
    emulated.login(password=request.param)
    yield upsd, emulated
    upsd.close()
    emulated.close()


# Requests whose answer does not depend on which variables or commands the UPS has (where the two differ).
_PREFIXES = [b"GET DESC ups1", b"GET CMDDESC ups1", b"GET UPSDESC", b"GET", b"LIST", b"SET", b"INSTCMD ups1"]
_PREFIXES += [b"VER", b"NETVER", b"HELP", b"FOO", b"get desc", b"LIST ENUM nope", b"GET VAR nope", b""]
_PREFIXES += [b"GET VAR UPS1 ups.STATUS", b"GET TYPE Ups1 battery.CHARGE", b"GET desc UPS1 outlet.2.STATUS"]
_TAIL = st.binary(max_size=24).filter(lambda raw: b"\n" not in raw)


def _answered(line: bytes) -> bool:
    try:
        return tokenize(line.decode("latin-1")) is not None
    except UnbalancedWord:
        return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(_PREFIXES), tail=_TAIL)
def test_upsd_and_the_emulator_answer_random_lines_alike(both: tuple[Wire, Wire], prefix: bytes, tail: bytes) -> None:
    line = prefix + b" " + tail
    # An open quote, a trailing backslash or a # in quotes get no answer from either (tested above).
    assume(_answered(line))
    upsd, emulated = both
    assert emulated.ask_bytes(line) == upsd.ask_bytes(line), line


# Write requests; never a bare "FSD ups1" or LOGOUT (they change the session or the UPS for later examples).
_WRITE_PREFIXES = [b"INSTCMD ups1", b"INSTCMD", b"INSTCMD nope", b"SET VAR ups1", b"SET VAR", b"SET VAR nope"]
_WRITE_PREFIXES += [b"SET TRACKING", b"SET", b"FSD", b"FSD nope", b"LOGIN", b"PRIMARY", b"MASTER", b"USERNAME"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(_WRITE_PREFIXES), tail=_TAIL)
def test_upsd_and_the_emulator_check_write_arguments_alike(
    both_logged_in: tuple[Wire, Wire], prefix: bytes, tail: bytes
) -> None:
    line = prefix + b" " + tail
    assume(_answered(line))
    words = tokenize(line.decode("latin-1")) or []
    assume(not (prefix == b"FSD" and words[1:] == ["ups1"]))
    assume(not (prefix == b"SET TRACKING" and len(words) >= 3 and words[2].upper() in ("ON", "OFF")))
    upsd, emulated = both_logged_in
    assert emulated.ask_bytes(line) == upsd.ask_bytes(line), line


_STREAM_PREFIXES = [b"GET DESC ups1", b"GET CMDDESC ups1", b"VER", b"HELP", b"FOO", b'GET DESC ups1 "', b"GET DESC \\"]
_STREAM_LINE = st.builds(lambda prefix, tail: prefix + b" " + tail, st.sampled_from(_STREAM_PREFIXES), _TAIL)


def _stream_is_whole(stream: bytes) -> bool:
    """No parse error, and nothing left open at the end: then both servers answer every line, in order."""
    unfinished = ""
    for raw in stream.split(b"\n")[:-1]:
        line = unfinished + raw.decode("latin-1")
        try:
            words = tokenize(line)
        except UnbalancedWord:
            return False
        unfinished = line + "\n" if words is None else ""
    return unfinished == ""


def _answers_until_netver(backend: Backend, stream: bytes) -> list[str]:
    wire = Wire(backend)
    try:
        wire.send_raw(stream + b"NETVER\n")
        answers: list[str] = []
        while (answer := wire.read_line()) != "1.3\n":
            answers.append(answer)
        return answers
    finally:
        wire.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_STREAM_LINE, min_size=1, max_size=3))
def test_upsd_and_the_emulator_answer_several_lines_in_one_write_alike(
    both_servers: tuple[Backend, Backend], lines: list[bytes]
) -> None:
    """Lines run on into the next (open quotes, trailing backslashes) the same way on both servers."""
    stream = b"".join(line + b"\n" for line in lines)
    assume(_stream_is_whole(stream))
    upsd, emulated = both_servers
    assert _answers_until_netver(emulated, stream) == _answers_until_netver(upsd, stream), stream
