"""Hypothesis: whatever TOML values a file holds, parsing it raises ConfigInvalid or nothing (issue 13, item 9).

A config the daemon cannot use must be refused with the file, the key and the fix, in ``check-config`` as in
``run``: never a TypeError, a RecursionError or a traceback from deep inside the schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piclusterd.config.parse import parse_config
from piclusterd.config.schema import NODE_POWER, SCHEMA, TOP
from piclusterd.core.errors import ConfigInvalid

#: What tomllib can give: strings, integers (any size), floats (nan and inf included), booleans, dates and
#: times, arrays and tables.
SCALARS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "127.0.0.1 ", "my ups", "üps", "5m", "1ms", "nut", "hat", "enforce", "dry-run"]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
SECTION_NAMES = st.sampled_from([*SCHEMA, "node_power"]) | st.text(max_size=12)


@st.composite
def sections(draw: st.DrawFn) -> dict[str, Any]:
    """A file: known sections with known and unknown keys, each holding any TOML value."""
    data: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(list(TOP)), max_size=1, unique=True)):
        data[name] = draw(VALUES)
    for section in draw(st.lists(SECTION_NAMES, max_size=4, unique=True)):
        if section == "node_power":
            data[section] = draw(node_power())
            continue
        keys = list(SCHEMA.get(section, {})) or ["x"]
        table = draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), VALUES, max_size=5))
        data[section] = draw(st.sampled_from([table, table, draw(VALUES)]))  # mostly a table, sometimes not
    return data


@st.composite
def node_power(draw: st.DrawFn) -> Any:
    methods = st.sampled_from(list(NODE_POWER)) | VALUES
    tables = {}
    for node in draw(st.lists(st.sampled_from(["pi2", "pi3", "PI 4"]) | st.text(max_size=8), max_size=3)):
        method = draw(methods)
        keys = list(NODE_POWER.get(method, {})) if isinstance(method, str) else []
        table = draw(st.dictionaries(st.sampled_from(keys or ["x"]) | st.text(max_size=6), VALUES, max_size=4))
        tables[node] = {"method": method, **table}
    return draw(st.sampled_from([tables, tables, draw(VALUES)]))


@given(sections())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_toml_values_are_accepted_or_refused_by_name_never_a_crash(data: dict[str, Any]) -> None:
    try:
        parse_config(data, "/etc/piclusterd/piclusterd.toml", hostname="pi1")
    except ConfigInvalid as error:
        for line in str(error).splitlines():
            assert line.startswith("/etc/piclusterd/piclusterd.toml"), line
            assert len(line) < 2000


@given(st.integers(min_value=17, max_value=3000))
@settings(max_examples=10, deadline=None)
def test_a_value_nested_deeper_than_the_schema_is_refused_by_key(depth: int) -> None:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    try:
        parse_config({"ups": {"host": value}}, "f.toml")
    except ConfigInvalid as error:
        assert "ups.host: is nested more than 16 levels deep" in str(error)
    else:
        raise AssertionError("a deep value was accepted")
