"""Config values NUT cannot carry are refused by check-config and run alike, in one line naming the key.

Issue 13, finding 10: these files passed ``check-config`` and then made ``run`` die (a traceback, restarted
every 5 s forever), or exit 2 with the node unprotected. upsd's grammar is in piclusterd.core.nut_words.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from piclusterd.config.parse import load_config
from piclusterd.core.errors import ConfigError
from piclusterd.core.nut_words import host_problem, password_problem, word_problem
from piclusterd.testing.daemon_process import installed_script


def password_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "nut.password"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    return path


def with_password(content: bytes) -> Callable[[Path], str]:
    def text(tmp_path: Path) -> str:
        return f'[ups]\nusername = "monuser"\npassword_file = "{password_file(tmp_path, content)}"\n'

    return text


def outlet_with_password(content: bytes) -> Callable[[Path], str]:
    def text(tmp_path: Path) -> str:
        path = password_file(tmp_path, content)
        return f'[node_power.pi2]\nmethod = "nut-outlet"\noutlet = 2\nusername = "admin"\npassword_file = "{path}"\n'

    return text


def plain(text: str) -> Callable[[Path], str]:
    return lambda _tmp_path: text


BAD_FILES = {
    "host with a trailing space": (plain('[ups]\nhost = "127.0.0.1 "\n'), "ups.host"),
    "UPS name with a space": (plain('[ups]\nname = "my ups"\n'), "ups.name"),
    "non-ASCII host": (plain('[ups]\nhost = "üps.local"\n'), "ups.host"),
    "user name with a quote": (plain('[ups]\nusername = "mon\\"user"\n'), "ups.username"),
    'password with "': (with_password(b'pa"ss\n'), "ups.password_file"),
    "password with a newline inside": (with_password(b"pa\nss\n"), "ups.password_file"),
    "non-ASCII password": (with_password("pässword\n".encode()), "ups.password_file"),
    "password file not UTF-8": (with_password(b"\xff\xfepass\n"), "ups.password_file"),
    "nut-outlet password with ä": (outlet_with_password("geheim-ä\n".encode()), "node_power.pi2.password_file"),
    "nut-outlet host with a space": (
        plain('[node_power.pi2]\nmethod = "nut-outlet"\noutlet = 2\nhost = "pdu 1"\n'),
        "node_power.pi2.host",
    ),
    "500-deep nested TOML": (plain("[ups]\nhost = " + "[" * 500 + "]" * 500 + "\n"), ""),
}


def run_command(command: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_script(), command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC")},
    )


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_check_config_and_run_refuse_the_same_file_in_one_line(tmp_path: Path, case: str) -> None:
    make, key = BAD_FILES[case]
    config = tmp_path / "piclusterd.toml"
    config.write_text(make(tmp_path) + f'[daemon]\nruntime_dir = "{tmp_path}/run"\n', encoding="utf-8")
    for command in ("check-config", "run"):
        done = run_command(command, config)
        assert done.returncode == 2, f"{command}: exit {done.returncode}: {done.stderr[-600:]}"
        (line,) = done.stderr.splitlines()  # one line, never a traceback
        assert str(config) in line and f": {key}: " in line if key else str(config) in line
        assert "Traceback" not in done.stderr


def test_a_password_never_appears_in_the_error(tmp_path: Path) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text(with_password("hünter2\n".encode())(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "nter2" not in str(caught.value) and "holds a password upsd cannot take" in str(caught.value)


def test_a_password_file_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text('[ups]\nusername = "monuser"\npassword_file = "/dev/zero"\n')
    with pytest.raises(ConfigError, match=r"ups\.password_file: /dev/zero is not a regular file"):
        load_config(config)


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config("/dev/zero")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "fe80::1", "ups.local", "nut-server", "UPS_1.lan.", "10.0.0.250"])
def test_hosts_upsd_clients_use_are_accepted(host: str) -> None:
    assert host_problem(host) is None


@pytest.mark.parametrize(
    "host", ["", " ups", "ups ", "üps", "ups.local/24", "-ups", "a..b", "1.2.3", '"ups"', "ups\n", "a" * 254]
)
def test_hosts_that_are_no_address_are_refused(host: str) -> None:
    assert host_problem(host) is not None


@pytest.mark.parametrize("word", ["ups", "ups1", "eaton-5e", "apc_smart.1", "UPS@2", "x" * 512])
def test_ups_and_user_names_as_in_ups_conf_are_accepted(word: str) -> None:
    assert word_problem(word) is None


@pytest.mark.parametrize("word", ["", "my ups", "ups#1", "a=b", 'q"', "back\\slash", "üps", "tab\t", "x" * 513])
def test_words_upsd_would_split_or_change_are_refused(word: str) -> None:
    assert word_problem(word) is not None


@pytest.mark.parametrize("password", ["secret", "with space", "a=b", "p@ss!w0rd$", "~" * 512])
def test_passwords_the_client_can_send_are_accepted(password: str) -> None:
    assert password_problem(password) is None


@pytest.mark.parametrize(
    "password", ["", 'q"uote', "back\\", "hash#tag", "tab\t", "new\nline", "ä", " lead", "trail ", "x" * 513]
)
def test_passwords_upsd_would_receive_changed_are_refused(password: str) -> None:
    assert password_problem(password) is not None
