"""``[notify]``: check-config validates every sink, with run's code; a bad sink is one clear line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from piclusterd.cli import daemon_main
from piclusterd.config.notify import EmailSink, ExecSink, SmsSink, WebhookSink
from piclusterd.config.parse import load_config
from piclusterd.core.errors import ConfigError
from piclusterd.core.notify import NoticeKind


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "piclusterd.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value).splitlines()


def secret(tmp_path: Path, name: str, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text("s3cret\n")
    os.chmod(path, mode)
    return path


def test_every_sink_type_is_read(tmp_path: Path) -> None:
    spool = tmp_path / "outgoing"
    spool.mkdir()
    password = secret(tmp_path, "smtp.password")
    config = load_config(
        write(
            tmp_path,
            f"""
[notify]
cluster_name = "clinic"
queue_dir = "{tmp_path}/queue"
[notify.pager]
type = "exec"
command = ["/bin/true"]
events = ["outage_started", "full_shutdown"]
max_messages = 4
per = "30m"
[notify.mail]
type = "email"
host = "smtp.clinic.example"
from = "piclusterd@clinic.example"
to = ["it@clinic.example"]
username = "piclusterd"
password_file = "{password}"
[notify.chat]
type = "webhook"
url = "https://ntfy.sh/clinic-power"
format = "ntfy"
[notify.phone]
type = "sms"
backend = "smstools"
spool_dir = "{spool}"
to = ["+4917012345678", "+15551234567"]
""",
        )
    )
    sinks = {sink.name: sink for sink in config.notify.sinks}
    assert config.notify.cluster_name == "clinic"
    assert isinstance(sinks["pager"].sink, ExecSink)
    assert sinks["pager"].events == {NoticeKind.OUTAGE_STARTED, NoticeKind.FULL_SHUTDOWN}
    assert (sinks["pager"].gate.max_messages, sinks["pager"].gate.window_s) == (4, 1800.0)
    mail = sinks["mail"].sink
    assert isinstance(mail, EmailSink) and mail.password == "s3cret" and mail.port == 587 and mail.starttls
    assert "s3cret" not in repr(sinks["mail"])  # never in a log line
    assert isinstance(sinks["chat"].sink, WebhookSink)
    assert isinstance(sinks["phone"].sink, SmsSink) and sinks["phone"].sink.to == ("+4917012345678", "+15551234567")
    assert len(sinks["phone"].events) == 9  # every event by default
    assert config.summary()["notify.phone.type"] == "sms"


@pytest.mark.parametrize(
    ("table", "key", "says"),
    [
        ('type = "sms"\nbackend = "smstools"\nspool_dir = "/"\nto = ["017012345678"]', "notify.s.to", "E.164"),
        ('type = "sms"\nbackend = "smstools"\nspool_dir = "/"\nto = ["+0123456789"]', "notify.s.to", "E.164"),
        (
            'type = "sms"\nbackend = "smstools"\nspool_dir = "/no-such-dir-piclusterd"\nto = ["+4917012345678"]',
            "spool_dir",
            "",
        ),
        ('type = "sms"\nbackend = "modem"\nto = ["+4917012345678"]', "notify.s.backend", '"gammu" or "smstools"'),
        (
            'type = "sms"\ninject_command = "/no-such-dir-piclusterd/gammu-smsd-inject"\nto = ["+4917012345678"]',
            "notify.s.inject_command",
            "executable",
        ),
        ('type = "webhook"\nurl = "http://hooks.example/x"', "notify.s.url", "use https"),
        ('type = "webhook"\nurl = "ftp://hooks.example/x"', "notify.s.url", "scheme"),
        ('type = "webhook"\nurl = "https://"', "notify.s.url", "no host"),
        ('type = "webhook"\nurl = "https://h.example"\nformat = "irc"', "notify.s.format", "ntfy"),
        (
            'type = "webhook"\nurl = "https://h.example"\nca_file = "/no-such-dir-piclusterd.pem"',
            "notify.s.ca_file",
            "",
        ),
        ('type = "email"\nhost = "h"\nfrom = "nobody"\nto = ["it@x.example"]', "notify.s.from", "address"),
        ('type = "email"\nhost = "h"\nfrom = "a@x.example"\nto = []', "notify.s.to", "list of strings"),
        ('type = "exec"\ncommand = ["/no-such-dir-piclusterd/notify"]', "notify.s.command", "executable"),
        ('type = "exec"\ncommand = ["/bin/true"]\nevents = ["outage"]', "notify.s.events", "outage_started"),
        ('type = "exec"\ncommand = ["/bin/true"]\nper = "ever"', "notify.s.per", "duration"),
        ('type = "exec"\ncommand = ["/bin/true"]\nmax_messages = 0', "notify.s.max_messages", "from 1"),
        ('type = "exec"\ncommand = ["/bin/true"]\nurl = "https://x"', "notify.s.url", "unknown key"),
        ('type = "pigeon"', "notify.s.type", '"exec", "email", "webhook" or "sms"'),
    ],
)
def test_a_bad_sink_is_one_line_naming_its_key(tmp_path: Path, table: str, key: str, says: str) -> None:
    lines = problems(tmp_path, f"[notify.s]\n{table}\n")
    assert any(key in line and says in line for line in lines), lines
    assert all(line.startswith(str(tmp_path)) for line in lines)


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    password = secret(tmp_path, "p", 0o644)
    (line,) = problems(
        tmp_path,
        f'[notify.m]\ntype = "email"\nhost = "h.example"\nfrom = "a@x.example"\nto = ["b@x.example"]\n'
        f'username = "u"\npassword_file = "{password}"\n',
    )
    assert "notify.m.password_file" in line and "chmod 600" in line


def test_a_password_is_never_sent_in_clear(tmp_path: Path) -> None:
    password = secret(tmp_path, "p")
    (line,) = problems(
        tmp_path,
        f'[notify.m]\ntype = "email"\nhost = "smtp.example"\nstarttls = false\nfrom = "a@x.example"\n'
        f'to = ["b@x.example"]\nusername = "u"\npassword_file = "{password}"\n',
    )
    assert "notify.m.starttls" in line


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = secret(tmp_path, "t", 0o640)
    (line,) = problems(tmp_path, f'[notify.w]\ntype = "webhook"\nurl = "https://h.example/x"\ntoken_file = "{token}"\n')
    assert "notify.w.token_file" in line


def test_http_to_this_machine_is_allowed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[notify.w]\ntype = "webhook"\nurl = "http://127.0.0.1:8080/hook"\n'))
    assert config.notify.sinks[0].name == "w"


def test_check_config_runs_the_same_validation_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[notify.phone]\ntype = "sms"\nbackend = "smstools"\nspool_dir = "/"\nto = ["12345"]\n')
    assert daemon_main(["check-config", "--config", str(path)]) == 2
    assert "notify.phone.to: '12345' is not an E.164 number" in capsys.readouterr().err
    assert daemon_main(["run", "--config", str(path)]) == 2  # run refuses the same file, the same way


def test_a_sink_name_must_be_a_plain_word(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, '[notify."my phone!"]\ntype = "exec"\ncommand = ["/bin/true"]\n')
    assert "is not a sink name" in line


def test_an_unknown_notify_key_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "[notify]\nqueue_size = 5\n")
    assert "notify.queue_size: unknown key" in line
