"""The outage summary's energy in the demo's lines: a leader that never had a sample of the draw reports the
energy as unknown (the record's ``None``), never "None Wh used" or a made-up 0."""

from __future__ import annotations

from piclusterd.core.outage_record import energy_used_text
from piclusterd.sim.cluster_demo import _line


def _summary_event(energy: object) -> dict[str, object]:
    return {
        "timestamp": "2026-12-06T02:00:00Z",
        "event": "outage.summary",
        "node": "pi1",
        "duration_s": 600,
        "nodes_shed": ["pi4"],
        "full_shutdown": False,
        "energy_used_wh": energy,
        "critical_downtime_s": 0,
    }


def test_unknown_energy_is_said_in_words() -> None:
    line = _line(_summary_event(None))
    assert "energy used unknown" in line
    assert "None" not in line


def test_known_energy_is_printed_in_watt_hours() -> None:
    assert "12.5 Wh used" in _line(_summary_event(12.5))
    assert energy_used_text(0) == "0 Wh used"


def test_a_non_number_is_not_printed_as_energy() -> None:
    assert energy_used_text(True) == "energy used unknown"
    assert energy_used_text("12") == "energy used unknown"
