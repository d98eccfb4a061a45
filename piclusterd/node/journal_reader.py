"""Read piclusterd's own events back from the journal: ``journalctl -o json``, bounded.

``journalctl`` does the selection (only piclusterd's events, only the kinds asked for, the newest
``max_entries``), so a journal of months is not read whole; each line is read with a size limit and parsed
with :func:`piclusterd.core.bounded_json.load_bounded_json`. A line that is too long or not JSON is counted
and skipped: a report leaves it out and says so, it never fails on it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from piclusterd.core.bounded_json import JsonLimits, JsonRefused, load_bounded_json
from piclusterd.core.errors import PiclusterError

__all__ = ["MAX_ENTRIES", "MAX_LINE_BYTES", "JournalUnavailable", "JournalWhere", "read_piclusterd_events"]

MAX_ENTRIES = 200_000  # the newest events of this many; a stormy year is about 20,000
MAX_LINE_BYTES = 64 * 1024  # one event's JSON; ours are well under 4 KiB
_LIMITS = JsonLimits(max_bytes=MAX_LINE_BYTES, max_depth=4)


class JournalUnavailable(PiclusterError, RuntimeError):
    """journalctl is missing or refused (no journal where asked, no permission)."""


@dataclass(frozen=True, slots=True)
class JournalWhere:
    """Which journal: this machine's (default), a journal file, or a directory of them (another Pi's copy)."""

    file: str | None = None
    directory: str | None = None

    def argv(self) -> list[str]:
        if self.file is not None:
            return ["--file", self.file]
        if self.directory is not None:
            return ["--directory", self.directory]
        return []


def read_piclusterd_events(
    events: Sequence[str], where: JournalWhere = JournalWhere(), *, max_entries: int = MAX_ENTRIES
) -> tuple[list[dict[str, Any]], int]:
    """The journal entries of piclusterd's ``events`` (JSON objects), oldest first, and how many were unreadable."""
    argv = ["journalctl", "--output=json", "--no-pager", f"--lines={max_entries}", *where.argv()]
    argv += ["SYSLOG_IDENTIFIER=piclusterd", *(f"PICLUSTER_EVENT={event}" for event in events)]
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise JournalUnavailable("journalctl is missing: this command reads systemd's journal") from None
    assert process.stdout is not None and process.stderr is not None
    entries: list[dict[str, Any]] = []
    skipped = 0
    with process:
        while True:
            line = process.stdout.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                skipped += 1
                while line and not line.endswith(b"\n"):  # the rest of the over-long line
                    line = process.stdout.readline(MAX_LINE_BYTES + 1)
                continue
            if line.startswith(b"-- "):  # journalctl's "-- No entries --" and boot separators
                continue
            try:
                value = load_bounded_json(line, _LIMITS)
            except JsonRefused:
                skipped += 1
                continue
            if isinstance(value, dict):
                entries.append(value)
            else:
                skipped += 1
        error = process.stderr.read(4096).decode("utf-8", "replace").strip()
    if process.returncode != 0 and not entries:
        raise JournalUnavailable(f"journalctl {' '.join(where.argv())} failed: {error or process.returncode}"[:300])
    return entries, skipped
