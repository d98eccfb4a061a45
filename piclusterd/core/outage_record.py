"""The outage record: what the leader saw of one mains outage, kept in the cluster so it outlives a full
shutdown. Pure: no clock, no I/O (times are passed in as UNIX seconds).

The leader writes it as JSON, versioned like the Node annotation records, under the key ``record`` of the
ConfigMap ``<lease namespace>/piclusterd-outage``: started, charge at the start, energy drawn from the battery
as the leader measured it, nodes shed, time during which a critical workload had no Ready replica, and, once
the battery is about to end, the progress of the full shutdown (:class:`FullShutdownProgress`). After the
cluster boots again, the new leader finds it, undoes what the full shutdown did (cordons, annotations), logs
``outage.summary`` once and deletes the record. A record that cannot be parsed is reported, never acted on.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from piclusterd.core.bounded_json import JsonRefused, load_bounded_json
from piclusterd.core.cluster_view import ClusterView
from piclusterd.core.node_records import RECORD_VERSION, InvalidRecord, rfc3339

__all__ = [
    "OUTAGE_CONFIGMAP",
    "OUTAGE_KEY",
    "FullShutdownProgress",
    "OutageRecord",
    "account",
    "booted_since",
    "critical_workloads_down",
    "normal_boot_id",
    "outage_record_fields",
    "parse_outage_record",
    "parse_rfc3339",
    "render_outage_record",
    "summary_fields",
]

OUTAGE_CONFIGMAP = "piclusterd-outage"
OUTAGE_KEY = "record"

#: A gap between two of the leader's readings longer than this is not counted as energy drawn (a leader
#: change, or the cluster was down): better an estimate a little low than one made up.
MAX_ENERGY_GAP_S = 120.0

#: Bounds of a record's sums, far above any real outage (a megawatt-hour; a year), so garbage is refused.
MAX_ENERGY_WH = 1e6
MAX_CRITICAL_DOWN_S = 365 * 86400.0
#: Bounds of the notified keys: an outage says far fewer things than this.
MAX_NOTIFIED = 64
MAX_NOTIFIED_KEY = 200


def parse_rfc3339(text: str) -> float:
    """``2026-11-25T02:00:00Z`` as UNIX seconds; raises ValueError on anything else."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


@dataclass(frozen=True, slots=True)
class FullShutdownProgress:
    """What the full shutdown has done so far, written before each step is taken.

    ``cordoned``: nodes *we* cordoned (an operator's cordon is left alone at the restart). ``requested``:
    nodes asked to power off, in order. ``ups``: "" until the UPS step, then "requested", "failed" or
    "disabled". ``nodes``: every node when it started, which the restart waits for. ``boot_ids``: each node's
    kubelet ``status.nodeInfo.bootID`` when it started (the kernel's boot id of that machine), so a later
    leader tells "booted since" by comparing two values of one machine (:func:`booted_since`), never one
    machine's clock with another's.
    """

    started_at: str
    leader: str
    nodes: tuple[str, ...]
    cordon_done: bool = False
    cordoned: tuple[str, ...] = ()
    requested: tuple[str, ...] = ()
    hook_done: bool = False
    ups: str = ""
    boot_ids: tuple[tuple[str, str], ...] = ()

    @property
    def ups_done(self) -> bool:
        return bool(self.ups)


@dataclass(frozen=True, slots=True)
class OutageRecord:
    started_at: str  # RFC 3339, when the leader's power state left online
    leader: str  # the leader that wrote it last
    charge_at_start_pct: float | None
    energy_wh: float = 0.0
    shed: tuple[str, ...] = ()
    critical_down_s: float = 0.0
    critical_down_since: str = ""  # RFC 3339 while some critical workload has no Ready replica, else ""
    last_reading_at: str = ""  # the leader's last energy sample, RFC 3339
    full_shutdown: FullShutdownProgress | None = None
    mains_back_at: str = ""
    # Keys of the cluster-wide notifications already sent (core.notify), so a new leader sends none again.
    notified: tuple[str, ...] = ()
    #: The Lease term ``leader`` wrote it in and its HMAC (:func:`outage_record_fields`); unsigned: -1, "".
    term: int = -1
    signature: str = ""

    def with_notified(self, keys: Iterable[str]) -> OutageRecord:
        merged = tuple(sorted(set(self.notified) | set(keys)))[-MAX_NOTIFIED:]
        return self if merged == self.notified else replace(self, notified=merged)

    def with_shed(self, names: Iterable[str]) -> OutageRecord:
        merged = tuple(sorted(set(self.shed) | set(names)))
        return self if merged == self.shed else replace(self, shed=merged)


def account(record: OutageRecord, now_wall: float, battery_draw_w: float | None, critical_down: bool) -> OutageRecord:
    """Fold one of the leader's observations into the record: energy since the last one, critical downtime.

    Energy is the battery draw (load through the inverter plus the UPS's own overhead) times the time since
    the last sample, when both are known and the gap is short. Downtime runs from the first observation of a
    critical workload without a Ready replica to the first observation of all of them Ready again, across a
    full shutdown too (nobody can observe it then, and the services are certainly down).
    """
    energy = record.energy_wh
    if battery_draw_w is not None and record.last_reading_at:
        gap = now_wall - parse_rfc3339(record.last_reading_at)
        if 0 < gap <= MAX_ENERGY_GAP_S:
            energy += battery_draw_w * gap / 3600.0
    down_s, since = record.critical_down_s, record.critical_down_since
    if critical_down and not since:
        since = rfc3339(now_wall)
    elif not critical_down and since:
        down_s += max(0.0, now_wall - parse_rfc3339(since))
        since = ""
    return replace(
        record,
        energy_wh=energy,
        critical_down_s=down_s,
        critical_down_since=since,
        last_reading_at=rfc3339(now_wall) if battery_draw_w is not None else record.last_reading_at,
    )


def normal_boot_id(text: str) -> str:
    """A boot id as 32 lower-case hex digits: the kubelet writes the kernel's UUID with dashes, systemd without."""
    return text.strip().replace("-", "").lower()


def booted_since(progress: FullShutdownProgress, node: str, boot_id: str | None, node_boot_ids: dict[str, str]) -> bool:
    """Whether the cluster booted since the full shutdown ``progress`` began, as ``node`` (the leader) can tell.

    Only values of one machine are compared: the leader's own boot id now (``boot_id``, read on this machine;
    None: unreadable) with the bootID its kubelet reported when the full shutdown began. A node not recorded (it
    joined later) or without a readable boot id looks at the others: any recorded node whose kubelet now reports
    another bootID (``node_boot_ids``, from the Node objects) has booted since. Neither wall clock takes part, so
    a Pi without RTC or NTP whose clock is years off after the boot judges this as well as one with both.
    """
    recorded = dict(progress.boot_ids)
    mine = recorded.get(node)
    if mine and boot_id:
        return normal_boot_id(mine) != normal_boot_id(boot_id)
    return any(
        node_boot_ids.get(name) and normal_boot_id(node_boot_ids[name]) != normal_boot_id(was)
        for name, was in recorded.items()
        if was
    )


def critical_workloads_down(view: ClusterView, priority_threshold: int) -> tuple[str, ...]:
    """Critical workloads (by controller, or bare pod) of which no pod is Ready, as ``namespace/owner``."""
    ready: dict[str, bool] = {}
    for pod in view.pods:
        if pod.is_finished or pod.is_daemonset or not pod.is_critical(priority_threshold):
            continue
        workload = f"{pod.namespace}/{pod.owner_name or pod.name}"
        on_ready_node = pod.node is not None and view.has_node(pod.node) and view.node(pod.node).ready
        ready[workload] = ready.get(workload, False) or (pod.ready and on_ready_node and not pod.terminating)
    return tuple(sorted(name for name, up in ready.items() if not up))


def summary_fields(record: OutageRecord, ended_wall: float) -> dict[str, object]:
    """The ``outage.summary`` fields: one line a person reads the morning after."""
    start = parse_rfc3339(record.started_at)
    # How long mains was away (to its last return), not how long the cluster then took to be back to normal.
    end_of_outage = parse_rfc3339(record.mains_back_at) if record.mains_back_at else ended_wall
    down = record.critical_down_s
    if record.critical_down_since:
        down += max(0.0, ended_wall - parse_rfc3339(record.critical_down_since))
    progress = record.full_shutdown
    return {
        "started_at": record.started_at,
        "ended_at": rfc3339(ended_wall),
        "duration_s": round(max(0.0, end_of_outage - start)),
        "mains_back_at": record.mains_back_at or None,
        "nodes_shed": list(record.shed),
        "full_shutdown": progress is not None,
        "full_shutdown_at": None if progress is None else progress.started_at,
        "charge_at_start_pct": record.charge_at_start_pct,
        # No sample of the battery draw ever (no load figure from the UPS or the model): unknown, not 0 Wh.
        "energy_used_wh": round(record.energy_wh, 1) if record.last_reading_at else None,
        "critical_downtime_s": round(down),
    }


def energy_used_text(energy_used_wh: object) -> str:
    """The summary's energy for a person: "12.3 Wh used", or "energy used unknown" when the leader never had
    a sample of the draw (``None``: unknown, never printed as 0 or "None")."""
    if isinstance(energy_used_wh, bool) or not isinstance(energy_used_wh, int | float):
        return "energy used unknown"
    return f"{energy_used_wh} Wh used"


# --- the wire format ----------------------------------------------------------------------------------


def _unsigned_data(record: OutageRecord) -> dict[str, Any]:
    progress = record.full_shutdown
    charge = record.charge_at_start_pct
    data: dict[str, Any] = {
        "v": RECORD_VERSION,
        "startedAt": record.started_at,
        "leader": record.leader,
        "chargeAtStart": None if charge is None else float(charge),
        "energyWh": float(round(record.energy_wh, 3)),
        "shed": list(record.shed),
        "criticalDownS": float(round(record.critical_down_s, 3)),
        "criticalDownSince": record.critical_down_since,
        "lastReadingAt": record.last_reading_at,
        "mainsBackAt": record.mains_back_at,
        "notified": list(record.notified),
        "fullShutdown": None
        if progress is None
        else {
            "startedAt": progress.started_at,
            "leader": progress.leader,
            "nodes": list(progress.nodes),
            "cordonDone": progress.cordon_done,
            "cordoned": list(progress.cordoned),
            "requested": list(progress.requested),
            "hookDone": progress.hook_done,
            "ups": progress.ups,
            "bootIds": dict(progress.boot_ids),
        },
    }
    if record.term != -1:
        data["term"] = record.term
    return data


def whole_record_fields(unsigned: dict[str, Any]) -> dict[str, str | int | bool]:
    """What the signature of a ConfigMap record covers (this one, the stopped-work record): the whole record as
    written, the signature aside, as canonical JSON."""
    return {"record": json.dumps(unsigned, separators=(",", ":"), sort_keys=True)}


def render_whole_record(unsigned: dict[str, Any], signature: str) -> str:
    """A ConfigMap record as stored: canonical JSON, its signature (if any) under ``sig``."""
    return json.dumps({**unsigned, "sig": signature} if signature else unsigned, separators=(",", ":"), sort_keys=True)


def outage_record_fields(record: OutageRecord) -> dict[str, str | int | bool]:
    return whole_record_fields(_unsigned_data(record))


def render_outage_record(record: OutageRecord) -> str:
    return render_whole_record(_unsigned_data(record), record.signature)


def _boot_ids(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    value = data.get("bootIds", {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("'fullShutdown.bootIds' must map node names to boot ids")
    return tuple(sorted(value.items()))


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    numeric = kind is not bool and kind is not str and kind is not list
    if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
        raise ValueError(f"{key!r} is missing or of the wrong type")
    return value


def _names(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = _get(data, key, list)
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{key!r} must be a list of node names")
    return tuple(value)


def _time(data: dict[str, Any], key: str, *, optional: bool = False) -> str:
    value = _get(data, key, str)
    if value or not optional:
        parse_rfc3339(value)  # raises ValueError with the format in it
    return str(value)


def _notified(data: dict[str, Any]) -> tuple[str, ...]:
    """The notified keys; absent in a record written before notifications: none sent."""
    value = data.get("notified", [])
    if not isinstance(value, list) or len(value) > MAX_NOTIFIED:
        raise ValueError(f"'notified' must be a list of at most {MAX_NOTIFIED} keys")
    if not all(isinstance(key, str) and 0 < len(key) <= MAX_NOTIFIED_KEY for key in value):
        raise ValueError(f"'notified' keys must be strings of 1 to {MAX_NOTIFIED_KEY} characters")
    return tuple(value)


def parse_outage_record(raw: str) -> OutageRecord | InvalidRecord:
    """Parse the ConfigMap's ``record``. Never raises: nonsense becomes an InvalidRecord with the reason."""
    try:
        data = load_bounded_json(raw)
    except JsonRefused as error:
        return InvalidRecord(raw, str(error))
    if not isinstance(data, dict):
        return InvalidRecord(raw, "not a JSON object")
    if data.get("v") != RECORD_VERSION:
        return InvalidRecord(raw, f"record version {data.get('v')!r}, this piclusterd reads {RECORD_VERSION}")
    try:
        charge = data.get("chargeAtStart")
        if charge is not None and (
            isinstance(charge, bool) or not isinstance(charge, int | float) or not 0 <= charge <= 100
        ):
            raise ValueError("'chargeAtStart' must be a number from 0 to 100, or null")
        raw_progress = data.get("fullShutdown")
        progress = None
        if raw_progress is not None:
            if not isinstance(raw_progress, dict):
                raise ValueError("'fullShutdown' must be an object or null")
            ups = _get(raw_progress, "ups", str)
            if ups not in ("", "requested", "failed", "disabled"):
                raise ValueError(f"'fullShutdown.ups' is {ups!r}")
            progress = FullShutdownProgress(
                started_at=_time(raw_progress, "startedAt"),
                leader=_get(raw_progress, "leader", str),
                nodes=_names(raw_progress, "nodes"),
                cordon_done=_get(raw_progress, "cordonDone", bool),
                cordoned=_names(raw_progress, "cordoned"),
                requested=_names(raw_progress, "requested"),
                hook_done=_get(raw_progress, "hookDone", bool),
                ups=ups,
                boot_ids=_boot_ids(raw_progress),
            )
        energy = float(_get(data, "energyWh", (int, float)))
        down = float(_get(data, "criticalDownS", (int, float)))
        if energy < 0 or down < 0:
            raise ValueError("'energyWh' and 'criticalDownS' cannot be negative")
        if energy > MAX_ENERGY_WH or down > MAX_CRITICAL_DOWN_S:
            raise ValueError(f"'energyWh' above {MAX_ENERGY_WH:g} or 'criticalDownS' above {MAX_CRITICAL_DOWN_S:g}")
        return OutageRecord(
            started_at=_time(data, "startedAt"),
            leader=_get(data, "leader", str),
            charge_at_start_pct=None if charge is None else float(charge),
            energy_wh=energy,
            shed=_names(data, "shed"),
            critical_down_s=down,
            critical_down_since=_time(data, "criticalDownSince", optional=True),
            last_reading_at=_time(data, "lastReadingAt", optional=True),
            full_shutdown=progress,
            mains_back_at=_time(data, "mainsBackAt", optional=True),
            notified=_notified(data),
            term=_get(data, "term", int) if "term" in data else -1,
            signature=_get(data, "sig", str) if "sig" in data else "",
        )
    except ValueError as error:
        return InvalidRecord(raw, str(error))
