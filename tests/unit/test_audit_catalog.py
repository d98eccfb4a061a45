"""The audit events are documented exactly once, and the journald catalog and docs/audit.md say the same."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from piclusterd.node.audit import message_id
from piclusterd.node.audit_catalog import EVENTS, render_catalog, render_markdown_table

REPO = Path(__file__).resolve().parents[2]
LOG_METHODS = {"debug", "info", "warning", "error", "critical", "exception", "msg"}
EVENT_NAME = re.compile(r"^[a-z]+(\.[a-z_]+)+$")
# The demo's own lines (demo.*) go to a terminal, never to the journal; testing/ holds fakes.
NOT_IN_THE_DAEMON = ("piclusterd/sim/demo_command.py", "piclusterd/testing/", "piclusterd/_vendor/")


def emitted_events() -> dict[str, list[str]]:
    """Event names the code logs: a dotted string literal as the first argument of a log call.

    A log call is ``<anything>.info(...)`` (or another level), or a call through a local name such as
    ``level(...)``, which daemon.py uses to pick the level of power.state_changed.
    """
    found: dict[str, list[str]] = {}
    sources = [*sorted((REPO / "piclusterd").rglob("*.py")), *sorted((REPO / "drivers").rglob("*.py"))]
    for path in sources:
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(NOT_IN_THE_DAEMON):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            func = node.func
            is_log_call = (isinstance(func, ast.Attribute) and func.attr in LOG_METHODS) or (
                isinstance(func, ast.Name) and func.id[:1].islower()
            )
            if is_log_call and EVENT_NAME.match(first.value):
                found.setdefault(first.value, []).append(f"{relative}:{node.lineno}")
    return found


def test_the_catalog_lists_exactly_the_events_the_code_emits() -> None:
    emitted = emitted_events()
    documented = {event.name for event in EVENTS}
    assert "power.state_changed" in emitted  # the scan itself works
    missing = {name: emitted[name] for name in sorted(set(emitted) - documented)}
    assert not missing, f"logged but not in piclusterd/node/audit_catalog.py: {missing}"
    assert not documented - set(emitted), f"documented but never logged: {sorted(documented - set(emitted))}"
    assert len(documented) == len(EVENTS), "an event is documented twice"


def test_the_installed_catalog_file_is_current() -> None:
    assert (REPO / "systemd" / "piclusterd.catalog").read_text(encoding="utf-8") == render_catalog(), (
        "run python3 tools/gen_audit_docs.py"
    )


def test_the_operators_page_lists_the_same_events() -> None:
    document = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    assert render_markdown_table() in document, "run python3 tools/gen_audit_docs.py"


def test_every_message_id_quoted_in_the_docs_belongs_to_an_event() -> None:
    known = {message_id(event.name) for event in EVENTS}
    for page in ("docs/audit.md", "man/piclusterd.8"):
        quoted = set(re.findall(r"\b[0-9a-f]{32}\b", (REPO / page).read_text(encoding="utf-8")))
        assert quoted <= known, f"{page} quotes unknown MESSAGE_IDs {sorted(quoted - known)}"


def test_catalog_entries_have_the_journald_format() -> None:
    ids = re.findall(r"^-- ([0-9a-f]{32})$", render_catalog(), flags=re.MULTILINE)
    assert ids == [message_id(event.name) for event in EVENTS]
    assert len(set(ids)) == len(ids)


def test_the_generator_agrees_the_files_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_audit_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
