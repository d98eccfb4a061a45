"""The power record says how the node's pods end before a halt (issue 19: each daemon publishes its kubelet's
graceful-shutdown settings, read locally), and a record without it, or with nonsense in it, stays readable."""

from __future__ import annotations

import json

import pytest

from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.power_record import PodShutdownRecord, parse_power_record, power_record, render_power_record
from piclusterd.core.power_state import PowerMemory


def test_the_record_carries_the_kubelets_settings_and_reads_back() -> None:
    record = power_record(PowerMemory(), "nut:ups", "2026-12-06T17:00:00Z", PodShutdownRecord("kubelet", 60.0, 30.0))
    text = render_power_record(record)
    assert json.loads(text)["shutdown"] == {"method": "kubelet", "grace": 60.0, "critical": 30.0}
    assert parse_power_record(text) == record


def test_an_older_record_without_it_still_reads() -> None:
    record = power_record(PowerMemory(), "nut:ups", "2026-12-06T17:00:00Z")
    text = render_power_record(record)
    assert "shutdown" not in json.loads(text)
    parsed = parse_power_record(text)
    assert not isinstance(parsed, InvalidRecord) and parsed.pod_shutdown is None


@pytest.mark.parametrize(
    "shutdown",
    [
        [],
        {"method": "reboot", "grace": 1, "critical": 0},
        {"method": "kubelet", "grace": 10, "critical": 20},
        {"method": "kubelet", "grace": 1e308, "critical": 0},
        {"method": "kubelet", "grace": -1, "critical": 0},
        {"method": "self-drain", "grace": None, "critical": 0},
        {"method": "self-drain"},
    ],
)
def test_nonsense_in_it_refuses_that_record(shutdown: object) -> None:
    text = render_power_record(power_record(PowerMemory(), "nut:ups", "2026-12-06T17:00:00Z"))
    data = json.loads(text)
    data["shutdown"] = shutdown
    assert isinstance(parse_power_record(json.dumps(data)), InvalidRecord)
