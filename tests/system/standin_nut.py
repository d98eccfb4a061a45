"""STAND-IN, NOT THE REAL DRIVER: a minimal ``piclusterd.drivers.nut`` for the VM test until drivers/nut.py lands.

The VM test copies this file to ``drivers/nut.py`` in its private copy of the tree, and only when the tree
has no ``drivers/nut.py`` of its own (it says so on standard error). It implements the constructor the daemon
calls and nothing more: no reconnect backoff, no login retry. Delete it once drivers/nut.py is merged.
"""

from __future__ import annotations

from piclusterd._vendor.PyNUT import PyNUTClient, PyNUTError
from piclusterd.errors import SourceUnavailable
from piclusterd.ports import Clock
from piclusterd.reading import ParsedReading, parse_nut_variables

__all__ = ["NutPowerSource"]


class NutPowerSource:
    """Implements :class:`piclusterd.ports.PowerSource` over the vendored PyNUTClient (stand-in)."""

    def __init__(
        self,
        host: str,
        port: int,
        ups_name: str,
        username: str | None,
        password: str | None,
        *,
        clock: Clock,
        timeout_s: float,
    ) -> None:
        self._address = (host, port)
        self._ups = ups_name
        self._login = (username, password)
        self._clock = clock
        self._timeout_s = timeout_s
        self._client: PyNUTClient | None = None

    @property
    def name(self) -> str:
        return f"nut:{self._ups}@{self._address[0]}:{self._address[1]}"

    def poll(self) -> ParsedReading:
        try:
            if self._client is None:
                host, port = self._address
                self._client = PyNUTClient(host, port, self._login[0], self._login[1], timeout=self._timeout_s)
            raw = self._client.GetUPSVars(self._ups)
        except (PyNUTError, OSError) as error:
            self._client = None
            raise SourceUnavailable(f"{self.name}: {error}") from error
        variables = {key.decode("ascii", "replace"): value.decode("ascii", "replace") for key, value in raw.items()}
        return parse_nut_variables(
            variables, source=self.name, timestamp=self._clock.monotonic(), wall_time=self._clock.wall()
        )

    def close(self) -> None:
        self._client = None
