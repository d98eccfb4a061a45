"""The audit trail in its three formats."""

from __future__ import annotations

import io
import json
import re

from piclusterd.core.power_state import PowerState
from piclusterd.node.audit import LogFormat, journal_fields, make_audit_logger, message_id


def test_json_lines_have_event_timestamp_node_and_fields() -> None:
    stream = io.StringIO()
    log = make_audit_logger(LogFormat.JSON, "pi1", stream=stream)
    log.warning("power.state_changed", old=PowerState.ONLINE, new=PowerState.ON_BATTERY, charge_pct=63.0)
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "power.state_changed" and event["node"] == "pi1"
    assert event["old"] == "online" and event["new"] == "on_battery" and event["charge_pct"] == 63.0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event["timestamp"])


def test_debug_is_dropped_at_info_level() -> None:
    stream = io.StringIO()
    log = make_audit_logger(LogFormat.JSON, "pi1", stream=stream)
    log.debug("power.poll_failed")
    assert stream.getvalue() == ""


def test_console_lines_are_readable() -> None:
    stream = io.StringIO()
    make_audit_logger(LogFormat.CONSOLE, "pi1", stream=stream).info("daemon.started", version="1")
    text = stream.getvalue()
    assert "daemon.started" in text and "node=pi1" in text and "\x1b[" not in text


def test_journal_gets_native_fields() -> None:
    sent: list[dict[str, str]] = []
    log = make_audit_logger(LogFormat.JOURNAL, "pi1", journal_send=lambda **f: sent.append(f))
    log.critical(
        "power.state_changed",
        old="on_battery",
        new="critical",
        charge_pct=12.5,
        runtime_s=240,
        on_battery=True,
        reason=None,
    )
    (fields,) = sent
    assert fields["PICLUSTER_EVENT"] == "power.state_changed"
    assert fields["PICLUSTER_NODE"] == "pi1"
    assert fields["PICLUSTER_STATE"] == "critical"
    assert fields["PICLUSTER_CHARGE"] == "12.5"
    assert fields["PICLUSTER_RUNTIME"] == "240"
    assert fields["PRIORITY"] == "2"
    assert fields["MESSAGE_ID"] == message_id("power.state_changed")
    assert "PICLUSTER_REASON" not in fields
    assert fields["MESSAGE"].startswith("power.state_changed ")


def test_message_ids_are_stable_and_distinct() -> None:
    assert message_id("power.state_changed") == "62a67819b7a45030838098215fa90016"
    assert message_id("shutdown.local_started") != message_id("power.state_changed")
    assert re.fullmatch(r"[0-9a-f]{32}", message_id("x"))


def test_list_fields_are_json_in_the_journal() -> None:
    fields = journal_fields({"event": "shutdown.local_started", "level": "critical", "command": ["a", "b"]})
    assert fields["PICLUSTER_COMMAND"] == '["a","b"]'
