"""The audit trail: structlog loggers that write journald fields, JSON lines or readable console lines.

No global structlog configuration: :func:`make_audit_logger` builds one logger, which the entry point passes
to whatever needs it. Every event is a dotted name (``power.state_changed``) with key/value fields.

Under systemd the journal gets native fields, so ``journalctl -u piclusterd PICLUSTER_EVENT=...`` works:
``PICLUSTER_EVENT``, ``PICLUSTER_NODE``, one ``PICLUSTER_<KEY>`` per field, the aliases of
:data:`JOURNAL_ALIASES`, ``PRIORITY`` from the level, and a stable ``MESSAGE_ID`` per event name.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import importlib
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = [
    "JOURNAL_ALIASES",
    "MESSAGE_ID_NAMESPACE",
    "AuditLogger",
    "AuditObserver",
    "JournalSend",
    "LogFormat",
    "journal_fields",
    "make_audit_logger",
    "message_id",
]

AuditLogger = FilteringBoundLogger
JournalSend = Callable[..., None]
#: Something that sees every audit event that is written (metrics count from them).
AuditObserver = Callable[[Mapping[str, Any]], None]

# uuid5 namespace for MESSAGE_IDs: fixed forever, so catalog entries and saved journalctl queries keep working.
MESSAGE_ID_NAMESPACE = uuid.UUID("5f1c8a52-3b7e-4f0a-9d64-0c2b7f1e9a10")

#: Extra journald names for fields whose short JSON names read poorly in a journalctl query.
JOURNAL_ALIASES: Mapping[str, Mapping[str, str]] = {
    "power.state_changed": {"new": "STATE", "charge_pct": "CHARGE", "runtime_s": "RUNTIME"},
}

_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_FIELD_NAME = re.compile(r"[^A-Z0-9_]")


class LogFormat(enum.Enum):
    CONSOLE = "console"
    JSON = "json"
    JOURNAL = "journal"


def message_id(event: str) -> str:
    """The journald MESSAGE_ID of an event name: 32 hex digits, the same on every machine and version."""
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, event).hex


def _journal_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _message(event_dict: Mapping[str, Any]) -> str:
    """A readable one-line MESSAGE: the event's own ``message`` field if given, else event + key=value."""
    if "message" in event_dict:
        return f"{event_dict['event']}: {event_dict['message']}"
    parts = [str(event_dict["event"])]
    for key, value in event_dict.items():
        if key in ("event", "level", "timestamp", "node") or value is None:
            continue
        parts.append(f"{key}={_journal_value(value)}")
    return " ".join(parts)


def journal_fields(event_dict: Mapping[str, Any]) -> dict[str, str]:
    """Map a structlog event dict to journald fields (pure; tested without a journal)."""
    event = str(event_dict["event"])
    fields = {
        "MESSAGE": _message(event_dict),
        "MESSAGE_ID": message_id(event),
        "PRIORITY": str(_PRIORITY.get(str(event_dict.get("level", "info")), 6)),
        "SYSLOG_IDENTIFIER": "piclusterd",
        "PICLUSTER_EVENT": event,
    }
    aliases = JOURNAL_ALIASES.get(event, {})
    for key, value in event_dict.items():
        if key in ("event", "level", "timestamp", "message") or value is None:
            continue
        text = _journal_value(value)
        fields["PICLUSTER_" + _FIELD_NAME.sub("_", key.upper())] = text
        if key in aliases:
            fields["PICLUSTER_" + aliases[key]] = text
    return fields


class _JournalLogger:
    """The wrapped logger for the journal format: receives field dicts, hands them to ``send``."""

    def __init__(self, send: JournalSend) -> None:
        self._send = send

    def _log(self, **fields: str) -> None:
        self._send(**fields)

    debug = info = warning = error = critical = msg = _log


def _to_journal_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> dict[str, Any]:
    return journal_fields(event_dict)


def _plain_values(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Enums as their values, so JSON and console lines show ``on_battery``, not ``PowerState.ON_BATTERY``."""
    for key, value in event_dict.items():
        if isinstance(value, enum.Enum):
            event_dict[key] = value.value
    return event_dict


def _stamper(wall: Callable[[], float]) -> Processor:
    """ISO 8601 UTC timestamps from an injected clock (the demo's accelerated time)."""

    def stamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        moment = datetime.datetime.fromtimestamp(wall(), tz=datetime.UTC)
        event_dict["timestamp"] = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
        return event_dict

    return stamp


def _systemd_send() -> JournalSend:
    try:
        journal = importlib.import_module("systemd.journal")
    except ImportError as error:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "--log-format journal needs the systemd Python module: apt install python3-systemd "
            "(or pip install systemd-python)"
        ) from error
    send: JournalSend = journal.send
    return send


def _observed_by(observers: tuple[AuditObserver, ...]) -> Processor:
    """A processor that shows each event to the observers. An observer's failure is its own: the event is still
    written (the journal is the record; a metric is a view of it)."""

    def observe(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        for observer in observers:
            with contextlib.suppress(Exception):  # see the docstring
                observer(dict(event_dict))  # a copy: an observer may keep it (the notifier queues it)
        return event_dict

    return observe


def make_audit_logger(
    fmt: LogFormat,
    node: str,
    *,
    stream: TextIO | None = None,
    journal_send: JournalSend | None = None,
    level: str = "info",
    wall: Callable[[], float] | None = None,
    observers: Sequence[AuditObserver] = (),
) -> AuditLogger:
    """Build the daemon's logger. ``stream`` defaults to standard error; ``journal_send`` to systemd's.
    Each of ``observers`` (the metrics, the notifier) sees a copy of every event written, after the level
    filter (:func:`_observed_by`); it must not block."""
    out = stream if stream is not None else sys.stderr
    processors: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True) if wall is None else _stamper(wall),
        _plain_values,
    ]
    if observers:
        processors.append(_observed_by(tuple(observers)))
    wrapped: WrappedLogger
    if fmt is LogFormat.JOURNAL:
        processors.append(_to_journal_fields)
        wrapped = _JournalLogger(journal_send if journal_send is not None else _systemd_send())
    elif fmt is LogFormat.JSON:
        processors.append(structlog.processors.JSONRenderer(default=str, sort_keys=False))
        wrapped = structlog.PrintLogger(out)
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty(), sort_keys=False))
        wrapped = structlog.PrintLogger(out)
    logger: AuditLogger = structlog.wrap_logger(
        wrapped,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        context_class=dict,
        cache_logger_on_first_use=False,
    ).bind(node=node)
    return logger
