"""The cluster-wide messages an outage already had: :class:`OutageLedger`, the outage record's ``notified``.

The notifier claims a key before it queues a cluster-wide message (:class:`piclusterd.core.notify.NoticeLedger`);
the outage coordinator loads the keys from each record it reads and folds the new claims into the record it
writes (the same poll for ``outage.started`` and ``outage.mains_back``, the next poll for the others). A new
leader therefore sends none of them again; a leader that dies within that poll may leave one to be sent twice,
never one lost (its own queue on disk still sends it after a restart).
"""

from __future__ import annotations

import threading

from piclusterd.core.outage_record import MAX_NOTIFIED, OutageRecord

__all__ = ["OutageLedger"]


class OutageLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # claimed from whichever thread logs; loaded by the leader's poll
        self._known: frozenset[str] = frozenset()
        self._pending: dict[str, None] = {}  # claimed here, not yet in a stored record (ordered, bounded)

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self._known or key in self._pending:
                return False
            self._pending[key] = None
            while len(self._pending) > 4 * MAX_NOTIFIED:
                del self._pending[next(iter(self._pending))]
            return True

    def load(self, record: OutageRecord | None) -> None:
        """The keys of the record just read. None: no outage (it ended, or dry-run keeps no record): nothing is
        remembered, so the next outage's messages are sent again."""
        with self._lock:
            if record is None:
                self._known = frozenset()
                self._pending.clear()
                return
            self._known = frozenset(record.notified)
            for key in self._known:
                self._pending.pop(key, None)

    def fold(self, record: OutageRecord) -> OutageRecord:
        """``record`` with this node's claims in it, to be written."""
        with self._lock:
            return record.with_notified(self._pending)
