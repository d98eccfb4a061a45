"""The outage record (pure): its wire format, the energy and downtime it accumulates, and the summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ClusterView, Pod
from piclusterd.core.node_records import InvalidRecord, rfc3339
from piclusterd.core.outage_record import (
    MAX_ENERGY_GAP_S,
    FullShutdownProgress,
    OutageRecord,
    account,
    critical_workloads_down,
    parse_outage_record,
    parse_rfc3339,
    render_outage_record,
    summary_fields,
)
from piclusterd.testing.clusters import make_node, make_pod

T0 = parse_rfc3339("2026-11-24T17:00:00Z")
START = OutageRecord("2026-11-24T17:00:00Z", "pi1", 100.0)

names = st.lists(st.sampled_from(["pi1", "pi2", "pi3", "pi4", "pi5"]), unique=True).map(tuple)
times = st.integers(0, 10**6).map(lambda s: rfc3339(T0 + s))


@st.composite
def records(draw: st.DrawFn) -> OutageRecord:
    progress = None
    if draw(st.booleans()):
        progress = FullShutdownProgress(
            draw(times),
            draw(st.sampled_from(["pi1", "pi2"])),
            draw(names),
            draw(st.booleans()),
            draw(names),
            draw(names),
            draw(st.booleans()),
            draw(st.sampled_from(["", "requested", "failed", "disabled"])),
        )
    return OutageRecord(
        started_at=draw(times),
        leader=draw(st.sampled_from(["pi1", "pi2"])),
        charge_at_start_pct=draw(st.none() | st.floats(0, 100)),
        energy_wh=draw(st.integers(0, 10**6)) / 1000,
        shed=draw(names),
        critical_down_s=draw(st.integers(0, 10**6)) / 1000,
        critical_down_since=draw(st.just("") | times),
        last_reading_at=draw(st.just("") | times),
        full_shutdown=progress,
        mains_back_at=draw(st.just("") | times),
    )


@given(records())
def test_parse_of_render_is_the_record(record: OutageRecord) -> None:
    assert parse_outage_record(render_outage_record(record)) == record


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: "not json", "not JSON"),
        (lambda d: [], "not a JSON object"),
        (lambda d: {**d, "v": 2}, "record version 2"),
        (lambda d: {**d, "startedAt": "yesterday"}, "does not match format"),
        (lambda d: {**d, "energyWh": -1}, "cannot be negative"),
        (lambda d: {**d, "energyWh": True}, "'energyWh'"),
        (lambda d: {**d, "shed": ["pi1", 3]}, "'shed' must be a list of node names"),
        (lambda d: {**d, "chargeAtStart": "full"}, "'chargeAtStart'"),
        (lambda d: {**d, "fullShutdown": {**d["fullShutdown"], "ups": "maybe"}}, "'fullShutdown.ups'"),
        (lambda d: {**d, "fullShutdown": {**d["fullShutdown"], "cordonDone": "yes"}}, "'cordonDone'"),
    ],
)
def test_a_record_that_cannot_be_trusted_is_invalid_and_says_why(mangle: object, reason: str) -> None:
    progress = FullShutdownProgress("2026-11-24T17:20:00Z", "pi1", ("pi1", "pi2"))
    data = json.loads(render_outage_record(replace(START, full_shutdown=progress)))
    mangled = mangle(data)  # type: ignore[operator]
    parsed = parse_outage_record(mangled if isinstance(mangled, str) else json.dumps(mangled))
    assert isinstance(parsed, InvalidRecord) and reason in parsed.reason


def test_energy_is_the_battery_draw_over_the_time_between_readings() -> None:
    record = account(START, T0, 32.0, False)  # the first reading: nothing to integrate yet
    assert record.energy_wh == 0.0
    for minute in range(1, 16):  # 32 W for 15 min, one reading a minute
        record = account(record, T0 + 60 * minute, 32.0, False)
    assert record.energy_wh == pytest.approx(8.0)
    record = account(record, T0 + 900 + MAX_ENERGY_GAP_S + 1, 32.0, False)  # a gap (leader change): not guessed
    assert record.energy_wh == pytest.approx(8.0)
    assert account(record, T0 + 5000, None, False).energy_wh == record.energy_wh  # no load figure: nothing


def test_critical_downtime_runs_from_first_seen_down_to_first_seen_up_across_a_dark_night() -> None:
    record = account(START, T0 + 600, None, True)
    assert record.critical_down_since == "2026-11-24T17:10:00Z"
    record = account(record, T0 + 700, None, True)  # still down: the start is kept
    assert record.critical_down_since == "2026-11-24T17:10:00Z" and record.critical_down_s == 0
    record = account(record, T0 + 10 * 3600, None, False)  # seen up again after the boot
    assert record.critical_down_s == 10 * 3600 - 600 and record.critical_down_since == ""
    record = account(account(record, T0 + 11 * 3600, None, True), T0 + 11 * 3600 + 60, None, False)
    assert record.critical_down_s == 10 * 3600 - 600 + 60  # a second stretch adds up


def test_the_summary_closes_an_open_downtime_and_rounds_for_people() -> None:
    record = replace(
        START,
        energy_wh=12.345,
        shed=("pi4", "pi5"),
        critical_down_since="2026-11-24T18:00:00Z",
        last_reading_at="2026-11-24T18:59:59Z",
    )
    fields = summary_fields(record, T0 + 7200)
    assert fields == {
        "started_at": "2026-11-24T17:00:00Z",
        "ended_at": "2026-11-24T19:00:00Z",
        "duration_s": 7200,
        "mains_back_at": None,
        "nodes_shed": ["pi4", "pi5"],
        "full_shutdown": False,
        "full_shutdown_at": None,
        "charge_at_start_pct": 100.0,
        "energy_used_wh": 12.3,
        "critical_downtime_s": 3600,
    }


def test_a_leader_that_never_knew_the_draw_says_the_energy_is_unknown_not_zero() -> None:
    """Without a load figure (no ups.realpower, no [battery] load_w) no energy was ever sampled: the summary
    said "0 Wh from the battery", which reads as a fact about the battery."""
    record = account(START, T0 + 60, None, False)
    record = account(record, T0 + 3600, None, False)
    assert summary_fields(record, T0 + 3600)["energy_used_wh"] is None
    sampled = account(account(START, T0 + 60, 40.0, False), T0 + 150, 40.0, False)
    assert summary_fields(sampled, T0 + 150)["energy_used_wh"] == 1.0  # 40 W for 90 s


def pod(name: str, node: str, owner: str, *, priority: int = 2_000_000, ready: bool = True) -> Pod:
    return replace(make_pod(name, node, priority=priority, ready=ready), owner_name=owner)


def test_a_critical_workload_is_down_when_none_of_its_pods_is_ready_on_a_ready_node() -> None:
    view = ClusterView(
        (make_node("pi1"), make_node("pi2", ready=False)),
        (
            pod("db-0", "pi2", "db"),  # Ready as last reported, but its node is not
            pod("web-a", "pi1", "web-5d8f", ready=False),
            pod("web-b", "pi1", "web-5d8f"),  # one Ready replica is enough
            pod("batch-x", "pi1", "batch", priority=0, ready=False),  # not critical
        ),
        (),
    )
    assert critical_workloads_down(view, 1_000_000) == ("default/db",)
