"""Errors and warnings: one `GreenNLPError` family and one `GreenNLPWarning` family."""

from __future__ import annotations

from typing import final

__all__ = [
    "ConfigError",
    "GitHubError",
    "GreenNLPError",
    "GreenNLPWarning",
    "MeasurementError",
    "MeterUnavailableWarning",
    "ReportError",
]


class GreenNLPError(Exception):
    """Base of every error pytest-greennlp raises on purpose.

    Messages are one line that names the offending value and what was expected.
    """


@final
class ConfigError(GreenNLPError):
    """A bad option value, marker argument or ``[tool.greennlp]`` table."""


@final
class MeasurementError(GreenNLPError):
    """A meter could not be opened or read."""


@final
class ReportError(GreenNLPError):
    """A report file is missing, corrupt, from a newer schema or otherwise unreadable."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@final
class GitHubError(GreenNLPError):
    """The GitHub API refused or failed a request."""


class GreenNLPWarning(UserWarning):
    """Base of the warnings pytest-greennlp shows to users."""


@final
class MeterUnavailableWarning(GreenNLPWarning):
    """A meter failed or is missing; its figure is recorded as unavailable (null)."""
