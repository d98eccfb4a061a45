"""The UPS's kill command at the very end of the leader's halt: the flag the full shutdown arms, the
system-shutdown script, and the command on the NUT emulator (byte-for-byte upsd).

The real check (a VM's poweroff running /usr/lib/systemd/system-shutdown/piclusterd-power-cut after the file
systems went read-only) is tests/system/test_vm.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cluster.power_on_backends import PowerOutcome, PowerResult
from piclusterd.cluster.ups_kill import FlagInvalid, UpsKillFlag, UpsKillOrder, main, parse_flag, render_flag
from piclusterd.config.settings import UpsReturnSettings
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.nut_emulator import NutEmulator

SCRIPT = Path(__file__).resolve().parents[2] / "systemd" / "piclusterd-power-cut"
BOOT = "3f1d2c9e8a474b1e9c3a5d6e7f809a1b"


@pytest.fixture
def ups() -> Iterator[NutEmulator]:
    with NutEmulator(clock=FakeClock()) as emulator:
        yield emulator


def order(emulator: NutEmulator, **changes: object) -> UpsKillOrder:
    fields: dict[str, object] = {
        "boot_id": BOOT,
        "node": "pi1",
        "host": emulator.host,
        "port": emulator.port,
        "ups": emulator.ups_name,
        "username": "admin",
        "password": "secret",
        "delay_s": 10,
        "timeout_s": 5.0,
        "peers": (("pi2", "notready"), ("pi3", "acked")),
        "reason": "full shutdown",
    }
    fields.update(changes)
    return UpsKillOrder(**fields)  # type: ignore[arg-type]


def boot_id(tmp_path: Path, value: str = BOOT) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(value + "\n")
    return path


def mounts(tmp_path: Path, root_options: str) -> Path:
    path = tmp_path / "mounts"
    path.write_text(f"proc /proc proc rw 0 0\n/dev/vda / ext4 {root_options},relatime 0 0\n")
    return path


def hook(tmp_path: Path, flag: Path, **kwargs: object) -> tuple[int, str]:
    """The hook's exit status and what it said on stderr (the console, under systemd-shutdown)."""
    import contextlib
    import io

    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        code = main(
            [str(flag)],
            boot_id_path=boot_id(tmp_path),
            mounts=mounts(tmp_path, "ro"),
            sync=lambda: None,
            **kwargs,  # type: ignore[arg-type]
        )
    return code, said.getvalue()


def test_the_hook_sends_shutdown_return_with_its_delay_and_says_the_root_is_read_only(
    tmp_path: Path, ups: NutEmulator
) -> None:
    flag = tmp_path / "ups-kill"
    flag.write_text(render_flag(order(ups)))
    code, said = hook(tmp_path, flag)
    assert code == 0, said
    assert [(r.kind, r.command, r.value) for r in ups.received] == [
        ("SET VAR", "ups.delay.shutdown", "10"),
        ("INSTCMD", "shutdown.return", None),
    ]
    assert "pi1 is the last node (peers: pi2 notready, pi3 acked); root file system ro" in said
    assert "sent: " in said


def test_a_ups_without_shutdown_return_gets_load_off_delay(tmp_path: Path) -> None:
    with NutEmulator(clock=FakeClock(), without_commands=["shutdown.return"]) as ups:
        flag = tmp_path / "ups-kill"
        flag.write_text(render_flag(order(ups)))
        assert hook(tmp_path, flag)[0] == 0
        assert [r.command for r in ups.received] == ["ups.delay.shutdown", "load.off.delay"]


def test_a_flag_from_an_earlier_boot_sends_nothing(tmp_path: Path, ups: NutEmulator) -> None:
    flag = tmp_path / "ups-kill"
    flag.write_text(render_flag(order(ups, boot_id="0" * 32)))
    assert hook(tmp_path, flag) == (0, "")
    assert ups.received == []


def test_no_flag_sends_nothing(tmp_path: Path) -> None:
    def never(*_args: object) -> PowerResult:
        raise AssertionError("sent without a flag")

    assert hook(tmp_path, tmp_path / "absent", send=never) == (0, "")


def test_a_wrong_password_is_said_on_the_console_and_fails(tmp_path: Path, ups: NutEmulator) -> None:
    flag = tmp_path / "ups-kill"
    flag.write_text(render_flag(order(ups, password="wrong")))
    code, said = hook(tmp_path, flag)
    assert code == 1 and "piclusterd-power-cut: failed:" in said
    assert ups.received == []


@pytest.mark.parametrize(
    "change",
    [
        {"peers": (("pi2", "ready"),)},  # a peer still up: never cut
        {"peers": (("pi2 x", "acked"),)},
        {"host": "-oProxy host"},
        {"ups": ""},
        {"delay_s": 0},
        {"delay_s": 601},
        {"port": 0},
        {"timeout_s": float("nan")},
    ],
)
def test_a_flag_piclusterd_would_not_write_sends_nothing(
    tmp_path: Path, ups: NutEmulator, change: dict[str, object]
) -> None:
    raw = render_flag(order(ups, **change)).encode()
    with pytest.raises(FlagInvalid):
        parse_flag(raw)
    flag = tmp_path / "ups-kill"
    flag.write_bytes(raw)
    assert hook(tmp_path, flag)[0] == 1
    assert ups.received == []


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"boot_id=x\n", b"a" * 9000, b"boot_id=x\nboot_id=y\n"])
def test_garbage_in_the_flag_is_refused(raw: bytes) -> None:
    with pytest.raises(FlagInvalid):
        parse_flag(raw)


def test_the_round_trip_keeps_a_password_with_any_characters(ups: NutEmulator) -> None:
    original = order(ups, password='p"ä\n=x', username=None, peers=())
    assert parse_flag(render_flag(original).encode()) == original


SETTINGS = UpsReturnSettings("127.0.0.1", 3493, "ups", "admin", None, 5.0)


def test_the_daemon_arms_only_when_every_peer_is_notready_or_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "ups-kill"
    path.write_text("stale")
    flag = UpsKillFlag(SETTINGS, "pi1", path=path, boot_id_path=boot_id(tmp_path))
    assert not path.exists()  # an earlier start's flag is void
    refused = flag(10.0, {"pi2": "notready", "pi3": "unconfirmed"})
    assert refused.outcome is PowerOutcome.REFUSED and "pi3" in refused.detail
    assert not path.exists()
    armed = flag(9.6, {"pi2": "notready", "pi3": "acked"})
    assert armed.outcome is PowerOutcome.SENT, armed
    written = parse_flag(path.read_bytes())
    assert (written.node, written.delay_s, written.peers) == ("pi1", 10, (("pi2", "notready"), ("pi3", "acked")))


def test_a_flag_that_cannot_be_written_is_a_failure(tmp_path: Path) -> None:
    flag = UpsKillFlag(SETTINGS, "pi1", path=tmp_path / "missing" / "ups-kill", boot_id_path=boot_id(tmp_path))
    assert flag(10.0, {}).outcome is PowerOutcome.FAILED


def run_script(tmp_path: Path, verb: str, ups_flag: Path, cut_flag: Path) -> list[str]:
    """The hook as systemd-shutdown runs it (``$1`` = verb); both commands record their calls, in order."""
    record = tmp_path / "calls"
    (tmp_path / "kmsg").touch()  # stands in for /dev/kmsg, which always exists
    for name in ("fake-ups", "fake-pulse"):
        fake = tmp_path / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> {record}\necho "{name} said" >&2\n')
        fake.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "PICLUSTERD_UPS_KILL_FLAG": str(ups_flag),
        "PICLUSTERD_UPS_KILL_SEND": str(tmp_path / "fake-ups"),
        "PICLUSTERD_POWER_CUT_FLAG": str(cut_flag),
        "PICLUSTERD_POWER_CUT_PULSE": str(tmp_path / "fake-pulse"),
        "PICLUSTERD_HOOK_LOG": str(tmp_path / "kmsg"),
    }
    subprocess.run([str(SCRIPT), verb], env=env, check=True, timeout=10)
    calls = record.read_text().splitlines() if record.exists() else []
    record.unlink(missing_ok=True)
    return calls


def test_one_hook_tells_the_ups_first_then_pulses_the_hat(tmp_path: Path) -> None:
    ups_flag, cut_flag = tmp_path / "ups-kill", tmp_path / "power-cut"
    assert run_script(tmp_path, "poweroff", ups_flag, cut_flag) == []  # a manual poweroff: no flags
    ups_flag.write_text("x")
    assert run_script(tmp_path, "reboot", ups_flag, cut_flag) == []
    assert run_script(tmp_path, "poweroff", ups_flag, cut_flag) == [f"fake-ups {ups_flag}"]
    cut_flag.write_text("x")  # the HAT's pulse cuts this Pi at once: it goes last
    assert run_script(tmp_path, "halt", ups_flag, cut_flag) == [f"fake-ups {ups_flag}", f"fake-pulse {cut_flag}"]
    # What they say goes to the kernel's log (the console): systemd-shutdown gives hooks no other output.
    assert (tmp_path / "kmsg").read_text().splitlines()[-2:] == ["fake-ups said", "fake-pulse said"]


def test_the_hook_ignores_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x")
    (tmp_path / "ups-kill").symlink_to(target)
    assert run_script(tmp_path, "poweroff", tmp_path / "ups-kill", tmp_path / "absent") == []
