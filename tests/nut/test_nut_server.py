"""The NutServer fixture itself: what it refuses before starting anything."""

from __future__ import annotations

import pytest

from piclusterd.testing.nut_server import NutServer, NutServerError


def test_missing_nut_names_the_package_to_install() -> None:
    with pytest.raises(NutServerError, match=r"apt-get install nut-server"):
        NutServer(sbin_dir="/nonexistent/nut")


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash", "line\nbreak"])
def test_refuses_values_dummy_ups_cannot_serve_back(value: str) -> None:
    with pytest.raises(ValueError, match=r"battery\.charge"):
        NutServer({"ups.status": "OL", "battery.charge": value})
