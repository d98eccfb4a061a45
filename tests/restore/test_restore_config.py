"""``[restore]`` and ``[node_power.<node>]``: defaults, each method's keys, and errors naming file, key and fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from piclusterd.config.model import GpioRelayMethod, ManualMethod, NutOutletMethod, RtcWakeMethod, WolMethod
from piclusterd.config.parse import load_config, parse_config
from piclusterd.config.schema import NODE_POWER_METHODS
from piclusterd.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "piclusterd.toml"


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "piclusterd.toml"
    path.write_text(text)
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value).splitlines()


def test_restore_defaults_and_manual_for_every_unlisted_node() -> None:
    config = parse_config({}, "x.toml")
    restore = config.restore
    assert (restore.restore_after_s, restore.restore_min_charge_pct, restore.restore_stagger_s) == (120, 50, 30)
    assert restore.restore_if_charge_unknown is False
    assert config.power_method("pi4") == ManualMethod(where="")


def test_restore_keys_are_read() -> None:
    config = parse_config(
        {
            "restore": {
                "restore_after": "5m",
                "restore_min_charge": 70,
                "restore_stagger": "1m",
                "restore_if_charge_unknown": True,
            }
        },
        "x.toml",
    )
    assert config.restore.restore_after_s == 300 and config.restore.restore_min_charge_pct == 70
    assert config.restore.restore_stagger_s == 60 and config.restore.restore_if_charge_unknown is True
    assert config.summary()["restore.restore_after_s"] == 300


def test_every_method_is_read_with_its_keys(tmp_path: Path) -> None:
    password = tmp_path / "outlet.pw"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    config = parse_config(
        {
            "ups": {"host": "10.0.0.5", "port": 3494, "name": "eaton", "timeout": "3s"},
            "node_power": {
                "pi3": {"method": "manual", "where": "rack B, shelf 2"},
                "nas": {"method": "wol", "mac": "DC-A6-32-01-02-03", "broadcast": "192.168.1.255"},
                "pi5b": {"method": "rtc-wake", "recheck": "10m", "wakealarm": "/tmp/wakealarm"},
                "pi4": {"method": "gpio-relay", "via": "pi1", "pin": 17, "active": "low"},
                "pi2": {
                    "method": "nut-outlet",
                    "outlet": 2,
                    "username": "admin",
                    "password_file": str(password),
                },
            },
        },
        "x.toml",
    )
    assert config.power_method("pi3") == ManualMethod("rack B, shelf 2")
    assert config.power_method("nas") == WolMethod("DC-A6-32-01-02-03", "192.168.1.255", 9)
    assert config.power_method("pi5b") == RtcWakeMethod(600.0, "/tmp/wakealarm")
    assert config.power_method("pi4") == GpioRelayMethod("pi1", 17, "low", 0.5)
    outlet = config.power_method("pi2")
    assert isinstance(outlet, NutOutletMethod)
    # Connection keys not given are [ups]'s; the password is read from its own file, never shown.
    assert (outlet.outlet, outlet.host, outlet.port, outlet.ups, outlet.timeout_s) == (2, "10.0.0.5", 3494, "eaton", 3)
    assert outlet.username == "admin" and outlet.password is not None and outlet.password.value == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in repr(config.summary())
    assert config.summary()["node_power.pi2.method"] == "nut-outlet"


def test_nut_outlet_can_name_another_upsd() -> None:
    config = parse_config(
        {"node_power": {"pi2": {"method": "nut-outlet", "outlet": 1, "host": "pdu.lan", "port": 3500, "ups": "pdu"}}},
        "x.toml",
    )
    outlet = config.power_method("pi2")
    assert isinstance(outlet, NutOutletMethod)
    assert (outlet.host, outlet.port, outlet.ups, outlet.username, outlet.password) == (
        "pdu.lan",
        3500,
        "pdu",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("", 'node_power.pi4.method: is missing; expected one of "manual", "wol"'),
        ('method = "wake-on-lan"', "node_power.pi4.method: invalid value 'wake-on-lan'"),
        ('method = "gpio_relay"', "(did you mean 'gpio-relay'?)"),
        ('method = "wol"', 'node_power.pi4.mac: is missing (method = "wol" needs it)'),
        ('method = "wol"\nmac = "dc:a6:32"', "node_power.pi4.mac: invalid value 'dc:a6:32'; expected a MAC address"),
        ('method = "wol"\nmac = "dc:a6:32:01:02:03"\nbroadcast = "lan"', "node_power.pi4.broadcast: invalid value"),
        ('method = "gpio-relay"\nvia = "pi1"', 'node_power.pi4.pin: is missing (method = "gpio-relay" needs it)'),
        (
            'method = "gpio-relay"\nvia = "pi1"\npin = 40',
            "node_power.pi4.pin: invalid value 40; expected a whole number",
        ),
        ('method = "gpio-relay"\nvia = "pi4"\npin = 17', "node_power.pi4.via: is pi4 itself"),
        ('method = "gpio-relay"\nvia = "pi1"\npin = 17\nactive = "up"', 'expected one of "high", "low"'),
        ('method = "rtc-wake"\nrecheck = "10s"', "node_power.pi4.recheck: invalid value '10s'"),
        ('method = "nut-outlet"', 'node_power.pi4.outlet: is missing (method = "nut-outlet" needs it)'),
        ('method = "manual"\nmac = "dc:a6:32:01:02:03"', 'node_power.pi4.mac: unknown key for method = "manual"'),
        ('method = "wol"\nmac = "dc:a6:32:01:02:03"\nbroadcst = "10.0.0.255"', "(did you mean 'broadcast'?)"),
    ],
)
def test_a_bad_node_power_table_names_the_file_the_key_and_the_fix(tmp_path: Path, table: str, expected: str) -> None:
    lines = problems(tmp_path, f"[node_power.pi4]\n{table}\n")
    assert any(line.startswith(f"{tmp_path}/piclusterd.toml: ") and expected in line for line in lines), lines


def test_node_power_must_hold_tables(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, 'node_power = "wol"\n')
    assert "node_power: is not a table; expected [node_power.<node>] tables" in line
    (line,) = problems(tmp_path, '[node_power]\npi4 = "wol"\n')
    assert "node_power.pi4: is not a table" in line


def test_an_outlet_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("x\n")
    password.chmod(0o644)
    lines = problems(
        tmp_path,
        f'[node_power.pi2]\nmethod = "nut-outlet"\noutlet = 1\nusername = "u"\npassword_file = "{password}"\n',
    )
    assert any("node_power.pi2.password_file" in line and "chmod 600" in line for line in lines), lines


def test_restore_keys_are_validated(tmp_path: Path) -> None:
    lines = problems(tmp_path, '[restore]\nrestore_min_charge = 120\nrestore_after = "soon"\nstagger = "1m"\n')
    text = "\n".join(lines)
    assert "restore.restore_min_charge: invalid value 120; expected a number from 0 to 100" in text
    assert "restore.restore_after: invalid value 'soon'" in text
    assert "restore.stagger: unknown key (did you mean 'restore_stagger'?)" in text


def _node_power_part(text: str) -> str:
    return text[text.index("# [node_power.") :]


def test_the_example_documents_every_method_and_key() -> None:
    from piclusterd.config.schema import NODE_POWER

    part = _node_power_part(EXAMPLE.read_text())
    for method in NODE_POWER_METHODS:
        assert f'# method = "{method}"' in part, method
        for key in NODE_POWER[method]:
            assert f"\n# {key} =" in part, f"node_power {method}: {key} is not documented"


def test_the_examples_node_power_tables_are_valid_when_uncommented(tmp_path: Path) -> None:
    part = _node_power_part(EXAMPLE.read_text()).split("\n[", 1)[0]
    tables = "\n".join(re.sub(r"^# ?", "", line) for line in part.splitlines() if line.startswith("#"))
    data = tomllib.loads(tables)
    # The example's password file does not exist here: drop it, it is checked above.
    del data["node_power"]["pi2"]["password_file"]
    del data["node_power"]["pi2"]["username"]
    config = parse_config(data, "example")
    assert {name: m.method for name, m in config.node_power.items()} == {
        "pi3": "manual",
        "nas": "wol",
        "pi5b": "rtc-wake",
        "pi4": "gpio-relay",
        "pi2": "nut-outlet",
    }


def test_check_config_names_the_bad_node_power_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from piclusterd.cli import daemon_main

    path = tmp_path / "piclusterd.toml"
    path.write_text('[node_power.pi4]\nmethod = "gpio-relay"\nvia = "pi1"\npin = 17\n[restore]\nrestore_after = "5m"\n')
    assert daemon_main(["check-config", "--config", str(path)]) == 0
    path.write_text('[node_power.pi4]\nmethod = "gpio-relay"\nvia = "pi1"\n')
    assert daemon_main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f'{path}: node_power.pi4.pin: is missing (method = "gpio-relay" needs it)' in err


def test_an_outlet_login_goes_as_a_pair(tmp_path: Path) -> None:
    lines = problems(tmp_path, '[node_power.pi2]\nmethod = "nut-outlet"\noutlet = 1\nusername = "admin"\n')
    assert any("node_power.pi2.password_file: is empty but username is set" in line for line in lines), lines
    password = tmp_path / "pw"
    password.write_text("x\n")
    password.chmod(0o600)
    config = parse_config(
        {
            "ups": {"username": "upsmon", "password_file": str(password)},
            "node_power": {"pi2": {"method": "nut-outlet", "outlet": 1, "username": ""}},
        },
        "x.toml",
    )
    outlet = config.power_method("pi2")
    assert isinstance(outlet, NutOutletMethod)
    assert (outlet.username, outlet.password) == (None, None)  # no login for this upsd, not [ups]'s half-pair
