"""The one exception tree of piclusterd.

Library code raises these; only the command-line entry points map them to exit codes and messages.
Leaves also inherit a builtin where one fits, so callers that know nothing of piclusterd still catch them.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ConfigError",
    "ConfigInvalid",
    "DriverError",
    "PiclusterError",
    "ReadingRejected",
    "SourceUnavailable",
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


class DriverError(PiclusterError):
    """A power source (NUT, I2C, GPIO) failed."""


class SourceUnavailable(DriverError, ConnectionError):
    """The power source could not be reached or did not answer; there is no fresh reading."""


class ReadingRejected(DriverError, ValueError):
    """The power source answered with data that cannot be trusted; nothing of it may be acted on."""


class ClusterError(PiclusterError):
    """The Kubernetes side failed (API unreachable, lost leadership, refused write)."""
