"""A power-off request refused by ``piclusterd remote-poweroff`` (the SSH fallback's forced command, its own
short-lived process) is queued on disk and sent by the running daemon's notifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.cli import daemon_main
from piclusterd.config.parse import load_config
from piclusterd.notify.notifier import Notifier
from piclusterd.notify.senders import build_senders
from piclusterd.sim.captured_audit import CapturedAudit


def test_a_refused_ssh_request_reaches_the_phone_through_the_daemons_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "phone"
    path = tmp_path / "piclusterd.toml"
    path.write_text(
        f'[node]\nname = "pi3"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        f'[notify]\nqueue_dir = "{tmp_path}/queue"\n'
        f'[notify.phone]\ntype = "exec"\ncommand = ["/bin/sh", "-c", "echo \\"$1\\" >> {out}", "x"]\n'
    )
    config = load_config(path)
    running = Notifier(config.notify, "pi3", build_senders(config.notify.sinks), wall=lambda: 1_800_000_000.0)
    running.start(CapturedAudit("pi3").logger, thread=False)
    running.pump()  # the daemon runs, its queue is loaded and empty
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "rm -rf /")  # what sshd passes to the forced command
    monkeypatch.setenv("SSH_CLIENT", "10.0.0.66 40000 22")
    assert daemon_main(["remote-poweroff", "--config", str(path), "--log-format", "json"]) == 3
    assert out.exists() is False  # the short-lived process sends nothing itself
    assert running.pump() == 1
    assert out.read_text() == "pi3: refused a power-off request: not a poweroff request. Check the journal.\n"
