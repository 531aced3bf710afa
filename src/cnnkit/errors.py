"""Errors that are part of cnnkit's interface.

Every user mistake raises a :class:`CnnkitError`; the CLI prints its message (and hint) without a
traceback and exits with a non-zero code. Library bugs stay ordinary exceptions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class _Hinted:
    """A message plus an optional hint line, printed as ``message\n  hint: hint``."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)  # type: ignore[call-arg]  # the exception class after this mixin
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class CnnkitError(_Hinted, Exception):
    """A problem the user can fix: the message names the bad value, the hint says how."""

    exit_code = 2


class ConfigError(CnnkitError):
    """A bad option, config key or hyper-parameter."""


class DataError(CnnkitError):
    """A dataset, file or image that cannot be used."""


class ModelError(CnnkitError):
    """An unknown model name or a model that cannot be built as asked."""


class CheckpointError(CnnkitError):
    """A missing, corrupt or mismatched checkpoint or run folder."""

    classifier_only = False  # weights that fit but for the classifier (another class count): set where raised


class RunExistsError(CnnkitError):
    """A run folder that already exists and would be overwritten."""


class RunLockedError(CnnkitError):
    """Another process is writing the same run folder."""


class Interrupted(_Hinted, KeyboardInterrupt):
    """Ctrl-C during training; carries the command that continues the run."""


class TrainingDiverged(CnnkitError):
    """The loss became NaN or infinite."""

    exit_code = 3


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean ...' text for an unknown name, or the list of choices when nothing is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(choices[:25]) + (", ..." if len(choices) > 25 else "")
    return f"choose one of: {shown}"
