"""Storms: the same news once, at most N messages per window, then one summary of what was held back."""

from __future__ import annotations

import pytest

from piclusterd.core.notify import GatePolicy, Notice, NoticeKind, SinkGate, admit, flush, wanted

POLICY = GatePolicy(max_messages=3, window_s=600.0, repeat_after_s=3600.0)


def notice(key: str, kind: NoticeKind = NoticeKind.UPS_DATA_LOST) -> Notice:
    return Notice(kind, "pi3", key, f"text {key}")


def run(gate: SinkGate, items: list[tuple[float, Notice]]) -> tuple[SinkGate, list[str]]:
    sent: list[str] = []
    for now, item in items:
        gate, passed = admit(gate, item, now, POLICY)
        if passed is not None:
            sent.append(passed.key)
    return gate, sent


def test_the_same_news_twice_is_sent_once() -> None:
    _, sent = run(SinkGate(), [(0, notice("a")), (10, notice("a")), (20, notice("b"))])
    assert sent == ["a", "b"]


def test_the_same_news_after_repeat_after_is_sent_again() -> None:
    _, sent = run(SinkGate(), [(0, notice("a")), (3601, notice("a"))])
    assert sent == ["a", "a"]


def test_a_storm_sends_the_limit_then_one_summary_when_the_window_has_room() -> None:
    items = [(float(i), notice(f"k{i}", NoticeKind.REQUEST_REFUSED)) for i in range(10)]
    gate, sent = run(SinkGate(), items)
    assert sent == ["k0", "k1", "k2"]
    gate, summary = flush(gate, 100.0, POLICY, "pi3")
    assert summary is None  # the window is still full
    gate, summary = flush(gate, 600.5, POLICY, "pi3")
    assert summary is not None and summary.kind is NoticeKind.HELD_BACK
    assert summary.text.startswith("pi3: 7 more messages held back by the rate limit (request refused x7).")
    assert flush(gate, 601.0, POLICY, "pi3")[1] is None  # said once


def test_nothing_overtakes_the_summary() -> None:
    """Held-back messages are summed up before anything new goes out, so the order on the phone is true."""
    gate, _ = run(SinkGate(), [(float(i), notice(f"k{i}")) for i in range(5)])
    gate, passed = admit(gate, notice("new"), 700.0, POLICY)
    assert passed is None
    _, summary = flush(gate, 700.0, POLICY, "pi3")
    assert summary is not None and "3 more messages" in summary.text


def test_a_test_message_always_goes_through() -> None:
    gate, _ = run(SinkGate(), [(float(i), notice(f"k{i}")) for i in range(5)])
    _, passed = admit(gate, Notice(NoticeKind.TEST, "pi3", "test", "t"), 6.0, POLICY)
    assert passed is not None


@pytest.mark.parametrize(
    ("kind", "events", "expected"),
    [
        (NoticeKind.PLAN, {NoticeKind.PLAN}, True),
        (NoticeKind.PLAN, {NoticeKind.OUTAGE_STARTED}, False),
        (NoticeKind.TEST, set(), True),
        (NoticeKind.HELD_BACK, set(), True),
    ],
)
def test_a_sink_gets_the_events_it_asked_for(kind: NoticeKind, events: set[NoticeKind], expected: bool) -> None:
    assert wanted(Notice(kind, "pi1", "k", "t"), events) is expected


def test_gate_memory_is_bounded() -> None:
    gate = SinkGate()
    for i in range(5000):
        gate, _ = admit(gate, notice(f"k{i}"), float(i), POLICY)
    assert len(gate.keys) <= 256 and len(gate.held) <= 1000
