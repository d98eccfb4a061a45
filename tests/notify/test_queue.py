"""Nothing lost: the queue on disk, retries with backoff, restarts, bounds, and a tap that never blocks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from piclusterd.config.notify import ExecSink, NotifyConfig, SinkConfig, WebhookSink
from piclusterd.core.notify import GatePolicy, NoticeKind
from piclusterd.notify.notifier import Notifier, retry_in
from piclusterd.notify.senders import build_senders
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.testing.tls import SelfSignedCa, make_ca
from piclusterd.testing.webhook_server import WebhookServer

LOST = {"event": "power.source_lost", "node": "pi3", "error": "Connection refused"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCa:
    return make_ca(tmp_path_factory.mktemp("ca"))


def webhook(url: str, ca: SelfSignedCa, **gate: float) -> SinkConfig:
    return SinkConfig("hook", WebhookSink(url, "json", str(ca.ca_file)), frozenset(NoticeKind), GatePolicy(**gate), 5.0)


def notifier(tmp_path: Path, sink: SinkConfig, clock: FakeClock, **options: float) -> tuple[Notifier, CapturedAudit]:
    config = NotifyConfig((sink,), queue_dir=str(tmp_path / "queue"), cluster_name="clinic", **options)
    audit = CapturedAudit("pi3", wall=clock.wall)
    made = Notifier(config, "pi3", build_senders(config.sinks), wall=clock.wall)
    made.start(audit.logger, thread=False)
    return made, audit


def test_a_sink_that_is_down_gets_the_message_when_it_returns_with_backoff_between(
    tmp_path: Path, ca: SelfSignedCa
) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        server.status = 503
        sender, audit = notifier(tmp_path, webhook(server.url(), ca), clock)
        sender.observe(LOST)
        tries = []
        for _ in range(400):  # 400 s of polls, once a second
            before = len(server.received)
            sender.pump()
            if len(server.received) > before:
                tries.append(clock.monotonic())
            clock.advance(1.0)
        assert tries == [0.0, 30.0, 90.0, 210.0]  # 30 s, 1 min, 2 min, (4 min next)
        server.status = 200
        clock.advance(240.0)
        assert sender.pump() == 1
    assert sender.waiting == []
    failed = audit.named("notify.failed")
    assert [e["retry_in_s"] for e in failed] == [30.0, 60.0, 120.0, 240.0]
    assert "HTTP 503" in failed[0]["error"]
    assert [e["sink"] for e in audit.named("notify.sent")] == ["hook"]


def test_backoff_is_capped_at_30_minutes() -> None:
    assert [retry_in(n) for n in (0, 1, 5, 6, 100)] == [30.0, 60.0, 960.0, 1800.0, 1800.0]


def test_the_queue_survives_a_restart_while_the_sink_is_down(tmp_path: Path, ca: SelfSignedCa) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        server.status = 503
        first, _ = notifier(tmp_path, webhook(server.url(), ca), clock)
        first.observe(LOST)
        first.pump()
        first.stop()  # the daemon stops (or dies): the message is on disk
        assert len(list((tmp_path / "queue").glob("*.json"))) == 1
        server.status = 200
        clock.advance(30.0)
        second, audit = notifier(tmp_path, webhook(server.url(), ca), clock)
        assert second.pump() == 1
    assert [r.body for r in server.received][-1].startswith(b'{"event": "ups_data_lost"')
    assert list((tmp_path / "queue").iterdir()) == []
    assert audit.named("notify.sent")[0]["attempts"] == 2


def test_a_message_no_sink_takes_within_give_up_after_is_said_in_the_journal(tmp_path: Path, ca: SelfSignedCa) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        server.status = 503
        sender, audit = notifier(tmp_path, webhook(server.url(), ca), clock, give_up_after_s=3600.0)
        sender.observe(LOST)
        for _ in range(80):
            sender.pump()
            clock.advance(60.0)
    (gone,) = audit.named("notify.undeliverable")
    assert gone["level"] == "error" and gone["sink"] == "hook" and "HTTP 503" in gone["why"]
    assert gone["text"].startswith("pi3: lost contact with its UPS")
    assert sender.waiting == []


def test_a_refusal_for_good_is_not_retried(tmp_path: Path, ca: SelfSignedCa) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        server.status = 404
        sender, audit = notifier(tmp_path, webhook(server.url(), ca), clock)
        sender.observe(LOST)
        sender.pump()
        clock.advance(3600.0)
        sender.pump()
    assert len(server.received) == 1 and len(audit.named("notify.undeliverable")) == 1


def test_the_queue_is_bounded_and_says_what_it_dropped(tmp_path: Path) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    sink = SinkConfig("cmd", ExecSink(("/bin/false",)), frozenset(NoticeKind), GatePolicy(max_messages=100), 5.0)
    sender, audit = notifier(tmp_path, sink, clock, queue_max=10)
    for i in range(15):
        sender.observe({"event": "node.request_refused", "node": "pi3", "why": f"forged {i}", "request_id": str(i)})
    sender.pump(send=False)
    assert len(sender.waiting) == 10 and len(list((tmp_path / "queue").glob("*.json"))) == 10
    dropped = audit.named("notify.undeliverable")
    assert len(dropped) == 5 and all(e["why"] == "the queue is full" for e in dropped)
    assert "forged 0" in dropped[0]["text"]  # the oldest went first


def test_a_garbage_file_in_the_queue_is_removed_and_the_others_are_sent(tmp_path: Path) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    out = tmp_path / "out"
    command = ExecSink(("/bin/sh", "-c", f'echo "$1" >> {out}', "x"))
    sink = SinkConfig("cmd", command, frozenset(NoticeKind), GatePolicy(), 5.0)
    first, _ = notifier(tmp_path, sink, clock)
    first.observe(LOST)
    first.pump(send=False)
    (tmp_path / "queue" / "0000-garbage.json").write_bytes(b'{"v": 1, "sink": [' * 100)
    (tmp_path / "queue" / "0001-nan.json").write_text('{"v": 1, "queuedAt": NaN}')
    (tmp_path / "queue" / ".tmp-half-written.json").write_text('{"v": 1, "sin')
    second, audit = notifier(tmp_path, sink, clock)
    assert second.pump() == 1
    assert out.read_text().startswith("pi3: lost contact with its UPS")
    assert len(audit.named("notify.queue_unreadable")) == 2
    assert list((tmp_path / "queue").iterdir()) == []


def test_queue_files_are_root_only(tmp_path: Path) -> None:
    clock = FakeClock(start=0.0, epoch=1_800_000_000.0)
    sink = SinkConfig("cmd", ExecSink(("/bin/false",)), frozenset(NoticeKind), GatePolicy(), 5.0)
    sender, _ = notifier(tmp_path, sink, clock)
    sender.observe(LOST)
    sender.pump(send=False)
    (path,) = (tmp_path / "queue").glob("*.json")
    assert os.stat(path).st_mode & 0o077 == 0


def test_the_audit_trail_never_waits_for_a_sink(tmp_path: Path) -> None:
    """The worker is stuck in a send (a command blocked on a FIFO); the logger, and its tap, go on."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sink = SinkConfig("cmd", ExecSink(("/bin/sh", "-c", f"cat {fifo} > /dev/null", "x")), frozenset(NoticeKind),
                      GatePolicy(max_messages=1000), 300.0)  # fmt: skip
    config = NotifyConfig((sink,), queue_dir=str(tmp_path / "queue"))
    sender = Notifier(config, "pi3", build_senders(config.sinks), wall=lambda: 1_800_000_000.0)
    audit = CapturedAudit("pi3", tap=sender.observe)
    sender.start(audit.logger)
    try:
        audit.logger.warning("power.source_lost", error="first")
        for _ in range(50):  # the worker picks the first up and blocks in its send
            if list((tmp_path / "queue").glob("*.json")):
                break
            threading.Event().wait(0.1)
        for i in range(200):
            audit.logger.error("node.request_refused", why=f"w{i}", request_id=str(i))
        assert len(audit.named("node.request_refused")) == 200  # all written while the send hangs
    finally:
        with open(fifo, "w") as release:
            release.write("go")
        sender.stop()
    assert sender.inbox_dropped == 0
