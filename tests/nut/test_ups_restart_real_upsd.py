"""Issue 16: the UPS's restart settings, read from a real upsd at start; set through NUT only when asked."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from piclusterd.config.parse import parse_config
from piclusterd.core.ups_restart import parse_restart_settings, restart_checks
from piclusterd.node.ups_restart_check import check_ups_restart
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut


def config(ups: NutServer, **extra: object) -> object:
    secret = Path(tempfile.mkdtemp()) / "password"
    secret.write_text(ups.password + "\n")
    secret.chmod(0o600)
    return parse_config(
        {
            "node": {"name": "pi1"},
            "ups": {
                "host": ups.host,
                "port": ups.port,
                "name": ups.ups_name,
                "username": ups.username,
                "password_file": str(secret),
                **extra,
            },
            "battery": {"capacity_wh": 84, "load_w": 30},
        },
        "t.toml",
    )


def test_a_ups_that_restarts_below_what_an_orderly_shutdown_needs_is_said_at_start() -> None:
    # critical_runtime 5 min at 30 W of an 84 Wh battery (80 % usable): 2.5 Wh, 3.7 %... with LB at 10 %:
    # a restart at 5 % boots the Pis into LB.
    variables = {
        **NutServer.DEFAULT_VARIABLES,
        "battery.charge.restart": "5",
        "battery.charge.low": "10",
        "ups.delay.start": "30",
    }
    with NutServer(variables) as ups:
        audit = CapturedAudit("pi1")
        check_ups_restart(config(ups), audit.logger)  # type: ignore[arg-type]
    (event,) = audit.named("ups.restart_settings")
    assert event["level"] == "warning"
    assert event["charge_restart"] == 5.0 and event["delay_start_s"] == 30.0
    assert "at or below its own low-battery level" in event["warnings"][0]


def test_nothing_is_written_unless_the_config_says_so() -> None:
    variables = {**NutServer.DEFAULT_VARIABLES, "battery.charge.restart": "5"}
    with NutServer(variables) as ups:
        check_ups_restart(config(ups), CapturedAudit("pi1").logger)  # type: ignore[arg-type]
        assert ups.get("battery.charge.restart") == "5"


def test_set_charge_restart_sets_it_through_upsd() -> None:
    variables = {**NutServer.DEFAULT_VARIABLES, "battery.charge.restart": "5", "ups.delay.start": "0"}
    with NutServer(variables) as ups:
        audit = CapturedAudit("pi1")
        cfg = config(ups, set_charge_restart=40, set_delay_start="30s")
        check_ups_restart(cfg, audit.logger)  # type: ignore[arg-type]
        assert ups.get("battery.charge.restart") == "40"
        assert ups.get("ups.delay.start") == "30"
    assert [e["variable"] for e in audit.named("ups.restart_setting_set")] == [
        "battery.charge.restart",
        "ups.delay.start",
    ]
    assert audit.named("ups.restart_settings")[0]["charge_restart"] == 40.0


@pytest.mark.parametrize(
    ("variables", "needed", "warns"),
    [
        ({}, 20.0, True),  # not exposed: restores at any charge
        ({"battery.charge.restart": "0"}, 20.0, True),
        ({"battery.charge.restart": "15"}, 20.0, True),
        ({"battery.charge.restart": "25"}, 20.0, False),
        ({"battery.charge.restart": "25", "battery.charge.low": "30"}, None, True),
        ({"battery.charge.restart": "nan"}, None, True),  # refused, said
        ({"battery.charge.restart": "500"}, None, True),
    ],
)
def test_restart_checks(variables: dict[str, str], needed: float | None, warns: bool) -> None:
    checks = restart_checks(parse_restart_settings(variables), needed_pct=needed, needed_why="needed")
    assert any(c.verdict.value == "warn" for c in checks) is warns


def test_a_ups_low_battery_level_that_leaves_less_than_the_last_minute_is_said() -> None:
    # 84 Wh x 0.8 usable at 30 W: LB at 1 % leaves about 81 s, less than pods 60 s + OS 90 s.
    variables = {**NutServer.DEFAULT_VARIABLES, "battery.charge.restart": "50", "battery.charge.low": "1"}
    with NutServer(variables) as ups:
        audit = CapturedAudit("pi1")
        check_ups_restart(config(ups), audit.logger)  # type: ignore[arg-type]
    (event,) = audit.named("ups.restart_settings")
    assert any(w.startswith("battery.charge.low: the UPS's low-battery threshold (1 %)") for w in event["warnings"])
