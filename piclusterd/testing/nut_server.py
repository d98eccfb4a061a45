r"""A real NUT server (``upsd`` + ``dummy-ups``) for tests, in a temporary directory, cleaned up on exit.

Needs Debian's ``nut-server`` and ``nut-client`` (``upsd`` and ``dummy-ups`` in ``/lib/nut``, ``upsrw`` on
``PATH``). Runs as root (processes switch to ``root``) or as an ordinary user (they stay that user)::

    with NutServer({**NutServer.DEFAULT_VARIABLES, "battery.charge": "80"}) as server:
        source = NutPowerSource(server.host, server.port, server.ups_name, clock=clock)
        server.set("ups.status", "OB")     # returns once upsd serves the new value
        ...
        server.kill_upsd()                 # SIGKILL, as in a crash
        server.restart_upsd()              # same port, driver state kept

Both daemons run in the foreground (``-F``) as children of this process, so they are reaped and stopped by
their ``Popen`` handle, never by name. ``stop()`` (also run by ``__exit__`` and by a failed ``start()``)
terminates them, kills what does not stop, and removes the directory.

What dummy-ups 2.8.0 (``mode = dummy-once``) accepts, found by trying it against this real server:

- Every variable loaded from the ``.dev`` file is read-write, and neither upsd nor dummy-ups checks the
  value of a NUMBER variable: ``upsrw -s battery.charge=abc``, ``battery.runtime=-5``,
  ``battery.charge=150``, ``ups.load=1e400`` all answer ``OK`` and ``upsc`` reads them back verbatim. So
  garbage is injected live with :meth:`NutServer.set`, no ``.dev`` editing or ``dummy-loop`` needed.
- ``ups.status`` takes any text (``"OL FOO"``, ``"OB LB"``): unknown status words can be injected too.
- A variable that was not in the ``.dev`` file cannot be added: upsd answers ``ERR VAR-NOT-SUPPORTED``.
  Put every variable a test will change into the constructor's ``variables``.
- Setting a variable to the empty string deletes it (:meth:`NutServer.delete`); it cannot come back.
- ``upsrw`` returns before the driver has applied the value (upsd forwards the SET and answers ``OK`` at
  once): the new value showed up after 0 ms or about 600 ms here, depending on where the driver was in its
  loop. Hence the read-back wait in :meth:`NutServer.set`.
- Values with ``"`` or ``\`` do not come back verbatim (a quote truncates the value, a backslash is
  dropped); :meth:`NutServer.set` refuses them. Spaces are fine (``"OB LB"``, ``"1 2"``).
- Starting takes about 2 s: dummy-ups opens its socket after about 1 s and upsd connects to it on its next
  loop, about 1 s later.
- dummy-once re-reads the ``.dev`` file when its mtime changes (within the 2 s poll interval) and then
  resets every variable to the file's values. This class never edits the file after start.
- dummy-ups 2.8.0 does not notice that a client of its socket went away (a SIGKILLed upsd, or a probe
  that connects and closes): at its next broadcast (the next changed value) the write fails and the driver
  aborts ("send_to_all: write ... failed, disconnecting", then glibc's "bit out of range 0 - FD_SETSIZE on
  fd_set"). So :meth:`NutServer.restart_upsd` restarts the driver too, and readiness is checked by the
  driver's socket file, never by connecting to it.
- A killed driver makes upsd answer ``ERR DRIVER-NOT-CONNECTED`` at once; a stopped one
  (:meth:`NutServer.pause_driver`) gives ``ERR DATA-STALE`` after upsd's ``MAXAGE`` (``maxage_s``).
- upsd answers reads without any credentials; ``USERNAME``/``PASSWORD`` are accepted whatever they are
  and only checked by ``SET``, ``INSTCMD``, ``LOGIN`` and ``FSD`` (``ERR ACCESS-DENIED``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["NutServer", "NutServerError"]

_INSTALL_HINT = "install them with `apt-get install nut-server nut-client`"


class NutServerError(RuntimeError):
    """The test NUT server could not be started, or did not do what a test asked of it."""


class _Reply:
    """One upsd answer: the first line, and the body lines of a ``BEGIN LIST`` ... ``END LIST`` block."""

    __slots__ = ("body", "line")

    def __init__(self, line: str, body: list[str]) -> None:
        self.line = line
        self.body = body


def _unquote(text: str) -> str:
    """The value of a ``"..."`` protocol field (upsd escapes ``"`` and ``\\`` with a backslash)."""
    inner = text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text
    out: list[str] = []
    escaped = False
    for char in inner:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _quote(value: str) -> str:
    """``value`` as a quoted word of NUT's configuration syntax (the ``.dev`` file)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_variable(name: str, value: str) -> None:
    """Refuse what dummy-ups 2.8.0 cannot serve back verbatim (see the module docstring)."""
    if not name or any(c.isspace() or c in ':"\\=' for c in name):
        raise ValueError(f"not a NUT variable name: {name!r}")
    if any(c in '"\\' or not c.isprintable() for c in value):
        raise ValueError(f"{name}: dummy-ups cannot serve quotes, backslashes or control characters: {value!r}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NutServer:
    """``upsd`` and one ``dummy-ups`` UPS on 127.0.0.1 and a free port; a context manager.

    ``variables`` are the UPS's initial variables (default :attr:`DEFAULT_VARIABLES`); only these can be
    changed later (see the module docstring); a restarted driver starts from the values set since.
    ``username``/``password`` name an upsd user allowed SET, FSD and every instant command. ``maxage_s``
    is upsd's ``MAXAGE``: how long a silent driver takes to make upsd answer ``ERR DATA-STALE``.
    ``timeout_s`` bounds every wait for the daemons (start, read-back). ``host`` is the address upsd
    listens on (another local address than loopback lets other network namespaces reach it).
    """

    DEFAULT_VARIABLES: Mapping[str, str] = {
        "ups.status": "OL",
        "battery.charge": "100",
        "battery.runtime": "1800",
        "battery.voltage": "13.5",
        "ups.load": "20",
        "ups.realpower.nominal": "600",
        "input.voltage": "230",
    }

    def __init__(
        self,
        variables: Mapping[str, str] | None = None,
        *,
        ups_name: str = "ups1",
        username: str = "admin",
        password: str = "secret",
        maxage_s: int = 15,
        timeout_s: float = 10.0,
        sbin_dir: str = "/lib/nut",
        host: str = "127.0.0.1",
    ) -> None:
        initial = dict(self.DEFAULT_VARIABLES if variables is None else variables)
        for name, value in initial.items():
            _check_variable(name, value)
        for label, word in (("ups_name", ups_name), ("username", username), ("password", password)):
            if not word or any(c.isspace() or c in '"\\[]@:' for c in word):
                raise ValueError(f"{label} must be one word without quotes, brackets, '@' or ':': {word!r}")
        if maxage_s < 1:
            raise ValueError("maxage_s must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._values = initial  # what upsd serves, as far as this fixture set it
        self.ups_name = ups_name
        self.username = username
        self.password = password
        self.host = host
        self.port = 0
        self._maxage_s = maxage_s
        self._timeout_s = timeout_s
        self._upsd_bin = Path(sbin_dir, "upsd")
        self._driver_bin = Path(sbin_dir, "dummy-ups")
        upsrw = shutil.which("upsrw")
        missing = [str(p) for p in (self._upsd_bin, self._driver_bin) if not os.access(p, os.X_OK)]
        if upsrw is None:
            missing.append("upsrw")
        if missing:
            raise NutServerError(f"NUT is not installed here (missing {', '.join(missing)}); {_INSTALL_HINT}")
        assert upsrw is not None
        self._upsrw = upsrw
        self._run_as = pwd.getpwuid(os.geteuid()).pw_name
        self._dir: Path | None = None
        self._upsd: subprocess.Popen[bytes] | None = None
        self._driver: subprocess.Popen[bytes] | None = None

    # -- life cycle -------------------------------------------------------------------------------------

    def __enter__(self) -> NutServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NutServer({self.ups_name}@{self.host}:{self.port}, user={self.username!r})"

    @property
    def address(self) -> str:
        """``ups@host:port``, as ``upsc`` and ``upsrw`` take it."""
        return f"{self.ups_name}@{self.host}:{self.port}"

    def start(self) -> None:
        """Write the configuration, start the driver, then upsd; return once upsd serves every variable."""
        if self._dir is not None:
            raise NutServerError("already started")
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="piclusterd-nut-"))
            (self._dir / "state").mkdir(mode=0o700)
            self._write_config()
            self._start_driver()
            for attempt in range(3):
                # The free port may be taken between probing and upsd binding it (other tests run in
                # parallel): upsd then exits, and another port is tried.
                self.port = _free_port()
                (self._dir / "upsd.conf").write_text(
                    f"LISTEN {self.host} {self.port}\nMAXAGE {self._maxage_s}\n", encoding="utf-8"
                )
                if self._start_upsd(give_up_if_exits=attempt < 2):
                    break
            self._wait_for(self._serves_values, "upsd to serve the initial variables")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both daemons (SIGTERM, then SIGKILL) and remove the directory. Safe to call repeatedly."""
        for proc in (self._upsd, self._driver):
            if proc is not None:
                self._end(proc, signal.SIGTERM)
        self._upsd = self._driver = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill_upsd(self) -> None:
        """SIGKILL upsd (a crash): clients see the connection drop, new connections are refused."""
        if self._upsd is None:
            raise NutServerError("upsd is not running")
        self._end(self._upsd, signal.SIGKILL)
        self._upsd = None

    def restart_upsd(self) -> None:
        """Start upsd again on the same port (stopping it first if it runs); return once it serves the UPS.

        The driver is restarted too, from the values last set through this object: dummy-ups 2.8.0 would
        abort at its next update after losing upsd (see the module docstring).
        """
        if self._upsd is not None:
            self._end(self._upsd, signal.SIGTERM)
            self._upsd = None
        if self._driver is not None:
            self._end(self._driver, signal.SIGTERM)
            self._driver = None
        self._start_driver()
        self._start_upsd(give_up_if_exits=False)
        self._wait_for(self._serves_values, "upsd to serve the UPS again")

    def pause_upsd(self) -> None:
        """SIGSTOP upsd: connections are still accepted by the kernel, but nothing is answered."""
        if self._upsd is None:
            raise NutServerError("upsd is not running")
        self._upsd.send_signal(signal.SIGSTOP)

    def resume_upsd(self) -> None:
        """SIGCONT upsd."""
        if self._upsd is None:
            raise NutServerError("upsd is not running")
        self._upsd.send_signal(signal.SIGCONT)

    def kill_driver(self) -> None:
        """SIGKILL dummy-ups; return once upsd answers ``ERR DRIVER-NOT-CONNECTED`` for the UPS."""
        if self._driver is None:
            raise NutServerError("the driver is not running")
        self._end(self._driver, signal.SIGKILL)
        self._driver = None
        if self._upsd is not None:
            self._wait_for(
                lambda: self._ask(f"GET VAR {self.ups_name} ups.status").line == "ERR DRIVER-NOT-CONNECTED",
                "upsd to notice that the driver is gone",
            )

    def restart_driver(self) -> None:
        """Start dummy-ups again, from the values last set through this object; return once upsd serves it."""
        if self._driver is not None:
            self._end(self._driver, signal.SIGTERM)
            self._driver = None
        self._start_driver()
        self._wait_for(self._serves_values, "upsd to reconnect to the driver")

    def pause_driver(self) -> None:
        """SIGSTOP dummy-ups: after ``maxage_s`` upsd answers ``ERR DATA-STALE`` (a hung driver)."""
        if self._driver is None:
            raise NutServerError("the driver is not running")
        self._driver.send_signal(signal.SIGSTOP)

    def resume_driver(self) -> None:
        """SIGCONT dummy-ups; returns once upsd serves fresh data again."""
        if self._driver is None:
            raise NutServerError("the driver is not running")
        self._driver.send_signal(signal.SIGCONT)
        self._wait_for(self._serves_status, "upsd to see fresh data from the driver")

    # -- state changes ----------------------------------------------------------------------------------

    def set(self, variable: str, value: str) -> None:
        """Change a variable live with ``upsrw -s``; return once upsd serves the new value."""
        self.set_many({variable: value})

    def set_many(self, values: Mapping[str, str]) -> None:
        """Change several variables (one ``upsrw`` each); return once upsd serves all the new values."""
        for variable, value in values.items():
            if value == "":
                raise ValueError(f"{variable}: use delete() to remove a variable")
            _check_variable(variable, value)
        for variable, value in values.items():
            self._upsrw_set(variable, value)
        self._wait_for(
            lambda: all(self.get(v) == value for v, value in values.items()),
            f"upsd to serve {dict(values)}",
        )
        self._values.update(values)

    def delete(self, variable: str) -> None:
        """Remove a variable (``upsrw -s var=``); it cannot be added back. Returns once it is gone."""
        self._upsrw_set(variable, "")
        self._wait_for(lambda: self.get(variable) is None, f"upsd to drop {variable}")
        self._values.pop(variable, None)

    def get(self, variable: str) -> str | None:
        """The value upsd serves now (``GET VAR``), ``None`` if the UPS lacks it; raises on other errors."""
        reply = self._ask(f"GET VAR {self.ups_name} {variable}")
        if reply.line == "ERR VAR-NOT-SUPPORTED":
            return None
        prefix = f"VAR {self.ups_name} {variable} "
        if not reply.line.startswith(prefix):
            raise NutServerError(f"GET VAR {variable}: upsd answered {reply.line!r}")
        return _unquote(reply.line[len(prefix) :])

    def logs(self) -> str:
        """The last lines upsd and the driver wrote (for failure messages)."""
        if self._dir is None:
            return "(not running)"
        parts = [f"--- {name}\n" + "\n".join(self._log(name).splitlines()[-15:]) for name in ("driver.log", "upsd.log")]
        return "\n".join(parts)

    def _log(self, name: str) -> str:
        assert self._dir is not None
        path = self._dir / name
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    # -- internals --------------------------------------------------------------------------------------

    @property
    def values(self) -> Mapping[str, str]:
        """The UPS's variables as set through this object (the initial ones, then set/deleted)."""
        return dict(self._values)

    def _dev_file(self) -> Path:
        assert self._dir is not None
        return self._dir / f"{self.ups_name}.dev"

    def _write_config(self) -> None:
        assert self._dir is not None
        dev = self._dev_file()
        (self._dir / "ups.conf").write_text(
            f"[{self.ups_name}]\n  driver = dummy-ups\n  port = {dev}\n  mode = dummy-once\n",
            encoding="utf-8",
        )
        users = self._dir / "upsd.users"
        users.touch(mode=0o600)
        users.write_text(
            f"[{self.username}]\n  password = {self.password}\n  actions = SET FSD\n  instcmds = ALL\n",
            encoding="utf-8",
        )

    def _env(self) -> dict[str, str]:
        assert self._dir is not None
        state = str(self._dir / "state")
        return {
            **os.environ,
            "NUT_CONFPATH": str(self._dir),
            "NUT_STATEPATH": state,
            "NUT_ALTPIDPATH": state,
        }

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        assert self._dir is not None
        with open(self._dir / log_name, "ab") as log:
            return subprocess.Popen(
                argv,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )

    def _start_driver(self) -> None:
        # A killed driver leaves its socket behind; remove it so that _driver_listens sees the new one.
        self._driver_socket().unlink(missing_ok=True)
        # Written only while no driver runs: dummy-once re-reads the file when it changes.
        self._dev_file().write_text("".join(f"{k}: {_quote(v)}\n" for k, v in self._values.items()), encoding="utf-8")
        self._driver = self._spawn([str(self._driver_bin), "-a", self.ups_name, "-u", self._run_as, "-F"], "driver.log")
        self._wait_for(self._driver_listens, "dummy-ups to open its socket")

    def _start_upsd(self, *, give_up_if_exits: bool) -> bool:
        """Start upsd; ``True`` once it accepts connections, ``False`` if it exited and may be retried."""
        log_start = len(self._log("upsd.log"))  # this run's lines, not those of an earlier upsd
        self._upsd = self._spawn([str(self._upsd_bin), "-u", self._run_as, "-F"], "upsd.log")
        upsd = self._upsd
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            if upsd.poll() is not None:
                self._upsd = None
                if give_up_if_exits:
                    return False
                raise NutServerError(f"upsd exited with status {upsd.returncode}\n{self.logs()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1.0).close()
                # Something answers on the port: make sure it is this upsd, not a stranger that took the
                # port after _free_port() probed it (upsd logs this line once it has bound the port).
                if f"listening on {self.host} port {self.port}" in self._log("upsd.log")[log_start:]:
                    return True
                time.sleep(0.01)
            except OSError:
                time.sleep(0.01)
        raise NutServerError(f"upsd did not listen on {self.host}:{self.port} in {self._timeout_s} s\n{self.logs()}")

    def _driver_socket(self) -> Path:
        assert self._dir is not None
        return self._dir / "state" / f"dummy-ups-{self.ups_name}"

    def _driver_listens(self) -> bool:
        """The driver's socket exists (it is created once the driver is ready for upsd).

        Only its existence is checked: a probe connection that then closes crashes dummy-ups 2.8.0
        ("send_to_all: write ... failed, disconnecting", then glibc's "bit out of range 0 - FD_SETSIZE on
        fd_set" abort) the next time it broadcasts a change.
        """
        assert self._driver is not None
        if self._driver.poll() is not None:
            raise NutServerError(f"dummy-ups exited with status {self._driver.returncode}\n{self.logs()}")
        return self._driver_socket().is_socket()

    def _serves_status(self) -> bool:
        """upsd answers for the UPS with real data (not the driver's start-up ``WAIT``)."""
        try:
            reply = self._ask(f"LIST VAR {self.ups_name}")
        except OSError:
            return False
        if reply.line != f"BEGIN LIST VAR {self.ups_name}":
            return False
        return not any(line.endswith(' ups.status "WAIT"') for line in reply.body)

    def _serves_values(self) -> bool:
        return self._serves_status() and all(self.get(k) == v for k, v in self._values.items())

    def _upsrw_set(self, variable: str, value: str) -> None:
        argv = [
            self._upsrw,
            "-s",
            f"{variable}={value}",
            "-u",
            self.username,
            "-p",
            self.password,
            self.address,
        ]
        done = subprocess.run(argv, capture_output=True, timeout=self._timeout_s, check=False)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        # upsrw 2.8.0 prints "OK" on stderr and exits 0 on success.
        if done.returncode != 0 or "OK" not in output.splitlines():
            hint = ""
            if "VAR-NOT-SUPPORTED" in output or "not supported" in output:
                hint = " (dummy-ups only changes variables it started with: add it to `variables`)"
            raise NutServerError(f"upsrw -s {variable}={value!r} failed: {output}{hint}")

    def _ask(self, command: str) -> _Reply:
        """Send one protocol line on a fresh connection and read the answer (with its list body)."""
        with socket.create_connection((self.host, self.port), timeout=self._timeout_s) as conn:
            stream = conn.makefile("rwb")
            stream.write(command.encode() + b"\n")
            stream.flush()
            line = stream.readline().decode(errors="replace").rstrip("\n")
            body: list[str] = []
            if line.startswith("BEGIN LIST "):
                end = "END " + line[len("BEGIN ") :]
                while True:
                    raw = stream.readline()
                    if not raw:
                        raise NutServerError(f"{command}: upsd closed the connection mid-list")
                    item = raw.decode(errors="replace").rstrip("\n")
                    if item == end:
                        break
                    body.append(item)
            stream.close()
            return _Reply(line, body)

    def _wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` every 10 ms until it holds; fail after ``timeout_s`` with the daemons' logs."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            if condition():
                return
            if time.monotonic() >= deadline:
                raise NutServerError(f"timed out after {self._timeout_s} s waiting for {what}\n{self.logs()}")
            time.sleep(0.01)

    def _end(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Signal a child and reap it (a zombie would still count as running); SIGKILL after 5 s."""
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig != signal.SIGKILL:
                # A stopped (paused) process must be continued to act on SIGTERM.
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
