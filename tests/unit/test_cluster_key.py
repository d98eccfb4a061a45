"""The cluster key: piclusterctl keygen makes it, check-config (and run) require it with [cluster] on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from piclusterd.cli import ctl_main, daemon_main
from piclusterd.config.cluster_key import create_key_file
from piclusterd.config.parse import load_config
from piclusterd.core.authority import ClusterKeys, parse_key_text

CLUSTER = '[battery]\ncapacity_wh = 84\n[cluster]\nenabled = true\nkey_file = "{key}"\n'


def test_keygen_writes_a_root_only_key_and_never_overwrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cluster.key"
    assert ctl_main(["keygen", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = parse_key_text(out.read_text())
    assert len(key) == 32
    capsys.readouterr()
    assert ctl_main(["keygen", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "exists: refusing to overwrite" in line
    assert parse_key_text(out.read_text()) == key  # unchanged


def test_check_config_requires_the_key_when_the_cluster_side_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text(CLUSTER.format(key=tmp_path / "missing.key"))
    assert daemon_main(["check-config", "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "cluster.key_file: cannot read" in line and "piclusterctl keygen --out" in line


def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "cluster.key"
    create_key_file(str(key))
    os.chmod(key, 0o644)
    config = tmp_path / "piclusterd.toml"
    config.write_text(CLUSTER.format(key=key))
    assert daemon_main(["check-config", "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "cluster.key_file" in line and "is not root-only" in line and f"chmod 600 {key}" in line


@pytest.mark.parametrize("text", ["", "zz", "ab" * 4, "é" * 40])
def test_a_key_file_that_holds_no_key_is_refused(tmp_path: Path, text: str) -> None:
    key = tmp_path / "cluster.key"
    key.write_text(text, encoding="utf-8")
    key.chmod(0o600)
    config = tmp_path / "piclusterd.toml"
    config.write_text(CLUSTER.format(key=key))
    with pytest.raises(Exception, match=r"cluster\.key_file"):
        load_config(config)


def test_the_previous_key_is_read_for_a_rotation(tmp_path: Path) -> None:
    create_key_file(str(tmp_path / "new.key"))
    create_key_file(str(tmp_path / "old.key"))
    config = tmp_path / "piclusterd.toml"
    config.write_text(CLUSTER.format(key=tmp_path / "new.key") + f'previous_key_file = "{tmp_path}/old.key"\n')
    keys = load_config(config).cluster.signing_keys
    assert isinstance(keys, ClusterKeys)
    assert keys.current == parse_key_text((tmp_path / "new.key").read_text())
    assert keys.previous == parse_key_text((tmp_path / "old.key").read_text())
    assert "***" in repr(keys) and keys.current.hex() not in repr(load_config(config))
