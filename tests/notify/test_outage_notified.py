"""The outage record's ``notified`` keys (bounded parsing) and the ledger over them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from piclusterd.cluster.notify_ledger import OutageLedger
from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.outage_record import MAX_NOTIFIED, OutageRecord, parse_outage_record, render_outage_record

START = OutageRecord("2026-11-24T17:00:00Z", "pi1", 100.0)


def test_notified_keys_survive_render_and_parse() -> None:
    record = START.with_notified(["plan", "started@2026-11-24T17:00:00Z"])
    assert parse_outage_record(render_outage_record(record)) == record


def test_a_record_written_before_notifications_reads_as_nothing_sent() -> None:
    data = json.loads(render_outage_record(START))
    del data["notified"]
    parsed = parse_outage_record(json.dumps(data))
    assert isinstance(parsed, OutageRecord) and parsed.notified == ()


@pytest.mark.parametrize(
    "value",
    [
        "plan",
        [1],
        [""],
        ["x" * 201],
        [f"k{i}" for i in range(MAX_NOTIFIED + 1)],
        [["nested"]],
    ],
)
def test_garbage_notified_keys_make_the_record_invalid(value: object) -> None:
    data = json.loads(render_outage_record(START))
    parsed = parse_outage_record(json.dumps({**data, "notified": value}))
    assert isinstance(parsed, InvalidRecord) and "'notified'" in parsed.reason


def test_with_notified_stays_within_the_bound() -> None:
    record = START.with_notified(f"k{i:03d}" for i in range(500))
    assert len(record.notified) == MAX_NOTIFIED
    assert isinstance(parse_outage_record(render_outage_record(record)), OutageRecord)


def test_the_ledger_claims_each_key_once_per_outage() -> None:
    ledger = OutageLedger()
    ledger.load(START)
    assert ledger.claim("plan") and not ledger.claim("plan")
    written = ledger.fold(START)
    assert written.notified == ("plan",)
    successor = OutageLedger()  # a new leader reads the record
    successor.load(written)
    assert not successor.claim("plan") and successor.claim("mains_back@2026-11-24T17:00:00Z")


def test_the_next_outage_starts_with_nothing_sent() -> None:
    ledger = OutageLedger()
    ledger.load(START)
    ledger.claim("plan")
    ledger.load(replace(START, notified=("plan",)))
    ledger.load(None)  # the outage is over: its record is gone
    assert ledger.claim("plan")
