"""``piclusterctl notify-test``: a test message through every sink, each result on its line, the exit code says."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.cli import ctl_main
from piclusterd.testing.tls import make_ca
from piclusterd.testing.webhook_server import WebhookServer


def test_every_sink_is_tried_and_one_failing_sink_makes_the_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = make_ca(tmp_path / "ca")
    out = tmp_path / "out"
    with WebhookServer(ca.server_cert, ca.server_key) as hook:
        config = tmp_path / "piclusterd.toml"
        config.write_text(
            '[node]\nname = "pi1"\n'
            f'[notify.cmd]\ntype = "exec"\ncommand = ["/bin/sh", "-c", "echo \\"$NOTIFYTYPE $1\\" > {out}", "x"]\n'
            f'[notify.chat]\ntype = "webhook"\nurl = "{hook.url()}"\nca_file = "{ca.ca_file}"\n'
            '[notify.down]\ntype = "webhook"\nurl = "https://127.0.0.1:1/hook"\ntimeout = "2s"\n'
        )
        assert ctl_main(["notify-test", "--config", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["cmd: sent", "chat: sent"]
    assert lines[2].startswith("down: FAILED: 127.0.0.1:1: ")
    assert out.read_text() == "TEST pi1: test message from piclusterd through sink cmd. No action needed.\n"
    assert b"test message from piclusterd through sink chat" in hook.received[0].body


def test_all_sinks_answering_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text('[notify.cmd]\ntype = "exec"\ncommand = ["/bin/true"]\n')
    assert ctl_main(["notify-test", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "cmd: sent\n"


def test_no_sink_or_a_bad_sink_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text("")
    assert ctl_main(["notify-test", "--config", str(config)]) == 2
    assert "no [notify.<name>] sink" in capsys.readouterr().err
    config.write_text('[notify.sms]\ntype = "sms"\nbackend = "smstools"\nspool_dir = "/"\nto = ["0170"]\n')
    assert ctl_main(["notify-test", "--config", str(config)]) == 2
    assert "notify.sms.to: '0170' is not an E.164 number" in capsys.readouterr().err
