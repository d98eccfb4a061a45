"""Fixtures for the tests that run against a real NUT server (Debian's nut-server and nut-client)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from piclusterd._vendor.PyNUT import PyNUTClient
from piclusterd.testing.nut_server import NutServer

# Every test here talks to real daemons; a hang (e.g. a client spinning on a closed socket) must fail
# the test instead of stalling the run.
_HANG_LIMIT_S = 60.0


@pytest.fixture(autouse=True)
def _fail_instead_of_hanging() -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"test still running after {_HANG_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, _HANG_LIMIT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def nut_server() -> Iterator[NutServer]:
    """A running upsd + dummy-ups (UPS ``ups1``, :attr:`NutServer.DEFAULT_VARIABLES`), stopped after."""
    with NutServer() as server:
        yield server


@contextlib.contextmanager
def pynut(host: str, port: int, **kwargs: object) -> Iterator[PyNUTClient]:
    """PyNUTClient as piclusterd's NUT driver gets it, whose socket is closed afterwards (it never closes it
    itself)."""
    client = PyNUTClient(host=host, port=port, timeout=10, **kwargs)
    try:
        yield client
    finally:
        client._PyNUTClient__srv_handler.close()
