"""nut-outlet: a node's UPS/PDU outlet switched through upsd, against the protocol-faithful NutEmulator.

(The same backend against the real upsd, whose dummy-ups has no outlets, is in tests/nut/.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.cluster.power_on_backends import (
    NodePower,
    NutOutletPower,
    PowerOutcome,
    _quote_word,
    _unquote_word,
    request_ups_shutdown_return,
)
from piclusterd.core.errors import ConfigError
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import DriverState, EmulatedUser, NutEmulator, tokenize

_NODES = {"pi2": 2, "pi3": 3, "pi7": 7}  # outlet 3 is not switchable; the UPS has no outlet 7


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ups(clock: FakeClock) -> Iterator[NutEmulator]:
    with NutEmulator(clock=clock, outlets={1: True, 2: True, 3: False}) as emulator:
        yield emulator


def _power(ups: NutEmulator, *, username: str | None = "admin", password: str | None = "secret") -> NutOutletPower:
    return NutOutletPower(ups.host, ups.port, ups.ups_name, _NODES, username, password, 5.0)


def test_it_is_a_node_power_backend_named_nut_outlet(ups: NutEmulator) -> None:
    power: NodePower = _power(ups)
    assert power.name == "nut-outlet"


def test_power_off_switches_the_outlet_off(ups: NutEmulator) -> None:
    result = _power(ups).power_off("pi2")
    assert result.outcome is PowerOutcome.DONE, result
    assert result.detail == f"outlet.2.load.off on {ups.address}: outlet.2.status = off"
    assert ups.outlet_is_on(2) is False
    assert ups.outlet_is_on(1) is True  # the neighbour is untouched
    assert [(r.user, r.command) for r in ups.received] == [("admin", "outlet.2.load.off")]


def test_power_on_switches_the_outlet_back_on(ups: NutEmulator) -> None:
    power = _power(ups)
    power.power_off("pi2")
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.DONE, result
    assert ups.outlet_is_on(2) is True
    assert ups.commands() == ["outlet.2.load.off", "outlet.2.load.on"]


def test_is_powered_reads_the_outlet_status(ups: NutEmulator) -> None:
    power = _power(ups)
    assert power.is_powered("pi2") is True
    power.power_off("pi2")
    assert power.is_powered("pi2") is False


def test_a_status_the_driver_has_not_updated_yet_is_sent_not_done(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, outlets={2: True}, status_lag_s=2.0) as ups:
        power = _power(ups)
        result = power.power_off("pi2")
        assert result.outcome is PowerOutcome.SENT, result
        assert result.detail.endswith("(driver: success); outlet.2.status is still 'on'")
        assert power.is_powered("pi2") is True  # never guessed from the command
        clock.advance(2.0)
        assert power.is_powered("pi2") is False


def test_without_tracking_a_lagging_status_is_sent_and_says_untracked(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, outlets={2: True}, status_lag_s=2.0, tracking=False) as ups:
        result = _power(ups).power_off("pi2")
        assert result.outcome is PowerOutcome.SENT, result
        assert "(driver: not tracked)" in result.detail


@pytest.mark.parametrize("tracking", [True, False])
def test_a_command_the_device_fails_is_a_failure_not_sent(clock: FakeClock, tracking: bool) -> None:
    """The UPS's whole output is off: no outlet can come on. upsd says OK (tracked) or ERR INSTCMD-FAILED."""
    with NutEmulator(clock=clock, outlets={2: True}, status_lag_s=1.0, tracking=tracking) as ups:
        ups.drive_output(on=False)
        result = _power(ups).power_on("pi2")
        assert result.outcome is PowerOutcome.FAILED, result
        if tracking:  # upsd said OK TRACKING; GET TRACKING gave the driver's verdict
            assert result.detail.endswith(
                "outlet.2.load.on on " + ups.address + ": the driver failed it (ERR INSTCMD-FAILED)"
            )
        else:  # upsd passed the driver's refusal on at once
            assert result.detail.endswith("outlet.2.load.on on " + ups.address + ": upsd answered ERR INSTCMD-FAILED")
        assert ups.received[-1].done is False


@pytest.mark.parametrize("driver", [DriverState.GONE, DriverState.STALE])
def test_a_ups_driver_without_live_data_fails_and_is_powered_is_unknown(ups: NutEmulator, driver: DriverState) -> None:
    ups.drive_driver(driver)
    power = _power(ups)
    result = power.power_off("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert f"upsd has no live data from the UPS's driver (ERR {driver.value})" in result.detail
    assert power.is_powered("pi2") is None
    shutdown = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
    assert shutdown.outcome is PowerOutcome.FAILED and f"ERR {driver.value}" in shutdown.detail
    assert ups.received == []


def test_an_outlet_that_is_not_switchable_is_refused_and_nothing_is_sent(ups: NutEmulator) -> None:
    power = _power(ups)
    for result in (power.power_off("pi3"), power.power_on("pi3")):
        assert result.outcome is PowerOutcome.REFUSED, result
        assert "outlet 3" in result.detail and "not switchable" in result.detail
        assert "outlet.3.switchable = 'no'" in result.detail
    assert ups.received == []
    assert ups.outlet_is_on(3) is True


def test_an_outlet_the_ups_does_not_have_is_refused(ups: NutEmulator) -> None:
    result = _power(ups).power_on("pi7")
    assert result.outcome is PowerOutcome.REFUSED, result
    assert f"{ups.address} has no outlet 7" in result.detail
    assert ups.received == []
    assert _power(ups).is_powered("pi7") is None


def test_an_unknown_node_is_refused_without_connecting(ups: NutEmulator) -> None:
    power = _power(ups)
    result = power.power_off("pi9")
    assert result.outcome is PowerOutcome.REFUSED
    assert result.detail == "nut-outlet: no outlet configured for pi9"
    assert power.is_powered("pi9") is None
    assert ups.received == []


def test_a_wrong_password_fails_with_the_upsd_users_fix(ups: NutEmulator) -> None:
    result = _power(ups, password="wrong").power_off("pi2")
    assert result.outcome is PowerOutcome.FAILED, result
    assert "upsd denied INSTCMD to user 'admin'" in result.detail
    assert "`instcmds = outlet.2.load.off`" in result.detail
    assert ups.outlet_is_on(2) is True
    assert ups.received == []


def test_a_user_allowed_only_power_on_cannot_power_off(clock: FakeClock) -> None:
    users = {"restore": EmulatedUser("pw", actions=frozenset(), instcmds=("outlet.2.load.on",))}
    with NutEmulator(clock=clock, outlets={2: True}, users=users) as ups:
        power = _power(ups, username="restore", password="pw")
        off = power.power_off("pi2")
        assert off.outcome is PowerOutcome.FAILED and "`instcmds = outlet.2.load.off`" in off.detail
        ups.drive_output(on=False)
        ups.drive_output(on=True)
        assert power.power_on("pi2").outcome is PowerOutcome.DONE
        assert ups.commands() == ["outlet.2.load.on"]


def test_without_credentials_upsd_asks_for_a_user(ups: NutEmulator) -> None:
    result = _power(ups, username=None, password=None).power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert "set username and password" in result.detail
    assert ups.received == []


def test_a_wrong_ups_name_fails_and_says_so(ups: NutEmulator) -> None:
    power = NutOutletPower(ups.host, ups.port, "pdu9", _NODES, "admin", "secret", 5.0)
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert "upsd serves no UPS by that name" in result.detail
    assert power.is_powered("pi2") is None


def test_upsd_down_is_a_failed_result_not_an_exception(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, outlets={2: True}) as ups:
        host, port = ups.host, ups.port
    power = NutOutletPower(host, port, "ups1", _NODES, "admin", "secret", 5.0)
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert result.detail.startswith(f"nut-outlet: cannot talk to upsd at {host}:{port}: ")
    assert "refused" in result.detail
    assert power.is_powered("pi2") is None


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A port that takes connections (the kernel completes them from the backlog) and never answers: a hung upsd."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield "127.0.0.1", server.getsockname()[1]


def test_a_hung_upsd_fails_after_the_timeout(silent_server: tuple[str, int]) -> None:
    host, port = silent_server
    power = NutOutletPower(host, port, "ups1", _NODES, "admin", "secret", 0.2)
    result = power.power_off("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert "timed out" in result.detail
    assert power.is_powered("pi2") is None


@pytest.fixture
def hangs_up_after_password() -> Iterator[tuple[str, int]]:
    """A server that answers like upsd up to the PASSWORD line, then closes the connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as lines:
            for raw in lines:
                if raw.startswith(b"PASSWORD"):
                    return
                if raw.startswith(b"GET VAR"):
                    conn.sendall(b'VAR ups1 outlet.2.switchable "yes"\n')
                else:
                    conn.sendall(b"OK\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield "127.0.0.1", server.getsockname()[1]
    thread.join(timeout=10)
    server.close()


def test_a_connection_lost_after_the_password_never_shows_the_password(
    hangs_up_after_password: tuple[str, int],
) -> None:
    host, port = hangs_up_after_password
    power = NutOutletPower(host, port, "ups1", _NODES, "admin", "s3cr3t-Pa55", 5.0)
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert result.detail.endswith("upsd closed the connection (or sent an endless line) after PASSWORD")
    assert "s3cr3t" not in result.detail


@pytest.fixture
def not_nut() -> Iterator[tuple[str, int]]:
    """A server on the port that speaks something else (an HTTP server on 3493 by mistake)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines, contextlib.suppress(OSError):  # the client may hang up first
                for _line in lines:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield "127.0.0.1", server.getsockname()[1]
    server.close()
    thread.join(timeout=10)


def test_a_server_that_is_not_upsd_is_a_failure_not_a_guess(not_nut: tuple[str, int]) -> None:
    host, port = not_nut
    power = NutOutletPower(host, port, "ups1", _NODES, "admin", "secret", 5.0)
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert result.detail.endswith("GET VAR outlet.2.switchable: upsd answered 'HTTP/1.1 400 Bad Request'")
    assert power.is_powered("pi2") is None


def test_an_odd_outlet_status_is_not_guessed(ups: NutEmulator) -> None:
    ups.set("outlet.2.status", "unknown")
    assert _power(ups).is_powered("pi2") is None


def test_a_switchable_value_other_than_yes_is_refused(ups: NutEmulator) -> None:
    ups.set("outlet.2.switchable", "maybe")
    result = _power(ups).power_off("pi2")
    assert result.outcome is PowerOutcome.REFUSED and "outlet.2.switchable = 'maybe'" in result.detail
    assert ups.received == []


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"host": ""}, "host"),
        ({"ups": "my ups"}, "ups"),
        ({"ups": "ups#1"}, "ups"),  # unquoted, upsd would read "ups" and a comment
        ({"ups": "a=b"}, "ups"),
        ({"ups": "üps"}, "ups"),
        ({"ups": ""}, "ups"),
        ({"outlets": {"pi2": -1}}, "pi2.outlet"),
        ({"outlets": {"pi2": 0}}, "pi2.outlet"),  # outlet.0 is the whole UPS output
        ({"outlets": {"pi2": True}}, "pi2.outlet"),
        ({"username": None}, "username"),
        ({"password": None}, "password"),
        ({"password": "a\nb"}, "password"),
        ({"password": "pässword"}, "password"),  # upsd would drop the ä: it could never match
        ({"username": "ad\tmin"}, "username"),
        ({"timeout_s": 0.0}, "timeout"),
    ],
)
def test_bad_configuration_names_the_key(kwargs: dict[str, object], key: str) -> None:
    arguments: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 3493,
        "ups": "ups1",
        "outlets": {"pi2": 2},
        "username": "admin",
        "password": "secret",
        "timeout_s": 5.0,
    }
    arguments.update(kwargs)
    with pytest.raises(ConfigError) as raised:
        NutOutletPower(**arguments)  # type: ignore[arg-type]
    assert raised.value.key == key
    assert str(raised.value).startswith(f"node_power: {key}: ")


def test_two_nodes_on_one_outlet_are_refused_when_configured() -> None:
    with pytest.raises(ConfigError) as raised:
        NutOutletPower("127.0.0.1", 3493, "ups1", {"pi2": 2, "pi3": 2}, "admin", "secret", 5.0)
    assert raised.value.key == "pi3.outlet"
    assert "outlet 2 also feeds pi2: switching it for one node would cut both" in str(raised.value)


_WORDS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16)  # what upsd keeps


@given(st.lists(_WORDS, min_size=1, max_size=5))
def test_what_nut_outlet_quotes_the_emulator_reads_back_whole(words: list[str]) -> None:
    """parse(render(x)) == x across the two sides: a password with any characters arrives verbatim."""
    assert tokenize(" ".join(_quote_word(word) for word in words)) == words


@given(_WORDS)
def test_nut_outlet_unquotes_a_quoted_value(value: str) -> None:
    assert _unquote_word(_quote_word(value)) == value


def test_a_password_with_spaces_and_quotes_is_sent_quoted(clock: FakeClock) -> None:
    users = {"admin": EmulatedUser('pass "word" \\ #x')}
    with NutEmulator(clock=clock, outlets={2: True}, users=users) as ups:
        result = _power(ups, password='pass "word" \\ #x').power_off("pi2")
        assert result.outcome is PowerOutcome.DONE, result


# --- asking the UPS to cut its output and come back with mains ----------------------------------------


def test_shutdown_return_sets_the_delay_then_cuts_and_restores_with_mains(ups: NutEmulator, clock: FakeClock) -> None:
    ups.drive_mains(online=False)
    result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
    assert result.outcome is PowerOutcome.SENT, result
    assert result.node == "ups1"
    assert result.detail == (
        f"{ups.address}: set ups.delay.shutdown to 30 s; "
        "sent shutdown.return (driver: success): output off in 30 s, back on when mains returns"
    )
    assert [(r.kind, r.command, r.value) for r in ups.received] == [
        ("SET VAR", "ups.delay.shutdown", "30"),
        ("INSTCMD", "shutdown.return", None),
    ]
    assert ups.get("ups.timer.shutdown") == "30"
    clock.advance(29.5)
    assert ups.get("ups.timer.shutdown") == "1"
    assert ups.outlet_is_on(1)
    clock.advance(0.5)
    assert not ups.outlet_is_on(1) and not ups.outlet_is_on(2)
    assert ups.get("ups.status") == "OB DISCHRG OFF"
    ups.drive_mains(online=True)
    assert ups.outlet_is_on(1) and ups.outlet_is_on(2)
    assert ups.get("ups.status") == "OL"


def test_shutdown_return_on_an_upsd_without_tracking_says_it_is_untracked(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, tracking=False) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.SENT, result
        assert "sent shutdown.return (driver: not tracked)" in result.detail
        assert ups.get("ups.timer.shutdown") == "30"


def test_a_read_only_delay_uses_the_ups_own_and_says_so(clock: FakeClock) -> None:
    # The UPS's fixed 20 s covers the 15 s this node needs to halt.
    with NutEmulator(clock=clock, read_only=["ups.delay.shutdown"], shutdown_delay_s=20) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 15, 5.0)
        assert result.outcome is PowerOutcome.SENT, result
        assert "ups.delay.shutdown is not writable" in result.detail
        assert "output off in the UPS's own delay (20 s)" in result.detail
        assert ups.commands() == ["shutdown.return"]
        assert ups.get("ups.timer.shutdown") == "20"


def test_a_read_only_delay_shorter_than_the_halt_is_refused_and_nothing_is_sent(clock: FakeClock) -> None:
    # The UPS would cut this node's power 5 s from now, while it needs 30 s to halt: never sent.
    with NutEmulator(clock=clock, read_only=["ups.delay.shutdown"], shutdown_delay_s=5) as ups:
        ups.drive_mains(online=False)
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.REFUSED, result
        assert "own ups.delay.shutdown (5 s, not writable) is shorter than the 30 s this node needs" in result.detail
        assert ups.commands() == []
        clock.advance(60)
        assert ups.outlet_is_on(1) and ups.get("ups.timer.shutdown") == "-1"


def test_a_delay_the_ups_refuses_is_refused_and_nothing_is_sent(clock: FakeClock) -> None:
    # upsd answers OK to the SET at once; only TRACKING shows the device kept its own 20 s, short of the 600 s.
    with NutEmulator(clock=clock, max_shutdown_delay_s=300) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 600, 5.0)
        assert result.outcome is PowerOutcome.REFUSED, result
        assert "the UPS refused ups.delay.shutdown = 600 s (ERR INVALID-ARGUMENT)" in result.detail
        assert ups.commands() == [] and ups.get("ups.delay.shutdown") == "20"
        assert ups.get("ups.timer.shutdown") == "-1"


def test_without_tracking_a_set_delay_is_said_to_be_unconfirmed(clock: FakeClock) -> None:
    # upsd < 2.8 cannot say whether the device took the delay: the result must not claim it did.
    with NutEmulator(clock=clock, tracking=False, max_shutdown_delay_s=300) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 600, 5.0)
        assert result.outcome is PowerOutcome.SENT, result
        assert "set ups.delay.shutdown to 600 s (driver: not tracked)" in result.detail
        assert ups.get("ups.delay.shutdown") == "20"  # what "not tracked" warns of


def test_a_ups_without_a_delay_variable_uses_its_own_and_says_so(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, shutdown_delay_s=15) as ups:
        ups.delete("ups.delay.shutdown")
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.SENT, result
        assert result.detail == (
            f"{ups.address}: ups.delay.shutdown is not writable; "
            "sent shutdown.return (driver: success): output off in the UPS's own delay, back on when mains returns"
        )
        assert ups.get("ups.timer.shutdown") == "15"


def test_without_shutdown_return_load_off_delay_is_sent_and_the_result_warns(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, without_commands=["shutdown.return"]) as ups:
        ups.drive_mains(online=False)
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.SENT, result
        assert "sent load.off.delay (driver: success; no shutdown.return on this UPS)" in result.detail
        assert "STAYS OFF when mains returns" in result.detail
        assert ups.commands() == ["load.off.delay"]
        clock.advance(30)
        ups.drive_mains(online=True)
        assert not ups.outlet_is_on(1)  # what the warning says


def test_a_shutdown_return_the_driver_fails_is_a_failure(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, read_only=["ups.delay.shutdown"]) as ups:
        ups.set("ups.delay.shutdown", "soon")  # a delay the device cannot use
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.FAILED, result
        assert "shutdown.return on" in result.detail
        assert "the driver failed it (ERR INSTCMD-FAILED) after: ups.delay.shutdown is not writable" in result.detail
        assert ups.get("ups.timer.shutdown") == "-1"


def test_a_ups_with_neither_command_is_refused_and_nothing_is_changed(clock: FakeClock) -> None:
    with NutEmulator(clock=clock, without_commands=["shutdown.return", "load.off.delay"]) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 30, 5.0)
        assert result.outcome is PowerOutcome.REFUSED, result
        assert "offers neither shutdown.return nor load.off.delay" in result.detail
        assert ups.received == []
        assert ups.get("ups.delay.shutdown") == "20"


def test_shutdown_return_with_a_wrong_password_fails_before_anything_is_done(ups: NutEmulator) -> None:
    result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "wrong", 30, 5.0)
    assert result.outcome is PowerOutcome.FAILED
    assert "upsd denied SET to user 'admin': upsd.users needs `actions = SET`" in result.detail
    assert ups.received == []
    assert ups.get("ups.timer.shutdown") == "-1"


def test_shutdown_return_denied_after_the_delay_was_set_says_what_was_done(clock: FakeClock) -> None:
    users = {"admin": EmulatedUser("secret", instcmds=("load.off",))}
    with NutEmulator(clock=clock, users=users) as ups:
        result = request_ups_shutdown_return(ups.host, ups.port, ups.ups_name, "admin", "secret", 45, 5.0)
        assert result.outcome is PowerOutcome.FAILED
        assert "`instcmds = shutdown.return`" in result.detail
        assert result.detail.endswith("after: set ups.delay.shutdown to 45 s")
        assert ups.get("ups.timer.shutdown") == "-1"


def test_shutdown_return_with_upsd_down_fails(clock: FakeClock) -> None:
    with NutEmulator(clock=clock) as ups:
        host, port = ups.host, ups.port
    result = request_ups_shutdown_return(host, port, "ups1", "admin", "secret", 30, 5.0)
    assert result.outcome is PowerOutcome.FAILED
    assert result.detail.startswith(f"cannot talk to upsd at {host}:{port}: ")


@pytest.mark.parametrize("delay_s", [-1, 0, True, 1.5])
def test_shutdown_return_refuses_a_delay_that_is_not_whole_seconds(ups: NutEmulator, delay_s: object) -> None:
    with pytest.raises(ValueError, match="delay_s must be a whole number of seconds"):
        request_ups_shutdown_return(ups.host, ups.port, "ups1", "admin", "secret", delay_s, 5.0)  # type: ignore[arg-type]
    assert ups.received == []
