"""`piclusterctl probe` as a user runs it on a machine without I2C: it says what to enable."""

from __future__ import annotations

import subprocess

from piclusterd.testing.daemon_process import installed_script


def test_probe_without_i2c_names_the_fix() -> None:
    done = subprocess.run(
        [installed_script("piclusterctl"), "probe", "--bus", "97"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "/dev/i2c-97 does not exist" in done.stdout
    assert "dtparam=i2c_arm=on" in done.stdout
