"""The ``picluster.io/power`` record each node publishes on its Node, and its rate limit. Pure.

The record (:class:`PowerRecord`) is typed, versioned JSON, like the shed records of
:mod:`piclusterd.core.node_records`: the node's power state, the charge and runtime it acts on, the source, each
battery's own reading (a node with a HAT and a shared UPS has two), and when it was written. A leader reads
every node's record to plan with each node's battery (:mod:`piclusterd.core.node_batteries`);
``kubectl describe node`` shows it to people.

:func:`publish_reason` is the rate limit: a PATCH goes out on the first poll, when the power state changes,
when the charge moved ``charge_step`` points or more since the last published record, and, where a leader reads
the record's age, every ``publish_every`` (default 60 s) to show the record is alive. The one reader of that age
is :func:`~piclusterd.core.node_batteries.read_node_batteries` (per-node batteries, ``[battery]
node_capacity_wh``): a record older than ``[cluster] power_record_max_age`` (3 min; at least 2 x publish_every,
check-config says so) is unknown there. A cluster that plans with the shared battery only reads no age, so
there ``publish_every`` is ``None``: a PATCH only when the content changes (issue 17: the refresh was most of
the API traffic on mains besides the Lease). After a failed PATCH, only a state change is tried again before
``retry_after``, so an unreachable API server is not hammered at the poll rate.

:func:`render_power_record` and :func:`parse_power_record` never raise on parse (nonsense becomes an
:class:`~piclusterd.core.node_records.InvalidRecord`). The publisher that writes it is
:mod:`piclusterd.node.power_publisher`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from piclusterd.core.bounded_json import JsonRefused, load_bounded_json
from piclusterd.core.node_records import PREFIX, InvalidRecord, rfc3339
from piclusterd.core.power_state import PowerMemory, PowerState
from piclusterd.core.reading import UpsFlag, UpsReading, parse_status

__all__ = [
    "POWER_ANNOTATION",
    "POWER_RECORD_VERSION",
    "PUBLISH_EVERY_S",
    "BatteryRecord",
    "PodShutdownRecord",
    "PowerRecord",
    "PublishPolicy",
    "PublishReason",
    "parse_power_record",
    "power_record",
    "publish_reason",
    "render_power_record",
]

POWER_ANNOTATION = PREFIX + "power"
POWER_RECORD_VERSION = 1
#: The refresh where a leader reads the record's age: a third of power_record_max_age's default (3 min), so a
#: refresh may be lost (a failed PATCH, retried after retry_after) and the record still counts as fresh.
PUBLISH_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class BatteryRecord:
    """One source's own reading: its name, status flags, charge and runtime, and when it was read."""

    source: str
    flags: frozenset[UpsFlag]
    charge_pct: float | None
    runtime_s: float | None
    read_at: str  # RFC 3339

    @property
    def on_battery(self) -> bool:
        return UpsFlag.OB in self.flags


@dataclass(frozen=True, slots=True)
class PodShutdownRecord:
    """How this node's pods end before a halt (:mod:`piclusterd.core.kubelet_shutdown`): ``"kubelet"`` (its
    graceful node shutdown, ``grace_s`` in all, ``critical_s`` of it for critical pods) or ``"self-drain"``."""

    method: str
    grace_s: float
    critical_s: float


@dataclass(frozen=True, slots=True)
class PowerRecord:
    """``picluster.io/power``: what one node's daemon knows about its power, as of ``written_at``."""

    state: PowerState
    charge_pct: float | None
    runtime_s: float | None
    source: str
    batteries: tuple[BatteryRecord, ...]
    written_at: str  # RFC 3339
    #: Optional (absent in records of older daemons): how this node's pods end before its halt.
    pod_shutdown: PodShutdownRecord | None = None


def _battery(reading: UpsReading) -> BatteryRecord:
    return BatteryRecord(
        reading.source, reading.flags, reading.charge_pct, reading.runtime_s, rfc3339(reading.wall_time)
    )


def power_record(
    memory: PowerMemory, source: str, written_at: str, pod_shutdown: PodShutdownRecord | None = None
) -> PowerRecord:
    """The record for the daemon's current memory. Pure.

    ``runtime_s`` is the runtime the state machine acted on (the estimate), ``charge_pct`` the last reading's;
    ``batteries`` are the last reading's parts (one per source of a combined reading), else the reading itself.
    """
    reading = memory.last_reading
    if reading is None:
        return PowerRecord(memory.state, None, None, source, (), written_at, pod_shutdown)
    parts = reading.parts or (reading,)
    return PowerRecord(
        memory.state,
        reading.charge_pct,
        memory.last_runtime_s,
        source,
        tuple(_battery(p) for p in parts),
        written_at,
        pod_shutdown,
    )


def _status(flags: frozenset[UpsFlag]) -> str:
    return " ".join(sorted(flag.value for flag in flags))


def render_power_record(record: PowerRecord) -> str:
    """Compact, key-sorted JSON (so an unchanged record renders to the same text)."""
    shutdown = record.pod_shutdown
    extra: dict[str, Any] = {}
    if shutdown is not None:
        extra["shutdown"] = {"method": shutdown.method, "grace": shutdown.grace_s, "critical": shutdown.critical_s}
    return json.dumps(
        {
            **extra,
            "v": POWER_RECORD_VERSION,
            "state": record.state.value,
            "charge": record.charge_pct,
            "runtime": record.runtime_s,
            "source": record.source,
            "batteries": [
                {
                    "source": b.source,
                    "status": _status(b.flags),
                    "charge": b.charge_pct,
                    "runtime": b.runtime_s,
                    "at": b.read_at,
                }
                for b in record.batteries
            ],
            "at": record.written_at,
        },
        separators=(",", ":"),
        sort_keys=True,
        allow_nan=False,
    )


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is missing or not a string")
    return value


def _number(data: Mapping[str, Any], key: str) -> float | None:
    if key not in data:
        raise ValueError(f"{key!r} is missing")
    value = data[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key!r} is not a number >= 0 or null")
    return float(value)


def _parse_battery(data: Any) -> BatteryRecord:
    if not isinstance(data, dict):
        raise ValueError("a battery is not a JSON object")
    flags, unknown = parse_status(_string(data, "status"))
    if unknown:
        raise ValueError(f"a battery's status has unknown words {list(unknown)}")
    return BatteryRecord(
        _string(data, "source"), flags, _number(data, "charge"), _number(data, "runtime"), _string(data, "at")
    )


def _parse_pod_shutdown(data: Any) -> PodShutdownRecord | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("'shutdown' is not a JSON object")
    method = _string(data, "method")
    if method not in ("kubelet", "self-drain"):
        raise ValueError(f"'shutdown' method {method[:40]!r} is neither kubelet nor self-drain")
    grace, critical = _number(data, "grace"), _number(data, "critical")
    if grace is None or critical is None or grace > 86400 or critical > grace:
        raise ValueError("'shutdown' grace and critical must be seconds, critical within grace, at most a day")
    return PodShutdownRecord(method, grace, critical)


def parse_power_record(raw: str) -> PowerRecord | InvalidRecord:
    """Parse ``picluster.io/power``. Never raises: nonsense (or another version) becomes an InvalidRecord."""
    try:
        data = load_bounded_json(raw)
    except JsonRefused as error:
        return InvalidRecord(raw, str(error))
    if not isinstance(data, dict):
        return InvalidRecord(raw, "not a JSON object")
    version = data.get("v")
    if version != POWER_RECORD_VERSION or isinstance(version, bool):
        return InvalidRecord(raw, f"record version {version!r}, this piclusterd reads {POWER_RECORD_VERSION}")
    try:
        state_text = _string(data, "state")
        try:
            state = PowerState(state_text)
        except ValueError:
            return InvalidRecord(raw, f"unknown power state {state_text!r}")
        batteries = data.get("batteries")
        if not isinstance(batteries, list):
            raise ValueError("'batteries' is missing or not a list")
        return PowerRecord(
            pod_shutdown=_parse_pod_shutdown(data.get("shutdown")),
            state=state,
            charge_pct=_number(data, "charge"),
            runtime_s=_number(data, "runtime"),
            source=_string(data, "source"),
            batteries=tuple(_parse_battery(b) for b in batteries),
            written_at=_string(data, "at"),
        )
    except ValueError as error:
        return InvalidRecord(raw, str(error))


# --- the rate limit ----------------------------------------------------------------------------------------


class PublishReason(enum.Enum):
    FIRST = "first"  # nothing published yet by this daemon
    STATE_CHANGED = "state_changed"
    CHARGE_CHANGED = "charge_changed"  # by charge_step points or more
    PERIODIC = "periodic"  # publish_every since the last one


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    """``publish_every_s``: the refresh that keeps a quiet record fresh for a reader of its age; ``None``: none
    (nothing reads its age: a PATCH only when the content changes)."""

    publish_every_s: float | None = PUBLISH_EVERY_S
    charge_step_pct: float = 5.0
    retry_after_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("publish_every_s", "charge_step_pct", "retry_after_s"):
            value = getattr(self, name)
            if value is None and name == "publish_every_s":
                continue
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, not {value}")


def _charge_moved(old: float | None, new: float | None, step: float) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(new - old) >= step


def publish_reason(
    record: PowerRecord,
    last: PowerRecord | None,
    last_at: float | None,
    failed_at: float | None,
    now: float,
    policy: PublishPolicy,
) -> PublishReason | None:
    """Whether to PATCH ``record`` now, and why; ``None``: not yet. Pure (``now`` is given, monotonic).

    ``last`` and ``last_at`` are the last record published and when; ``failed_at`` the last failed attempt
    (``None`` if the last attempt succeeded).
    """
    # Never published: say where we stand.
    if last is None or last_at is None:
        if failed_at is not None and now - failed_at < policy.retry_after_s:
            return None
        return PublishReason.FIRST
    # A state change is what a leader plans on: always worth an attempt, even right after a failure.
    if record.state is not last.state:
        return PublishReason.STATE_CHANGED
    # After a failure, anything less waits for retry_after.
    if failed_at is not None and now - failed_at < policy.retry_after_s:
        return None
    if _charge_moved(last.charge_pct, record.charge_pct, policy.charge_step_pct):
        return PublishReason.CHARGE_CHANGED
    # A refresh only where a reader judges the record's age (per-node batteries), else nothing changed.
    if policy.publish_every_s is not None and now - last_at >= policy.publish_every_s:
        return PublishReason.PERIODIC
    return None
