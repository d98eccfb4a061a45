"""What the fake API server's watches do beyond events: bookmarks and history compaction, as upstream does.

The events themselves (ADDED/MODIFIED/DELETED after a ``resourceVersion``, every current object as ADDED
first from "0", ``410 Gone`` with reason ``Expired`` for a version older than the kept history) are served by
``FakeKubeServer._watch``. This module adds, following kube-apiserver's watch cache
(``staging/src/k8s.io/apiserver/pkg/storage/cacher``, ``cache_watcher.go`` ``nextBookmarkTime``) and the API
concepts page ("Efficient detection of changes", "Watch bookmarks"):

- **Bookmarks.** A watch with ``allowWatchBookmarks=true`` gets ``BOOKMARK`` events: an object of the watched
  kind carrying only ``metadata.resourceVersion``, the version the watch has reached, so that a client can
  restart from there even when nothing it watches changed. The cacher sends one about every minute
  (``bookmarkFrequency``) and one 2 s before the watch's own deadline (``timeoutSeconds``), whichever comes
  first; never if not asked for.
- **Compaction.** etcd compacts old revisions (kube-apiserver asks every 5 min); a watch from a compacted
  version is answered ``410 Gone`` and the client must list again. :func:`compact` drops the history up to
  the current revision, so a test can make every older ``resourceVersion`` expire at once.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BOOKMARK_FREQUENCY_S",
    "PRETIMEOUT_S",
    "bookmark_event",
    "is_watch",
    "next_bookmark_at",
    "query_flag",
    "wants_bookmarks",
]

#: cacher.go: ``bookmarkFrequency = time.Minute``.
BOOKMARK_FREQUENCY_S = 60.0
#: cache_watcher.go: a bookmark 2 s before the watch's deadline, so the client can resume from it.
PRETIMEOUT_S = 2.0


def query_flag(query: dict[str, str] | Any, key: str) -> bool:
    """A boolean query parameter as kube-apiserver reads it (apimachinery ``pkg/runtime/conversion.go``
    ``Convert_Slice_string_To_bool``): absent, ``0`` or ``false`` in any case is false, any other value true.
    Debian's kubernetes client 22.6 sends ``watch=True`` (Python's ``str(True)``), newer ones ``true``."""
    if key not in query:
        return False
    value = str(query[key])
    return not (value == "0" or value.lower() == "false")


def is_watch(query: dict[str, str] | Any) -> bool:
    """``?watch=``: a watch, not a list."""
    return query_flag(query, "watch")


def wants_bookmarks(query: dict[str, str] | Any) -> bool:
    """``allowWatchBookmarks=true`` (the client's opt-in; a server may still send none)."""
    return query_flag(query, "allowWatchBookmarks")


def next_bookmark_at(now: float, deadline: float | None, frequency_s: float = BOOKMARK_FREQUENCY_S) -> float | None:
    """When the next bookmark is due (cache_watcher.go ``nextBookmarkTime``): ``frequency_s`` from now, or 2 s
    before the deadline if that is sooner; None if that moment has passed already."""
    at = now + frequency_s
    if deadline is not None:
        at = min(at, deadline - PRETIMEOUT_S)
    return None if at < now else at


def bookmark_event(kind: str, api_version: str, revision: int) -> dict[str, Any]:
    """A BOOKMARK event: the watched kind with only ``metadata.resourceVersion`` set."""
    return {
        "type": "BOOKMARK",
        "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(revision)}},
    }


def compact(changes: list[Any], revision: int) -> None:
    """Drop the watch history up to ``revision`` (etcd compaction): a watch from an older version gets 410."""
    changes[:] = [change for change in changes if change.revision > revision]
