"""NutEmulator's device model and what upsd's contract tests cannot reach (NutServer's one user has no
upsmon role; dummy-ups has no outlets). The upsmon replies here were checked by hand against upsd 2.8.0.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from piclusterd.core.reading import UpsFlag
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import EmulatedUser, NutEmulator, NutEmulatorError, tokenize

from .conftest import pynut

_USERS = {
    "admin": EmulatedUser("secret"),
    "monitor": EmulatedUser("pw", actions=frozenset(), instcmds=(), upsmon="secondary"),
    "primary": EmulatedUser("pw", actions=frozenset(), instcmds=(), upsmon="primary"),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ups(clock: FakeClock) -> Iterator[NutEmulator]:
    with NutEmulator(clock=clock, outlets={1: True, 2: False}, users=_USERS) as emulator:
        yield emulator


class Conn:
    def __init__(self, ups: NutEmulator, user: str | None = None, password: str = "secret") -> None:
        self._sock = socket.create_connection((ups.host, ups.port), timeout=10.0)
        self._stream = self._sock.makefile("rb")
        if user is not None:
            assert self.ask(f"USERNAME {user}") == "OK"
            assert self.ask(f"PASSWORD {password}") == "OK"

    def ask(self, line: str) -> str:
        self._sock.sendall(line.encode() + b"\n")
        first = self._stream.readline().decode().rstrip("\n")
        if not first.startswith("BEGIN "):
            return first
        lines = [first]
        while not lines[-1].startswith("END "):
            lines.append(self._stream.readline().decode().rstrip("\n"))
        return "\n".join(lines)

    def close(self) -> None:
        self._stream.close()
        self._sock.close()


@pytest.fixture
def admin(ups: NutEmulator) -> Iterator[Conn]:
    conn = Conn(ups, "admin")
    yield conn
    conn.close()


# --- the tokenizer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("GET VAR ups1 ups.status", ["GET", "VAR", "ups1", "ups.status"]),
        ('SET VAR ups1 x "a b"', ["SET", "VAR", "ups1", "x", "a b"]),
        ('SET VAR ups1 x "say \\"hi\\""', ["SET", "VAR", "ups1", "x", 'say "hi"']),
        ('SET VAR ups1 x ""', ["SET", "VAR", "ups1", "x", ""]),
        ("  spaced   out\r", ["spaced", "out"]),
        ("", []),
        ('GET VAR "unterminated', None),
    ],
)
def test_tokenize_splits_as_upsd_does(line: str, words: list[str] | None) -> None:
    assert tokenize(line) == words


def test_values_with_quotes_and_backslashes_are_escaped_on_the_wire(ups: NutEmulator, admin: Conn) -> None:
    ups.set("ups.mfr", 'Say "hi" \\ bye')
    assert admin.ask("GET VAR ups1 ups.mfr") == 'VAR ups1 ups.mfr "Say \\"hi\\" \\\\ bye"'
    with pynut(ups.host, ups.port) as client:
        assert client.GetUPSVars("ups1")[b"ups.status"] == b"OL"


# --- outlets ------------------------------------------------------------------------------------------


def test_outlets_are_served_with_their_switchability(admin: Conn) -> None:
    assert admin.ask("GET VAR ups1 outlet.1.switchable") == 'VAR ups1 outlet.1.switchable "yes"'
    assert admin.ask("GET VAR ups1 outlet.2.switchable") == 'VAR ups1 outlet.2.switchable "no"'
    assert admin.ask("GET VAR ups1 outlet.1.status") == 'VAR ups1 outlet.1.status "on"'
    commands = admin.ask("LIST CMD ups1").splitlines()[1:-1]
    assert commands == [
        "CMD ups1 load.off",
        "CMD ups1 load.off.delay",
        "CMD ups1 load.on",
        "CMD ups1 outlet.1.load.cycle",
        "CMD ups1 outlet.1.load.off",
        "CMD ups1 outlet.1.load.on",
        "CMD ups1 outlet.2.load.cycle",
        "CMD ups1 outlet.2.load.off",
        "CMD ups1 outlet.2.load.on",
        "CMD ups1 shutdown.return",
        "CMD ups1 shutdown.stayoff",
    ]


def test_a_fixed_outlet_fails_the_command_and_stays_on(ups: NutEmulator, admin: Conn) -> None:
    assert admin.ask("INSTCMD ups1 outlet.2.load.off") == "ERR INSTCMD-FAILED"
    assert ups.outlet_is_on(2)
    assert [(r.command, r.done) for r in ups.received] == [("outlet.2.load.off", False)]


def test_tracking_reports_a_failed_command(admin: Conn) -> None:
    assert admin.ask("SET TRACKING ON") == "OK"
    reply = admin.ask("INSTCMD ups1 outlet.2.load.off")
    assert reply.startswith("OK TRACKING ")
    assert admin.ask(f"GET TRACKING {reply.split()[2]}") == "ERR INSTCMD-FAILED"
    done = admin.ask("INSTCMD ups1 outlet.1.load.off")
    assert admin.ask(f"GET TRACKING {done.split()[2]}") == "SUCCESS"


def test_outlet_cycle_ends_on_and_is_recorded(ups: NutEmulator, admin: Conn) -> None:
    assert admin.ask("INSTCMD ups1 outlet.1.load.off") == "OK"
    assert admin.ask("INSTCMD ups1 outlet.1.load.cycle") == "OK"
    assert ups.outlet_is_on(1)
    assert ups.commands() == ["outlet.1.load.off", "outlet.1.load.cycle"]


def test_no_outlet_comes_on_while_the_whole_output_is_off(ups: NutEmulator, admin: Conn) -> None:
    assert admin.ask("INSTCMD ups1 load.off") == "OK"
    assert admin.ask("GET VAR ups1 ups.status") == 'VAR ups1 ups.status "OL OFF"'
    assert admin.ask("INSTCMD ups1 outlet.1.load.on") == "ERR INSTCMD-FAILED"
    assert not ups.outlet_is_on(1)
    assert admin.ask("INSTCMD ups1 load.on") == "OK"
    assert ups.outlet_is_on(1) and ups.get("ups.status") == "OL"


def test_a_lagging_status_shows_the_switch_after_the_lag(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, outlets={1: True}, status_lag_s=2.0) as ups:
        conn = Conn(ups, "admin")
        assert conn.ask("INSTCMD ups1 outlet.1.load.off") == "OK"
        assert ups.get("outlet.1.status") == "on"
        clock.advance(1.9)
        assert ups.get("outlet.1.status") == "on"
        clock.advance(0.1)
        assert ups.get("outlet.1.status") == "off"
        conn.close()


# --- delayed shutdowns on the injected clock ------------------------------------------------------------


def test_the_timer_is_idle_at_minus_one(ups: NutEmulator) -> None:
    assert ups.get("ups.timer.shutdown") == "-1"


def test_shutdown_stayoff_keeps_the_output_off_when_mains_returns(
    ups: NutEmulator, admin: Conn, clock: FakeClock
) -> None:
    ups.drive_mains(online=False)
    assert admin.ask("INSTCMD ups1 shutdown.stayoff") == "OK"
    assert ups.get("ups.timer.shutdown") == "20"  # the default ups.delay.shutdown
    clock.advance(20)
    assert ups.get("ups.status") == "OB DISCHRG OFF"
    ups.drive_mains(online=True)
    assert ups.get("ups.status") == "OL OFF"
    assert not ups.outlet_is_on(1)


def test_load_off_delay_takes_its_delay_from_the_command(ups: NutEmulator, admin: Conn, clock: FakeClock) -> None:
    assert admin.ask("INSTCMD ups1 load.off.delay 5") == "OK"
    assert ups.get("ups.timer.shutdown") == "5"
    clock.advance(2.5)
    assert ups.get("ups.timer.shutdown") == "3"  # whole seconds, rounded up
    clock.advance(2.5)
    assert ups.get("ups.timer.shutdown") == "-1"
    assert not ups.outlet_is_on(1)
    assert ups.received[-1].value == "5"


def test_a_garbage_delay_fails_the_command(ups: NutEmulator, admin: Conn) -> None:
    assert admin.ask("INSTCMD ups1 load.off.delay soon") == "ERR INSTCMD-FAILED"
    assert ups.get("ups.timer.shutdown") == "-1"


def test_shutdown_return_with_mains_already_back_power_cycles(ups: NutEmulator, admin: Conn, clock: FakeClock) -> None:
    """The race upsmon's POWERDOWNFLAG is known for: mains back before the cut. The UPS cycles the load."""
    assert admin.ask('SET VAR ups1 ups.delay.shutdown "10"') == "OK"
    assert admin.ask("INSTCMD ups1 shutdown.return") == "OK"
    clock.advance(10)
    assert ups.outlet_is_on(1)
    assert ups.get("ups.status") == "OL"


def test_drive_output_stops_a_running_timer(ups: NutEmulator, admin: Conn, clock: FakeClock) -> None:
    assert admin.ask("INSTCMD ups1 shutdown.return") == "OK"
    ups.drive_output(on=True)
    clock.advance(60)
    assert ups.outlet_is_on(1) and ups.get("ups.timer.shutdown") == "-1"


def test_only_variables_outside_the_model_can_be_deleted(ups: NutEmulator, admin: Conn) -> None:
    ups.delete("battery.voltage")
    assert admin.ask("GET VAR ups1 battery.voltage") == "ERR VAR-NOT-SUPPORTED"
    with pytest.raises(NutEmulatorError, match="part of the modelled device"):
        ups.delete("outlet.1.status")
    with pytest.raises(NutEmulatorError, match=r"no variable nope\.var"):
        ups.delete("nope.var")


def test_piclusterds_nut_driver_reads_the_emulator(ups: NutEmulator, clock: FakeClock) -> None:
    """The daemon's own power source sees mains loss and the output going off after a delayed shutdown."""
    source = NutPowerSource(ups.host, ups.port, ups.ups_name, clock=clock)
    ups.drive_mains(online=False)
    first = source.poll().reading
    assert first is not None and first.flags == frozenset({UpsFlag.OB, UpsFlag.DISCHRG})
    assert first.charge_pct == 100.0
    conn = Conn(ups, "admin")
    assert conn.ask("INSTCMD ups1 shutdown.stayoff") == "OK"
    conn.close()
    clock.advance(20)
    after = source.poll().reading
    source.close()
    assert after is not None and UpsFlag.OFF in after.flags


# --- users and upsmon ---------------------------------------------------------------------------------


def test_a_user_limited_to_some_commands_is_denied_the_rest(clock: FakeClock) -> None:
    users = {"restore": EmulatedUser("pw", instcmds=("outlet.1.load.on",))}
    with NutEmulator(clock=clock, outlets={1: True}, users=users) as ups:
        conn = Conn(ups, "restore", "pw")
        assert conn.ask("INSTCMD ups1 outlet.1.load.off") == "ERR ACCESS-DENIED"
        assert conn.ask("INSTCMD ups1 outlet.1.load.on") == "OK"
        assert conn.ask("INSTCMD ups1 nope") == "ERR CMD-NOT-SUPPORTED"
        conn.close()
        assert ups.commands() == ["outlet.1.load.on"]


def test_an_upsmon_secondary_may_log_in_but_not_be_primary(ups: NutEmulator) -> None:
    conn = Conn(ups, "monitor", "pw")
    assert conn.ask("LOGIN ups1") == "OK"
    assert conn.ask("LOGIN ups1") == "ERR ALREADY-LOGGED-IN"
    assert conn.ask("GET NUMLOGINS ups1") == "NUMLOGINS ups1 1"
    assert conn.ask("LIST CLIENT ups1") == "BEGIN LIST CLIENT ups1\nCLIENT ups1 127.0.0.1\nEND LIST CLIENT ups1"
    assert conn.ask("PRIMARY ups1") == "ERR ACCESS-DENIED"
    assert conn.ask("FSD ups1") == "ERR ACCESS-DENIED"
    assert conn.ask("INSTCMD ups1 load.off") == "ERR ACCESS-DENIED"
    conn.close()


def test_an_upsmon_primary_may_set_fsd_as_pynut_does_it(ups: NutEmulator) -> None:
    with pynut(ups.host, ups.port, login="primary", password="pw") as client:
        assert client.FSD("ups1") == "OK"
        assert ups.get("ups.status") == "FSD OL"
        conn = Conn(ups, "primary", "pw")
        assert conn.ask("MASTER ups1") == "OK MASTER-GRANTED"
        assert conn.ask("SET VAR ups1 ups.load 3") == "ERR ACCESS-DENIED"
        conn.close()


def test_tracking_can_be_turned_off_in_the_emulator(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, tracking=False) as ups:
        conn = Conn(ups, "admin")
        assert conn.ask("SET TRACKING ON") == "ERR FEATURE-NOT-SUPPORTED"
        conn.close()


# --- life cycle and construction ----------------------------------------------------------------------


def test_a_stopped_emulator_refuses_connections(clock: FakeClock) -> None:
    ups = NutEmulator(clock=clock)
    ups.start()
    conn = Conn(ups)
    assert conn.ask("NETVER") == "1.3"  # served: its thread runs
    ups.stop()
    try:
        after_stop = conn.ask("VER")
    except ConnectionError:  # the close reached us as a reset rather than an end of stream
        after_stop = ""
    assert after_stop == ""
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ups.host, ups.port), timeout=5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outlets": {0: True}}, "outlet numbers start at 1"),
        ({"read_only": ["nope.var"]}, "read_only: the emulated UPS has no variable nope.var"),
        ({"without_commands": ["nope.cmd"]}, "without_commands: the emulated UPS has no command"),
        ({"ups_name": "my ups"}, "ups_name must be one word"),
        ({"status_lag_s": -1.0}, "status_lag_s must be >= 0"),
    ],
)
def test_a_bad_model_is_refused_when_built(clock: FakeClock, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NutEmulator(clock=clock, **kwargs)  # type: ignore[arg-type]
