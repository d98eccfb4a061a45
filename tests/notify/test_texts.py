"""What each event says: plain words, one SMS (160 GSM-7 characters) even with the worst values a cluster has."""

from __future__ import annotations

from typing import Any

import pytest

from piclusterd.core.notify import (
    SMS_LIMIT,
    Notice,
    NoticeKind,
    combine,
    fit_sms,
    is_gsm7,
    notice_from_event,
    notify_test_notice,
)

LONG = "n" * 253  # a Kubernetes node name can be 253 characters (RFC 1123 subdomain)
UNICODE = "Stromausfall ✓ 😀 ü [x] {y} ~ ^ |" * 300  # not in GSM-7's default alphabet, and far too long

# Every event that is worth a message, with the worst values it can carry.
WORST: dict[str, dict[str, Any]] = {
    "outage.started": {"started_at": "2026-11-25T02:00:00Z", "charge_pct": 100.0, "runtime_s": 10 * 365 * 86400 - 1},
    "plan.decided": {"shed": [LONG + str(i) for i in range(200)], "projected_runtime_s": 86400 * 999, "dry_run": True},
    "shutdown.cluster_started": {"nodes": [LONG] * 500, "reason": UNICODE},
    "outage.mains_back": {
        "started_at": "2026-11-25T02:00:00Z",
        "mains_back_at": "2026-11-26T23:59:59Z",
        "duration_s": 86400 * 3650,
        "nodes_shed": [LONG] * 50,
        "full_shutdown": True,
    },
    "node.restored": {"target": LONG, "shed_at": "2026-11-25T02:05:00Z"},
    "outage.summary": {
        "started_at": "2026-11-25T02:00:00Z",
        "duration_s": 86400 * 3650,
        "nodes_shed": [LONG + str(i) for i in range(200)],
        "full_shutdown": True,
        "critical_downtime_s": 86400 * 3650,
        "energy_used_wh": 999999.9,
    },
    "power.source_lost": {"error": UNICODE},
    "daemon.failed": {"error": UNICODE},
    "node.request_refused": {"why": UNICODE, "request_id": LONG, "check": "signature"},
    "shutdown.remote_refused": {"why": UNICODE, "request_id": LONG},
}

KINDS = {
    "outage.started": NoticeKind.OUTAGE_STARTED,
    "plan.decided": NoticeKind.PLAN,
    "shutdown.cluster_started": NoticeKind.FULL_SHUTDOWN,
    "outage.mains_back": NoticeKind.MAINS_BACK,
    "node.restored": NoticeKind.NODE_RESTORED,
    "outage.summary": NoticeKind.OUTAGE_SUMMARY,
    "power.source_lost": NoticeKind.UPS_DATA_LOST,
    "daemon.failed": NoticeKind.DAEMON_FAILING,
    "node.request_refused": NoticeKind.REQUEST_REFUSED,
    "shutdown.remote_refused": NoticeKind.REQUEST_REFUSED,
}


@pytest.mark.parametrize("event", sorted(WORST))
def test_every_message_fits_one_sms_with_the_worst_values(event: str) -> None:
    notice = notice_from_event(event, WORST[event], LONG, LONG)
    assert notice is not None and notice.kind is KINDS[event]
    assert len(notice.text) <= SMS_LIMIT, notice.text
    assert is_gsm7(notice.text), notice.text


@pytest.mark.parametrize("event", sorted(WORST))
def test_garbage_values_never_raise_and_still_fit(event: str) -> None:
    garbage = dict.fromkeys(WORST[event], float("nan")) | {"shed": "pi4", "nodes_shed": 5}
    notice = notice_from_event(event, garbage, "pi1", "clinic")
    assert notice is None or (len(notice.text) <= SMS_LIMIT and is_gsm7(notice.text))


def test_test_message_and_merged_restores_fit() -> None:
    assert len(notify_test_notice(LONG, "x" * 40).text) <= SMS_LIMIT
    restored = [notice_from_event("node.restored", {"target": LONG + str(i)}, "pi1", LONG) for i in range(100)]
    (merged,) = combine([n for n in restored if n is not None], LONG)
    assert len(merged.text) <= SMS_LIMIT and is_gsm7(merged.text)


def text(event: str, fields: dict[str, Any], node: str = "pi1") -> str:
    notice = notice_from_event(event, fields, node, "clinic")
    assert notice is not None
    return notice.text


def test_the_night_in_plain_words() -> None:
    """The issue's example: what the IT person reads on the phone, word for word."""
    assert (
        text("outage.started", {"started_at": "2026-11-25T02:00:00Z", "charge_pct": 84.2, "runtime_s": 9000})
        == "clinic: mains power failed at 02:00 UTC. Running on battery, charge 84 %, about 2 h 30 min left."
    )
    assert (
        text("plan.decided", {"shed": ["pi4", "pi5"], "projected_runtime_s": 9000})
        == "clinic: to save battery, switching off pi4, pi5. Critical services stay up; battery lasts about 2 h 30 min."
    )
    assert (
        text("shutdown.cluster_started", {"nodes": ["pi1", "pi2", "pi3"]})
        == "clinic: battery almost empty. Shutting down all 3 nodes now, in order; they start again when mains returns."
    )
    assert text(
        "outage.mains_back",
        {"mains_back_at": "2026-11-25T06:00:00Z", "duration_s": 14400, "nodes_shed": ["pi4"], "full_shutdown": False},
    ) == (
        "clinic: mains power is back at 06:00 UTC after 4 h 00 min. Switched-off nodes return when the battery "
        "has recharged."
    )
    assert text("node.restored", {"target": "pi4"}) == "clinic: node pi4 is back in service."
    assert (
        text(
            "outage.summary",
            {"duration_s": 14400, "nodes_shed": ["pi4", "pi5"], "critical_downtime_s": 0, "energy_used_wh": 61.4},
        )
        == "clinic: outage over. Mains was away 4 h 00 min; nodes switched off: pi4, pi5; critical services stayed up; "
        "61 Wh used."
    )
    assert (
        text("power.source_lost", {"error": "Connection refused"}, node="pi3")
        == "pi3: lost contact with its UPS: Connection refused. It assumes the worst until data returns."
    )
    assert (
        text("node.request_refused", {"why": "bad signature"}, node="pi3")
        == "pi3: refused a power-off request: bad signature. Check the journal."
    )


def test_a_dry_run_plan_says_would() -> None:
    assert "would switch off pi4" in text("plan.decided", {"shed": ["pi4"], "dry_run": True})


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ("plan.decided", {"shed": []}),  # shedding nothing is no news
        ("outage.mains_back", {"nodes_shed": [], "full_shutdown": False}),  # the summary follows within minutes
        ("power.state_changed", {"new": "on_battery"}),  # every node logs it: the leader's outage.started says it
        ("notify.failed", {"error": "x"}),  # our own lines never become messages (no loop)
    ],
)
def test_events_that_send_nothing(event: str, fields: dict[str, Any]) -> None:
    assert notice_from_event(event, fields, "pi1", "clinic") is None


def test_cluster_wide_messages_have_one_key_per_outage() -> None:
    first = notice_from_event("plan.decided", {"shed": ["pi4", "pi5"]}, "pi1", "clinic")
    later = notice_from_event("plan.decided", {"shed": ["pi5"]}, "pi2", "clinic")
    assert first is not None and later is not None and first.key == later.key  # the first plan only
    assert first.cluster_wide
    lost = notice_from_event("power.source_lost", {}, "pi3", "clinic")
    assert lost is not None and not lost.cluster_wide


def test_fit_sms_cuts_at_a_word_and_replaces_what_gsm7_lacks() -> None:
    assert fit_sms("Grüße [ok]") == "Gr??e ?ok?"
    cut = fit_sms("word " * 60)
    assert len(cut) <= SMS_LIMIT and cut.endswith("word...")


def test_restores_in_one_poll_become_one_message() -> None:
    notices = [
        Notice(NoticeKind.MAINS_BACK, "pi1", "m", "back"),
        *[
            n
            for n in (notice_from_event("node.restored", {"target": f"pi{i}"}, "pi1", "clinic") for i in (2, 3))
            if n is not None
        ],
    ]
    merged = combine(notices, "clinic")
    assert [n.text for n in merged] == ["back", "clinic: nodes pi2, pi3 are back in service."]


def test_a_line_break_in_a_value_never_reaches_the_text() -> None:
    """A text is one line: an e-mail subject with a line break would be a header injection."""
    notice = notice_from_event("daemon.failed", {"error": "x\nBcc: evil@example.com"}, "pi1", "clinic")
    assert notice is not None and "\n" not in notice.text
    assert "\n" not in fit_sms("a\nb")


def test_the_figures_a_message_carries_are_bounded() -> None:
    fields = {f"key{i}" * 20: "v" * 10000 for i in range(100)} | {"shed": ["pi4"]}
    notice = notice_from_event("plan.decided", fields, "pi1", "clinic")
    assert notice is not None and len(notice.fields) <= 24
    assert all(len(name) <= 40 and len(value) <= 200 for name, value in notice.fields)
