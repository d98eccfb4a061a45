"""Hypothesis: whatever a NUT server answers, NutPowerSource.poll() gives a reading or SourceUnavailable.

Issue 13, item 9. Every byte from upsd is hostile until parsed: a reply with bytes outside ASCII, a line
without quotes, a missing END, a refused login, nonsense values. A hostile server on a local socket answers
what Hypothesis draws (PyNUTClient itself is not touched); the property is that nothing else escapes poll(),
which is what keeps the daemon alive.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.reading import ParsedReading
from piclusterd.drivers.nut import NutPowerSource
from piclusterd.sim.fake_clock import FakeClock

UPS = "ups1"


class HostileServer:
    """Answers USERNAME/PASSWORD with ``login`` and ``LIST VAR`` with ``reply``, as the test sets them."""

    def __init__(self) -> None:
        self.login = b"OK\n"
        self.reply = b""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        with conn, conn.makefile("rwb") as stream:
            try:
                for line in stream:
                    if line.startswith((b"USERNAME", b"PASSWORD")):
                        stream.write(self.login)
                    elif line.startswith(b"LOGOUT"):
                        return
                    else:
                        stream.write(self.reply)
                    stream.flush()
            except OSError:
                return


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    hostile = HostileServer()
    yield hostile
    hostile.close()


NAMES = st.sampled_from(
    [b"ups.status", b"battery.charge", b"battery.runtime", b"ups.load", b"ups.realpower", b"input.voltage"]
) | st.binary(max_size=12)
VALUES = st.sampled_from(
    [b"OL", b"OB LB", b"100", b"-5", b"nan", b"1e400", b"", b"\xff\xfe", b"OL \xc3\xa4"]
) | st.binary(max_size=16)


@st.composite
def var_lists(draw: st.DrawFn) -> bytes:
    """A LIST VAR answer: mostly well framed with hostile names and values, sometimes broken framing."""
    lines = [b"BEGIN LIST VAR " + UPS.encode() + b"\n"]
    for name, value in draw(st.lists(st.tuples(NAMES, VALUES), max_size=6)):
        quoted = draw(st.booleans())
        body = b'"' + value + b'"' if quoted else value
        lines.append(b"VAR " + UPS.encode() + b" " + name.replace(b"\n", b"") + b" " + body.replace(b"\n", b"") + b"\n")
    if draw(st.integers(0, 9)):
        lines.append(b"END LIST VAR " + UPS.encode() + b"\n")
    return b"".join(lines)


REPLIES = (
    var_lists()
    | st.binary(max_size=64).map(lambda b: b + b"\n")
    | st.sampled_from([b"ERR DATA-STALE\n", b"ERR \xff\n", b"\xff\xfe\n", b"ERR UNKNOWN-UPS\n"])
)
LOGINS = st.sampled_from([b"OK\n", b"OK\n", b"OK\n", b"ERR ACCESS-DENIED\n", b"\xff\n", b"ERR \xc3\xa4\n"])


@given(reply=REPLIES, login=LOGINS, with_login=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_reply_is_a_reading_or_a_source_error(
    server: HostileServer, reply: bytes, login: bytes, with_login: bool
) -> None:
    server.reply, server.login = reply, login
    user, password = ("monuser", "secret") if with_login else (None, None)
    source = NutPowerSource("127.0.0.1", server.port, UPS, user, password, clock=FakeClock(), timeout_s=0.3)
    try:
        for _ in range(2):  # the second poll reuses the connection, or waits out the backoff
            try:
                parsed = source.poll()
            except SourceUnavailable as error:
                assert "secret" not in str(error)
            else:
                assert isinstance(parsed, ParsedReading)  # a reading, or the reasons there is none
    finally:
        source.close()
