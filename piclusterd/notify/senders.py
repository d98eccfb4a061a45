"""The sinks: how one message leaves this machine. Each send has a timeout and raises :class:`SendFailed`.

- ``exec``: the command with the message as its last argument and the event in environment variables, as
  upsmon runs NOTIFYCMD (``NOTIFYTYPE``; upsmon.conf(5)), plus ``PICLUSTER_*`` fields;
- ``email``: SMTP (smtplib), STARTTLS with the system's or ``ca_file``'s CA certificates, a login if given;
- ``webhook``: an HTTPS POST (PUT for Matrix's send API) with certificate checks, in the format of the service;
- ``sms``: ``gammu-smsd-inject TEXT <number> -text <message>`` (gammu-smsd-inject(1)), or a message file in
  smstools' outgoing spool directory (``To:`` header, a blank line, the text; written elsewhere, then moved in,
  as smsd's documentation asks).
"""

from __future__ import annotations

import json
import os
import secrets
import smtplib
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from piclusterd.config.notify import EmailSink, ExecSink, SinkConfig, SmsSink, WebhookSink
from piclusterd.core.errors import PiclusterError
from piclusterd.core.notify import Notice

__all__ = ["SendFailed", "Sender", "build_sender", "build_senders"]


class SendFailed(PiclusterError, RuntimeError):
    """A sink did not take a message. ``permanent``: trying again cannot help (a 4xx answer, a bad number)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    def send(self, notice: Notice) -> None:
        """Deliver ``notice`` or raise :class:`SendFailed`; never blocks past the sink's timeout."""
        ...


def _env(notice: Notice) -> dict[str, str]:
    env = {
        "NOTIFYTYPE": notice.kind.value.upper(),
        "PICLUSTER_EVENT": notice.kind.value,
        "PICLUSTER_NODE": notice.node,
        "PICLUSTER_KEY": notice.key,
        "PICLUSTER_MESSAGE": notice.text,
    }
    for name, value in notice.fields:
        variable = "PICLUSTER_" + "".join(c if c.isalnum() else "_" for c in name.upper())
        env.setdefault(variable, value)
    return env


def _run(argv: list[str], env: Mapping[str, str] | None, timeout: float, what: str) -> None:
    try:
        done = subprocess.run(
            argv,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SendFailed(f"{what} did not finish within {timeout:g} s") from None
    except OSError as error:
        raise SendFailed(f"{what} cannot run: {error.strerror}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise SendFailed(f"{what} exited {done.returncode}: {said[-1][:200] if said else 'no output'}")


class ExecSender:
    def __init__(self, sink: ExecSink, timeout: float) -> None:
        self._argv = list(sink.command)
        self._timeout = timeout

    def send(self, notice: Notice) -> None:
        _run([*self._argv, notice.text], _env(notice), self._timeout, self._argv[0])


def _tls(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file or None)


class EmailSender:
    def __init__(self, sink: EmailSink, timeout: float) -> None:
        self._sink = sink
        self._timeout = timeout

    def send(self, notice: Notice) -> None:
        sink = self._sink
        message = EmailMessage()
        message["From"] = sink.sender
        message["To"] = ", ".join(sink.to)
        message["Subject"] = "piclusterd: " + notice.text.split(". ")[0][:70]
        message.set_content(notice.text + "\n\n" + "\n".join(f"{k}: {v}" for k, v in notice.fields) + "\n")
        try:
            with smtplib.SMTP(sink.host, sink.port, timeout=self._timeout) as smtp:
                if sink.starttls:
                    smtp.starttls(context=_tls(sink.ca_file))
                if sink.username:
                    smtp.login(sink.username, sink.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            raise SendFailed(f"SMTP {sink.host}: recipients refused: {error.recipients}", permanent=True) from None
        except smtplib.SMTPAuthenticationError as error:
            raise SendFailed(f"SMTP {sink.host}: login refused ({error.smtp_code})") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
            raise SendFailed(f"SMTP {sink.host}:{sink.port}: {error}") from None


def _webhook_body(fmt: str, notice: Notice) -> tuple[bytes, str]:
    """The request body and its content type, as each service takes a plain message."""
    if fmt == "ntfy":  # ntfy: the body is the message (docs.ntfy.sh/publish)
        return notice.text.encode(), "text/plain; charset=utf-8"
    if fmt in ("slack", "mattermost"):  # incoming webhooks: {"text": ...}
        data: dict[str, object] = {"text": notice.text}
    elif fmt == "teams":  # Office 365 connector / Workflows MessageCard: {"text": ...}
        data = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "text": notice.text}
    elif fmt == "matrix":  # m.room.message (Matrix client-server API)
        data = {"msgtype": "m.text", "body": notice.text}
    else:
        data = {"event": notice.kind.value, "node": notice.node, "key": notice.key, "text": notice.text}
        data["fields"] = dict(notice.fields)
    return json.dumps(data).encode(), "application/json"


class WebhookSender:
    def __init__(self, sink: WebhookSink, timeout: float) -> None:
        self._sink = sink
        self._timeout = timeout
        self._context = _tls(sink.ca_file)

    def send(self, notice: Notice) -> None:
        sink = self._sink
        body, content_type = _webhook_body(sink.format, notice)
        url, method = sink.url, "POST"
        if sink.format == "matrix":  # PUT .../send/m.room.message/{txnId}: the txnId makes a retry idempotent
            url, method = url.rstrip("/") + "/" + urllib.parse.quote(notice.key + "-" + notice.node, safe=""), "PUT"
        request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
        request.add_header("User-Agent", "piclusterd")
        if sink.token:
            request.add_header("Authorization", f"Bearer {sink.token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._context) as answer:
                answer.read(4096)
        except urllib.error.HTTPError as error:
            permanent = 400 <= error.code < 500 and error.code not in (408, 429)
            raise SendFailed(f"{_host(url)} answered HTTP {error.code}", permanent=permanent) from None
        except (urllib.error.URLError, OSError, ssl.SSLError) as error:
            reason = getattr(error, "reason", error)
            raise SendFailed(f"{_host(url)}: {reason}") from None


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url[:60]


class SmsSender:
    def __init__(self, sink: SmsSink, timeout: float) -> None:
        self._sink = sink
        self._timeout = timeout

    def send(self, notice: Notice) -> None:
        for number in self._sink.to:
            if self._sink.backend == "gammu":
                argv = [self._sink.inject_command, "-c", self._sink.gammu_config, "TEXT", number, "-text", notice.text]
                _run(argv, None, self._timeout, "gammu-smsd-inject")
            else:
                self._spool(number, notice.text)

    def _spool(self, number: str, text: str) -> None:
        # smstools: "To:" in international format without "+"; the file is made outside the spool and moved in,
        # so smsd never reads half of it (smstools3 docs, "fileformat").
        spool = Path(self._sink.spool_dir)
        body = f"To: {number.lstrip('+')}\n\n{text}\n".encode("ascii", errors="replace")
        try:
            descriptor, temporary = tempfile.mkstemp(prefix=".piclusterd-", dir=spool.parent)
            try:
                os.write(descriptor, body)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.chmod(temporary, 0o644)
            os.rename(temporary, spool / f"piclusterd-{time.time_ns()}-{secrets.token_hex(4)}")
        except OSError as error:
            raise SendFailed(f"smstools spool {spool}: {error.strerror}") from None


def build_sender(config: SinkConfig) -> Sender:
    sink, timeout = config.sink, config.timeout_s
    if isinstance(sink, ExecSink):
        return ExecSender(sink, timeout)
    if isinstance(sink, EmailSink):
        return EmailSender(sink, timeout)
    if isinstance(sink, WebhookSink):
        return WebhookSender(sink, timeout)
    return SmsSender(sink, timeout)


def build_senders(sinks: tuple[SinkConfig, ...]) -> dict[str, Sender]:
    return {sink.name: build_sender(sink) for sink in sinks}
