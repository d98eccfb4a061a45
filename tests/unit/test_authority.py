"""The checks before a daemon obeys a request (core/authority.py): one factor per row, first failure wins."""

from __future__ import annotations

from typing import Any

import pytest

from piclusterd.core.authority import ClusterKeys, LeaseView, RequestCheck, check_request, sign, signature_valid

KEY, OLD, OTHER = b"k" * 32, b"o" * 32, b"x" * 32
KIND, NODE = "picluster.io/poweroff-request", "pi3"
FIELDS = {"v": 1, "id": "r1", "leader": "pi1", "at": "2026-11-24T02:00:00Z", "term": 4}
RENEWED = 1_795_485_600.0  # the Lease's renewTime: the request's own "at"


def base(**change: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "keys": ClusterKeys(KEY),
        "kind": KIND,
        "node": NODE,
        "fields": FIELDS,
        "signature": sign(KEY, KIND, NODE, FIELDS),
        "request_id": "r1",
        "leader": "pi1",
        "term": 4,
        "written_at": RENEWED,
        "lease": LeaseView("pi1", 4, RENEWED + 30, 15),
        "obeyed": (),
        "max_age_s": 120.0,
        "situation": None,
    }
    arguments.update(change)
    return arguments


def test_a_fresh_request_signed_by_the_leader_in_its_term_is_obeyed() -> None:
    assert check_request(**base()) is None


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"signature": ""}, RequestCheck.SIGNATURE),
        ({"signature": sign(OTHER, KIND, NODE, FIELDS)}, RequestCheck.SIGNATURE),
        ({"node": "pi4"}, RequestCheck.SIGNATURE),  # copied to another Node
        ({"kind": "picluster.io/poweron-request"}, RequestCheck.SIGNATURE),  # moved to another annotation
        ({"fields": {**FIELDS, "leader": "pi2"}}, RequestCheck.SIGNATURE),  # a field changed after signing
        ({"obeyed": ("r1",)}, RequestCheck.REPLAY),
        ({"lease": None}, RequestCheck.LEADER),
        ({"lease": LeaseView("", 4, RENEWED, 1)}, RequestCheck.LEADER),  # released
        ({"lease": LeaseView("pi2", 5, RENEWED, 15)}, RequestCheck.LEADER),
        ({"lease": LeaseView("pi1", 5, RENEWED, 15)}, RequestCheck.TERM),
        ({"written_at": None}, RequestCheck.FRESHNESS),
        ({"lease": LeaseView("pi1", 4, None, 15)}, RequestCheck.FRESHNESS),
        ({"lease": LeaseView("pi1", 4, RENEWED + 121, 15)}, RequestCheck.FRESHNESS),  # old
        ({"written_at": RENEWED + 3600}, RequestCheck.FRESHNESS),  # dated in the future of the leader's clock
        ({"situation": "mains is online"}, RequestCheck.SITUATION),
    ],
)
def test_each_check_refuses_on_its_own(change: dict[str, Any], check: RequestCheck) -> None:
    refusal = check_request(**base(**change))
    assert refusal is not None and refusal.check is check


def test_either_key_verifies_during_a_rotation() -> None:
    rotating = ClusterKeys(KEY, OLD)
    assert signature_valid(rotating, KIND, NODE, FIELDS, sign(OLD, KIND, NODE, FIELDS))
    assert signature_valid(rotating, KIND, NODE, FIELDS, sign(KEY, KIND, NODE, FIELDS))
    assert not signature_valid(ClusterKeys(KEY), KIND, NODE, FIELDS, sign(OLD, KIND, NODE, FIELDS))


def test_keys_never_show() -> None:
    assert KEY.hex() not in repr(ClusterKeys(KEY, OLD)) and "k" * 32 not in str(ClusterKeys(KEY))
