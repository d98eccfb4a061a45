"""Signed records (shed, outage) and the boot-id rule: pure decision tables (issue 13, items 1 and 3)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from piclusterd.core.authority import ClusterKeys, LeaseView, RequestCheck, check_record, sign
from piclusterd.core.node_records import (
    SHED_ANNOTATION,
    ShedPhase,
    ShedRecord,
    parse_shed_record,
    render_shed_record,
    shed_record_fields,
)
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    FullShutdownProgress,
    OutageRecord,
    booted_since,
    outage_record_fields,
    parse_outage_record,
    render_outage_record,
)

KEYS = ClusterKeys(b"k" * 32)
LEASE = LeaseView("pi1", 4, 1_795_485_600.0, 15.0)


def signed_shed(node: str, signer: str = "pi1", term: int = 4, key: bytes = KEYS.current) -> ShedRecord:
    record = ShedRecord(
        ShedPhase.DRAINING, "pi2", "on battery", "2026-11-24T02:00:00Z", False, signer=signer, term=term
    )
    return replace(record, signature=sign(key, SHED_ANNOTATION, node, shed_record_fields(record)))


def check(record: ShedRecord, node: str = "pi3", lease: LeaseView | None = LEASE) -> RequestCheck | None:
    refusal = check_record(
        keys=KEYS,
        kind=SHED_ANNOTATION,
        node=node,
        fields=shed_record_fields(record),
        signature=record.signature,
        signer=record.signer,
        term=record.term,
        lease=lease,
    )
    return None if refusal is None else refusal.check


@pytest.mark.parametrize(
    ("record", "lease", "expected"),
    [
        (signed_shed("pi3"), LEASE, None),  # the holder, in its term
        (signed_shed("pi3", signer="pi2", term=3), LEASE, None),  # a leader of an earlier term
        (replace(signed_shed("pi3"), signature=""), LEASE, RequestCheck.SIGNATURE),  # unsigned
        (signed_shed("pi3", key=b"x" * 32), LEASE, RequestCheck.SIGNATURE),  # another key
        (signed_shed("pi4"), LEASE, RequestCheck.SIGNATURE),  # copied from another Node
        (replace(signed_shed("pi3"), reason="changed"), LEASE, RequestCheck.SIGNATURE),  # a field changed
        (signed_shed("pi3", term=5), LEASE, RequestCheck.TERM),  # a term the Lease has not reached
        (signed_shed("pi3", signer="pi4"), LEASE, RequestCheck.LEADER),  # this term is pi1's
        (signed_shed("pi3", signer="pi4"), replace(LEASE, holder=""), None),  # released: no holder to contradict
        (signed_shed("pi3"), None, RequestCheck.LEADER),  # no Lease to check against
    ],
)
def test_check_record(record: ShedRecord, lease: LeaseView | None, expected: RequestCheck | None) -> None:
    assert check(record, lease=lease) is expected


def test_a_signed_shed_record_survives_its_annotation() -> None:
    record = signed_shed("pi3")
    parsed = parse_shed_record(render_shed_record(record))
    assert parsed == record and check(parsed) is None  # type: ignore[arg-type]


def test_an_outage_record_verifies_after_its_configmap_round_trip() -> None:
    progress = FullShutdownProgress(
        "2026-11-24T03:00:00Z", "pi1", ("pi1", "pi2"), cordoned=("pi2",), boot_ids=(("pi1", "a" * 32),)
    )
    record = OutageRecord("2026-11-24T02:00:00Z", "pi1", 63, energy_wh=12.3456, full_shutdown=progress, term=4)
    signature = sign(KEYS.current, OUTAGE_CONFIGMAP, "kube-system", outage_record_fields(record))
    parsed = parse_outage_record(render_outage_record(replace(record, signature=signature)))
    assert isinstance(parsed, OutageRecord) and parsed.full_shutdown == progress
    refusal = check_record(
        keys=KEYS,
        kind=OUTAGE_CONFIGMAP,
        node="kube-system",
        fields=outage_record_fields(parsed),
        signature=parsed.signature,
        signer=parsed.leader,
        term=parsed.term,
        lease=LEASE,
    )
    assert refusal is None


PROGRESS = FullShutdownProgress("2026-11-24T03:00:00Z", "pi1", ("pi1", "pi2"), boot_ids=(("pi1", "A-1"), ("pi2", "b2")))


@pytest.mark.parametrize(
    ("node", "boot_id", "kubelets", "expected"),
    [
        ("pi1", "a1", {}, False),  # the same boot (dashes and case aside): a daemon restart
        ("pi1", "c3", {}, True),  # this machine booted since
        ("pi1", "c3", {"pi1": "A-1", "pi2": "b2"}, True),  # its own boot id wins over a kubelet not yet updated
        ("pi3", "c3", {"pi1": "A-1", "pi2": "b2"}, False),  # not recorded: the others' kubelets, unchanged
        ("pi3", "c3", {"pi2": "d4"}, True),  # ... one of them booted since
        ("pi1", None, {"pi1": "e5"}, True),  # own boot id unreadable: the kubelets'
        ("pi1", None, {}, False),  # nothing to go on: not booted (on mains a recorded full shutdown is refused)
    ],
)
def test_booted_since_compares_values_of_one_machine(
    node: str, boot_id: str | None, kubelets: dict[str, str], expected: bool
) -> None:
    assert booted_since(PROGRESS, node, boot_id, kubelets) is expected
