"""A real SMTP server on loopback, Debian's ``aiosmtpd`` (python3-aiosmtpd), with STARTTLS and a login.

It runs as its own process under the system's ``/usr/bin/python3`` (where Debian installs aiosmtpd), like a
mail relay the daemon talks to over TCP. Each message it accepts lands in :attr:`SmtpServer.mailbox` as a JSON
file: envelope sender and recipients, the raw message, whether the session was under TLS, and the login.
``require_starttls``: no MAIL before STARTTLS; a login is accepted only under TLS (aiosmtpd's default).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["SYSTEM_PYTHON", "SmtpServer", "aiosmtpd_available"]

SYSTEM_PYTHON = "/usr/bin/python3"


def aiosmtpd_available() -> bool:
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import aiosmtpd"], capture_output=True, check=False)
    return done.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpServer:
    def __init__(
        self,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        login: tuple[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.port = port or _free_port()
        self._directory = Path(tempfile.mkdtemp(prefix="piclusterd-smtp-"))
        self.mailbox = self._directory / "mailbox"
        self.mailbox.mkdir()
        self._argv = [SYSTEM_PYTHON, __file__, str(self.port), str(self.mailbox)]
        self._argv += [str(cert or ""), str(key or ""), *(login or ("", ""))]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpServer:
        self._process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "ready" once it listens
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"aiosmtpd did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def messages(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait_s
        while True:
            found = [json.loads(p.read_text()) for p in sorted(self.mailbox.glob("*.json"))]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _serve(argv: list[str]) -> None:  # pragma: no cover - runs in the server process
    import ssl
    import threading

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    port, mailbox, cert, key, user, password = argv
    count = [0]

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            count[0] += 1
            record = {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": None if session.login_data is None else session.login_data.decode(),
            }
            (Path(mailbox) / f"{count[0]:04d}.json").write_text(json.dumps(record))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (user, password)
        return AuthResult(success=ok, handled=False, auth_data=data)

    kwargs: dict[str, Any] = {}
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        kwargs.update(tls_context=context, require_starttls=True)
    if user:
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()  # until SIGTERM
    finally:
        controller.stop()


if __name__ == "__main__":  # pragma: no cover
    _serve(sys.argv[1:])
