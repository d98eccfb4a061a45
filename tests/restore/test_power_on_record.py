"""The power-on record (issue 17, finding 4): what a leader did to bring a node back, read back into the restore
memory by whoever leads next. Decision tables; a hostile record is left out, never trusted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_records import rfc3339
from piclusterd.core.power_on_record import (
    POWER_ON_ANNOTATION,
    PowerOnRecord,
    PowerOnStep,
    is_spent,
    parse_power_on_record,
    recall_power_ons,
    render_power_on_record,
    retry_hold_s,
    settling_from_records,
)
from piclusterd.core.restore import RestoreMemory, RestorePolicy
from piclusterd.testing.clusters import make_node

POLICY = RestorePolicy(restore_after_s=120.0, restore_stagger_s=30.0)
WALL = 1_796_000_000.0
NOW = 5_000.0  # the leader's monotonic clock at WALL


def view_with(raw: str | None) -> ClusterView:
    annotations = {} if raw is None else {POWER_ON_ANNOTATION: raw}
    return ClusterView((replace(make_node("pi4"), annotations=annotations), make_node("pi1")), ())


def record(step: PowerOnStep, age_s: float) -> str:
    return render_power_on_record(PowerOnRecord(step, rfc3339(WALL - age_s)))


@pytest.mark.parametrize(
    ("step", "age_s", "held_until", "stagger_from"),
    [
        (PowerOnStep.ASKED, 10.0, NOW - 10 + 120, NOW - 10),  # anti-flap from the ask; the stagger too
        (PowerOnStep.BACK, 10.0, NOW - 10 + 120, None),  # settling from its return; a return is no new power-on
        (PowerOnStep.FAILED, 10.0, NOW - 10 + retry_hold_s(POLICY), NOW - 10),  # retried a little later
        (PowerOnStep.ASKED, 120.0, None, None),  # spent: nothing held
        (PowerOnStep.FAILED, 60.0, None, None),  # a failure holds only retry_hold_s (60 s here)
        (PowerOnStep.BACK, -3600.0, NOW + 120, None),  # dated ahead of our clock: counts as just now
    ],
)
def test_a_record_holds_its_node_as_the_leader_that_wrote_it_did(
    step: PowerOnStep, age_s: float, held_until: float | None, stagger_from: float | None
) -> None:
    memory = recall_power_ons(RestoreMemory(), view_with(record(step, age_s)), NOW, WALL, POLICY)
    at = memory.powered_on_at.get("pi4")
    assert (None if at is None else at + POLICY.restore_after_s) == held_until
    assert memory.last_power_on_at == stagger_from


def test_a_record_never_shortens_what_the_leader_remembers_itself() -> None:
    own = RestoreMemory(powered_on_at={"pi4": NOW - 5}, last_power_on_at=NOW - 5)
    assert recall_power_ons(own, view_with(record(PowerOnStep.ASKED, 60.0)), NOW, WALL, POLICY) == own


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        '{"v":2,"step":"back","at":"2026-12-06T02:00:00Z"}',
        '{"v":1,"step":"teleported","at":"2026-12-06T02:00:00Z"}',
        '{"v":1,"step":"back","at":"yesterday"}',
        '{"v":1,"step":"back"}',
        '{"v":1,"step":"back","at":"2026-12-06T02:00:00Z","x":' + "[" * 200 + "]" * 200 + "}",
        '{"v":1,"step":"back","at":"' + "9" * 100_000 + '"}',
    ],
)
def test_a_record_that_cannot_be_read_is_left_out_and_removed(raw: str) -> None:
    assert isinstance(parse_power_on_record(raw), str)
    assert recall_power_ons(RestoreMemory(), view_with(raw), NOW, WALL, POLICY) == RestoreMemory()
    assert is_spent(raw, WALL, POLICY)


def test_settling_as_of_a_time_names_the_nodes_back_less_than_restore_after_before_it() -> None:
    view = view_with(record(PowerOnStep.BACK, 60.0))
    assert settling_from_records(view, WALL, POLICY) == {"pi4"}
    assert settling_from_records(view, WALL + 60.0, POLICY) == frozenset()
    assert not is_spent(record(PowerOnStep.BACK, 60.0), WALL, POLICY)
    assert is_spent(record(PowerOnStep.BACK, 60.0), WALL + 60.0, POLICY)
