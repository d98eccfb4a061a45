"""Capture the audit trail as event dicts, through the real JSON renderer (like structlog.testing)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from piclusterd.node.audit import AuditLogger, LogFormat, make_audit_logger

__all__ = ["CapturedAudit"]


class CapturedAudit:
    def __init__(
        self,
        node: str = "test-node",
        level: str = "debug",
        wall: Callable[[], float] | None = None,
        tap: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.stream = io.StringIO()
        self.logger: AuditLogger = make_audit_logger(
            LogFormat.JSON, node, stream=self.stream, level=level, wall=wall, observers=() if tap is None else (tap,)
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]
