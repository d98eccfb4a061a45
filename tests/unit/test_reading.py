"""Parsing ups.status and NUT variables at the boundary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.reading import MainsState, UpsFlag, parse_nut_variables, parse_status


def parse(**variables: str):
    return parse_nut_variables(
        {k.replace("_", "."): v for k, v in variables.items()}, source="s", timestamp=1, wall_time=2
    )


def test_status_words_are_matched_whole() -> None:
    flags, unknown = parse_status("OL CHRG OBSOLETE")
    assert flags == {UpsFlag.OL, UpsFlag.CHRG}
    assert unknown == ("OBSOLETE",)


@given(st.sets(st.sampled_from(list(UpsFlag))))
def test_status_round_trips(flags: set[UpsFlag]) -> None:
    assert parse_status(" ".join(f.value for f in flags)) == (frozenset(flags), ())


def test_a_good_reading_carries_its_values_time_and_source() -> None:
    parsed = parse(
        ups_status="OB DISCHRG",
        battery_charge="63",
        battery_runtime="2460",
        ups_load="12",
        ups_realpower_nominal="390",
        input_voltage="0",
    )
    r = parsed.reading
    assert r is not None and parsed.rejections == ()
    assert r.mains is MainsState.LOST and r.charge_pct == 63 and r.runtime_s == 2460
    assert r.output_watts == pytest.approx(46.8)
    assert (r.source, r.timestamp, r.wall_time) == ("s", 1, 2)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("battery.charge", "abc", "not a number"),
        ("battery.charge", "101", "above 100"),
        ("battery.charge", "-1", "below 0"),
        ("battery.runtime", "-5", "below 0"),
        ("battery.runtime", "nan", "not a finite number"),
        ("ups.load", "inf", "not a finite number"),
    ],
)
def test_garbage_values_are_rejected_and_the_rest_kept(variable: str, value: str, reason: str) -> None:
    parsed = parse_nut_variables(
        {"ups.status": "OB", variable: value, "battery.voltage": "12.1"}, source="s", timestamp=0, wall_time=0
    )
    assert parsed.reading is not None
    assert parsed.reading.battery_voltage == 12.1
    assert [(r.variable, r.value, r.reason) for r in parsed.rejections] == [(variable, value, reason)]
    assert parsed.reading.charge_pct is None and parsed.reading.runtime_s is None


@pytest.mark.parametrize("status", [None, "", "BYPASS", "OFF CHRG"])
def test_a_status_without_ol_or_ob_rejects_the_whole_reading(status: str | None) -> None:
    variables = {} if status is None else {"ups.status": status}
    parsed = parse_nut_variables(variables, source="s", timestamp=0, wall_time=0)
    assert parsed.reading is None
    assert parsed.rejections[0].variable == "ups.status"


def test_nut_wait_status_is_no_data_yet_not_a_rejection() -> None:
    parsed = parse(ups_status="WAIT")
    assert parsed.reading is None and parsed.rejections == () and parsed.unknown_status_words == ()
