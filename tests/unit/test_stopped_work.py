"""The stopped-work record (core.stopped_work): round trip, bounds, and the restore's choice per entry."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.stopped_work import (
    MAX_REPLICAS,
    ScaleBack,
    StoppedWork,
    StoppedWorkload,
    controlling_deployment,
    decide_scale_back,
    job_suspended,
    parse_stopped_work,
    render_stopped_work,
    scale_replicas,
    stopped_work_fields,
)

REPORTS = StoppedWorkload("lab", "Deployment", "reports", 2, 1)
ANALYTICS = StoppedWorkload("lab", "Job", "analytics", 1, 0)

names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@st.composite
def workloads(draw: st.DrawFn) -> StoppedWorkload:
    kind = draw(st.sampled_from(("Deployment", "ReplicaSet", "StatefulSet", "Job")))
    if kind == "Job":
        return StoppedWorkload(draw(names), kind, draw(names), 1, 0)
    before = draw(st.integers(1, MAX_REPLICAS))
    return StoppedWorkload(draw(names), kind, draw(names), before, draw(st.integers(0, before - 1)))


@given(st.lists(workloads(), max_size=8), st.integers(-1, 10**6), st.text(max_size=40))
def test_a_record_reads_back_as_written(entries: list[StoppedWorkload], term: int, signature: str) -> None:
    record = StoppedWork(tuple({e.key: e for e in entries}.values()), "pi1", term, signature)
    parsed = parse_stopped_work(render_stopped_work(record))
    assert isinstance(parsed, StoppedWork)
    assert parsed.entries == tuple(sorted(record.entries, key=lambda e: e.key))
    assert (parsed.leader, parsed.term, parsed.signature) == ("pi1", term, signature)
    assert stopped_work_fields(parsed) == stopped_work_fields(record)  # the signature covers the same bytes


def test_a_second_stop_of_a_workload_replaces_its_entry() -> None:
    record = StoppedWork().with_entry(REPORTS).with_entry(StoppedWorkload("lab", "Deployment", "reports", 2, 0))
    assert record.entries == (StoppedWorkload("lab", "Deployment", "reports", 2, 0),)
    assert record.without(REPORTS.key).entries == ()


def _raw(**entry: object) -> str:
    base = {"namespace": "lab", "kind": "Deployment", "name": "reports", "replicasBefore": 2, "replicasSet": 1}
    return json.dumps({"v": 1, "leader": "pi1", "entries": [{**base, **entry}]})


@pytest.mark.parametrize(
    "entry",
    [
        {"replicasBefore": -1},
        {"replicasBefore": MAX_REPLICAS + 1},
        {"replicasBefore": 2.5},
        {"replicasBefore": True},
        {"replicasBefore": "2"},
        {"replicasSet": 2},  # not a scale-down
        {"replicasSet": 3},
        {"kind": "DaemonSet"},
        {"kind": "Job", "replicasBefore": 3, "replicasSet": 0},
        {"namespace": "Lab"},
        {"name": "../x"},
        {"name": "x" * 300},
        {"name": None},
    ],
)
def test_an_entry_out_of_bounds_refuses_the_record(entry: dict[str, object]) -> None:
    assert isinstance(parse_stopped_work(_raw(**entry)), InvalidRecord)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "[]",
        "{",
        '{"v": 2, "leader": "pi1", "entries": []}',
        '{"v": 1, "leader": 3, "entries": []}',
        '{"v": 1, "leader": "pi1", "entries": {}}',
        '{"v": 1, "leader": "pi1", "entries": [], "term": "1"}',
        '{"v": 1, "leader": "pi1", "entries": [], "sig": 1}',
        json.dumps({"v": 1, "leader": "pi1", "entries": [json.loads(_raw())["entries"][0]] * 2}),
        json.dumps({"v": 1, "leader": "pi1", "entries": [{}] * 300}),
        '{"v": 1, "leader": "pi1", "entries": [], "x": NaN}',
    ],
)
def test_garbage_is_an_invalid_record_never_an_exception(raw: str) -> None:
    assert isinstance(parse_stopped_work(raw), InvalidRecord)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, ScaleBack.GONE),
        (2, ScaleBack.ALREADY_BACK),
        (1, ScaleBack.RESTORE),
        (0, ScaleBack.USER_CHANGED),
        (3, ScaleBack.USER_CHANGED),
    ],
)
def test_the_restore_puts_back_only_what_piclusterd_left(current: int | None, expected: ScaleBack) -> None:
    assert decide_scale_back(REPORTS, current) is expected


@pytest.mark.parametrize(("current", "expected"), [(0, ScaleBack.RESTORE), (1, ScaleBack.ALREADY_BACK)])
def test_a_suspended_job_is_resumed_unless_running_again(current: int, expected: ScaleBack) -> None:
    assert decide_scale_back(ANALYTICS, current) is expected


@pytest.mark.parametrize(
    ("scale", "expected"),
    [({"spec": {"replicas": 3}}, 3), ({"spec": {}}, 0), ({}, 0), ({"spec": {"replicas": 0}}, 0)],
)
def test_a_scale_reads_its_replicas(scale: dict[str, object], expected: int) -> None:
    assert scale_replicas(scale) == expected


@pytest.mark.parametrize(
    "scale",
    [
        {"spec": {"replicas": -1}},
        {"spec": {"replicas": 1e9}},
        {"spec": {"replicas": MAX_REPLICAS + 1}},
        {"spec": {"replicas": "3"}},
        {"spec": {"replicas": None}},
        {"spec": []},
    ],
)
def test_a_scale_out_of_bounds_is_refused(scale: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        scale_replicas(scale)


def _rs(*owners: object) -> dict[str, object]:
    return {"metadata": {"name": "reports-7d9f", "ownerReferences": list(owners)}}


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reports", "controller": True}


@pytest.mark.parametrize(
    ("replica_set", "expected"),
    [
        (_rs(DEPLOYMENT), "reports"),
        (_rs(), None),
        ({"metadata": {"name": "bare"}}, None),
        (_rs({**DEPLOYMENT, "controller": False}), None),
        (_rs({**DEPLOYMENT, "kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1"}), None),
    ],
)
def test_a_replica_set_is_scaled_through_its_controlling_deployment(
    replica_set: dict[str, object], expected: str | None
) -> None:
    assert controlling_deployment(replica_set) == expected


@pytest.mark.parametrize(
    "replica_set",
    [_rs({**DEPLOYMENT, "name": "Bad Name"}), {"metadata": {"ownerReferences": "x"}}, {"metadata": None}],
)
def test_an_unreadable_owner_is_refused(replica_set: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        controlling_deployment(replica_set)


@pytest.mark.parametrize(
    ("job", "expected"),
    [({"spec": {}}, False), ({"spec": {"suspend": True}}, True), ({"spec": {"suspend": None}}, False)],
)
def test_a_job_reads_suspended(job: dict[str, object], expected: bool) -> None:
    assert job_suspended(job) is expected


@pytest.mark.parametrize("job", [{"spec": {"suspend": "true"}}, {"spec": {"suspend": 1}}, {}])
def test_a_job_suspend_out_of_bounds_is_refused(job: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        job_suspended(job)
