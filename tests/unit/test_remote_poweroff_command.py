"""``piclusterd remote-poweroff`` (the SSH key's forced command) run as sshd runs it, without sshd."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from piclusterd.testing.daemon_process import installed_script


def remote_poweroff(config: Path, request: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "SSH_CONNECTION")}
    env.update(SSH_ORIGINAL_COMMAND=request, SSH_CLIENT="10.0.0.1 50000 22")
    return subprocess.run(
        [installed_script(), "remote-poweroff", "--config", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_an_unusable_runtime_dir_refuses_in_one_line_and_runs_nothing(tmp_path: Path) -> None:
    # Issue 13, finding 12: a runtime dir it cannot write gave a traceback (and the leader no clear answer).
    calls = tmp_path / "calls"
    (tmp_path / "not-a-dir").write_text("a file where the runtime dir's parent should be\n")
    config = tmp_path / "pi4.toml"
    config.write_text(
        f'mode = "enforce"\n[node]\nname = "pi4"\n[daemon]\nruntime_dir = "{tmp_path}/not-a-dir/run"\n'
        f'[shutdown]\ncommand = ["/bin/sh", "-c", "echo off >> {calls}"]\n'
    )
    done = remote_poweroff(config, "poweroff pi4 req-1")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    refusal = [line for line in done.stderr.splitlines() if line.startswith("refused:")]
    assert refusal == [f"refused: cannot use {tmp_path}/not-a-dir/run/remote-poweroff: Not a directory; "
                       "expected a writable [daemon] runtime_dir"]  # fmt: skip
    assert '"event": "shutdown.remote_refused"' in done.stderr
    assert not calls.exists()


def test_a_usable_runtime_dir_without_a_cluster_to_verify_the_request_runs_nothing(tmp_path: Path) -> None:
    """Past the runtime dir, the request must be the leader's signed one on this node's Node: without [cluster]
    nothing can verify it, so nothing runs (the accepted path, with a signed request, is tests/ssh)."""
    calls = tmp_path / "calls"
    config = tmp_path / "pi4.toml"
    config.write_text(
        f'mode = "enforce"\n[node]\nname = "pi4"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
        f'[shutdown]\ncommand = ["/bin/sh", "-c", "echo off >> {calls}"]\n'
    )
    done = remote_poweroff(config, "poweroff pi4 req-1")
    assert done.returncode == 3, done.stderr
    assert "refused: [cluster] is not enabled on this node" in done.stderr
    assert not calls.exists()
