"""Power source adapter for NUT's ``upsd``: one ``LIST VAR`` per poll over PyNUTClient.

:class:`NutPowerSource` keeps one TCP connection to upsd between polls and opens a new one only after a
failure, with exponential backoff that never blocks: until the next attempt is due (by the injected clock),
``poll()`` raises :class:`~piclusterd.core.errors.SourceUnavailable` at once, saying when it will retry.

What counts as a failure, and what the messages tell the operator:

- The connection failed (refused, reset, closed, timed out, host unknown): the connection is dropped and
  the backoff starts (``backoff_initial_s``, doubling up to ``backoff_max_s``); a successful poll resets it.
- upsd answered ``ERR ...`` (``DATA-STALE``, ``DRIVER-NOT-CONNECTED``, ``UNKNOWN-UPS``, ``ACCESS-DENIED``):
  the connection is fine and is kept, there is no backoff; the next poll asks again (the answer is
  immediate, and a recovered driver is noticed at once).

Credentials: upsd (2.8.0, checked against a real one) answers ``LIST VAR`` without any login, and it
accepts ``USERNAME``/``PASSWORD`` whatever they are; they are only checked by ``SET``, ``INSTCMD``,
``LOGIN`` and ``FSD``. So a wrong password does not make ``poll()`` fail. They are sent only when
configured, and never appear in a message or ``repr``.

Upstream PyNUTClient 1.9.0 loops forever, at full CPU, when upsd closes the connection while a reply is
awaited (the vendored copy raises instead). :class:`_Client` also bounds a whole reply by ``timeout_s`` and
its size, which a per-``recv`` socket timeout does not: a upsd trickling bytes must not hang the daemon.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Mapping

# NUT's own PyNUTClient, vendored (see piclusterd/_vendor/README.md): Debian's python3-nut needs telnetlib,
# which Python 3.13 removed, and the .deb must not pull anything from PyPI.
from piclusterd._vendor.PyNUT import PyNUTClient, PyNUTError
from piclusterd.core.durations import format_duration
from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.nut_words import host_problem, password_problem, word_problem
from piclusterd.core.ports import Clock
from piclusterd.core.reading import ParsedReading, parse_nut_variables

__all__ = ["NutPowerSource", "read_ups_variables", "set_ups_variable"]

# A reply larger than this is not from a sane upsd (a UPS has a few hundred variables at most).
_MAX_REPLY_BYTES = 1 << 20


class _Client(PyNUTClient):
    """PyNUTClient whose reader raises on end of stream and bounds a reply in time and size.

    It replaces the private ``__read_until`` of the socket-based PyNUTClient (1.8.0 and later); the
    telnetlib-based Debian version does not use it (telnetlib raises ``EOFError`` itself).
    """

    # PyNUTClient's private state, as this class uses it.
    _PyNUTClient__srv_handler: socket.socket | None
    _PyNUTClient__recv_leftover: bytes

    def __init__(self, host: str, port: int, login: str | None, password: str | None, timeout: float) -> None:
        self._reply_timeout_s = timeout
        try:
            super().__init__(host=host, port=port, login=login, password=password, timeout=timeout)
        except BaseException:
            self.close()  # connected, then the login failed: the socket must not wait for the garbage collector
            raise

    def _PyNUTClient__read_until(self, terminator: bytes) -> bytes:
        conn = self._PyNUTClient__srv_handler
        if conn is None:
            raise ConnectionError("connection already closed")
        data = self._PyNUTClient__recv_leftover
        deadline = time.monotonic() + self._reply_timeout_s
        while (end := data.find(terminator)) == -1:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("upsd did not finish its reply in time")
            if len(data) > _MAX_REPLY_BYTES:
                raise ConnectionError("upsd sent an oversized reply")
            conn.settimeout(remaining)
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionResetError("upsd closed the connection")
            data += chunk
        end += len(terminator)
        self._PyNUTClient__recv_leftover = data[end:]
        return data[:end]

    def close(self) -> None:
        """Say goodbye and close the socket (PyNUTClient has no close of its own)."""
        conn = getattr(self, "_PyNUTClient__srv_handler", None)
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.send(b"LOGOUT\n")
        conn.close()
        self._PyNUTClient__srv_handler = None


def _error_code(error: Exception) -> str:
    """``"DATA-STALE"`` from PyNUTError("ERR DATA-STALE"); ``""`` when it is not an ``ERR`` answer."""
    text = str(error).strip()
    return text[4:].split()[0] if text.startswith("ERR ") and len(text) > 4 else ""


class NutPowerSource:
    """A UPS served by NUT's ``upsd``, read with one ``LIST VAR`` per poll. Implements ``PowerSource``.

    ``host``, ``port``, ``ups_name``: where the UPS is (``upsc ups_name@host:port``). ``username`` and
    ``password`` are sent only when given (reads need none). ``clock`` dates readings and paces reconnects;
    ``timeout_s`` bounds connecting and each reply; ``backoff_initial_s`` is the wait after a first failed
    connection, doubling up to ``backoff_max_s``. Not thread-safe: one caller polls.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ups_name: str,
        username: str | None = None,
        password: str | None = None,
        *,
        clock: Clock,
        timeout_s: float = 5.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        # The configuration refuses these already (piclusterd.core.nut_words): this is for other callers.
        if host_problem(host):
            raise ValueError(f"[ups] host must be {host_problem(host)}, not {host!r}")
        if not 0 < port < 65536:
            raise ValueError(f"[ups] port must be 1..65535, not {port}")
        if word_problem(ups_name):
            raise ValueError(f"[ups] name must be {word_problem(ups_name)}, not {ups_name!r}")
        if username is not None and word_problem(username):
            raise ValueError(f"[ups] username must be {word_problem(username)}")
        if password is not None and password_problem(password):
            raise ValueError(f"[ups] password must be {password_problem(password)}")
        if (password is None) != (username is None):
            raise ValueError("[ups] username and [ups] password go together: set both or neither")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s}")
        if not 0 < backoff_initial_s <= backoff_max_s or not math.isfinite(backoff_max_s):
            raise ValueError(f"need 0 < backoff_initial_s <= backoff_max_s, not {backoff_initial_s}, {backoff_max_s}")
        self._host = host
        self._port = port
        self._ups_name = ups_name
        self._username = username
        self._password = password
        self._clock = clock
        self._timeout_s = float(timeout_s)
        self._backoff_initial_s = float(backoff_initial_s)
        self._backoff_max_s = float(backoff_max_s)
        shown_host = f"[{host}]" if ":" in host else host
        self._address = f"{shown_host}:{port}"
        self._name = f"nut:{ups_name}@{self._address}"
        self._client: _Client | None = None
        self._backoff_s = self._backoff_initial_s  # the wait after the next connection failure
        self._retry_at: float | None = None  # monotonic time of the next connection attempt
        self._last_problem = ""

    @property
    def name(self) -> str:
        """``nut:<ups>@<host>:<port>``; also the ``source`` of every reading."""
        return self._name

    def __repr__(self) -> str:
        user = "" if self._username is None else f", username={self._username!r}, password=<hidden>"
        return f"NutPowerSource({self._name}{user})"

    def poll(self) -> ParsedReading:
        """Ask upsd for every variable of the UPS and parse them.

        Raises :class:`SourceUnavailable` when there is no fresh answer: at once while a reconnect is not
        yet due; otherwise each network step (connecting, each reply) gives up after ``timeout_s``.
        """
        client = self._client if self._client is not None else self._connect()
        try:
            raw: Mapping[bytes, bytes] = client.GetUPSVars(self._ups_name)
        except PyNUTError as error:
            code = _error_code(error)
            if code:
                # upsd answered; the connection is in step and stays open.
                raise SourceUnavailable(f"{self._name}: {self._explain(code, client)}") from error
            raise self._connection_failed(f"upsd sent an unexpected answer ({error})") from error
        except (OSError, EOFError) as error:
            raise self._connection_failed(self._describe_os_error(error)) from error
        except (IndexError, ValueError) as error:  # PyNUTClient could not split a VAR line
            raise self._connection_failed(f"could not parse upsd's LIST VAR answer ({error})") from error
        self._backoff_s = self._backoff_initial_s
        variables = {
            key.decode("utf-8", errors="replace"): value.decode("utf-8", errors="replace") for key, value in raw.items()
        }
        return parse_nut_variables(
            variables, source=self._name, timestamp=self._clock.monotonic(), wall_time=self._clock.wall()
        )

    def close(self) -> None:
        """Drop the connection (a later ``poll()`` opens a new one)."""
        self._disconnect()

    # -- internals --------------------------------------------------------------------------------------

    def _connect(self) -> _Client:
        now = self._clock.monotonic()
        if self._retry_at is not None and now < self._retry_at:
            wait = format_duration(math.ceil(self._retry_at - now))
            raise SourceUnavailable(f"{self._name}: {self._last_problem}; retrying in {wait}")
        try:
            self._client = _Client(self._host, self._port, self._username, self._password, self._timeout_s)
        except PyNUTError as error:
            code = _error_code(error)
            problem = self._explain(code, None) if code else f"upsd refused the login ({error})"
            raise self._connection_failed(problem) from error
        except (OSError, EOFError) as error:
            raise self._connection_failed(self._describe_os_error(error)) from error
        except ValueError as error:
            # PyNUTClient decodes a refusal as ASCII: a reply to USERNAME or PASSWORD with any other byte raises
            # UnicodeDecodeError. Whatever answers there is not a sane upsd; the error never shows the reply.
            raise self._connection_failed(
                f"upsd at {self._address} answered the login with bytes that are not NUT's protocol "
                f"({type(error).__name__})"
            ) from error
        self._retry_at = None
        return self._client

    def _connection_failed(self, problem: str) -> SourceUnavailable:
        """Drop the connection, schedule the next attempt, and build the error to raise."""
        self._disconnect()
        wait = self._backoff_s
        self._retry_at = self._clock.monotonic() + wait
        self._backoff_s = min(wait * 2, self._backoff_max_s)
        self._last_problem = problem
        return SourceUnavailable(f"{self._name}: {problem}; retrying in {format_duration(math.ceil(wait))}")

    def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def _describe_os_error(self, error: BaseException) -> str:
        where = f"upsd at {self._address}"
        if isinstance(error, ConnectionRefusedError):
            return f"cannot connect to {where} (connection refused): upsd is not running or not listening there"
        if isinstance(error, TimeoutError):
            return f"{where} did not answer within {format_duration(self._timeout_s)}"
        if isinstance(error, ConnectionResetError | BrokenPipeError | EOFError):
            return f"{where} closed the connection (upsd stopped or restarted?)"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve [ups] host {self._host!r}: {error.strerror}"
        return f"cannot talk to {where}: {error}"

    def _explain(self, code: str, client: _Client | None) -> str:
        """What an ``ERR`` answer means for this UPS and what to do about it."""
        ups = self._ups_name
        if code == "DATA-STALE":
            return (
                f"upsd has only stale data for UPS {ups!r} (ERR DATA-STALE): its NUT driver stopped "
                "updating; check the driver and the UPS cable"
            )
        if code == "DRIVER-NOT-CONNECTED":
            return (
                f"upsd runs but the NUT driver for UPS {ups!r} is not connected (ERR DRIVER-NOT-CONNECTED): "
                f"start it (upsdrvctl start {ups}) and check its log"
            )
        if code == "UNKNOWN-UPS":
            known = self._known_ups_names(client)
            hint = f"; upsd knows: {', '.join(known)}" if known else ""
            return (
                f"upsd at {self._address} has no UPS named {ups!r} (ERR UNKNOWN-UPS): "
                f"set [ups] name in the config to a UPS from that server's ups.conf{hint}"
            )
        if code == "ACCESS-DENIED":
            who = "without credentials" if self._username is None else f"as user {self._username!r}"
            return (
                f"upsd at {self._address} denied access to UPS {ups!r} {who} (ERR ACCESS-DENIED): "
                "check [ups] username and [ups] password in the config against upsd.users on that server"
            )
        return f"upsd at {self._address} answered ERR {code} for UPS {ups!r}"

    def _known_ups_names(self, client: _Client | None) -> list[str]:
        """The UPS names upsd serves (for a helpful message); empty if it cannot be had."""
        if client is None:
            return []
        try:
            names: list[str] = sorted(client.GetUPSNames())
        except (PyNUTError, OSError, EOFError, ValueError):
            self._disconnect()  # the stream may be out of step; start clean next time
            return []
        return names


def read_ups_variables(
    host: str, port: int, ups: str, username: str | None, password: str | None, timeout_s: float
) -> dict[str, str]:
    """One ``LIST VAR`` on a connection of its own (the daemon's start-up checks). Raises
    :class:`SourceUnavailable` naming what failed; the reply is bounded in time and size as every poll's."""
    try:
        client = _Client(host, port, username, password, timeout_s)
    except (PyNUTError, OSError, EOFError, ValueError) as error:
        raise SourceUnavailable(f"upsd at {host}:{port}: {type(error).__name__}: {str(error)[:200]}") from error
    try:
        raw: Mapping[bytes, bytes] = client.GetUPSVars(ups)
    except (PyNUTError, OSError, EOFError, IndexError, ValueError) as error:
        raise SourceUnavailable(f"{ups}@{host}:{port}: {type(error).__name__}: {str(error)[:200]}") from error
    finally:
        client.close()
    return {k.decode("utf-8", errors="replace"): v.decode("utf-8", errors="replace") for k, v in raw.items()}


def set_ups_variable(
    host: str,
    port: int,
    ups: str,
    username: str | None,
    password: str | None,
    timeout_s: float,
    variable: str,
    value: int,
) -> str | None:
    """``SET VAR`` one whole-number variable (a login with ``actions = SET`` in upsd.users is needed). None on
    upsd's OK, else why not. Only NUT variable names and whole numbers go on the wire."""
    if not all(part.isalnum() for part in variable.split(".")) or isinstance(value, bool) or value < 0:
        raise ValueError(f"refusing to SET {variable!r} = {value!r}")
    try:
        client = _Client(host, port, username, password, timeout_s)
    except (PyNUTError, OSError, EOFError, ValueError) as error:
        return f"upsd at {host}:{port}: {type(error).__name__}: {str(error)[:200]}"
    try:
        client.SetRWVar(ups, variable, str(int(value)))
    except (PyNUTError, OSError, EOFError, ValueError) as error:
        return f"{ups}@{host}:{port} refused SET VAR {variable}: {str(error)[:200]}"
    finally:
        client.close()
    return None
