"""Leader election on a coordination.k8s.io/v1 Lease, with fencing.

client-go's algorithm (``tools/leaderelection``), written out because the Python client's own elector is
missing from Debian's python3-kubernetes 22.6 and, where present, never releases, never counts
transitions and keeps its callback running after leadership is lost. Three parts:

- :func:`decide`, pure: given the lease as last read, when this candidate last saw it change, the time
  and the timings, say whether to create, take over, renew or wait, and with which record;
- :class:`LeaseStore`, the port to the Lease, and :class:`KubeLeaseStore`, its adapter on
  ``CoordinationV1Api`` (``read_namespaced_lease``, ``create_namespaced_lease``,
  ``replace_namespaced_lease``, optimistic concurrency through ``resourceVersion``);
- :class:`LeaseElector`, which the daemon calls every retry period and asks, right before every
  destructive step, whether it still leads (:meth:`LeaseElector.ensure_leader`).

The safety rule (fencing): a candidate counts as leader only until ``renew_deadline_s`` after the *start*
of its last successful write of the lease. Another candidate takes over no earlier than
``lease_duration_s`` after it *saw* that write, and lease_duration > renew_deadline, so two candidates
never both act as leader, even if the API server answers late, is unreachable or loses a response.
Expiry is always measured on the local monotonic clock from when a change was observed, never from the
``renewTime`` written by another machine's clock.

Lease sanity (one write to the Lease must not disable coordination): another holder's own
``leaseDurationSeconds`` counts only within 1 s..``MAX_DURATION_FACTOR`` x ours, and only for a holder that is a
Node of the cluster (when the elector is given ``holder_is_node``); otherwise the lease expires after *our*
duration (:func:`trusted_duration`), and the Decision says why (``distrust``). A read or write that fails is
a :class:`LeaseUnavailable` carrying the step and the HTTP status, which the daemon reports once per cause.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from piclusterd.core.errors import ApiUnavailable, DaemonStopping, NotLeader, WriteConflict

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from piclusterd.core.ports import Clock

__all__ = [
    "DEFAULT_LEASE_NAME",
    "DEFAULT_LEASE_NAMESPACE",
    "MAX_DURATION_FACTOR",
    "Action",
    "Attempt",
    "Decision",
    "ElectionTimings",
    "KubeLeaseStore",
    "LeaseElector",
    "LeaseKeepingSleep",
    "LeaseRecord",
    "LeaseStore",
    "LeaseUnavailable",
    "Reason",
    "Transition",
    "decide",
    "observed_change_time",
    "trusted_duration",
]

DEFAULT_LEASE_NAMESPACE = "piclusterd"
DEFAULT_LEASE_NAME = "piclusterd-leader"

#: Another holder's leaseDurationSeconds above this many times ours is not believed (nor one under 1 s).
MAX_DURATION_FACTOR = 10


class LeaseUnavailable(ApiUnavailable):
    """Reading or writing the Lease failed: ``doing`` (reading, creating, replacing) and the HTTP ``status``
    (None: no answer), so that each cause is said once (403: RBAC, 404: no such namespace...)."""

    def __init__(self, message: str, *, doing: str, status: int | None) -> None:
        super().__init__(message)
        self.doing = doing
        self.status = status


@dataclass(frozen=True, slots=True)
class ElectionTimings:
    """client-go's three durations, validated once: lease > renew deadline > 1.2 x retry period.

    ``lease_duration_s``: how long others wait, after they saw the lease change, before taking it over
    (whole seconds: it is written as ``leaseDurationSeconds``). ``renew_deadline_s``: how long after its
    last successful renewal the leader still acts. ``retry_period_s``: how often the daemon calls
    :meth:`LeaseElector.try_acquire_or_renew`.
    """

    lease_duration_s: int = 15
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.lease_duration_s, bool) or not isinstance(self.lease_duration_s, int):
            raise ValueError("lease_duration_s must be a whole number of seconds (leaseDurationSeconds)")
        for name in ("lease_duration_s", "renew_deadline_s", "retry_period_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not self.lease_duration_s > self.renew_deadline_s:
            raise ValueError(
                f"lease_duration_s ({self.lease_duration_s}) must be greater than renew_deadline_s "
                f"({self.renew_deadline_s})"
            )
        if not self.renew_deadline_s > 1.2 * self.retry_period_s:
            raise ValueError(
                f"renew_deadline_s ({self.renew_deadline_s}) must be greater than 1.2 x retry_period_s "
                f"({self.retry_period_s})"
            )


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The Lease's spec as piclusterd reads and writes it. Times are UNIX seconds (microsecond
    precision, as MicroTime), ``None`` when unset; ``holder`` is ``""`` when the lease was released.
    ``resource_version`` is the one the server returned, ``""`` for a record not yet written.
    """

    holder: str
    lease_duration_s: int
    acquire_time: float | None
    renew_time: float | None
    transitions: int
    resource_version: str = ""

    def same_holding(self, other: LeaseRecord) -> bool:
        """Whether two reads show the same record (resourceVersion aside: an unrelated write, say a
        label, bumps it without anyone renewing).
        """
        return (
            self.holder == other.holder
            and self.lease_duration_s == other.lease_duration_s
            and self.acquire_time == other.acquire_time
            and self.renew_time == other.renew_time
            and self.transitions == other.transitions
        )


class Action(enum.Enum):
    """What a candidate does with the lease."""

    CREATE = "create"
    TAKE_OVER = "take_over"
    RENEW = "renew"
    WAIT = "wait"


class Reason(enum.Enum):
    """Why :func:`decide` chose its action."""

    NO_LEASE = "no_lease"
    HELD_BY_US = "held_by_us"
    HELD_BY_OTHER = "held_by_other"
    EXPIRED = "expired"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Decision:
    """An action, its reason, and for a write the record to write (carrying the resourceVersion read).

    For WAIT, ``expires_at`` is the monotonic time at which the other holder's lease runs out unless
    it is renewed first.
    """

    action: Action
    reason: Reason
    record: LeaseRecord | None = None
    expires_at: float | None = None
    #: Why the holder's own lease duration was not believed (ours was counted instead), else None.
    distrust: str | None = None


def observed_change_time(
    previous: LeaseRecord | None, previous_at: float | None, current: LeaseRecord, now: float
) -> float:
    """When a candidate last saw the record change: ``now`` if ``current`` differs from what it saw
    before (or it saw nothing), else the earlier time. Pure.
    """
    if previous is None or previous_at is None or not previous.same_holding(current):
        return now
    return previous_at


def trusted_duration(observed: LeaseRecord, timings: ElectionTimings, holder_is_node: bool) -> tuple[int, str | None]:
    """How long another holder's lease runs, counted from when it was seen to change, and why not its own
    duration (None when it is). Pure: ordered early returns.
    """
    # 1. A holder that is no Node of this cluster is not obeyed: its lease runs out after our duration.
    if not holder_is_node:
        return timings.lease_duration_s, f"holder {observed.holder[:64]!r} is not a node of this cluster"
    # 2. An absurd duration (a typo, or a write meant to block every election) counts as ours.
    highest = MAX_DURATION_FACTOR * timings.lease_duration_s
    if not 1 <= observed.lease_duration_s <= highest:
        return timings.lease_duration_s, f"leaseDurationSeconds {observed.lease_duration_s} is outside 1..{highest}"
    # 3. Otherwise the holder's own duration counts (a released lease written with 1 s is short-lived).
    return observed.lease_duration_s, None


def decide(
    observed: LeaseRecord | None,
    observed_at: float,
    now: float,
    wall_now: float,
    identity: str,
    timings: ElectionTimings,
    *,
    holder_is_node: bool = True,
) -> Decision:
    """client-go's tryAcquireOrRenew as a pure function: no I/O, no clock.

    ``observed`` is the lease as just read (``None``: it does not exist), ``observed_at`` the monotonic
    time this candidate last saw it change (see :func:`observed_change_time`), ``now`` the monotonic
    time, ``wall_now`` the UNIX time to write into acquireTime/renewTime. ``holder_is_node``: whether the
    holder names a Node of the cluster (True when that cannot be told).
    """
    # 1. No lease yet: create it, held by us, with no transitions.
    if observed is None:
        record = LeaseRecord(identity, timings.lease_duration_s, wall_now, wall_now, 0)
        return Decision(Action.CREATE, Reason.NO_LEASE, record)
    # 2. We hold it: renew, keeping acquireTime and the transition count.
    if observed.holder == identity:
        record = LeaseRecord(
            identity,
            timings.lease_duration_s,
            observed.acquire_time if observed.acquire_time is not None else wall_now,
            wall_now,
            observed.transitions,
            observed.resource_version,
        )
        return Decision(Action.RENEW, Reason.HELD_BY_US, record)
    # 3. Someone else holds it and its lease, counted from when we saw it change, still runs (its own
    #    duration if sane and the holder is one of our nodes, else ours: trusted_duration).
    duration, distrust = trusted_duration(observed, timings, holder_is_node)
    expires_at = observed_at + duration
    if observed.holder and now < expires_at:
        return Decision(Action.WAIT, Reason.HELD_BY_OTHER, expires_at=expires_at, distrust=distrust)
    # 4. Released or expired: take it over, as a new holder (new acquireTime, one more transition).
    record = LeaseRecord(
        identity,
        timings.lease_duration_s,
        wall_now,
        wall_now,
        observed.transitions + 1,
        observed.resource_version,
    )
    return Decision(
        Action.TAKE_OVER,
        Reason.EXPIRED if observed.holder else Reason.RELEASED,
        record,
        distrust=distrust if observed.holder else None,
    )


class LeaseStore(Protocol):
    """One Lease object. Every method raises :class:`~piclusterd.core.errors.ApiUnavailable` when the API
    cannot be reached or answers with an unexpected error, and must not block past its own timeout.
    """

    def get(self) -> LeaseRecord | None:
        """The lease as stored, or None if it does not exist."""
        ...

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the lease; :class:`~piclusterd.core.errors.WriteConflict` if it already exists."""
        ...

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Replace the lease if it still has ``record.resource_version``, else
        :class:`~piclusterd.core.errors.WriteConflict`.
        """
        ...


class _MicroTime(_dt.datetime):
    """A datetime that always renders six fractional digits.

    kube-apiserver parses MicroTime with the layout ``2006-01-02T15:04:05.000000Z07:00``;
    ``datetime.isoformat()``, which the client uses, drops the fraction when microseconds are zero and
    the write is then refused with a 400.
    """

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        return super().isoformat(sep, timespec)


def _to_micro_time(wall: float | None) -> _MicroTime | None:
    if wall is None:
        return None
    moment = _dt.datetime.fromtimestamp(wall, tz=_dt.UTC)
    return _MicroTime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond, tzinfo=_dt.UTC,
    )  # fmt: skip


def _from_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return round(float(value.timestamp()), 6)
    raise ApiUnavailable(f"lease time is not a timestamp: {value!r}")


class KubeLeaseStore:
    """:class:`LeaseStore` on ``CoordinationV1Api``. Works with kubernetes 22.6 to 37.x.

    ``request_timeout_s`` bounds each HTTP request (urllib3 may retry idempotent ones on connection
    errors unless the ApiClient's configuration says ``retries = False``).
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str = DEFAULT_LEASE_NAMESPACE,
        name: str = DEFAULT_LEASE_NAME,
        request_timeout_s: float = 5.0,
    ) -> None:
        from kubernetes import client

        if not namespace or not name:
            raise ValueError("lease namespace and name must not be empty")
        if request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be positive")
        self._api = client.CoordinationV1Api(api_client)
        self._client = client
        self.namespace = namespace
        self.name = name
        # (connect, read): kubernetes 22.6 ignores a float timeout and only honours an int or a tuple.
        self._timeout = (request_timeout_s, request_timeout_s)
        self._cached: Callable[[], tuple[bool, dict[str, Any] | None]] | None = None

    def __repr__(self) -> str:
        return f"KubeLeaseStore({self.namespace}/{self.name})"

    def read_from(self, cached: Callable[[], tuple[bool, dict[str, Any] | None]]) -> None:
        """Read the Lease from a watch (``cluster.informer``) while it is in: ``cached()`` is (True, the Lease
        as JSON or None if there is none) when watched, else (False, None). Writes always go to the server; a
        stale copy only costs a 409 on the next write, which is a lost race, as ever."""
        self._cached = cached

    def get(self) -> LeaseRecord | None:
        if self._cached is not None:
            watched, seen = self._cached()
            if watched:
                return None if seen is None else self._record_from_json(seen)
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
        except Exception as error:
            if _http_status(error) == 404:
                return None
            raise self._unavailable("reading", error) from error
        return self._record(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        try:
            lease = self._api.create_namespaced_lease(
                self.namespace, self._body(record, with_version=False), _request_timeout=self._timeout
            )
        except Exception as error:
            if _http_status(error) == 409:
                raise WriteConflict(f"lease {self.namespace}/{self.name} already exists") from error
            raise self._unavailable("creating", error) from error
        return self._record(lease)

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        try:
            lease = self._api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(record, with_version=True),
                _request_timeout=self._timeout,
            )
        except Exception as error:
            if _http_status(error) == 409:
                raise WriteConflict(
                    f"lease {self.namespace}/{self.name} changed since resourceVersion {record.resource_version}"
                ) from error
            raise self._unavailable("replacing", error) from error
        return self._record(lease)

    def _body(self, record: LeaseRecord, *, with_version: bool) -> Any:
        client = self._client
        metadata = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
        if with_version:
            metadata.resource_version = record.resource_version or None
        spec = client.V1LeaseSpec(
            holder_identity=record.holder,
            lease_duration_seconds=record.lease_duration_s,
            acquire_time=_to_micro_time(record.acquire_time),
            renew_time=_to_micro_time(record.renew_time),
            lease_transitions=record.transitions,
        )
        return client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=metadata, spec=spec)

    def _record(self, lease: Any) -> LeaseRecord:
        try:
            spec = lease.spec
            return LeaseRecord(
                holder=str(spec.holder_identity or "") if spec is not None else "",
                lease_duration_s=int(spec.lease_duration_seconds or 0) if spec is not None else 0,
                acquire_time=_from_time(spec.acquire_time) if spec is not None else None,
                renew_time=_from_time(spec.renew_time) if spec is not None else None,
                transitions=int(spec.lease_transitions or 0) if spec is not None else 0,
                resource_version=str(lease.metadata.resource_version or ""),
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise ApiUnavailable(f"lease {self.namespace}/{self.name} is not readable: {error}") from error

    def _record_from_json(self, lease: dict[str, Any]) -> LeaseRecord:
        """The Lease as the API server sends it (a watch event), read as :meth:`_record` reads the client's model."""
        found_spec, found_metadata = lease.get("spec"), lease.get("metadata")
        spec: dict[str, Any] = found_spec if isinstance(found_spec, dict) else {}
        metadata: dict[str, Any] = found_metadata if isinstance(found_metadata, dict) else {}

        def when(key: str) -> float | None:
            value = spec.get(key)
            if value is None:
                return None
            try:
                moment = _dt.datetime.fromisoformat(str(value)[:40].replace("Z", "+00:00"))
            except ValueError as error:
                raise ApiUnavailable(f"lease {self.namespace}/{self.name}: {key} is not a time: {error}") from error
            return _from_time(moment)

        try:
            return LeaseRecord(
                holder=str(spec.get("holderIdentity") or "")[:253],
                lease_duration_s=int(spec.get("leaseDurationSeconds") or 0),
                acquire_time=when("acquireTime"),
                renew_time=when("renewTime"),
                transitions=int(spec.get("leaseTransitions") or 0),
                resource_version=str(metadata.get("resourceVersion") or "")[:64],
            )
        except (TypeError, ValueError) as error:
            raise ApiUnavailable(f"lease {self.namespace}/{self.name} is not readable: {error}") from error

    def _unavailable(self, doing: str, error: Exception) -> LeaseUnavailable:
        status = _http_status(error)
        what = f"HTTP {status}" if status else type(error).__name__
        return LeaseUnavailable(
            f"{doing} lease {self.namespace}/{self.name} failed: {what}: {_short(error)}", doing=doing, status=status
        )


def _http_status(error: Exception) -> int | None:
    """The HTTP status of a kubernetes ``ApiException`` (any version), else None."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException) and isinstance(error.status, int) and error.status > 0:
        return error.status
    return None


def _short(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    text = str(error.reason) if isinstance(error, ApiException) else str(error)
    return text.splitlines()[0][:200] if text else ""


class Transition(enum.Enum):
    """A change of leadership, named as the structlog event the daemon logs for it."""

    ACQUIRED = "leader.acquired"
    LOST = "leader.lost"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one :meth:`LeaseElector.try_acquire_or_renew` did.

    ``decision`` is None when the lease could not be read; ``error`` says what failed (read, write
    conflict, API error); ``holder`` is the holder as last known; ``transition`` is set when leadership
    changed during this attempt (or lapsed since the previous one).
    """

    leader: bool
    decision: Decision | None
    holder: str | None
    transition: Transition | None = None
    error: str | None = None
    #: The Lease could not be read or written: (what was being done, HTTP status or None), else None.
    unavailable: tuple[str, int | None] | None = None


TransitionCallback = Callable[[Transition, "LeaseElector"], None]
"""Called with each leadership change, from the thread calling the elector."""


class LeaseElector:
    """One candidate. Call :meth:`try_acquire_or_renew` every ``timings.retry_period_s``; call
    :meth:`ensure_leader` right before every destructive step; call :meth:`release` on clean shutdown.

    Not thread-safe: use it from the daemon's loop only.
    """

    def __init__(
        self,
        store: LeaseStore,
        clock: Clock,
        identity: str,
        *,
        timings: ElectionTimings | None = None,
        on_transition: TransitionCallback | None = None,
        holder_is_node: Callable[[str], bool | None] | None = None,
    ) -> None:
        """``holder_is_node``: whether a name is a Node of the cluster (None: cannot tell now); without it,
        any holder is believed."""
        if not identity:
            raise ValueError("identity must not be empty (it is the node name)")
        self._store = store
        self._clock = clock
        self.identity = identity
        self.timings = timings if timings is not None else ElectionTimings()
        self._on_transition = on_transition
        self._observed: LeaseRecord | None = None
        self._observed_at: float | None = None
        self._renewed_at: float | None = None  # monotonic start of our last successful write as holder
        self._attempted_at: float | None = None  # monotonic start of the last try_acquire_or_renew
        self._was_leader = False
        self._holder_is_node = holder_is_node
        self._known_nodes: set[str] = set()  # holders seen to be Nodes: not asked again
        self._holder_doubted = False  # the holder last read was found not to be a Node
        self._lease_read_at: float | None = None  # monotonic start of the last successful read or write

    @classmethod
    def on_kubernetes(
        cls,
        api_client: ApiClient,
        clock: Clock,
        identity: str,
        *,
        namespace: str = DEFAULT_LEASE_NAMESPACE,
        name: str = DEFAULT_LEASE_NAME,
        timings: ElectionTimings | None = None,
        on_transition: TransitionCallback | None = None,
        request_timeout_s: float = 5.0,
        holder_is_node: Callable[[str], bool | None] | None = None,
    ) -> LeaseElector:
        """An elector on the Lease ``namespace/name`` through ``api_client``."""
        store = KubeLeaseStore(api_client, namespace=namespace, name=name, request_timeout_s=request_timeout_s)
        return cls(store, clock, identity, timings=timings, on_transition=on_transition, holder_is_node=holder_is_node)

    def _is_node(self, holder: str) -> bool:
        """Whether ``holder`` may lead: a Node of the cluster (asked once per name that is), or cannot tell."""
        if self._holder_is_node is None or not holder or holder in self._known_nodes:
            return True
        try:
            answer = self._holder_is_node(holder)
        except Exception:  # an answer that cannot be read is "cannot tell", never an error of the election
            answer = None
        if answer:
            self._known_nodes.add(holder)
        return answer is not False

    @property
    def lease_read_at(self) -> float | None:
        """When (monotonic) the last successful read or write of the Lease started; None if none yet. What
        :meth:`live_holder` says is as old as this: its None means "nobody led then", not "nobody leads now"."""
        return self._lease_read_at

    @property
    def holder(self) -> str | None:
        """The holder as last read or written ("" when released), None if never read."""
        return self._observed.holder if self._observed is not None else None

    def is_leader(self, now: float | None = None) -> bool:
        """The fencing check: True only if our last successful renewal started less than
        ``renew_deadline_s`` before ``now`` (monotonic; the clock's current time if None).
        """
        if self._renewed_at is None:
            return False
        if now is None:
            now = self._clock.monotonic()
        return now - self._renewed_at < self.timings.renew_deadline_s

    def live_holder(self, now: float | None = None) -> str | None:
        """Who leads as far as this node can tell: itself if :meth:`is_leader`, else the holder of the lease
        as last read if it has not expired on this node's clock since it last changed; None if nobody.
        """
        if now is None:
            now = self._clock.monotonic()
        if self.is_leader(now):
            return self.identity
        observed, seen = self._observed, self._observed_at
        if observed is None or not observed.holder or seen is None:
            return None
        # What the last try_acquire_or_renew learned of the holder: no API call here (another thread may ask).
        is_node = self._holder_is_node is None or observed.holder in self._known_nodes or not self._holder_doubted
        duration, _ = trusted_duration(observed, self.timings, is_node)
        return None if now - seen >= duration else observed.holder

    def term(self) -> int:
        """The Lease term we lead in (``leaseTransitions``), for signing a request; NotLeader unless we lead."""
        self.ensure_leader()
        observed = self._observed
        if observed is None or observed.holder != self.identity:
            raise NotLeader(f"{self.identity} does not hold the lease")
        return observed.transitions

    def ensure_leader(self) -> None:
        """Raise :class:`~piclusterd.core.errors.NotLeader` unless :meth:`is_leader` holds right now."""
        now = self._clock.monotonic()
        if self.is_leader(now):
            return
        # The caller stops leading here: record the loss now, so that winning the lease back later is
        # an acquisition (leader.acquired) and not a silent continuation of the old term.
        self._finish(None, None)
        if self._renewed_at is not None:
            raise NotLeader(
                f"{self.identity} last renewed the lease {now - self._renewed_at:.1f} s ago, past the "
                f"renew deadline of {self.timings.renew_deadline_s:g} s"
            )
        holder = self.holder
        raise NotLeader(f"{self.identity} does not hold the lease (holder: {holder or 'nobody'})")

    def try_acquire_or_renew(self) -> Attempt:
        """Read the lease once and create, take over or renew it if :func:`decide` says so.

        A leader renews first on the record it wrote last, without reading: client-go's fast path
        (``leaderelection.go`` ``tryAcquireOrRenew``, "update optimistically assuming that the record observed
        last time is the current version"); a conflict falls back to reading, as there."""
        started = self._clock.monotonic()
        self._attempted_at = started
        wall = self._clock.wall()
        fast = self._renew_optimistically(started, wall)
        if fast is not None:
            return fast
        try:
            observed = self._store.get()
        except ApiUnavailable as error:
            return self._finish(None, str(error), error)
        self._lease_read_at = started
        if observed is not None:
            self._observed_at = observed_change_time(self._observed, self._observed_at, observed, started)
        self._observed = observed
        observed_at = self._observed_at if self._observed_at is not None else started
        is_node = observed is None or observed.holder == self.identity or self._is_node(observed.holder)
        self._holder_doubted = not is_node
        decision = decide(observed, observed_at, started, wall, self.identity, self.timings, holder_is_node=is_node)
        if decision.action is Action.WAIT or decision.record is None:
            self._renewed_at = None  # another holder's lease is running: we are not the leader
            return self._finish(decision, None)
        try:
            if decision.action is Action.CREATE:
                written = self._store.create(decision.record)
            else:
                written = self._store.replace(decision.record)
        except WriteConflict as error:
            self._renewed_at = None  # someone else wrote the lease first: we lost the race
            return self._finish(decision, str(error))
        except ApiUnavailable as error:
            return self._finish(decision, str(error), error)
        self._observed, self._observed_at = written, started
        self._renewed_at = started
        return self._finish(decision, None)

    def renew_when_due(self) -> Attempt | None:
        """:meth:`try_acquire_or_renew` if a retry period has passed since the last attempt, else nothing (None).

        For a caller that ticks faster than that: a long step's keep-alive runs each drain tick, and renewing
        on each would be a Lease write per tick; client-go renews once per ``RetryPeriod``."""
        if self.renewal_due_in() > 0:
            return None
        return self.try_acquire_or_renew()

    def renewal_due_in(self) -> float:
        """Seconds until a retry period has passed since the last attempt (0: :meth:`renew_when_due` tries now)."""
        if self._attempted_at is None:
            return 0.0
        return max(0.0, self._attempted_at + self.timings.retry_period_s - self._clock.monotonic())

    def _renew_optimistically(self, started: float, wall: float) -> Attempt | None:
        """The leader's renewal on its last written record; None to take the slow path (read first)."""
        observed = self._observed
        if observed is None or observed.holder != self.identity or not self.is_leader(started):
            return None
        observed_at = self._observed_at if self._observed_at is not None else started
        decision = decide(observed, observed_at, started, wall, self.identity, self.timings, holder_is_node=True)
        if decision.action is not Action.RENEW or decision.record is None:
            return None
        try:
            written = self._store.replace(decision.record)
        except WriteConflict:
            return None  # someone wrote since: read, then decide, as client-go does
        except ApiUnavailable as error:
            return self._finish(decision, str(error), error)  # one request per attempt to a failing API server
        self._observed, self._observed_at = written, started
        self._renewed_at = self._lease_read_at = started
        return self._finish(decision, None)

    def release(self) -> bool:
        """Give the lease up on clean shutdown (holder "", leaseDurationSeconds 1) if we hold it, so
        another candidate takes over at once. Returns whether the lease was released by this call.
        Either way, this elector no longer counts as leader.
        """
        observed = self._observed
        self._renewed_at = None
        released = False
        if observed is not None and observed.holder == self.identity:
            now = self._clock.wall()
            record = LeaseRecord("", 1, now, now, observed.transitions, observed.resource_version)
            try:
                self._observed = self._store.replace(record)
                self._observed_at = self._clock.monotonic()
                released = True
            except (WriteConflict, ApiUnavailable):
                released = False
        self._finish(None, None)
        return released

    def _finish(self, decision: Decision | None, error: str | None, failure: ApiUnavailable | None = None) -> Attempt:
        leader = self.is_leader(self._clock.monotonic())
        transition: Transition | None = None
        if leader != self._was_leader:
            transition = Transition.ACQUIRED if leader else Transition.LOST
            self._was_leader = leader
            if self._on_transition is not None:
                self._on_transition(transition, self)
        unavailable = None
        if failure is not None:
            unavailable = (
                (failure.doing, failure.status) if isinstance(failure, LeaseUnavailable) else ("reaching", None)
            )
        return Attempt(leader, decision, self.holder, transition, error, unavailable)


class LeaseKeepingSleep:
    """The sleep of a long step (a drain, the wait for acknowledgements, a self-drain): it wakes when the Lease's
    renewal is due, renews it and sleeps on, as client-go renews on its own RetryPeriod timer.

    The steps' ticks renew too, but only once per poll: a renewal that fell due just after a tick waited up to a
    whole poll more (2 s while waiting for acknowledgements). Lease 4 s, renew deadline 3 s and retry period 2 s
    is a valid configuration, and with it the leader fenced itself off and another node took the Lease in the
    middle of the full shutdown (the netns long night, 1 run in 4).

    ``wait(seconds)`` blocks for up to that long and returns True once the daemon is stopping
    (``threading.Event.wait``); the sleep then raises :class:`~piclusterd.core.errors.DaemonStopping`."""

    def __init__(self, elector: LeaseElector, clock: Clock, wait: Callable[[float], bool]) -> None:
        self._elector = elector
        self._clock = clock
        self._wait = wait

    def __call__(self, seconds: float) -> None:
        end = self._clock.monotonic() + seconds
        while (left := end - self._clock.monotonic()) > 0:
            due = self._elector.renewal_due_in()
            if due <= 0:
                self._elector.renew_when_due()
                continue
            if self._wait(min(left, due)):
                raise DaemonStopping("stopping in the middle of a cluster step")
