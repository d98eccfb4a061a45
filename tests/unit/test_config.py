"""Configuration: every bad line gets the file, the key, what is wrong and what is expected."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from piclusterd.config.cluster_key import create_key_file
from piclusterd.config.model import Mode, Secret
from piclusterd.config.parse import load_config, parse_config
from piclusterd.config.settings import cluster_settings, settings_from_config
from piclusterd.core.errors import ConfigError, ConfigInvalid
from piclusterd.core.plan_values import GiveUpNoncritical
from piclusterd.node.daemon import policy_from_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "piclusterd.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "piclusterd.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value).splitlines()


def test_defaults_from_an_empty_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.mode is Mode.DRY_RUN
    assert config.node.name  # the host name
    assert (config.ups.host, config.ups.port, config.ups.poll_interval_s) == ("127.0.0.1", 3493, 1.0)
    assert config.policy.critical_runtime_s == 300
    assert config.shutdown.command == ("systemctl", "poweroff")


def test_the_shipped_example_is_valid_and_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    parse_config(data, str(EXAMPLE))
    from piclusterd.config.schema import SCHEMA, TOP

    for key in TOP:
        assert f"\n{key} =" in text or f"\n# {key} =" in text, key
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text, section
        for key in keys:
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"{section}.{key} is not documented"


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, '[ups]\npol_interval = "2s"\n')
    assert line.startswith(f"{tmp_path}/piclusterd.toml: ups.pol_interval: unknown key (did you mean 'poll_interval'?)")


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "[polcy]\n")
    assert "polcy: unknown key (did you mean 'policy'?)" in line


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[ups]\npoll_interval = "2 minutes"', "ups.poll_interval", 'a duration such as "90s"'),
        ("[ups]\npoll_interval = 2", "ups.poll_interval", 'a duration such as "90s"'),
        ("[ups]\nport = 70000", "ups.port", "a whole number from 1 to 65535"),
        ('[ups]\nport = "3493"', "ups.port", "a whole number from 1 to 65535"),
        ('mode = "on"', "mode", '"dry-run", "enforce"'),
        ('[shutdown]\ncommand = "systemctl poweroff"', "shutdown.command", "a list of strings"),
        ('[shutdown]\nfull_shutdown_hook = "k3s etcd-snapshot save"', "shutdown.full_shutdown_hook", "[] (none)"),
        ('[shutdown]\nfull_shutdown_wait = "2 hours"', "shutdown.full_shutdown_wait", "a duration"),
        ('[shutdown]\nups_shutdown_return = "yes"', "shutdown.ups_shutdown_return", "true or false"),
        ("[policy]\nlow_charge = 120", "policy.low_charge", "a number from 0 to 100"),
        ('[policy]\ncritical_runtime = "20m"', "policy.critical_runtime", "critical_runtime <= low_runtime"),
        (
            '[shutdown]\nfull_shutdown_wait = "5m"',
            "shutdown.full_shutdown_wait",
            "full_shutdown_wait < critical_runtime",
        ),
        ('[ups]\nstale_after = "1s"', "ups.stale_after", "stale_after >= 2 x poll_interval"),
        ('[battery]\ntopology = "per-node"', "battery.node_capacity_wh", "2 x 18650 3.6 V 3.0 Ah = 21.6 Wh"),
        ('[battery]\ntopology = "solar"', "battery.topology", '"per-node"'),
        ('[cluster]\npower_record_max_age = "30s"', "cluster.power_record_max_age", "power_record_max_age >= 2 min"),
        ('[ups]\nusername = "monuser"', "ups.password_file", "root-only password file"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, text: str, key: str, expected: str) -> None:
    (line,) = problems(tmp_path, text + "\n")
    assert f": {key}: " in line
    assert expected in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    lines = problems(tmp_path, '[ups]\nport = 0\npoll_interval = "x"\n[policy]\nlow_charge = -1\n')
    assert len(lines) == 3


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "[ups\nport = 1\n")
    assert "is not valid TOML" in line and "line 1" in line


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found; expected a configuration file"):
        load_config(tmp_path / "nope.toml")


def test_password_is_read_from_its_own_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "nut.password"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o600)
    config = load_config(write(tmp_path, f'[ups]\nusername = "mon"\npassword_file = "{secret}"\n'))
    assert config.ups.password == Secret("s3cret")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.summary())


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "nut.password"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    (line,) = problems(tmp_path, f'[ups]\nusername = "mon"\npassword_file = "{secret}"\n')
    assert "can be read by other users (mode 0644)" in line and f"chmod 600 {secret}" in line
    assert "s3cret" not in line


def test_config_invalid_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_config({"mode": "x"}, "f")
    try:
        parse_config({"mode": "x", "ups": {"port": 0}}, "f")
    except ConfigInvalid as error:
        assert len(error.problems) == 2


def test_hat_profile_is_resolved_and_checked(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[ups]\ndriver = "hat"\n[hat]\nprofile = "geekworm-x1200"\nlow_battery = 15\n')
    )
    assert config.hat.profile is not None and config.hat.profile.low_battery_pct == 15
    (line,) = problems(tmp_path, '[ups]\ndriver = "hat"\n[hat]\nprofile = "geekworm-x120"\n')
    assert "hat.profile" in line and "did you mean 'geekworm-x120" in line


def test_generic_hat_needs_its_chip_and_explicit_pin_level(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, '[ups]\ndriver = "hat"\n[hat]\nprofile = "generic"\n')
    assert "hat.chip: is empty" in line
    config = load_config(
        write(
            tmp_path,
            '[ups]\ndriver = "hat"\n[hat]\nprofile = "generic"\nchip = "max17048"\naddress = 0x36\n'
            'power_loss_pin = 6\npower_lost_level = "low"\npower_loss_pull = "up"\n',
        )
    )
    assert config.hat.profile is not None and config.hat.profile.power_loss is not None


@pytest.mark.parametrize(
    ("written", "drivers"),
    [('"nut"', ("nut",)), ('"hat"', ("hat",)), ('["nut", "hat"]', ("nut", "hat")), ('["hat"]', ("hat",))],
)
def test_ups_driver_is_one_name_or_a_list(tmp_path: Path, written: str, drivers: tuple[str, ...]) -> None:
    config = load_config(write(tmp_path, f'[ups]\ndriver = {written}\n[hat]\nprofile = "geekworm-x1200"\n'))
    assert config.ups.drivers == drivers
    assert config.summary()["ups.drivers"] == list(drivers)
    assert config.ups.driver == "+".join(drivers)


@pytest.mark.parametrize("written", ["[]", '["nut", "nut"]', '["nut", "usb"]', '"nut,hat"', "1", '[["nut"]]'])
def test_a_bad_driver_list_names_the_key_and_what_is_expected(tmp_path: Path, written: str) -> None:
    (line,) = problems(tmp_path, f"[ups]\ndriver = {written}\n")
    assert line.startswith(f"{tmp_path}/piclusterd.toml: ups.driver: invalid value")
    assert 'or a list of them such as ["nut", "hat"] (each once)' in line


def test_a_driver_list_with_hat_needs_a_hat_profile(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, '[ups]\ndriver = ["nut", "hat"]\n')
    assert 'hat.profile: is empty but ups.driver includes "hat"' in line


def test_the_full_shutdown_keys_default_to_a_bounded_wait_and_no_ups_cut(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    shutdown = config.shutdown
    assert shutdown.full_shutdown_wait_s == 180.0 and shutdown.drain_timeout_s == 30.0
    assert shutdown.full_shutdown_hook == () and shutdown.ups_shutdown_return is False
    assert shutdown.ups_off_delay_s == 10.0  # counted from the hook at the very end of the halt
    hooked = load_config(write(tmp_path, '[shutdown]\nfull_shutdown_hook = ["k3s", "etcd-snapshot", "save"]\n'))
    assert hooked.shutdown.full_shutdown_hook == ("k3s", "etcd-snapshot", "save")


@pytest.mark.parametrize(
    ("text", "wired"),
    [
        ("", False),  # off by default: cutting a UPS's output is for a UPS that feeds only the cluster
        ("[shutdown]\nups_shutdown_return = true\n", True),
        (
            '[ups]\ndriver = "hat"\n[hat]\nprofile = "waveshare-ups-hat-b"\n[shutdown]\nups_shutdown_return = true\n',
            False,
        ),
    ],
)
def test_the_ups_shutdown_return_is_wired_only_when_asked_for_and_through_nut(
    tmp_path: Path, text: str, wired: bool
) -> None:
    from piclusterd.cli import ups_shutdown_return
    from piclusterd.config.settings import ups_return_settings

    settings = ups_return_settings(load_config(write(tmp_path, text)))
    assert (ups_shutdown_return(settings, "pi1") is not None) is wired


def test_the_planner_counts_runtime_until_the_nodes_shut_down(tmp_path: Path) -> None:
    """The shutdown level ([battery] shutdown_charge, [policy] critical_runtime) reaches the planner's battery,
    and a per-node battery with its topology reaches the controller."""
    from piclusterd.config.settings import settings_from_config
    from piclusterd.core.node_batteries import Topology

    text = (
        '[battery]\ncapacity_wh = 256\nshutdown_charge = 15\ntopology = "mixed"\nnode_capacity_wh = 21.6\n'
        '[policy]\ncritical_runtime = "4m"\n[cluster]\npower_record_max_age = "2m"\n'
    )
    settings = settings_from_config(load_config(write(tmp_path, text)))
    assert (settings.battery.shutdown_charge_pct, settings.battery.shutdown_runtime_s) == (15.0, 240.0)
    assert settings.node_battery is not None and settings.node_battery.capacity_wh == 21.6
    assert settings.topology is Topology.MIXED and settings.power_record_max_age_s == 120.0
    # With a HAT configured, a node on its own battery shuts down at the HAT's LB, not the shared UPS's.
    hat = '[ups]\ndriver = ["nut", "hat"]\n[hat]\nprofile = "geekworm-x1200"\nlow_battery = 30\n'
    on_hats = settings_from_config(load_config(write(tmp_path, text + hat)))
    assert on_hats.node_battery is not None and on_hats.node_battery.shutdown_charge_pct == 30.0
    assert on_hats.battery.shutdown_charge_pct == 15.0
    default = settings_from_config(load_config(write(tmp_path, "[battery]\ncapacity_wh = 84\n")))
    assert default.battery.shutdown_charge_pct == 20.0 and default.topology is None and default.node_battery is None


def test_election_timings_are_read_and_their_order_is_checked(tmp_path: Path) -> None:
    create_key_file(str(tmp_path / "cluster.key"))
    cluster = (
        f'[battery]\ncapacity_wh = 84\n[cluster]\nenabled = true\nkey_file = "{tmp_path}/cluster.key"\n'
        'lease_duration = "4s"\n'
    )
    config = load_config(write(tmp_path, cluster + 'renew_deadline = "3s"\n'))
    assert (config.cluster.lease_duration_s, config.cluster.renew_deadline_s) == (4, 3.0)
    [problem] = problems(tmp_path, cluster + 'renew_deadline = "5s"\n')
    assert "cluster.renew_deadline: is 5 s with lease_duration 4 s" in problem
    assert "lease_duration > renew_deadline > 1.2 x the retry period" in problem


def test_the_lease_is_renewed_once_per_retry_period_not_once_per_poll(tmp_path: Path) -> None:
    """Issue 17: the daemon renewed the Lease once per poll (1 s), twice client-go's RetryPeriod (2 s)."""
    create_key_file(str(tmp_path / "cluster.key"))
    cluster = f'[battery]\ncapacity_wh = 84\n[cluster]\nenabled = true\nkey_file = "{tmp_path}/cluster.key"\n'
    assert cluster_settings(load_config(write(tmp_path, cluster))).election.retry_period_s == 2.0
    slow_polls = '[ups]\npoll_interval = "5s"\n' + cluster
    assert cluster_settings(load_config(write(tmp_path, slow_polls))).election.retry_period_s == 5.0
    [problem] = problems(tmp_path, cluster + 'retry_period = "9s"\n')
    assert "a retry period of 9 s" in problem


def test_give_up_noncritical_names_when_pods_may_be_left_pending(tmp_path: Path) -> None:
    """Issue 16: "when-needed" by default; the choice reaches the leader's planner policy; a typo is refused."""
    cluster = f'[battery]\ncapacity_wh = 84\n[cluster]\nenabled = true\nkey_file = "{tmp_path}/cluster.key"\n'
    create_key_file(str(tmp_path / "cluster.key"))
    default = settings_from_config(load_config(write(tmp_path, cluster)))
    assert default.policy.give_up_noncritical is GiveUpNoncritical.WHEN_NEEDED
    never = settings_from_config(load_config(write(tmp_path, cluster + 'give_up_noncritical = "never"\n')))
    assert never.policy.give_up_noncritical is GiveUpNoncritical.NEVER
    (line,) = problems(tmp_path, cluster + 'give_up_noncritical = "sometimes"\n')
    assert "cluster.give_up_noncritical" in line and "when-needed" in line


def test_low_battery_confirm_is_auto_or_a_duration(tmp_path: Path) -> None:
    """auto: the daemon confirms OB + LB for [shutdown] full_shutdown_wait; "0s": at once, as upsmon does."""
    auto, _ = policy_from_config(load_config(write(tmp_path, '[shutdown]\nfull_shutdown_wait = "2m"\n')))
    assert auto.lb_confirm_s == auto.orderly_shutdown_s == 120.0
    now, _ = policy_from_config(load_config(write(tmp_path, '[policy]\nlow_battery_confirm = "0s"\n')))
    assert now.lb_confirm_s == 0.0
    (line,) = problems(tmp_path, '[policy]\nlow_battery_confirm = "soon"\n')
    assert "policy.low_battery_confirm" in line and '"auto" or a duration' in line
