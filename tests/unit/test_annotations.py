"""Annotation records: round trip, and nonsense is refused with a reason rather than acted on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.node_records import (
    InvalidRecord,
    PowerOffRequest,
    ShedPhase,
    ShedRecord,
    parse_poweroff_request,
    parse_shed_record,
    render_poweroff_request,
    render_shed_record,
)

records = st.builds(
    ShedRecord,
    phase=st.sampled_from(list(ShedPhase)),
    leader=st.text(max_size=20),
    reason=st.text(max_size=80),
    started_at=st.text(max_size=30),
    was_unschedulable=st.booleans(),
    request_id=st.text(max_size=20),
    changed_at=st.text(max_size=30),
)


@given(records)
def test_parse_render_round_trip(record: ShedRecord) -> None:
    assert parse_shed_record(render_shed_record(record)) == record


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "not JSON"),
        ("yes please", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"v": 2, "phase": "drained"}', "record version 2"),
        ('{"v": "1"}', "'v' is missing or not a int"),
        ('{"v": 1, "phase": "exploded"}', "unknown phase 'exploded'"),
        ('{"v": 1, "phase": "drained", "leader": "pi1"}', "'reason' is missing"),
    ],
)
def test_nonsense_is_an_invalid_record_with_a_reason(raw: str, reason: str) -> None:
    parsed = parse_shed_record(raw)
    assert isinstance(parsed, InvalidRecord)
    assert reason in parsed.reason


@given(st.text(max_size=200))
def test_parse_never_raises(raw: str) -> None:
    parse_shed_record(raw)


@given(st.builds(PowerOffRequest, st.text(min_size=1, max_size=20), st.text(max_size=20), st.text(max_size=30)))
def test_poweroff_request_round_trip(request: PowerOffRequest) -> None:
    assert parse_poweroff_request(render_poweroff_request(request)) == request


@pytest.mark.parametrize("raw", ["", "poweroff", '{"v": 1, "id": "", "leader": "a", "at": "b"}', '{"v": 3}'])
def test_a_nonsense_poweroff_request_is_never_obeyed(raw: str) -> None:
    assert isinstance(parse_poweroff_request(raw), InvalidRecord)
