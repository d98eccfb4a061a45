"""The notification queue on disk: one small JSON file per message and sink, under the state directory.

Written atomically (a temporary file, fsync, rename, fsync of the directory), so a power cut leaves either the
whole message or none. Bounded: past ``max_items`` the oldest is dropped (and said). Read back at start, so
messages a sink could not take before a restart are sent when it returns. A file that cannot be read (a
half-written one from another program, garbage) is removed and said; it never stops the others.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from piclusterd.core.bounded_json import JsonLimits, JsonRefused, load_bounded_json
from piclusterd.core.notify import Notice, NoticeKind

__all__ = ["DiskQueue", "Queued"]

#: One message file is never larger (a 160-character text and its figures).
MAX_FILE_BYTES = 16384
_LIMITS = JsonLimits(max_bytes=MAX_FILE_BYTES, max_depth=4)


@dataclass(frozen=True, slots=True)
class Queued:
    """A message waiting for one sink: when it was queued, how often it failed, when to try next."""

    id: str
    sink: str
    notice: Notice
    queued_at: float  # wall seconds
    attempts: int = 0
    next_try: float = 0.0  # wall seconds
    last_error: str = ""


def _render(item: Queued) -> bytes:
    data = {
        "v": 1,
        "sink": item.sink,
        "kind": item.notice.kind.value,
        "node": item.notice.node,
        "key": item.notice.key,
        "text": item.notice.text,
        "fields": [list(pair) for pair in item.notice.fields],
        "queuedAt": item.queued_at,
        "attempts": item.attempts,
        "nextTry": item.next_try,
        "lastError": item.last_error[:300],
    }
    return json.dumps(data, separators=(",", ":")).encode()


def _parse(name: str, raw: bytes) -> Queued:
    """A queue file back as a :class:`Queued`; raises ValueError (JsonRefused included) on anything else."""
    data = load_bounded_json(raw, _LIMITS)
    if not isinstance(data, dict) or data.get("v") != 1:
        raise ValueError("not a version 1 message")
    strings = ("sink", "kind", "node", "key", "text", "lastError")
    if not all(isinstance(data.get(key), str) for key in strings):
        raise ValueError("a field is missing or not a string")
    numbers = (data.get("queuedAt"), data.get("nextTry"), data.get("attempts"))
    if not all(isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 for value in numbers):
        raise ValueError("a time or count is missing or negative")
    pairs = data.get("fields")
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in pairs
    ):
        raise ValueError("'fields' is not a list of pairs")
    notice = Notice(NoticeKind(data["kind"]), data["node"], data["key"], data["text"], tuple((a, b) for a, b in pairs))
    return Queued(
        id=name,
        sink=data["sink"],
        notice=notice,
        queued_at=float(data["queuedAt"]),
        attempts=int(data["attempts"]),
        next_try=float(data["nextTry"]),
        last_error=data["lastError"],
    )


class DiskQueue:
    """The messages waiting, oldest first. Used by one thread (the notifier's worker)."""

    def __init__(self, directory: Path, max_items: int) -> None:
        self._dir = directory
        self._max = max_items
        self._items: dict[str, Queued] = {}
        self._serial = itertools.count()

    @property
    def directory(self) -> Path:
        return self._dir

    def load(self) -> list[str]:
        """Read what a previous run left; returns the problems (one line per file removed)."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        problems: list[str] = []
        for path in sorted(self._dir.iterdir()):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write cut short: never renamed, so never a message
                continue
            if not path.name.endswith(".json"):
                continue
            try:
                with open(path, "rb") as stream:
                    raw = stream.read(MAX_FILE_BYTES + 1)
                item = _parse(path.name, raw)
            except (OSError, ValueError, JsonRefused) as error:
                problems.append(f"{path}: {error}")
                path.unlink(missing_ok=True)
                continue
            self._items[item.id] = item
        return problems

    def refresh(self) -> list[str]:
        """Take in messages another process queued since (``piclusterd remote-poweroff``'s refusals); returns
        the problems. Files being written (``.tmp-``) are left to their writer."""
        problems: list[str] = []
        for path in sorted(self._dir.glob("*.json")):
            if path.name in self._items:
                continue
            try:
                with open(path, "rb") as stream:
                    item = _parse(path.name, stream.read(MAX_FILE_BYTES + 1))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, JsonRefused) as error:
                problems.append(f"{path}: {error}")
                path.unlink(missing_ok=True)
                continue
            self._items[item.id] = item
        return problems

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[Queued]:
        return [self._items[key] for key in sorted(self._items)]

    def put(self, sink: str, notice: Notice, now: float) -> list[Queued]:
        """Queue ``notice`` for ``sink``; returns what was dropped to stay within the bound (oldest first)."""
        name = f"{int(now * 1000):015d}-{os.getpid()}-{next(self._serial):06d}-{sink}.json"
        item = Queued(name, sink, notice, now, next_try=now)
        self._write(item)
        self._items[name] = item
        dropped: list[Queued] = []
        while len(self._items) > self._max:
            oldest = self._items[min(self._items)]
            self.remove(oldest)
            dropped.append(oldest)
        return dropped

    def failed(self, item: Queued, now: float, retry_in: float, error: str) -> Queued:
        updated = replace(item, attempts=item.attempts + 1, next_try=now + retry_in, last_error=error)
        self._write(updated)
        self._items[item.id] = updated
        return updated

    def remove(self, item: Queued) -> None:
        self._items.pop(item.id, None)
        with contextlib.suppress(FileNotFoundError):
            (self._dir / item.id).unlink()

    def _write(self, item: Queued) -> None:
        temporary = self._dir / f".tmp-{item.id}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, _render(item))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, self._dir / item.id)
        directory = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
