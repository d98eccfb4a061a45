"""A scripted power source: NUT variables that a test or the demo sets, parsed by the real parser."""

from __future__ import annotations

from collections.abc import Mapping

from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.ports import Clock
from piclusterd.core.reading import ParsedReading, parse_nut_variables

__all__ = ["ScriptedUps"]


class ScriptedUps:
    """Implements :class:`piclusterd.core.ports.PowerSource`. ``drive(...)`` changes the UPS's variables (as
    ``upsrw`` would on a dummy-ups), ``go_silent()`` makes every poll fail as a dead upsd would. Every poll
    is recorded in :attr:`polls`."""

    def __init__(self, clock: Clock, variables: Mapping[str, str] | None = None, name: str = "scripted:ups") -> None:
        self._clock = clock
        self._name = name
        self.variables: dict[str, str] = dict(
            variables
            if variables is not None
            else {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600", "ups.load": "20"}
        )
        self.silent = False
        self.polls = 0
        self.closed = False
        #: What the UPS was told, as (monotonic time, upsd command line), in order.
        self.commands: list[tuple[float, str]] = []

    @property
    def name(self) -> str:
        return self._name

    def drive(self, **variables: str) -> None:
        """Set variables by their NUT names with dots as underscores: ``drive(ups_status="OB LB")``."""
        for key, value in variables.items():
            self.variables[key.replace("_", ".")] = value

    def go_silent(self) -> None:
        self.silent = True

    def come_back(self) -> None:
        self.silent = False

    def poll(self) -> ParsedReading:
        self.polls += 1
        if self.silent:
            raise SourceUnavailable(f"{self._name}: no answer (scripted)")
        return parse_nut_variables(
            self.variables, source=self._name, timestamp=self._clock.monotonic(), wall_time=self._clock.wall()
        )

    def shutdown_return(self, delay_s: int) -> bool:
        """What the system-shutdown hook sends through upsd (``SET VAR ups.delay.shutdown``, then ``INSTCMD
        shutdown.return``): recorded; the output would go off ``delay_s`` later. False while the UPS is silent."""
        if self.silent:
            return False
        now = self._clock.monotonic()
        self.variables["ups.delay.shutdown"] = str(delay_s)
        self.commands.append((now, f"SET VAR ups.delay.shutdown {delay_s}"))
        self.commands.append((now, "INSTCMD shutdown.return"))
        return True

    def close(self) -> None:
        self.closed = True
