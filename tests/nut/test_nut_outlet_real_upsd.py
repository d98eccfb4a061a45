"""nut-outlet against the real upsd 2.8.0 + dummy-ups: everything short of switching, which dummy-ups cannot do.

dummy-ups serves outlet variables from its .dev file but offers no outlet command, so these tests pin what
the backend does with a real upsd: reads, refusals, and upsd's own errors turned into results.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from piclusterd.cluster.power_on_backends import NutOutletPower, PowerOutcome, request_ups_shutdown_return
from piclusterd.testing.nut_server import NutServer

_OUTLET_VARIABLES = {
    **NutServer.DEFAULT_VARIABLES,
    "outlet.1.switchable": "no",
    "outlet.1.status": "on",
    "outlet.2.switchable": "yes",
    "outlet.2.status": "off",
}
_NODES = {"pi1": 1, "pi2": 2, "pi5": 5}


@pytest.fixture(scope="module")
def server() -> Iterator[NutServer]:
    with NutServer(_OUTLET_VARIABLES) as running:
        yield running


def _power(server: NutServer, password: str = "secret") -> NutOutletPower:
    return NutOutletPower(server.host, server.port, server.ups_name, _NODES, server.username, password, 10.0)


def test_is_powered_reads_outlet_status_from_upsd(server: NutServer) -> None:
    power = _power(server)
    assert power.is_powered("pi1") is True
    assert power.is_powered("pi2") is False
    assert power.is_powered("pi5") is None


def test_a_switchable_outlet_whose_command_upsd_lacks_fails_naming_upscmd(server: NutServer) -> None:
    result = _power(server).power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED, result
    assert result.detail == (
        f"nut-outlet: outlet.2.load.on on {server.address}: the UPS does not offer outlet.2.load.on (see `upscmd -l`)"
    )


def test_a_fixed_outlet_is_refused_before_upsd_is_asked_anything(server: NutServer) -> None:
    result = _power(server).power_off("pi1")
    assert result.outcome is PowerOutcome.REFUSED
    assert "outlet.1.switchable = 'no'" in result.detail


def test_a_missing_outlet_is_refused(server: NutServer) -> None:
    result = _power(server).power_off("pi5")
    assert result.outcome is PowerOutcome.REFUSED
    assert f"{server.address} has no outlet 5" in result.detail


def test_upsd_checks_the_command_before_the_password(server: NutServer) -> None:
    """So a wrong password is reported as a missing command here: the operator sees upsd's first objection."""
    result = _power(server, password="wrong").power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert "does not offer outlet.2.load.on" in result.detail


def test_shutdown_return_is_refused_by_a_ups_without_it(server: NutServer) -> None:
    result = request_ups_shutdown_return(
        server.host, server.port, server.ups_name, server.username, server.password, 30, 10.0
    )
    assert result.outcome is PowerOutcome.REFUSED, result
    assert "offers neither shutdown.return nor load.off.delay" in result.detail


def test_an_unknown_ups_name_is_a_result(server: NutServer) -> None:
    power = NutOutletPower(server.host, server.port, "nope", _NODES, "admin", "secret", 10.0)
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert "upsd serves no UPS by that name" in result.detail


def test_a_killed_upsd_is_a_failed_result(nut_server: NutServer) -> None:
    power = NutOutletPower(nut_server.host, nut_server.port, "ups1", _NODES, "admin", "secret", 10.0)
    nut_server.kill_upsd()
    result = power.power_on("pi2")
    assert result.outcome is PowerOutcome.FAILED
    assert result.detail.startswith(f"nut-outlet: cannot talk to upsd at {nut_server.host}:{nut_server.port}: ")
    assert power.is_powered("pi2") is None


def test_a_stopped_upsd_fails_after_the_timeout(nut_server: NutServer) -> None:
    power = NutOutletPower(nut_server.host, nut_server.port, "ups1", _NODES, "admin", "secret", 0.3)
    nut_server.pause_upsd()
    try:
        result = power.power_off("pi2")
        powered = power.is_powered("pi2")
    finally:
        nut_server.resume_upsd()
    assert result.outcome is PowerOutcome.FAILED and "timed out" in result.detail
    assert powered is None
