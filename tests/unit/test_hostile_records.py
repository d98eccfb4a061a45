"""Hostile values in the records other machines write (issue 13, finding 9 and item 9).

Every record parser (shed, power-off and power-on requests, the power record, the outage record) returns its
record or an ``InvalidRecord`` saying why, and nothing else: no RecursionError from a deep value, no NaN or
infinity let through, no traceback from a 5,000-digit number or a lone surrogate. The hostile inputs are listed
in tests/README.md.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piclusterd.core.bounded_json import JsonLimits, JsonRefused, load_bounded_json
from piclusterd.core.cluster_view import SnapshotInvalid, parse_kubectl_list
from piclusterd.core.node_records import (
    InvalidRecord,
    PowerOffRequest,
    PowerOnRequest,
    ShedRecord,
    parse_poweroff_request,
    parse_poweron_request,
    parse_shed_record,
)
from piclusterd.core.outage_record import OutageRecord, parse_outage_record
from piclusterd.core.power_record import PowerRecord, parse_power_record

PARSERS: dict[str, tuple[Callable[[str], object], type]] = {
    "shed": (parse_shed_record, ShedRecord),
    "poweroff-request": (parse_poweroff_request, PowerOffRequest),
    "poweron-request": (parse_poweron_request, PowerOnRequest),
    "power": (parse_power_record, PowerRecord),
    "outage": (parse_outage_record, OutageRecord),
}

OUTAGE = {
    "v": 1,
    "startedAt": "2026-11-25T02:00:00Z",
    "leader": "pi1",
    "chargeAtStart": 90,
    "energyWh": 12.5,
    "shed": [],
    "criticalDownS": 0,
    "criticalDownSince": "",
    "lastReadingAt": "",
    "fullShutdown": None,
    "mainsBackAt": "",
}

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE: dict[str, str] = {
    "100,000-deep array": DEEP,
    "100,000-deep object": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "deep value inside a record": '{"v":1,"id":' + DEEP + ',"leader":"pi1","at":"x"}',
    "NaN": '{"v":1,"id":NaN,"leader":"pi1","at":"x"}',
    "Infinity": '{"v":Infinity}',
    "1e400": '{"v":1e400}',
    "5,000-digit integer": '{"v":' + "9" * 5000 + "}",
    "lone surrogate escape": '{"v":1,"id":"\\ud800","leader":"pi1","at":"x"}',
    "lone surrogate character": '{"v":1,"id":"\ud800","leader":"pi1","at":"x"}',
    "1 MiB string": '{"v":1,"id":"' + "x" * 2**20 + '"}',
    "top-level list": "[1,2,3]",
    "top-level string": '"hello"',
    "null": "null",
    "empty": "",
    "wrong types": '{"v":true,"id":1,"leader":null,"at":[]}',
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_each_parser_refuses_each_hostile_value_as_invalid(parser: str, hostile: str) -> None:
    parse, _ = PARSERS[parser]
    assert isinstance(parse(HOSTILE[hostile]), InvalidRecord)


@pytest.mark.parametrize("bad", [float("nan"), "NaN", "1e400", "-1", "101", "1e999"])
def test_an_outage_record_with_a_non_finite_or_absurd_charge_is_invalid(bad: object) -> None:
    text = json.dumps({**OUTAGE, "chargeAtStart": 0}).replace('"chargeAtStart": 0', f'"chargeAtStart": {bad}')
    assert isinstance(parse_outage_record(text), InvalidRecord)


@pytest.mark.parametrize("key", ["energyWh", "criticalDownS"])
@pytest.mark.parametrize("bad", ["NaN", "1e400", "-Infinity", "1e300"])
def test_an_outage_record_with_nan_or_huge_sums_is_invalid(key: str, bad: str) -> None:
    """Finding 9: NaN or 1e400 in the outage record used to be taken as a number and kill the leader."""
    text = json.dumps({**OUTAGE, key: 0}).replace(f'"{key}": 0', f'"{key}": {bad}')
    assert isinstance(parse_outage_record(text), InvalidRecord)


def test_a_sane_outage_record_is_still_read() -> None:
    assert isinstance(parse_outage_record(json.dumps(OUTAGE)), OutageRecord)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ("[" * 33 + "]" * 33, "nested more than 32 deep"),
        ('"' + "x" * 300_000 + '"', "262144 bytes"),
        ('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', None),  # brackets inside a string are not nesting
        ('{"a":"\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', None),  # nor after an escaped quote
        ("1" * 31, "31 digits"),
        ("-" + "1" * 30, None),
    ],
)
def test_the_bounded_reader_says_why(raw: str | bytes, why: str | None) -> None:
    if why is None:
        load_bounded_json(raw)
        return
    with pytest.raises(JsonRefused, match=why):
        load_bounded_json(raw)


def test_limits_are_a_parameter() -> None:
    with pytest.raises(JsonRefused, match="more than 8 bytes"):
        load_bounded_json('"123456789"', JsonLimits(max_bytes=8))


# --- Hypothesis: any JSON-ish value, any text, any bytes ---------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["v", "id", "leader", "at", "phase", "draining", "2026-11-25T02:00:00Z", "pi1", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from([*sorted(OUTAGE), "id", "phase"]), inner)
    ),
    max_leaves=20,
)


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def record_like(value: Any) -> Any:
    return {**OUTAGE, **value} if isinstance(value, dict) else value


@FUZZ
@given(st.one_of(values.map(dumps), values.map(record_like).map(dumps), st.text(max_size=200)))
def test_no_record_parser_raises_on_any_text(text: str) -> None:
    for parse, kind in PARSERS.values():
        assert isinstance(parse(text), kind | InvalidRecord)


@FUZZ
@given(st.integers(min_value=0, max_value=200), st.sampled_from(["[", '{"a":', '{"v":1,"id":[']))
def test_no_record_parser_raises_on_any_depth(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '{"v":1,"id":[': "]}"}[opener]
    text = opener * depth + "1" + closer * depth
    for parse, kind in PARSERS.values():
        assert isinstance(parse(text), kind | InvalidRecord)


@FUZZ
@given(st.binary(max_size=200))
def test_the_bounded_reader_raises_only_json_refused_on_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(JsonRefused):
        load_bounded_json(raw)


quantities = st.one_of(
    st.text(max_size=80),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["lots", "9" * 5000, "1e400", "1e100", "-5", "500m", "1.5Gi", "2E"]),
    st.lists(st.integers(), max_size=2),
    st.none(),
    st.booleans(),
)


@FUZZ
@given(quantities, quantities, quantities, values)
def test_parse_kubectl_list_raises_only_snapshot_invalid(usage: Any, cpu: Any, memory: Any, anything: Any) -> None:
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "clinic", "annotations": {"picluster.io/cpu-usage": usage}},
        "spec": {"nodeName": "pi1", "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": "Running"},
    }
    node = {"kind": "Node", "metadata": {"name": "pi1"}, "status": {"allocatable": {"cpu": cpu}}}
    odd = {"kind": "Pod", "metadata": {"name": "odd"}, "spec": anything, "status": anything}
    for items in ([pod], [node, pod], [pod, odd], anything):
        with contextlib.suppress(SnapshotInvalid):
            parse_kubectl_list({"kind": "List", "items": items})
