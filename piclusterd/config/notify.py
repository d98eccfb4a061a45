"""``[notify]``: where piclusterd's messages go. One table per sink, ``[notify.<name>]`` with a ``type``.

Every sink is checked here, by ``check-config`` and ``run`` alike: phone numbers in E.164, URLs (https, or
http to this machine only), the files a sink needs (root-only for a password or token), the command's program,
the SMS spool directory. Every problem is a :class:`ConfigError` naming the key; all are reported together.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import stat
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from piclusterd.core.durations import parse_duration
from piclusterd.core.errors import ConfigError
from piclusterd.core.notify import GatePolicy, NoticeKind

__all__ = [
    "DEFAULT_QUEUE_DIR",
    "SINK_KEYS",
    "EmailSink",
    "ExecSink",
    "NotifyConfig",
    "SinkConfig",
    "SmsSink",
    "WebhookSink",
    "parse_notify",
]

DEFAULT_QUEUE_DIR = "/var/lib/piclusterd/notify"
WEBHOOK_FORMATS = ("json", "slack", "mattermost", "teams", "matrix", "ntfy")
SMS_BACKENDS = ("gammu", "smstools")
#: E.164: a plus, a country code not starting with 0, at most 15 digits in all (ITU-T E.164 section 6.1).
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SINK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_EMAIL = re.compile(r"[^@\s<>]{1,64}@[A-Za-z0-9.-]{1,253}")
MAX_SECRET_FILE = 4096


@dataclass(frozen=True, slots=True)
class ExecSink:
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmailSink:
    host: str
    port: int
    starttls: bool
    sender: str
    to: tuple[str, ...]
    username: str
    password: str = ""  # read from password_file; never logged
    ca_file: str = ""


@dataclass(frozen=True, slots=True)
class WebhookSink:
    url: str
    format: str
    ca_file: str = ""
    token: str = ""  # read from token_file; never logged


@dataclass(frozen=True, slots=True)
class SmsSink:
    backend: str
    to: tuple[str, ...]
    gammu_config: str = ""
    inject_command: str = "gammu-smsd-inject"
    spool_dir: str = ""


SinkKind = ExecSink | EmailSink | WebhookSink | SmsSink


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One ``[notify.<name>]``: its name, what it sends through, which events, its rate limit, its timeout."""

    name: str
    sink: SinkKind
    events: frozenset[NoticeKind]
    gate: GatePolicy
    timeout_s: float

    def __repr__(self) -> str:  # no secret in a log line or a traceback
        return f"SinkConfig({self.name!r}, {type(self.sink).__name__})"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    sinks: tuple[SinkConfig, ...] = ()
    queue_dir: str = DEFAULT_QUEUE_DIR
    queue_max: int = 500
    give_up_after_s: float = 86400.0
    cluster_name: str = "cluster"


_ALL_EVENTS = tuple(kind.value for kind in NoticeKind if kind not in (NoticeKind.TEST, NoticeKind.HELD_BACK))
#: The keys of [notify] itself (the others are sink tables).
NOTIFY_KEYS = ("queue_dir", "queue_max", "give_up_after", "cluster_name")
COMMON_KEYS = ("type", "events", "max_messages", "per", "repeat_after", "timeout")
SINK_KEYS: Mapping[str, tuple[str, ...]] = {
    "exec": ("command",),
    "email": ("host", "port", "starttls", "from", "to", "username", "password_file", "ca_file"),
    "webhook": ("url", "format", "ca_file", "token_file"),
    "sms": ("backend", "to", "gammu_config", "inject_command", "spool_dir"),
}


class _Table:
    """Typed reads of one table; each bad value becomes a problem naming its key, and a safe stand-in."""

    def __init__(self, file: str, where: str, table: Mapping[str, Any], problems: list[ConfigError]) -> None:
        self.file, self.where, self.table, self.problems = file, where, table, problems

    def fail(self, key: str, problem: str, expected: str) -> None:
        self.problems.append(ConfigError(self.file, f"{self.where}.{key}", problem, expected))

    def get(self, key: str, default: Any, check: Callable[[Any], bool], expected: str) -> Any:
        value = self.table.get(key, default)
        if not check(value):
            self.fail(key, f"invalid value {str(value)[:60]!r}", expected)
            return default
        return value

    def text(self, key: str, default: str = "") -> str:
        return str(self.get(key, default, lambda v: isinstance(v, str) and len(v) <= 4096, "a string in quotes"))

    def words(self, key: str) -> tuple[str, ...]:
        value = self.get(
            key,
            [],
            lambda v: isinstance(v, list) and 0 < len(v) <= 64 and all(isinstance(i, str) and i for i in v),
            'a list of strings, such as ["a", "b"]',
        )
        return tuple(value)

    def duration(self, key: str, default: str, low: float, high: float) -> float:
        raw = self.table.get(key, default)
        try:
            seconds = parse_duration(raw) if isinstance(raw, str) else -1.0
        except ValueError:
            seconds = -1.0
        if not low <= seconds <= high:
            self.fail(key, f"invalid value {str(raw)[:60]!r}", f'a duration such as "{default}"')
            return parse_duration(default)
        return seconds

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        return int(
            self.get(
                key,
                default,
                lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
                f"a whole number from {low} to {high}",
            )
        )


def _secret(t: _Table, key: str) -> str:
    """A root-only regular file's first line (a password, a token), or "" after a problem."""
    path = t.text(key)
    if not path:
        return ""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            t.fail(key, f"{path} is not a regular file", "a file holding the secret on one line")
            return ""
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            t.fail(key, f"{path} can be read by other users", f"a root-only file: chmod 600 {path}")
            return ""
        with open(path, "rb") as stream:
            raw = stream.read(MAX_SECRET_FILE + 1)
    except OSError as error:
        t.fail(key, f"cannot read {path}: {error.strerror}", "a root-only file holding the secret on one line")
        return ""
    try:
        secret = raw.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        secret = ""
    if len(raw) > MAX_SECRET_FILE or not secret or "\n" in secret:
        t.fail(key, f"{path} is not one line of UTF-8 text", "the secret on one line")
        return ""
    return secret


def _ca_file(t: _Table) -> str:
    path = t.text("ca_file")
    if path:
        try:
            ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as error:
            t.fail("ca_file", f"cannot load {path}: {error}", "a PEM file of CA certificates")
            return ""
    return path


def _url_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        return str(error)
    del port
    if not parts.hostname or any(char.isspace() for char in url):
        return "no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        return None if loopback else "plain http leaves this machine: use https (certificates are checked)"
    return f"scheme {parts.scheme!r}"


def _program(t: _Table, key: str, argv0: str) -> None:
    path = argv0 if "/" in argv0 else ""
    if not path:
        for folder in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
            if os.access(os.path.join(folder, argv0), os.X_OK):
                return
        t.fail(key, f"{argv0} is not on PATH", "an installed program (apt install gammu-smsd), or its full path")
    elif not (os.path.isfile(path) and os.access(path, os.X_OK)):
        t.fail(key, f"{path} is not an executable file", "the full path of an executable program")


def _exec(t: _Table) -> ExecSink:
    command = t.words("command")
    if command:
        _program(t, "command", command[0])
    return ExecSink(command)


def _email(t: _Table) -> EmailSink:
    host = t.text("host")
    if not host:
        t.fail("host", "is missing", "the SMTP server's host name")
    sender = t.text("from")
    if not _EMAIL.fullmatch(sender):
        t.fail("from", f"invalid value {sender[:60]!r}", "an address such as piclusterd@clinic.example")
    to = t.words("to")
    for address in to:
        if not _EMAIL.fullmatch(address):
            t.fail("to", f"invalid address {address[:60]!r}", "addresses such as it@clinic.example")
    username = t.text("username")
    password = _secret(t, "password_file")
    if bool(username) != bool(t.text("password_file")):
        t.fail("username", "and password_file go together", "both (a login) or neither")
    starttls = bool(t.get("starttls", True, lambda v: isinstance(v, bool), "true or false"))
    if password and not starttls and host not in ("localhost", "127.0.0.1", "::1"):
        t.fail("starttls", "is false but a password is sent", "starttls = true (never a password in clear)")
    return EmailSink(
        host=host,
        port=t.integer("port", 587, 1, 65535),
        starttls=starttls,
        sender=sender,
        to=to,
        username=username,
        password=password,
        ca_file=_ca_file(t),
    )


def _webhook(t: _Table) -> WebhookSink:
    url = t.text("url")
    problem = _url_problem(url)
    if problem:
        t.fail("url", f"invalid URL {url[:80]!r}: {problem}", "https://host/path")
    fmt = t.get("format", "json", lambda v: v in WEBHOOK_FORMATS, "one of " + ", ".join(WEBHOOK_FORMATS))
    return WebhookSink(url=url, format=str(fmt), ca_file=_ca_file(t), token=_secret(t, "token_file"))


def _sms(t: _Table) -> SmsSink:
    backend = str(t.get("backend", "gammu", lambda v: v in SMS_BACKENDS, '"gammu" or "smstools"'))
    to = t.words("to")
    for number in to:
        if not E164.fullmatch(number):
            t.fail("to", f"{number[:30]!r} is not an E.164 number", 'a number such as "+4917012345678"')
    sink = SmsSink(
        backend=backend,
        to=to,
        gammu_config=t.text("gammu_config", "/etc/gammu-smsdrc"),
        inject_command=t.text("inject_command", "gammu-smsd-inject"),
        spool_dir=t.text("spool_dir", "/var/spool/sms/outgoing"),
    )
    if backend == "gammu":
        _program(t, "inject_command", sink.inject_command)
        if not os.access(sink.gammu_config, os.R_OK):
            t.fail("gammu_config", f"cannot read {sink.gammu_config}", "gammu-smsd's configuration file")
    elif not (os.path.isdir(sink.spool_dir) and os.access(sink.spool_dir, os.W_OK | os.X_OK)):
        t.fail("spool_dir", f"{sink.spool_dir} is not a directory this user can write", "smstools' outgoing dir")
    return sink


_BUILD: Mapping[str, Callable[[_Table], SinkKind]] = {
    "exec": _exec,
    "email": _email,
    "webhook": _webhook,
    "sms": _sms,
}


def _sink(file: str, name: str, table: Mapping[str, Any], problems: list[ConfigError]) -> SinkConfig | None:
    t = _Table(file, f"notify.{name}", table, problems)
    kind = table.get("type")
    if kind not in SINK_KEYS:
        t.fail("type", f"invalid value {str(kind)[:40]!r}", '"exec", "email", "webhook" or "sms"')
        return None
    allowed = COMMON_KEYS + SINK_KEYS[str(kind)]
    for key in table:
        if key not in allowed:
            t.fail(str(key)[:40], f"unknown key for a {kind} sink", "one of " + ", ".join(allowed))
    events = t.get(
        "events",
        list(_ALL_EVENTS),
        lambda v: isinstance(v, list) and bool(v) and all(item in _ALL_EVENTS for item in v),
        "a list of " + ", ".join(_ALL_EVENTS),
    )
    gate = GatePolicy(
        max_messages=t.integer("max_messages", 10, 1, 1000),
        window_s=t.duration("per", "1h", 1.0, 7 * 86400.0),
        repeat_after_s=t.duration("repeat_after", "6h", 0.0, 7 * 86400.0),
    )
    timeout = t.duration("timeout", "30s", 1.0, 600.0)
    sink = _BUILD[str(kind)](t)
    return SinkConfig(name, sink, frozenset(NoticeKind(item) for item in events), gate, timeout)


def parse_notify(file: str, section: Any, problems: list[ConfigError]) -> NotifyConfig:
    """``[notify]`` and its sink tables; problems are added to ``problems``."""
    if section is None:
        return NotifyConfig()
    if not isinstance(section, dict):
        problems.append(ConfigError(file, "notify", "is not a table", "a [notify] section"))
        return NotifyConfig()
    t = _Table(file, "notify", section, problems)
    sinks: list[SinkConfig] = []
    for name, value in section.items():
        if name in NOTIFY_KEYS:
            continue
        if not isinstance(value, dict):
            t.fail(str(name)[:40], "unknown key", "one of " + ", ".join(NOTIFY_KEYS) + ", or a [notify.<sink>] table")
            continue
        if not _SINK_NAME.fullmatch(name):
            t.fail(str(name)[:40], "is not a sink name", "lower-case letters, digits, '-' and '_' (40 at most)")
            continue
        sink = _sink(file, name, value, problems)
        if sink is not None:
            sinks.append(sink)
    return NotifyConfig(
        sinks=tuple(sinks),
        queue_dir=t.text("queue_dir", DEFAULT_QUEUE_DIR) or DEFAULT_QUEUE_DIR,
        queue_max=t.integer("queue_max", 500, 10, 100000),
        give_up_after_s=t.duration("give_up_after", "24h", 60.0, 30 * 86400.0),
        cluster_name=t.text("cluster_name", "cluster") or "cluster",
    )
