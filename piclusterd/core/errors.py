"""The one exception tree of piclusterd.

Library code raises these; only the command-line entry points map them to exit codes and messages.
Leaves also inherit a builtin where one fits, so callers that know nothing of piclusterd still catch them.
"""

from __future__ import annotations

__all__ = [
    "ApiUnavailable",
    "BusPermissionDenied",
    "BusUnavailable",
    "CapabilityMissing",
    "ChipNotFound",
    "ClusterError",
    "ConfigError",
    "ConfigInvalid",
    "DaemonStopping",
    "DriverError",
    "GpioUnavailable",
    "I2cTransferFailed",
    "NotLeader",
    "PiclusterError",
    "PinUnavailable",
    "PowerControlFailed",
    "PowerControlUnsupported",
    "ProfileInvalid",
    "ReadingRejected",
    "SourceUnavailable",
    "WriteConflict",
]


class PiclusterError(Exception):
    """Root of every error piclusterd raises on purpose."""


class ConfigError(PiclusterError, ValueError):
    """A configuration file is missing, unreadable or invalid.

    ``str()`` is the whole message an operator needs: the file, the key, what is wrong and what is expected.
    """

    def __init__(self, file: str, key: str, problem: str, expected: str = "") -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.expected = expected
        where = f"{file}: {key}" if key else file
        text = f"{where}: {problem}"
        if expected:
            text += f"; expected {expected}"
        super().__init__(text)


class ConfigInvalid(ConfigError):
    """Several problems in one file, reported together so the operator can fix them in one pass."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = tuple(problems)
        first = problems[0]
        super().__init__(first.file, first.key, first.problem, first.expected)
        self.args = ("\n".join(str(problem) for problem in problems),)

    def __str__(self) -> str:
        return str(self.args[0])


class DaemonStopping(PiclusterError):
    """The daemon was asked to stop in the middle of a long step (a drain): abandon it, the record stays."""


class DriverError(PiclusterError):
    """A power source (NUT, I2C, GPIO) failed."""


class SourceUnavailable(DriverError, ConnectionError):
    """The power source could not be reached or did not answer; there is no fresh reading."""


class ReadingRejected(DriverError, ValueError):
    """The power source answered with data that cannot be trusted; nothing of it may be acted on."""


# --- I2C and GPIO (HAT drivers). Each message names the fix, because the reader is an operator at a Pi. ----


class BusUnavailable(DriverError, FileNotFoundError):
    """The I2C bus device (``/dev/i2c-N``) does not exist: I2C is not enabled, or the bus number is wrong."""


class BusPermissionDenied(DriverError, PermissionError):
    """The I2C bus device exists but this user may not open it (not root, not in the ``i2c`` group)."""


class I2cTransferFailed(SourceUnavailable):
    """A transfer on the I2C bus failed (bus error, timeout, address claimed by a kernel driver).

    A :class:`SourceUnavailable`: the daemon treats it as "no fresh reading", never as a reading.
    """


class ChipNotFound(I2cTransferFailed):
    """No chip acknowledged its address (the kernel's ``EREMOTEIO``, errno 121): HAT missing or wrong address."""


class GpioUnavailable(DriverError, RuntimeError):
    """The GPIO library is missing or cannot drive this Pi (RPi.GPIO on a Pi 5, no access to the GPIO chip)."""


class PinUnavailable(GpioUnavailable):
    """One GPIO pin cannot be set up: invalid, claimed by another program, or numbered in another mode."""


class ProfileInvalid(DriverError, ValueError):
    """A HAT profile is unknown or describes impossible hardware (bad address, no way to detect mains loss)."""


class CapabilityMissing(DriverError, NotImplementedError):
    """The chip has no such register or feature (CRATE on a MAX17040, a power-cut pin on a HAT without one)."""


class PowerControlUnsupported(CapabilityMissing):
    """A node-power backend cannot do this (power a node off over Wake-on-LAN, wake a Pi 4 over the network).

    Raised instead of doing nothing, so the caller can say so and try another way (SSH halt, an operator).
    """

    def __init__(self, backend: str, node: str, operation: str, why: str) -> None:
        self.backend = backend
        self.node = node
        self.operation = operation
        super().__init__(f"{backend} cannot {operation} {node}: {why}")


class PowerControlFailed(DriverError, OSError):
    """A node-power backend tried and failed (socket error, sysfs write refused, GPIO error)."""


class ClusterError(PiclusterError):
    """The Kubernetes side failed (API unreachable, lost leadership, refused write)."""


class NotLeader(ClusterError):
    """This node does not hold the leader lease, or cannot prove it renewed it within the renew deadline.

    Raised by the fencing check right before a destructive step (drain, power-off); the step must not run.
    """


class WriteConflict(ClusterError):
    """A write to the Kubernetes API lost a race (HTTP 409): the object changed since it was read."""


class ApiUnavailable(ClusterError, ConnectionError):
    """The Kubernetes API could not be reached, timed out, or answered with an unexpected error."""
