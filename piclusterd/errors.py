"""The one exception tree of piclusterd.

Library code raises these; only the command-line entry points map them to exit codes and messages.
Leaves also inherit a builtin where one fits, so callers that know nothing of piclusterd still catch them.
"""

from __future__ import annotations

__all__ = [
    "ApiUnavailable",
    "ClusterError",
    "ConfigError",
    "DriverError",
    "NotLeader",
    "PiclusterError",
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


class DriverError(PiclusterError):
    """A power source (NUT, I2C, GPIO) failed."""


class SourceUnavailable(DriverError, ConnectionError):
    """The power source could not be reached or did not answer; there is no fresh reading."""


class ReadingRejected(DriverError, ValueError):
    """The power source answered with data that cannot be trusted; nothing of it may be acted on."""


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
