"""The notifier: audit events in, messages out through each sink, from a worker thread of its own.

:meth:`Notifier.observe` is the audit logger's tap: called on whatever thread logs (the power loop), it only
decides (pure, :func:`piclusterd.core.notify.notice_from_event`), claims a cluster-wide message in the outage
record's ledger, and hands the notice over; it never blocks and never raises. The worker (:meth:`Notifier.pump`,
once per second on its thread, or called directly by tests and the demo on a fake clock) puts each notice
through each sink's gate (wanted events, dedup, rate limit; :func:`piclusterd.core.notify.admit`), writes what
passes to the disk queue, sends what is due, and retries with backoff. A message no sink could take within
``give_up_after`` (or one it refused for good) is said in the journal as ``notify.undeliverable``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from piclusterd.config.notify import NotifyConfig
from piclusterd.core.notify import (
    Notice,
    NoticeLedger,
    SinkGate,
    admit,
    combine,
    flush,
    notice_from_event,
    notify_test_notice,
    wanted,
)
from piclusterd.node.audit import AuditLogger
from piclusterd.notify.queue import DiskQueue, Queued
from piclusterd.notify.senders import Sender, SendFailed

__all__ = ["FIRST_RETRY_S", "MAX_RETRY_S", "Notifier", "retry_in"]

FIRST_RETRY_S = 30.0
MAX_RETRY_S = 1800.0
#: Notices waiting for the worker beyond this are dropped (and counted): the tap never grows memory unbounded.
MAX_INBOX = 1000


def _silent() -> AuditLogger:
    logger: AuditLogger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    )
    return logger


def retry_in(attempts: int) -> float:
    """Backoff after the ``attempts``-th failure: 30 s, 1 min, 2 min ... at most 30 min."""
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** min(attempts, 16)))


class Notifier:
    def __init__(
        self,
        config: NotifyConfig,
        node: str,
        senders: Mapping[str, Sender],
        *,
        wall: Callable[[], float],
        ledger: NoticeLedger | None = None,
    ) -> None:
        self._config = config
        self._node = node
        self._senders = dict(senders)
        self._wall = wall
        self._ledger = ledger
        self._inbox: queue.Queue[Notice] = queue.Queue(MAX_INBOX)
        self._gates = {sink.name: SinkGate() for sink in config.sinks}
        self._queue = DiskQueue(Path(config.queue_dir), config.queue_max)
        self._log: AuditLogger = _silent()  # until start()
        self._loaded = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.inbox_dropped = 0

    @property
    def enabled(self) -> bool:
        return bool(self._config.sinks)

    def use_ledger(self, ledger: NoticeLedger) -> None:
        """The outage record's ledger (the cluster side, built after the logger this notifier taps)."""
        self._ledger = ledger

    # --- the tap: any thread, never blocks -------------------------------------------------------------

    def observe(self, event_dict: Mapping[str, Any]) -> None:
        if not self._config.sinks:
            return
        try:
            event = str(event_dict.get("event", ""))
            node = str(event_dict.get("node") or self._node)
            notice = notice_from_event(event, event_dict, node, self._config.cluster_name)
            if notice is None:
                return
            if notice.cluster_wide and self._ledger is not None and not self._ledger.claim(notice.key):
                return  # another leader (or this one, before a restart) sent it this outage
            self._inbox.put_nowait(notice)
            self._wake.set()
        except queue.Full:
            self.inbox_dropped += 1
        except Exception:  # the audit trail must never fail because of a message
            self.inbox_dropped += 1

    # --- the worker ------------------------------------------------------------------------------------

    def start(self, log: AuditLogger, *, thread: bool = True) -> None:
        """Start the worker thread (``thread=False``: the caller pumps, as the demo's world does on its clock).
        Its first round loads the queue a previous run left."""
        self._log = log.bind(component="notify")
        if not self._config.sinks or not thread:
            return
        self._thread = threading.Thread(target=self._loop, name="piclusterd-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker: what is in the inbox is queued on disk first (sent after the restart)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception as error:  # a full disk, say: said, and tried again
                self._log.warning("notify.queue_failed", error=str(error)[:300])
            self._wake.wait(1.0)
            self._wake.clear()
        try:
            self.pump(send=False)
        except Exception as error:
            self._log.warning("notify.queue_failed", error=str(error)[:300])

    def pump(self, *, send: bool = True) -> int:
        """One round: notices -> gates -> disk; storm summaries; send what is due. Returns how many were sent."""
        if not self._loaded:
            self._loaded = True
            for problem in self._queue.load():
                self._log.warning("notify.queue_unreadable", problem=problem[:300])
        elif send:
            for problem in self._queue.refresh():
                self._log.warning("notify.queue_unreadable", problem=problem[:300])
        now = self._wall()
        arrived: list[Notice] = []
        while True:
            try:
                arrived.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        for notice in combine(arrived, self._config.cluster_name):
            self._admit(notice, now)
        for sink in self._config.sinks:
            gate, summary = flush(self._gates[sink.name], now, sink.gate, self._node)
            self._gates[sink.name] = gate
            if summary is not None:
                self._enqueue(sink.name, summary, now)
        return self._send_due(now) if send else 0

    def _admit(self, notice: Notice, now: float) -> None:
        for sink in self._config.sinks:
            if not wanted(notice, sink.events):
                continue
            gate, passed = admit(self._gates[sink.name], notice, now, sink.gate)
            self._gates[sink.name] = gate
            if passed is not None:
                self._enqueue(sink.name, passed, now)
            else:
                self._log.info("notify.held_back", sink=sink.name, kind=notice.kind.value, key=notice.key)

    def _enqueue(self, sink: str, notice: Notice, now: float) -> None:
        for dropped in self._queue.put(sink, notice, now):
            self._log.error(
                "notify.undeliverable", sink=dropped.sink, text=dropped.notice.text, why="the queue is full"
            )

    def _send_due(self, now: float) -> int:
        sent = 0
        for item in self._queue.items():
            if item.next_try > now:
                continue
            sender = self._senders.get(item.sink)
            if sender is None:  # a sink removed from the config since it was queued
                self._undeliverable(item, "no such sink in the configuration now")
                continue
            try:
                sender.send(item.notice)
            except SendFailed as error:
                self._failed(item, now, str(error), permanent=error.permanent)
                continue
            except Exception as error:  # a bug in one sink must not stop the others
                self._failed(item, now, f"{type(error).__name__}: {error}", permanent=False)
                continue
            self._queue.remove(item)
            sent += 1
            self._log.info("notify.sent", sink=item.sink, kind=item.notice.kind.value, attempts=item.attempts + 1)
        return sent

    def _failed(self, item: Queued, now: float, error: str, *, permanent: bool) -> None:
        if permanent or now - item.queued_at >= self._config.give_up_after_s:
            self._undeliverable(item, error)
            return
        wait = retry_in(item.attempts)
        self._queue.failed(item, now, wait, error)
        self._log.warning(
            "notify.failed", sink=item.sink, error=error[:300], attempts=item.attempts + 1, retry_in_s=wait
        )

    def _undeliverable(self, item: Queued, why: str) -> None:
        self._queue.remove(item)
        self._log.error(
            "notify.undeliverable",
            sink=item.sink,
            text=item.notice.text,
            attempts=item.attempts + 1,
            why=why[:300],
        )

    def hand_over(self) -> None:
        """For a short-lived process (``piclusterd remote-poweroff``): queue what it observed on disk, where the
        running daemon's worker finds it and sends it. Reads nothing of the queue (the daemon owns it)."""
        if not self._config.sinks:
            return
        self._loaded = True
        try:
            self.pump(send=False)
        except OSError as error:
            self._log.warning("notify.queue_failed", error=str(error)[:300])

    # --- piclusterctl notify-test --------------------------------------------------------------------

    def send_test(self) -> list[tuple[str, str | None]]:
        """A test message straight through every sink (no queue, no rate limit): each sink and its error."""
        results: list[tuple[str, str | None]] = []
        for sink in self._config.sinks:
            try:
                self._senders[sink.name].send(notify_test_notice(self._node, sink.name))
            except SendFailed as error:
                results.append((sink.name, str(error)))
            except Exception as error:  # reported for this sink, the others still tried
                results.append((sink.name, f"{type(error).__name__}: {error}"))
            else:
                results.append((sink.name, None))
        return results

    @property
    def waiting(self) -> list[Queued]:
        """The messages on disk, not yet sent (tests, status)."""
        return self._queue.items()
