"""``[ups] driver = ["nut", "hat"]`` is wired by the entry point into one combined source over both adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from piclusterd.cli import build_power_source
from piclusterd.config.parse import load_config
from piclusterd.core.errors import BusUnavailable
from piclusterd.drivers.hat import HatPowerSource, get_profile
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.node.combined_source import CombinedPowerSource
from piclusterd.testing.emulated_hat import EmulatedHat


def config_file(tmp_path: Path, drivers: str) -> Path:
    path = tmp_path / "piclusterd.toml"
    path.write_text(f'[ups]\ndriver = {drivers}\nname = "ups1"\n[hat]\nprofile = "geekworm-x1200"\n')
    return path


def test_a_driver_list_builds_one_source_over_each_adapter_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hat = EmulatedHat(get_profile("geekworm-x1200"))
    monkeypatch.setattr("piclusterd.drivers.gpio_power.open_gpio", lambda: hat.gpio)
    monkeypatch.setattr("piclusterd.drivers.hat.open_hat_source", lambda *_a, **_k: hat.source)
    source = build_power_source(load_config(config_file(tmp_path, '["nut", "hat"]')))
    assert isinstance(source, CombinedPowerSource)
    nut, board = source.sources
    assert isinstance(nut, NutPowerSource) and isinstance(board, HatPowerSource)
    assert source.name == "nut:ups1@127.0.0.1:3493+hat:geekworm-x1200@i2c-1:0x36"
    source.close()


def test_a_hat_that_cannot_be_opened_fails_the_start_and_closes_the_sources_already_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(NutPowerSource, "close", lambda self: closed.append(self.name))

    def no_bus(*_args: Any, **_kwargs: Any) -> HatPowerSource:
        raise BusUnavailable("/dev/i2c-1 does not exist: enable I2C")

    monkeypatch.setattr("piclusterd.drivers.gpio_power.open_gpio", lambda: None)
    monkeypatch.setattr("piclusterd.drivers.hat.open_hat_source", no_bus)
    with pytest.raises(BusUnavailable, match="enable I2C"):
        build_power_source(load_config(config_file(tmp_path, '["nut", "hat"]')))
    assert closed == ["nut:ups1@127.0.0.1:3493"]


def test_one_driver_builds_that_adapter_alone(tmp_path: Path) -> None:
    source = build_power_source(load_config(config_file(tmp_path, '"nut"')))
    assert isinstance(source, NutPowerSource)
    source.close()
