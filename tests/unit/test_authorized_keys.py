"""piclusterctl authorized-keys: the one line that limits the SSH fallback key, and one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from piclusterd.cli import ctl_main


@pytest.fixture
def key(tmp_path: Path) -> Path:
    private = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@pi1", "-f", str(private)], check=True)
    return private.with_suffix(".pub")


def test_prints_the_restricted_line_with_the_cluster_network(key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl_main(["authorized-keys", "--from", "10.0.0.0/24", "--from", "fd00::/64", "--key", str(key)]) == 0
    out = capsys.readouterr().out.strip()
    kind, blob, comment = key.read_text().split()
    assert out == (
        f'restrict,command="/usr/bin/piclusterd remote-poweroff",from="10.0.0.0/24,fd00::/64" {kind} {blob} {comment}'
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "10.0.0.5/24"], "host bits set: did you mean 10.0.0.0/24?"),
        (["--from", "cluster"], "is not a network"),
        (["--from", '10.0.0.0/24" ,command="sh'], "is not a network"),
        (["--from", ""], "is not a network"),
        (["--from", "10.0.0.0/24", "--key", "/dev/zero"], "not a regular file"),
        (["--from", "10.0.0.0/24", "--key", "/nonexistent.pub"], "No such file"),
        (["--from", "10.0.0.0/24", "--key", "PRIVATE"], "exactly one public key"),
        (["--from", "10.0.0.0/24", "--key", "GARBAGE"], "not an OpenSSH public key"),
        (["--from", "10.0.0.0/24", "--key", "BINARY"], "not ASCII"),
        (["--from", "10.0.0.0/24", "--key", "MISMATCH"], "does not match its type"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _, blob, _ = key.read_text().split()
    files = {
        "PRIVATE": key.with_suffix(""),
        "GARBAGE": tmp_path / "g.pub",
        "BINARY": tmp_path / "b.pub",
        "MISMATCH": tmp_path / "m.pub",
    }
    files["GARBAGE"].write_text("hello world\n")
    files["BINARY"].write_bytes(b"ssh-ed25519 \xff\xfe\n")
    files["MISMATCH"].write_text(f"ssh-rsa {blob} x\n")
    args = [str(files[a]) if a in files else a for a in args]
    if "--key" not in args:
        args += ["--key", str(key)]
    assert ctl_main(["authorized-keys", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("piclusterctl authorized-keys: ")
