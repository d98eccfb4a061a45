"""Who may ask a daemon to act: the cluster key, the signature of a request, and the checks before obeying. Pure.

A request a daemon obeys (a power-off, a relay pulse) carries the leader's name, the Lease term it held
when it wrote the request (``leaseTransitions``) and an HMAC-SHA256 over all its fields, made with the
cluster key: a random secret in a root-only file on every Pi (``piclusterctl keygen``), as the k3s token is.
The signature also covers what kind of request it is and the Node it is written on, so a request copied to
another Node, or from one annotation to another, does not verify.

The receiver obeys only if every check in :func:`check_request` passes, in this order (first failure wins):

1. ``signature``: made with the cluster key (or the previous key, during a rotation);
2. ``replay``: not an id this daemon already obeyed or acknowledged (deleting the ack replays nothing);
3. ``leader``: the signer holds the Lease now, read fresh from the API server;
4. ``term``: in the same term (a leader that lost the Lease and won it back signs in a new term);
5. ``freshness``: written no earlier than ``max_age_s`` before the Lease's own ``renewTime``, and not after
   it by more than the lease duration. Both times come from the leader's clock, so a Pi without RTC or NTP
   judges freshness correctly; the local clock is never compared with them;
6. ``situation``: the request fits what this node sees (a power-off only on battery or in a recorded full
   shutdown); the caller decides that and passes the answer in.

A *record* (a shed record on a Node, the outage record) is state a later leader resumes, not an order of the
moment: :func:`check_record` asks for the signature, and that its signer may have led in its term (not a term
later than the Lease's, and not the current term of another holder). A record from an earlier term by a
leader of then verifies; every safety rule is checked again before it is resumed
(:func:`piclusterd.core.safety.check_resume`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

__all__ = [
    "KEY_BYTES",
    "ClusterKeys",
    "LeaseView",
    "RequestCheck",
    "RequestRefusal",
    "SignedFields",
    "check_record",
    "check_request",
    "parse_key_text",
    "render_key",
    "sign",
    "signature_valid",
    "signing_payload",
]

#: A new key's length: 256 bits, HMAC-SHA256's block-size-safe, full-strength key.
KEY_BYTES = 32
#: The shortest key accepted from a file (128 bits).
MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """The cluster key, and during a rotation the previous one; never shown in a repr, a log line or an error.

    Requests are signed with ``current``; one signed with either key verifies.
    """

    current: bytes = field(repr=False)
    previous: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return "ClusterKeys('***')"

    __str__ = __repr__


def render_key(key: bytes) -> str:
    """A key as its file holds it: hexadecimal on one line."""
    return key.hex() + "\n"


def parse_key_text(text: str) -> bytes:
    """A key file's text as the key; raises ValueError saying what is wrong (never showing the key)."""
    stripped = text.strip()
    try:
        key = bytes.fromhex(stripped)
    except ValueError:
        raise ValueError("is not hexadecimal (piclusterctl keygen writes one)") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"holds {len(key)} bytes; a key has at least {MIN_KEY_BYTES} (piclusterctl keygen)")
    return key


SignedFields = Mapping[str, str | int | bool]
"""A request's fields as written, the signature aside."""


def signing_payload(kind: str, node: str, fields: SignedFields) -> bytes:
    """What is signed: canonical JSON (sorted keys, no spaces, ASCII) of the fields, the kind and the Node."""
    return json.dumps(
        {"fields": dict(fields), "kind": kind, "node": node}, separators=(",", ":"), sort_keys=True, ensure_ascii=True
    ).encode("ascii")


def sign(key: bytes, kind: str, node: str, fields: SignedFields) -> str:
    """HMAC-SHA256 of :func:`signing_payload`, in hex."""
    return hmac.new(key, signing_payload(kind, node, fields), hashlib.sha256).hexdigest()


def signature_valid(keys: ClusterKeys, kind: str, node: str, fields: SignedFields, signature: str) -> bool:
    """Whether ``signature`` was made with either key (constant-time comparisons, every key tried)."""
    valid = False
    for key in (keys.current, keys.previous):
        if key is not None and hmac.compare_digest(sign(key, kind, node, fields), signature):
            valid = True
    return valid


class RequestCheck(enum.StrEnum):
    """The check a refused request failed: named in the journal and in the ``RequestRefused`` Event."""

    SIGNATURE = "signature"
    REPLAY = "replay"
    LEADER = "leader"
    TERM = "term"
    FRESHNESS = "freshness"
    SITUATION = "situation"


@dataclass(frozen=True, slots=True)
class RequestRefusal:
    check: RequestCheck
    detail: str


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The Lease as just read: holder ("" when released), term, renewTime (UNIX s, the holder's clock)."""

    holder: str
    transitions: int
    renew_time: float | None
    lease_duration_s: float


def check_request(
    *,
    keys: ClusterKeys,
    kind: str,
    node: str,
    fields: SignedFields,
    signature: str,
    request_id: str,
    leader: str,
    term: int,
    written_at: float | None,
    lease: LeaseView | None,
    obeyed: Collection[str],
    max_age_s: float,
    situation: str | None,
) -> RequestRefusal | None:
    """Whether to obey a request (None) or which check refuses it. Pure: ordered early returns.

    ``written_at`` is the request's own time (None: unreadable); ``obeyed`` the ids this daemon already obeyed
    or acknowledged; ``situation`` None when the request fits what this node sees, else why it does not.
    """
    # 1. Only a piclusterd holding the cluster key can write a request that verifies.
    if not signature or not signature_valid(keys, kind, node, fields, signature):
        why = "unsigned" if not signature else "the signature does not match the cluster key"
        return RequestRefusal(RequestCheck.SIGNATURE, why)
    # 2. Once per id: an old request does not come back because someone deleted its acknowledgement.
    if request_id in obeyed:
        return RequestRefusal(RequestCheck.REPLAY, f"request {request_id} was already obeyed")
    # 3. The signer leads now: a signed request from a node that no longer leads is history, not an order.
    if lease is None or not lease.holder or lease.holder != leader:
        holder = "nobody" if lease is None or not lease.holder else lease.holder
        return RequestRefusal(RequestCheck.LEADER, f"signed by {leader!r}, but the Lease is held by {holder}")
    # 4. ... in the term it signed in.
    if lease.transitions != term:
        return RequestRefusal(
            RequestCheck.TERM, f"signed in term {term}, but {leader} now leads in term {lease.transitions}"
        )
    # 5. Fresh, by the leader's own clock: the Lease's renewTime and the request's time are both the leader's.
    if written_at is None or lease.renew_time is None:
        return RequestRefusal(RequestCheck.FRESHNESS, "the request's time or the Lease's renewTime is unreadable")
    age = lease.renew_time - written_at
    if age > max_age_s:
        return RequestRefusal(
            RequestCheck.FRESHNESS, f"written {age:.0f} s before the Lease's last renewal (at most {max_age_s:g} s)"
        )
    if -age > lease.lease_duration_s + 1:  # the request's time has second precision
        return RequestRefusal(RequestCheck.FRESHNESS, f"dated {-age:.0f} s after the Lease's last renewal")
    # 6. It makes sense here and now.
    if situation is not None:
        return RequestRefusal(RequestCheck.SITUATION, situation)
    return None


def check_record(
    *,
    keys: ClusterKeys,
    kind: str,
    node: str,
    fields: SignedFields,
    signature: str,
    signer: str,
    term: int,
    lease: LeaseView | None,
) -> RequestRefusal | None:
    """Whether a record may be acted on (None) or which check refuses it. Pure: ordered early returns.

    ``node`` is what the record is written on (a Node's name; the namespace for the outage record).
    """
    # 1. Written by a piclusterd holding the cluster key, for this very object.
    if not signature or not signature_valid(keys, kind, node, fields, signature):
        why = "unsigned" if not signature else "the signature does not match the cluster key"
        return RequestRefusal(RequestCheck.SIGNATURE, why)
    # 2. Terms only grow: a record from a term the Lease has not reached was not written by its leader.
    if lease is None:
        return RequestRefusal(RequestCheck.LEADER, "the Lease cannot be read to check who signed it")
    if term < 0 or term > lease.transitions:
        return RequestRefusal(RequestCheck.TERM, f"signed in term {term}, but the Lease is in term {lease.transitions}")
    # 3. The current term has one leader: the Lease's holder (none while released).
    if term == lease.transitions and lease.holder and lease.holder != signer:
        return RequestRefusal(RequestCheck.LEADER, f"signed by {signer!r} in term {term}, which {lease.holder} leads")
    return None
