"""Kubernetes quantities are parsed exactly and rounded up the way Kubernetes rounds them."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.cluster_view import SnapshotInvalid, parse_cpu_millicores, parse_memory_bytes, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", Fraction(4)),
        ("500m", Fraction(1, 2)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("3.7Gi", Fraction(37, 10) * 2**30),
        ("512Mi", Fraction(2**29)),
        ("64Ki", Fraction(65536)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("2.5e-3", Fraction(1, 400)),
        ("2E", Fraction(2 * 10**18)),  # exa, not an exponent
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("250u", Fraction(1, 4000)),
        ("3n", Fraction(3, 10**9)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("+2", Fraction(2)),
        ("-1", Fraction(-1)),
        ("0.1", Fraction(1, 10)),  # exact: not the float 0.1
        (3, Fraction(3)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse_quantity_is_exact(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1 Gi", "1gi", "1Gb", "1e", "e3", "0x10", "1Ki2", "1.5.Gi"])
def test_malformed_quantity_is_refused(text: str) -> None:
    with pytest.raises(SnapshotInvalid, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("4", 4000),
        ("500m", 500),
        ("1.5", 1500),
        ("0.0001", 1),
        ("100u", 1),
        ("1e-3", 1),
        ("0", 0),
        ("2k", 2_000_000),
    ],
)
def test_cpu_is_millicores_rounded_up(text: str, millicores: int) -> None:
    assert parse_cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("text", "octets"),
    [
        ("1.5Gi", 1_610_612_736),
        ("3.7Gi", 3_972_844_749),  # 3972844748.8 rounded up
        ("512Mi", 536_870_912),
        ("3879731Ki", 3_972_844_544),
        ("1e3", 1000),
        ("128974848", 128_974_848),
        ("129M", 129_000_000),
        ("500m", 1),  # half a byte is a byte
    ],
)
def test_memory_is_bytes_rounded_up(text: str, octets: int) -> None:
    assert parse_memory_bytes(text) == octets


@pytest.mark.parametrize("parse", [parse_cpu_millicores, parse_memory_bytes])
def test_negative_request_is_refused(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(SnapshotInvalid, match="negative"):
        parse("-1")


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi"]))
def test_rendered_integer_quantities_parse_back(number: int, unit: str) -> None:
    factor = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[unit]
    assert parse_memory_bytes(f"{number}{unit}") == number * factor
