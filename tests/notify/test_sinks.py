"""Each sink against its real receiving end: aiosmtpd (STARTTLS, login), an HTTPS server with its own CA,
gammu-smsd-inject into a files-backend outbox, smstools' spool, a real command."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from piclusterd.config.notify import EmailSink, ExecSink, SinkConfig, SmsSink, WebhookSink
from piclusterd.core.notify import GatePolicy, Notice, NoticeKind
from piclusterd.notify.senders import SendFailed, build_sender
from piclusterd.testing.smtp_server import SmtpServer, aiosmtpd_available
from piclusterd.testing.tls import SelfSignedCa, make_ca
from piclusterd.testing.webhook_server import WebhookServer

NOTICE = Notice(
    NoticeKind.OUTAGE_STARTED,
    "pi1",
    "started@2026-11-25T02:00:00Z",
    "clinic: mains power failed at 02:00 UTC. Running on battery, charge 84 %, about 2 h 30 min left.",
    (("charge_pct", "84.2"), ("started_at", "2026-11-25T02:00:00Z")),
)


def sink(kind: EmailSink | WebhookSink | SmsSink | ExecSink, timeout: float = 10.0) -> SinkConfig:
    return SinkConfig("s", kind, frozenset(NoticeKind), GatePolicy(), timeout)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCa:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCa:
    return make_ca(tmp_path_factory.mktemp("other-ca"), "an impostor CA")


# --- email ---------------------------------------------------------------------------------------------

needs_aiosmtpd = pytest.mark.skipif(not aiosmtpd_available(), reason="needs Debian's python3-aiosmtpd")


@needs_aiosmtpd
def test_email_over_starttls_with_a_login_reaches_the_smtp_server(ca: SelfSignedCa) -> None:
    with SmtpServer(cert=ca.server_cert, key=ca.server_key, login=("piclusterd", "s3cret")) as server:
        smtp = EmailSink("127.0.0.1", server.port, True, "piclusterd@clinic.example", ("it@clinic.example",),
                          "piclusterd", "s3cret", str(ca.ca_file))  # fmt: skip
        build_sender(sink(smtp)).send(NOTICE)
        (message,) = server.messages(wait_s=5)
    assert message["tls"] and message["login"] == "piclusterd"
    assert message["from"] == "piclusterd@clinic.example" and message["to"] == ["it@clinic.example"]
    mail = email.message_from_string(message["data"], policy=email.policy.default)
    assert mail["Subject"] == "piclusterd: clinic: mains power failed at 02:00 UTC"
    assert isinstance(mail, EmailMessage) and mail.get_content().splitlines()[0] == NOTICE.text


@needs_aiosmtpd
def test_email_refuses_a_server_whose_certificate_another_ca_signed(ca: SelfSignedCa, other_ca: SelfSignedCa) -> None:
    with SmtpServer(cert=ca.server_cert, key=ca.server_key, login=("piclusterd", "s3cret")) as server:
        smtp = EmailSink("127.0.0.1", server.port, True, "a@clinic.example", ("b@clinic.example",),
                          "piclusterd", "s3cret", str(other_ca.ca_file))  # fmt: skip
        with pytest.raises(SendFailed, match="CERTIFICATE_VERIFY_FAILED"):
            build_sender(sink(smtp)).send(NOTICE)
        assert server.messages() == []  # the password never went out either


@needs_aiosmtpd
def test_email_with_a_wrong_password_fails_and_says_so(ca: SelfSignedCa) -> None:
    with SmtpServer(cert=ca.server_cert, key=ca.server_key, login=("piclusterd", "s3cret")) as server:
        smtp = EmailSink("127.0.0.1", server.port, True, "a@clinic.example", ("b@clinic.example",),
                          "piclusterd", "wrong", str(ca.ca_file))  # fmt: skip
        with pytest.raises(SendFailed, match="login refused"):
            build_sender(sink(smtp)).send(NOTICE)


def test_email_to_a_server_that_is_down_fails_within_its_timeout() -> None:
    smtp = EmailSink("127.0.0.1", 1, False, "a@clinic.example", ("b@clinic.example",), "", "", "")
    with pytest.raises(SendFailed, match=r"127\.0\.0\.1:1"):
        build_sender(sink(smtp, timeout=2)).send(NOTICE)


# --- webhook -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "method", "expected"),
    [
        ("json", "POST", {"event": "outage_started", "node": "pi1", "text": NOTICE.text}),
        ("slack", "POST", {"text": NOTICE.text}),
        ("mattermost", "POST", {"text": NOTICE.text}),
        ("teams", "POST", {"text": NOTICE.text}),
        ("matrix", "PUT", {"msgtype": "m.text", "body": NOTICE.text}),
    ],
)
def test_webhook_posts_each_services_json_over_https(
    ca: SelfSignedCa, fmt: str, method: str, expected: dict[str, str]
) -> None:
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        build_sender(sink(WebhookSink(server.url(), fmt, str(ca.ca_file), token="t0ken"))).send(NOTICE)
    (request,) = server.received
    body = json.loads(request.body)
    assert request.method == method and {k: body[k] for k in expected} == expected
    assert request.headers["Authorization"] == "Bearer t0ken"


def test_ntfy_gets_the_text_as_the_body(ca: SelfSignedCa) -> None:
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        build_sender(sink(WebhookSink(server.url("/clinic-power"), "ntfy", str(ca.ca_file)))).send(NOTICE)
    (request,) = server.received
    assert request.path == "/clinic-power" and request.body.decode() == NOTICE.text


def test_webhook_refuses_a_certificate_from_another_ca(ca: SelfSignedCa, other_ca: SelfSignedCa) -> None:
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        with pytest.raises(SendFailed, match="CERTIFICATE_VERIFY_FAILED"):
            build_sender(sink(WebhookSink(server.url(), "json", str(other_ca.ca_file)))).send(NOTICE)
        with pytest.raises(SendFailed, match="CERTIFICATE_VERIFY_FAILED"):  # nor does the system's CA store know it
            build_sender(sink(WebhookSink(server.url(), "json"))).send(NOTICE)
    assert server.received == []


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (429, False), (404, True), (401, True)])
def test_a_webhook_error_says_whether_a_retry_can_help(ca: SelfSignedCa, status: int, permanent: bool) -> None:
    with WebhookServer(ca.server_cert, ca.server_key) as server:
        server.status = status
        with pytest.raises(SendFailed, match=f"HTTP {status}") as caught:
            build_sender(sink(WebhookSink(server.url(), "json", str(ca.ca_file)))).send(NOTICE)
    assert caught.value.permanent is permanent


# --- sms -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gammu-smsd-inject") is None, reason="needs Debian's gammu-smsd")
def test_sms_through_gammu_lands_in_the_outbox_for_each_number(tmp_path: Path) -> None:
    """gammu-smsd with the files service and the dummy phone driver (a directory stands in for the modem)."""
    for folder in ("modem", "inbox", "outbox", "sent", "error"):
        (tmp_path / folder).mkdir()
    config = tmp_path / "gammu-smsdrc"
    config.write_text(
        f"[gammu]\ndevice = {tmp_path}/modem\nconnection = none\nmodel = dummy\n"
        f"[smsd]\nservice = files\ninboxpath = {tmp_path}/inbox/\noutboxpath = {tmp_path}/outbox/\n"
        f"sentsmspath = {tmp_path}/sent/\nerrorsmspath = {tmp_path}/error/\nlogfile = {tmp_path}/smsd.log\n"
    )
    sms = SmsSink("gammu", ("+4917012345678", "+15551234567"), gammu_config=str(config))
    build_sender(sink(sms)).send(NOTICE)
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert len(files) == 2, files
    assert any("4917012345678" in name for name in files) and any("15551234567" in name for name in files)
    for path in (tmp_path / "outbox").iterdir():
        # gammu's SMS backup format: the text as UCS-2 hex in Text00, Text01...; one SMS in the GSM default alphabet.
        backup = path.read_text()
        text = bytes.fromhex("".join(re.findall(r"^Text\d\d = ([0-9A-F]+)$", backup, re.MULTILINE))).decode("utf-16-be")
        assert text == NOTICE.text
        assert "Coding = Default_No_Compression" in backup and backup.count("[SMSBackup") == 1


@pytest.mark.skipif(shutil.which("gammu-smsd-inject") is None, reason="needs Debian's gammu-smsd")
def test_gammu_with_a_missing_config_fails_and_says_why(tmp_path: Path) -> None:
    sms = SmsSink("gammu", ("+4917012345678",), gammu_config=str(tmp_path / "missing"))
    with pytest.raises(SendFailed, match="gammu-smsd-inject exited"):
        build_sender(sink(sms)).send(NOTICE)


def test_sms_through_smstools_spool_writes_one_whole_file_per_number(tmp_path: Path) -> None:
    spool = tmp_path / "outgoing"
    spool.mkdir()
    build_sender(sink(SmsSink("smstools", ("+4917012345678", "+15551234567"), spool_dir=str(spool)))).send(NOTICE)
    texts = sorted(p.read_text() for p in spool.iterdir())
    assert texts == [f"To: 15551234567\n\n{NOTICE.text}\n", f"To: 4917012345678\n\n{NOTICE.text}\n"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".piclusterd-")]  # nothing half-written left


# --- exec ----------------------------------------------------------------------------------------------


def test_exec_gets_the_message_as_argument_and_the_event_in_its_environment(tmp_path: Path) -> None:
    """As upsmon's NOTIFYCMD: the text as the argument, NOTIFYTYPE in the environment."""
    out = tmp_path / "out"
    script = f'printf "%s|%s|%s|%s" "$NOTIFYTYPE" "$PICLUSTER_NODE" "$PICLUSTER_CHARGE_PCT" "$1" > {out}'
    build_sender(sink(ExecSink(("/bin/sh", "-c", script, "notify")))).send(NOTICE)
    assert out.read_text() == f"OUTAGE_STARTED|pi1|84.2|{NOTICE.text}"


def test_exec_that_hangs_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(SendFailed, match="did not finish within 1 s"):
        build_sender(sink(ExecSink(("/bin/sh", "-c", "sleep 30", "x")), timeout=1)).send(NOTICE)


def test_exec_that_fails_says_its_last_line(tmp_path: Path) -> None:
    with pytest.raises(SendFailed, match="exited 3: modem busy"):
        build_sender(sink(ExecSink(("/bin/sh", "-c", "echo modem busy >&2; exit 3")))).send(NOTICE)
    assert os.path.exists("/bin/sh")
