"""The picluster.io/power record: render/parse round trip, refusal of nonsense, and the rate limit's decisions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.power_record import (
    BatteryRecord,
    PowerRecord,
    PublishPolicy,
    PublishReason,
    parse_power_record,
    power_record,
    publish_reason,
    render_power_record,
)
from piclusterd.core.power_state import PowerMemory, PowerState
from piclusterd.core.reading import UpsFlag, UpsReading

_figure = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
_text = st.text(min_size=1, max_size=40)
_batteries = st.builds(
    BatteryRecord,
    source=_text,
    flags=st.frozensets(st.sampled_from(UpsFlag)),
    charge_pct=_figure,
    runtime_s=_figure,
    read_at=_text,
)
_records = st.builds(
    PowerRecord,
    state=st.sampled_from(PowerState),
    charge_pct=_figure,
    runtime_s=_figure,
    source=_text,
    batteries=st.lists(_batteries, max_size=3).map(tuple),
    written_at=_text,
)


@given(_records)
def test_parse_of_render_is_the_record(record: PowerRecord) -> None:
    assert parse_power_record(render_power_record(record)) == record


def test_the_record_is_versioned_json_a_person_can_read() -> None:
    record = PowerRecord(
        PowerState.ON_BATTERY,
        63.0,
        2460.0,
        "nut:ups@10.0.0.2:3493+hat:x1200",
        (BatteryRecord("nut:ups@10.0.0.2:3493", frozenset({UpsFlag.OB}), 63.0, 2460.0, "2026-11-25T02:00:00Z"),),
        "2026-11-25T02:00:01Z",
    )
    data = json.loads(render_power_record(record))
    assert data["v"] == 1 and data["state"] == "on_battery" and data["charge"] == 63.0
    assert data["batteries"][0]["status"] == "OB"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 2}', "record version 2"),
        ('{"v": true}', "record version True"),
        ('{"v": 1, "state": "melting"}', "unknown power state 'melting'"),
        ('{"v": 1, "state": "online", "batteries": []}', "'charge' is missing"),
        (
            '{"v":1,"state":"online","charge":-1,"runtime":null,"source":"s","batteries":[],"at":"t"}',
            "'charge' is not a number >= 0",
        ),
        (
            '{"v":1,"state":"online","charge":1,"runtime":null,"source":"s","at":"t",'
            '"batteries":[{"source":"s","status":"OB WHAT","charge":1,"runtime":null,"at":"t"}]}',
            "unknown words ['WHAT']",
        ),
    ],
)
def test_nonsense_is_an_invalid_record_with_the_reason(raw: str, reason: str) -> None:
    parsed = parse_power_record(raw)
    assert isinstance(parsed, InvalidRecord) and reason in parsed.reason


def reading(source: str, status: str, charge: float, wall: float = 1_800_000_000.0) -> UpsReading:
    return UpsReading(source, 5.0, wall, frozenset(UpsFlag(w) for w in status.split()), charge_pct=charge)


def test_a_combined_reading_publishes_each_battery() -> None:
    nut, hat = reading("nut:ups", "OB", 63.0), reading("hat:x", "OL", 90.0)
    combined = UpsReading("nut:ups+hat:x", 5.0, 1_800_000_000.0, frozenset({UpsFlag.OB}), 63.0, parts=(nut, hat))
    memory = PowerMemory(state=PowerState.ON_BATTERY, last_reading=combined, last_runtime_s=2400.0)
    record = power_record(memory, "nut:ups+hat:x", "2027-01-15T08:00:00Z")
    assert (record.state, record.charge_pct, record.runtime_s) == (PowerState.ON_BATTERY, 63.0, 2400.0)
    assert [(b.source, b.on_battery, b.charge_pct) for b in record.batteries] == [
        ("nut:ups", True, 63.0),
        ("hat:x", False, 90.0),
    ]
    assert record.batteries[0].read_at == "2027-01-15T08:00:00Z"


def test_no_reading_yet_publishes_the_state_without_batteries() -> None:
    record = power_record(PowerMemory(), "nut:ups", "t")
    assert (record.state, record.charge_pct, record.batteries) == (PowerState.UNKNOWN, None, ())


# --- the rate limit, one factor per table ---------------------------------------------------------------

POLICY = PublishPolicy(publish_every_s=60, charge_step_pct=5, retry_after_s=10)


def rec(state: PowerState = PowerState.ONLINE, charge: float | None = 80.0) -> PowerRecord:
    return PowerRecord(state, charge, None, "s", (), "t")


@pytest.mark.parametrize(
    ("new_state", "expected"),
    [(PowerState.ONLINE, None), (PowerState.ON_BATTERY, PublishReason.STATE_CHANGED)],
)
def test_a_state_change_is_published_at_once(new_state: PowerState, expected: PublishReason | None) -> None:
    assert publish_reason(rec(new_state), rec(), 100.0, None, 101.0, POLICY) is expected


@pytest.mark.parametrize(
    ("charge", "expected"),
    [
        (80.0, None),
        (76.0, None),  # under charge_step
        (75.0, PublishReason.CHARGE_CHANGED),  # exactly charge_step
        (86.0, PublishReason.CHARGE_CHANGED),
        (None, PublishReason.CHARGE_CHANGED),  # the charge is no longer known
    ],
)
def test_a_charge_change_of_charge_step_points_is_published(
    charge: float | None, expected: PublishReason | None
) -> None:
    assert publish_reason(rec(charge=charge), rec(charge=80.0), 100.0, None, 101.0, POLICY) is expected


@pytest.mark.parametrize(("since_last", "expected"), [(59.9, None), (60.0, PublishReason.PERIODIC)])
def test_an_unchanged_record_is_published_every_publish_every(
    since_last: float, expected: PublishReason | None
) -> None:
    assert publish_reason(rec(), rec(), 100.0, None, 100.0 + since_last, POLICY) is expected


@pytest.mark.parametrize(
    ("record", "last", "since_failure", "expected"),
    [
        (rec(), None, 5.0, None),  # the first write failed: wait retry_after
        (rec(), None, 10.0, PublishReason.FIRST),
        (rec(charge=50.0), rec(), 5.0, None),  # a charge change waits for retry_after too
        (rec(charge=50.0), rec(), 10.0, PublishReason.CHARGE_CHANGED),
        (rec(PowerState.CRITICAL), rec(), 1.0, PublishReason.STATE_CHANGED),  # a state change is always tried
    ],
)
def test_after_a_failure_only_a_state_change_is_tried_before_retry_after(
    record: PowerRecord, last: PowerRecord | None, since_failure: float, expected: PublishReason | None
) -> None:
    now = 1000.0
    assert publish_reason(record, last, None if last is None else 0.0, now - since_failure, now, POLICY) is expected


def test_the_first_record_is_published() -> None:
    assert publish_reason(rec(), None, None, None, 0.0, POLICY) is PublishReason.FIRST


def test_a_policy_with_a_zero_period_is_refused() -> None:
    with pytest.raises(ValueError, match="publish_every_s"):
        PublishPolicy(publish_every_s=0)


def test_without_a_reader_of_its_age_an_unchanged_record_is_never_republished() -> None:
    # Issue 17: on mains, a shared-battery cluster's nodes PATCHed their unchanged records once a minute each.
    quiet = PublishPolicy(publish_every_s=None)
    assert publish_reason(rec(), rec(), 100.0, None, 100.0 + 86400, quiet) is None
    assert publish_reason(rec(PowerState.ON_BATTERY), rec(), 100.0, None, 101.0, quiet) is PublishReason.STATE_CHANGED
    assert publish_reason(rec(charge=70.0), rec(), 100.0, None, 101.0, quiet) is PublishReason.CHARGE_CHANGED
