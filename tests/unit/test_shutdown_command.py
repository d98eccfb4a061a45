"""The commands piclusterd runs: the hook runner keeps the daemon alive while a slow command runs."""

from __future__ import annotations

from pathlib import Path

from piclusterd.shutdown_command import TickingCommand


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
