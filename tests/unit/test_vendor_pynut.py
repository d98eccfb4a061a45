"""The vendored PyNUTClient (piclusterd/_vendor/PyNUT.py) against a scripted NUT server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from piclusterd._vendor.PyNUT import PyNUTClient, PyNUTError

BOUND_S = 10.0


@contextmanager
def scripted_upsd(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection TCP server on 127.0.0.1 that runs ``answer`` on the accepted socket."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(BOUND_S)

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                answer(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        thread.join(BOUND_S)


def call_bounded(function: Callable[[], object]) -> object:
    """Run ``function`` in a thread; fail the test if it has not returned or raised within BOUND_S."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(function())
        except Exception as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), f"the NUT client was still busy after {BOUND_S} s"
    return outcome[0]


def read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def test_variables_are_read_from_the_server() -> None:
    def answer(connection: socket.socket) -> None:
        assert read_line(connection) == b"LIST VAR ups\n"
        connection.sendall(
            b'BEGIN LIST VAR ups\nVAR ups battery.charge "63"\nVAR ups ups.status "OB DISCHRG"\nEND LIST VAR ups\n'
        )

    with scripted_upsd(answer) as port:
        client = PyNUTClient("127.0.0.1", port, timeout=BOUND_S)
        got = call_bounded(lambda: client.GetUPSVars("ups"))
    assert got == {b"battery.charge": b"63", b"ups.status": b"OB DISCHRG"}


def test_a_server_that_hangs_up_mid_answer_is_an_error_not_a_busy_loop() -> None:
    def answer(connection: socket.socket) -> None:
        read_line(connection)
        connection.sendall(b"BEGIN LIST VAR ups\nVAR ups ups.status")  # then closes: upsd restarted

    with scripted_upsd(answer) as port:
        client = PyNUTClient("127.0.0.1", port, timeout=BOUND_S)
        got = call_bounded(lambda: client.GetUPSVars("ups"))
    assert isinstance(got, PyNUTError)
    assert "closed" in str(got)


def test_a_refused_connection_raises_an_os_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(OSError):
        PyNUTClient("127.0.0.1", port, timeout=BOUND_S)
