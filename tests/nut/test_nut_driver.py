"""NutPowerSource against a real upsd + dummy-ups (piclusterd.testing.nut_server). No mocks of PyNUTClient."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest

from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.reading import MainsState, Rejection, UpsFlag, UpsReading
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut


class FakeClock:
    """A clock that moves only when told to. (To be replaced by piclusterd.testing's fake clock.)"""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Where(Protocol):
    """Where a NUT server listens (a NutServer, or a scripted stand-in)."""

    host: str
    port: int
    ups_name: str


class MakeSource(Protocol):
    def __call__(
        self,
        server: Where,
        *,
        ups_name: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 2.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> NutPowerSource: ...


@pytest.fixture
def make_source(clock: FakeClock) -> Iterator[MakeSource]:
    """Build sources on the fake clock; they are closed after the test."""
    made: list[NutPowerSource] = []

    def make(
        server: Where,
        *,
        ups_name: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 2.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> NutPowerSource:
        source = NutPowerSource(
            server.host,
            server.port,
            server.ups_name if ups_name is None else ups_name,
            username,
            password,
            clock=clock,
            timeout_s=timeout_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def reading_of(source: NutPowerSource) -> UpsReading:
    parsed = source.poll()
    assert parsed.reading is not None, parsed.rejections
    return parsed.reading


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def poll_error(source: NutPowerSource) -> str:
    with pytest.raises(SourceUnavailable) as caught:
        source.poll()
    return str(caught.value)


# -- readings --------------------------------------------------------------------------------------


def test_reads_on_line_with_charge_runtime_and_load(
    nut_server: NutServer, make_source: MakeSource, clock: FakeClock
) -> None:
    source = make_source(nut_server)

    parsed = source.poll()

    assert parsed.rejections == ()
    assert parsed.unknown_status_words == ()
    assert parsed.reading == UpsReading(
        source=f"nut:ups1@127.0.0.1:{nut_server.port}",
        timestamp=clock.monotonic(),
        wall_time=clock.wall(),
        flags=frozenset({UpsFlag.OL}),
        charge_pct=100.0,
        runtime_s=1800.0,
        battery_voltage=13.5,
        load_pct=20.0,
        realpower_nominal_w=600.0,
        input_voltage=230.0,
    )
    assert source.name == f"nut:ups1@127.0.0.1:{nut_server.port}"


def test_sees_switch_to_battery_live(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)
    assert reading_of(source).mains is MainsState.PRESENT

    nut_server.set_many({"ups.status": "OB DISCHRG", "battery.charge": "93"})

    reading = reading_of(source)
    assert reading.flags == {UpsFlag.OB, UpsFlag.DISCHRG}
    assert reading.mains is MainsState.LOST
    assert reading.charge_pct == 93.0


def test_reports_low_battery(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)

    nut_server.set_many({"ups.status": "OB LB", "battery.charge": "9", "battery.runtime": "120"})

    reading = reading_of(source)
    assert UpsFlag.LB in reading.flags
    assert (reading.charge_pct, reading.runtime_s) == (9.0, 120.0)


@pytest.mark.parametrize(
    ("variable", "garbage", "reason"),
    [
        ("battery.charge", "abc", "not a number"),
        ("battery.runtime", "-5", "below 0"),
        ("battery.charge", "150", "above 100"),
    ],
)
def test_rejects_garbage_and_keeps_the_rest_of_the_reading(
    nut_server: NutServer, make_source: MakeSource, variable: str, garbage: str, reason: str
) -> None:
    source = make_source(nut_server)

    nut_server.set(variable, garbage)

    parsed = source.poll()
    assert parsed.rejections == (Rejection(variable, garbage, reason),)
    assert parsed.reading is not None
    assert parsed.reading.flags == {UpsFlag.OL}
    assert parsed.reading.load_pct == 20.0
    assert parsed.reading.input_voltage == 230.0
    field = {"battery.charge": "charge_pct", "battery.runtime": "runtime_s"}[variable]
    assert getattr(parsed.reading, field) is None


def test_reports_unknown_status_word(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)

    nut_server.set("ups.status", "OL CHRG FROBNICATE")

    parsed = source.poll()
    assert parsed.unknown_status_words == ("FROBNICATE",)
    assert parsed.reading is not None
    assert parsed.reading.flags == {UpsFlag.OL, UpsFlag.CHRG}


def test_keeps_one_connection_across_polls(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)
    # Every state: the fixture's own read-back connection may still be closing (FIN_WAIT) now and reach
    # TIME_WAIT during the polls; it must not count as one of the source's.
    before = _client_ports_of(nut_server.port, states=tuple(f"{n:02X}" for n in range(1, 12)))

    for _ in range(5):
        source.poll()

    assert len(_client_ports_of(nut_server.port) - before) == 1


# -- upsd down, backoff ----------------------------------------------------------------------------


def test_upsd_killed_makes_poll_raise(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)
    source.poll()

    nut_server.kill_upsd()

    message = poll_error(source)
    assert f"upsd at 127.0.0.1:{nut_server.port}" in message
    assert "retrying in 1 s" in message


def test_poll_before_the_backoff_ends_does_not_try_to_connect(
    nut_server: NutServer, make_source: MakeSource, clock: FakeClock
) -> None:
    source = make_source(nut_server, backoff_initial_s=4.0)
    source.poll()
    nut_server.kill_upsd()
    poll_error(source)
    nut_server.restart_upsd()  # a connection attempt now would succeed

    clock.advance(3.0)
    message = poll_error(source)

    assert "retrying in 1 s" in message


def test_reconnects_after_the_backoff_once_upsd_is_back(
    nut_server: NutServer, make_source: MakeSource, clock: FakeClock
) -> None:
    source = make_source(nut_server, backoff_initial_s=4.0)
    source.poll()
    nut_server.kill_upsd()
    poll_error(source)
    nut_server.restart_upsd()

    clock.advance(4.0)

    assert reading_of(source).flags == {UpsFlag.OL}


def test_backoff_doubles_up_to_the_maximum(nut_server: NutServer, make_source: MakeSource, clock: FakeClock) -> None:
    nut_server.kill_upsd()
    source = make_source(nut_server, backoff_initial_s=1.0, backoff_max_s=5.0)

    waits: list[str] = []
    for _ in range(5):
        message = poll_error(source)
        assert "connection refused" in message
        waits.append(message.rsplit("retrying in ", 1)[1])
        clock.advance(10.0)

    assert waits == ["1 s", "2 s", "4 s", "5 s", "5 s"]


def test_success_resets_the_backoff(nut_server: NutServer, make_source: MakeSource, clock: FakeClock) -> None:
    source = make_source(nut_server, backoff_initial_s=1.0)
    nut_server.kill_upsd()
    for _ in range(3):  # backoff now at 8 s
        poll_error(source)
        clock.advance(10.0)
    nut_server.restart_upsd()
    source.poll()

    nut_server.kill_upsd()

    assert poll_error(source).endswith("retrying in 1 s")


def test_unresponsive_upsd_times_out(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server, timeout_s=0.5)
    nut_server.pause_upsd()
    try:
        message = poll_error(source)
    finally:
        nut_server.resume_upsd()

    assert "did not answer within" in message


# -- driver down -----------------------------------------------------------------------------------


def test_killed_driver_is_reported_as_driver_not_connected(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)
    source.poll()

    nut_server.kill_driver()

    message = poll_error(source)
    assert "DRIVER-NOT-CONNECTED" in message
    assert "'ups1'" in message
    assert "retrying" not in message  # upsd answered: no backoff, the next poll asks again


def test_source_recovers_at_once_when_the_driver_is_back(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server)
    nut_server.kill_driver()
    poll_error(source)

    nut_server.restart_driver()

    assert reading_of(source).flags == {UpsFlag.OL}


@pytest.mark.slow
def test_hung_driver_is_reported_as_data_stale(make_source: MakeSource) -> None:
    with NutServer(maxage_s=2) as server:
        source = make_source(server)
        source.poll()

        server.pause_driver()

        def stale() -> bool:
            try:
                source.poll()
            except SourceUnavailable as error:
                return "DATA-STALE" in str(error)
            return False

        wait_until(stale, "upsd to call the paused driver's data stale")
        server.resume_driver()
        assert reading_of(source).flags == {UpsFlag.OL}


# -- configuration mistakes ------------------------------------------------------------------------


def test_wrong_ups_name_names_the_ups_and_the_config_key(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server, ups_name="upsX")

    message = poll_error(source)

    assert "'upsX'" in message
    assert "[ups] name" in message
    assert "upsd knows: ups1" in message


def test_wrong_password_does_not_stop_reads(nut_server: NutServer, make_source: MakeSource) -> None:
    # upsd 2.8.0 accepts any USERNAME/PASSWORD and checks them only for SET, INSTCMD, LOGIN and FSD; reads
    # need no login. A wrong password is therefore invisible to poll().
    source = make_source(nut_server, username=nut_server.username, password="not-the-password")

    assert reading_of(source).flags == {UpsFlag.OL}


def test_access_denied_says_which_config_keys_to_fix(make_source: MakeSource) -> None:
    # A real upsd 2.8.0 never denies LIST VAR (see above), so a scripted server gives the answer.
    with _ScriptedServer(b"ERR ACCESS-DENIED\n") as port:
        source = make_source(_Address(port), username="monitor", password="hunter2")

        message = poll_error(source)
        source.close()  # its LOGOUT ends the scripted conversation

    assert "ACCESS-DENIED" in message
    assert "'monitor'" in message
    assert "[ups] username" in message
    assert "[ups] password" in message


def test_password_appears_in_no_message_and_no_repr(nut_server: NutServer, make_source: MakeSource) -> None:
    source = make_source(nut_server, ups_name="upsX", username="admin", password="hunter2")
    messages = [poll_error(source)]
    nut_server.kill_upsd()
    good_name = make_source(nut_server, username="admin", password="hunter2")
    messages.append(poll_error(good_name))

    for text in [*messages, repr(source), repr(good_name), source.name]:
        assert "hunter2" not in text


# -- helpers ---------------------------------------------------------------------------------------


def _client_ports_of(server_port: int, states: tuple[str, ...] = ("01", "06")) -> set[int]:
    """Local ports of this machine's TCP connections to 127.0.0.1:server_port, open or recently closed.

    A closed client connection lingers in TIME_WAIT, so a source that reconnected on every poll would
    leave one port per poll here. ``states`` are /proc's hex TCP states (default ESTABLISHED, TIME_WAIT).
    """
    ports: set[int] = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            # 01 ESTABLISHED, 06 TIME_WAIT; 0100007F is 127.0.0.1 in /proc's byte order
            if remote == f"0100007F:{server_port:04X}" and state in states:
                ports.add(int(local.split(":")[1], 16))
    return ports


class _Address:
    """Just enough of a NutServer for make_source: where to connect."""

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.ups_name = "ups1"


class _ScriptedServer:
    """A TCP server that answers every line it receives with ``OK`` (login) or ``answer`` (anything else)."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        port: int = self._listener.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                if line.startswith((b"USERNAME", b"PASSWORD")):
                    stream.write(b"OK\n")
                elif line.startswith(b"LOGOUT"):
                    return
                else:
                    stream.write(self._answer)
                stream.flush()


class _HostileLoginServer:
    """Answers every line with bytes that are not ASCII (no upsd does), on as many connections as come."""

    def __init__(self, answer: bytes = b"\xff\xfe ERR \xc3\xa4\n") -> None:
        self._answer = answer
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        port: int = self._listener.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(5)
            with conn, conn.makefile("rwb") as stream, contextlib.suppress(OSError):
                for _line in stream:
                    stream.write(self._answer)
                    stream.flush()


def test_a_login_answered_with_non_ascii_bytes_is_a_source_error_then_a_backoff(
    make_source: MakeSource, clock: FakeClock
) -> None:
    # Finding 11 of issue 13: PyNUTClient decodes a refused USERNAME as ASCII; the UnicodeDecodeError escaped
    # poll() and killed the daemon (systemd restarted it into the same crash every 5 s).
    hostile = _HostileLoginServer()
    with hostile as port:
        source = make_source(_Address(port), username="monitor", password="hunter2", backoff_initial_s=2.0)
        first = poll_error(source)
        assert "not NUT's protocol" in first and "retrying in 2 s" in first
        assert "hunter2" not in first
        assert "retrying in" in poll_error(source)  # within the backoff: no new connection
        assert hostile.connections == 1
        clock.advance(2.0)
        assert "retrying in 4 s" in poll_error(source)  # tried again, failed again, waits longer
        assert hostile.connections == 2
