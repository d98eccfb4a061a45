"""The commands piclusterd runs: the hook runner keeps the daemon alive while a slow command runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from piclusterd.node.shutdown_command import CommandShutdown, TickingCommand


def test_the_daemon_is_kept_alive_while_the_command_runs_and_its_exit_status_is_returned(tmp_path: Path) -> None:
    flag = tmp_path / "ticked"
    # The command can only finish once the runner has ticked (it waits for the file the tick writes).
    runner = TickingCommand(lambda: flag.touch(), timeout_s=60.0, poll_s=0.05)
    status = runner.run(["sh", "-c", f'while [ ! -e "{flag}" ]; do sleep 0.01; done; exit 3'])
    assert status == 3 and flag.exists()


def test_a_command_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    ticks: list[None] = []
    assert TickingCommand(lambda: ticks.append(None), timeout_s=0.3, poll_s=0.05).run(["sleep", "60"]) == 124
    assert ticks


def test_a_command_that_does_not_exist_is_127() -> None:
    assert TickingCommand(lambda: None).run(["/nonexistent/k3s", "etcd-snapshot", "save"]) == 127


@pytest.mark.parametrize("runner", [TickingCommand(lambda: None), CommandShutdown()], ids=["hook", "shutdown"])
def test_a_command_that_cannot_be_run_is_126_not_an_exception(
    tmp_path: Path, runner: TickingCommand | CommandShutdown
) -> None:
    """A hook script without its exec bit (or a directory): a status the caller logs, never the daemon's end."""
    script = tmp_path / "snapshot.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    assert runner.run([str(script)]) == 126
    assert runner.run([str(tmp_path)]) == 126


def test_a_tick_that_raises_leaves_no_hook_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def stopping() -> None:
        if pid_file.exists() and pid_file.read_text().strip():  # once the hook is surely running
            raise RuntimeError("stopping in the middle of a cluster step")

    with pytest.raises(RuntimeError):
        TickingCommand(stopping, timeout_s=60.0, poll_s=0.05).run(
            ["sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 60']
        )
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(pid, 0)
