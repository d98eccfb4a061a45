"""A real journal file of piclusterd's events, for tests of what reads the journal (``piclusterctl report``).

The audit events (the JSON a real daemon writes with ``--log-format json``, or a :class:`CapturedAudit`'s) are
mapped to journald fields by the very function the journal logger uses
(:func:`piclusterd.node.audit.journal_fields`), written in journald's export format, and turned into a
``.journal`` file by systemd's own ``systemd-journal-remote`` (Debian: systemd-journal-remote). journalctl
then reads it as it reads the system journal.
"""

from __future__ import annotations

import datetime
import struct
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from piclusterd.node.audit import journal_fields

__all__ = ["JOURNAL_REMOTE", "write_journal_file"]

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def _export_entry(event: Mapping[str, Any], boot_id: str) -> bytes:
    at = datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()
    fields = {
        "__REALTIME_TIMESTAMP": str(round(at * 1e6)),
        "__MONOTONIC_TIMESTAMP": str(round(at * 1e6)),
        "_BOOT_ID": boot_id,
        "_HOSTNAME": str(event.get("node", "")),
        **journal_fields(event),
    }
    out = b""
    for key, value in fields.items():
        data = value.encode()
        if b"\n" in data:  # the export format's binary form
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return out + b"\n"


def write_journal_file(events: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write ``events`` (each with ``timestamp``, ``event``, ``node``) to the journal file ``path`` (``.journal``)."""
    if not Path(JOURNAL_REMOTE).exists():
        raise RuntimeError(f"{JOURNAL_REMOTE} is missing: apt install systemd-journal-remote (.ci/run does)")
    boot_id = "0123456789abcdef0123456789abcdef"
    ordered = sorted(events, key=lambda e: str(e["timestamp"]))
    stream = b"".join(_export_entry(event, boot_id) for event in ordered)
    done = subprocess.run(
        [JOURNAL_REMOTE, f"--output={path}", "--split-mode=none", "-"], input=stream, capture_output=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"systemd-journal-remote failed: {done.stderr.decode(errors='replace')[-500:]}")
    return path
