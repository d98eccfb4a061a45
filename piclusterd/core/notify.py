"""What piclusterd tells people, and when: audit events -> short plain texts, deduplicated and rate-limited.

Pure: no clock, no I/O (``now`` is passed in). The notify layer (:mod:`piclusterd.notify`) watches the audit
trail, asks :func:`notice_from_event` whether an event is worth a message, asks the outage record's ledger
(:class:`NoticeLedger`) whether a cluster-wide one was already sent by another leader, and lets each sink's
:class:`SinkGate` decide what to send now (:func:`admit`) and what a storm summary says later (:func:`flush`).

Texts are written for one SMS: at most :data:`SMS_LIMIT` characters of the GSM 03.38 default alphabet
(:func:`fit_sms`), in plain words, the node or cluster first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from piclusterd.core.durations import format_duration

__all__ = [
    "CLUSTER_KINDS",
    "GSM7_BASIC",
    "SMS_LIMIT",
    "GatePolicy",
    "Notice",
    "NoticeKind",
    "NoticeLedger",
    "SinkGate",
    "admit",
    "combine",
    "fit_sms",
    "flush",
    "is_gsm7",
    "notice_from_event",
    "notify_test_notice",
    "wanted",
]

#: One SMS of the GSM 7-bit default alphabet (3GPP TS 23.038).
SMS_LIMIT = 160

#: The GSM 03.38 default alphabet's printable ASCII subset: what our texts may use (no escape characters, which
#: take two septets: ``[]{}|^~\\`` and the euro sign; no line break: a text is one line, an e-mail subject too).
GSM7_BASIC = frozenset(" !\"#%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_$")


class NoticeKind(enum.Enum):
    """What a message is about; ``events = [...]`` of a sink names these values."""

    OUTAGE_STARTED = "outage_started"
    PLAN = "plan"
    FULL_SHUTDOWN = "full_shutdown"
    MAINS_BACK = "mains_back"
    NODE_RESTORED = "node_restored"
    OUTAGE_SUMMARY = "outage_summary"
    UPS_DATA_LOST = "ups_data_lost"
    DAEMON_FAILING = "daemon_failing"
    REQUEST_REFUSED = "request_refused"
    TEST = "test"
    HELD_BACK = "held_back"  # a storm's summary: what the rate limit held back


#: Said by the leader only, once per outage across leader changes (the outage record's ``notified``).
CLUSTER_KINDS = frozenset(
    {
        NoticeKind.OUTAGE_STARTED,
        NoticeKind.PLAN,
        NoticeKind.FULL_SHUTDOWN,
        NoticeKind.MAINS_BACK,
        NoticeKind.NODE_RESTORED,
        NoticeKind.OUTAGE_SUMMARY,
    }
)


@dataclass(frozen=True, slots=True)
class Notice:
    """One message: its kind, who says it, a key that is the same for the same news (dedup), the text, and
    the event's figures as plain strings (the exec sink's environment, the webhook's JSON)."""

    kind: NoticeKind
    node: str
    key: str
    text: str
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def cluster_wide(self) -> bool:
        return self.kind in CLUSTER_KINDS


class NoticeLedger(Protocol):
    """What cluster-wide messages this outage already had, whichever leader sent them."""

    def claim(self, key: str) -> bool:
        """True if nobody claimed ``key`` in this outage yet (and now this node has)."""
        ...


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC for char in text)


def fit_sms(text: str) -> str:
    """``text`` in the GSM-7 subset and at most one SMS long: other characters become ``?``, a long text is cut
    at a word with ``...`` (the texts are written to fit; this is the net for a 253-character node name)."""
    plain = "".join(char if char in GSM7_BASIC else "?" for char in text)
    if len(plain) <= SMS_LIMIT:
        return plain
    cut = plain[: SMS_LIMIT - 3]
    space = cut.rfind(" ")
    if space > SMS_LIMIT // 2:
        cut = cut[:space]
    return cut + "..."


def _names(names: Sequence[str], budget: int = 40) -> str:
    """``pi4, pi5`` or ``pi4, pi5 +3 more``: node names within ``budget`` characters."""
    shown: list[str] = []
    used = 0
    for index, name in enumerate(names):
        more = len(names) - index
        piece = name if len(name) <= 24 else name[:21] + "..."
        if used + len(piece) + 2 > budget and shown:
            return ", ".join(shown) + f" +{more} more"
        shown.append(piece)
        used += len(piece) + 2
    return ", ".join(shown) or "none"


def _duration(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 10 * 365 * 86400:
        return None
    return format_duration(float(value))


def _pct(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        return None
    return f"{round(float(value))} %"


def _word(value: object, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


def _hhmm(rfc3339: object) -> str:
    text = str(rfc3339)
    return text[11:16] + " UTC" if len(text) >= 16 and text[10:11] == "T" else "?"


def _notice(kind: NoticeKind, node: str, key: str, text: str, fields: Mapping[str, object]) -> Notice:
    # Bounded: the figures travel in the queue file (16 KiB at most) and in a command's environment.
    plain = tuple((str(name)[:40], _word(value, 200)) for name, value in fields.items() if value is not None)[:24]
    return Notice(kind, node, key, fit_sms(text), plain)


def notice_from_event(event: str, fields: Mapping[str, object], node: str, cluster: str) -> Notice | None:
    """The message an audit event is worth, or None (most events are for the journal only). Never raises.

    ``node`` is who logged it; ``cluster`` names the cluster in cluster-wide texts.
    """
    try:
        return _from_event(event, fields, node, cluster)
    except (TypeError, ValueError, KeyError):
        return None


def _from_event(event: str, fields: Mapping[str, object], node: str, cluster: str) -> Notice | None:
    who = _word(cluster, 24)
    me = _word(node, 24)
    started = str(fields.get("started_at", ""))[:20]
    # Cluster-wide news, logged by the leader only.
    if event == "outage.started":
        charge = _pct(fields.get("charge_pct")) or "unknown"
        runtime = _duration(fields.get("runtime_s"))
        text = f"{who}: mains power failed at {_hhmm(started)}. Running on battery, charge {charge}"
        text += f", about {runtime} left." if runtime else "."
        return _notice(NoticeKind.OUTAGE_STARTED, node, f"started@{started}", text, fields)
    if event == "plan.decided":
        shed = _list(fields.get("shed"))
        if not shed or fields.get("decision") == "keep_off_after_full_shutdown":
            # Nodes kept off after a full shutdown: the mains-back message already said they return when the
            # battery has recharged; "to save battery, switching off" on mains would read as a new outage.
            return None
        projected = fields.get("projected_runtime_s")
        runtime = _duration(projected) if isinstance(projected, int | float) and projected >= 60 else None
        verb = "would switch off" if fields.get("dry_run") else "switching off"
        text = f"{who}: to save battery, {verb} {_names(shed)}. Critical services stay up"
        text += f"; battery lasts about {runtime}." if runtime else "."
        # Once per outage: the first plan that sheds. Later changes (a node done, one fewer to go) are in the summary.
        return _notice(NoticeKind.PLAN, node, "plan", text, fields)
    if event == "shutdown.cluster_started":
        nodes = _list(fields.get("nodes"))
        text = (
            f"{who}: battery almost empty. Shutting down all {len(nodes)} nodes now, in order; "
            "they start again when mains returns."
        )
        return _notice(NoticeKind.FULL_SHUTDOWN, node, "full_shutdown", text, fields)
    if event == "outage.mains_back":
        if not _list(fields.get("nodes_shed")) and not fields.get("full_shutdown"):
            return None  # nothing to bring back: the summary follows within minutes and says it (a flap: once)
        back = str(fields.get("mains_back_at", ""))[:20]
        away = _duration(fields.get("duration_s"))
        text = f"{who}: mains power is back at {_hhmm(back)}"
        text += f" after {away}." if away else "."
        text += " Switched-off nodes return when the battery has recharged."
        return _notice(NoticeKind.MAINS_BACK, node, f"mains_back@{started}", text, fields)
    if event == "node.restored":
        target = _word(fields.get("target", "?"), 40)
        text = f"{who}: node {target} is back in service."
        return _notice(NoticeKind.NODE_RESTORED, node, f"restored:{target}@{fields.get('shed_at', '')}", text, fields)
    if event == "outage.summary":
        away = _duration(fields.get("duration_s")) or "?"
        shed = _list(fields.get("nodes_shed"))
        down = _duration(fields.get("critical_downtime_s"))
        energy = fields.get("energy_used_wh")
        text = f"{who}: outage over. Mains was away {away}; nodes switched off: {_names(shed, 30)}"
        if fields.get("full_shutdown"):
            text += "; full shutdown"
        text += f"; critical services down {down}" if down and down != "0 s" else "; critical services stayed up"
        if isinstance(energy, int | float) and not isinstance(energy, bool) and 0 <= energy < 1e6:
            text += f"; {round(float(energy))} Wh used"
        return _notice(NoticeKind.OUTAGE_SUMMARY, node, f"summary@{started}", text + ".", fields)
    # This node's own trouble.
    if event == "power.source_lost":
        text = f"{me}: lost contact with its UPS: {_word(fields.get('error') or 'no answer', 70)}."
        text += " It assumes the worst until data returns."
        return _notice(NoticeKind.UPS_DATA_LOST, node, "ups_data_lost", text, fields)
    if event == "daemon.failed":
        text = f"{me}: piclusterd stopped on an error and is restarting: {_word(fields.get('error', '?'), 80)}"
        return _notice(NoticeKind.DAEMON_FAILING, node, "daemon_failed", text, fields)
    if event in ("node.request_refused", "shutdown.remote_refused"):
        why = _word(fields.get("why") or fields.get("check") or "?", 80)
        text = f"{me}: refused a power-off request: {why}. Check the journal."
        request = _word(fields.get("request_id", ""), 64)
        return _notice(NoticeKind.REQUEST_REFUSED, node, f"refused:{request}:{why}", text, fields)
    return None


def combine(notices: Sequence[Notice], cluster: str) -> list[Notice]:
    """Nodes restored together (the restart after a full shutdown brings them all back in one poll) as one
    message; the others as they are, in order."""
    restored = [n for n in notices if n.kind is NoticeKind.NODE_RESTORED]
    if len(restored) < 2:
        return list(notices)
    names = [dict(n.fields).get("target", "?") for n in restored]
    text = f"{_word(cluster, 24)}: nodes {_names(names, 80)} are back in service."
    merged = Notice(
        NoticeKind.NODE_RESTORED,
        restored[0].node,
        "+".join(n.key for n in restored)[:200],
        fit_sms(text),
        (("targets", ",".join(names)[:200]),),
    )
    first = notices.index(restored[0])
    rest = [n for n in notices if n.kind is not NoticeKind.NODE_RESTORED]
    return [*rest[:first], merged, *rest[first:]]


def notify_test_notice(node: str, sink: str) -> Notice:
    """``piclusterctl notify-test``'s message."""
    text = f"{_word(node, 24)}: test message from piclusterd through sink {_word(sink, 40)}. No action needed."
    return Notice(NoticeKind.TEST, node, "test", fit_sms(text), (("sink", sink),))


# --- storms: dedup and rate limit, per sink ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """A sink's limit: at most ``max_messages`` per ``window_s``; the same key again within ``repeat_after_s``
    is dropped (a key is the same news: a node's UPS lost twice in a row is one message)."""

    max_messages: int = 10
    window_s: float = 3600.0
    repeat_after_s: float = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class SinkGate:
    """A sink's memory: when it last sent (within the window), the keys sent, what is held back."""

    sent_at: tuple[float, ...] = ()
    keys: tuple[tuple[str, float], ...] = ()
    held: tuple[NoticeKind, ...] = ()
    held_since: float | None = None


def _room(gate: SinkGate, now: float, policy: GatePolicy) -> tuple[float, ...]:
    return tuple(at for at in gate.sent_at if now - at < policy.window_s)


def admit(gate: SinkGate, notice: Notice, now: float, policy: GatePolicy) -> tuple[SinkGate, Notice | None]:
    """Send ``notice`` now (returned), or drop it as a repeat, or hold it back for the storm summary. Pure."""
    keys = tuple((key, at) for key, at in gate.keys if now - at < policy.repeat_after_s)
    # A repeat of the same news is dropped, a test message never is.
    if notice.kind is not NoticeKind.TEST and any(key == notice.key for key, _ in keys):
        return replace(gate, keys=keys), None
    keys = (*keys, (notice.key, now))[-256:]
    sent = _room(gate, now, policy)
    # Within the limit, and nothing held back before it (the summary goes first): send.
    if (len(sent) < policy.max_messages and not gate.held) or notice.kind is NoticeKind.TEST:
        return replace(gate, sent_at=(*sent, now), keys=keys), notice
    # Over the limit: held back, counted, said in one summary when the window has room again.
    held_since = now if gate.held_since is None else gate.held_since
    return replace(gate, sent_at=sent, keys=keys, held=(*gate.held, notice.kind)[-1000:], held_since=held_since), None


def flush(gate: SinkGate, now: float, policy: GatePolicy, node: str) -> tuple[SinkGate, Notice | None]:
    """The storm summary, once the window has room: how many messages were held back, of which kinds."""
    sent = _room(gate, now, policy)
    if not gate.held or len(sent) >= policy.max_messages:
        return replace(gate, sent_at=sent), None
    counts: dict[str, int] = {}
    for kind in gate.held:
        counts[kind.value] = counts.get(kind.value, 0) + 1
    detail = ", ".join(f"{name.replace('_', ' ')} x{count}" for name, count in sorted(counts.items()))
    text = f"{_word(node, 24)}: {len(gate.held)} more messages held back by the rate limit ({detail}). "
    text += "See the journal: journalctl -u piclusterd"
    summary = Notice(
        NoticeKind.HELD_BACK,
        node,
        f"held@{gate.held_since}",
        fit_sms(text),
        (("held", str(len(gate.held))),),
    )
    return SinkGate(sent_at=(*sent, now), keys=gate.keys), summary


def wanted(notice: Notice, events: Iterable[NoticeKind]) -> bool:
    """Does a sink that asked for ``events`` get ``notice``? Tests and storm summaries always."""
    return notice.kind in (NoticeKind.TEST, NoticeKind.HELD_BACK) or notice.kind in set(events)
