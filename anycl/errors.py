"""Exceptions that anycl raises for problems a user can fix. Each message names the problem."""

import difflib
from typing import List, Sequence


def did_you_mean(name: str, valid: List[str], cutoff: float = 0.75) -> str:
    """`` (did you mean 'batch_size'?)`` for a near miss (``difflib`` similarity >= ``cutoff``), else an empty
    string."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_options(what: str, unknown: Sequence[str], valid: Sequence[str]) -> "ConfigError":
    """The error for options nobody takes: each named with its near miss (``'clip_second' (did you mean
    'clip_seconds'?)``), then the valid names."""
    names = ", ".join(f"{u!r}{did_you_mean(u, list(valid))}" for u in sorted(unknown))
    plural = "s" if len(unknown) > 1 else ""
    return ConfigError(f"unknown {what} option{plural} {names}; valid: {', '.join(valid)}")


class AnyclError(ValueError):
    """Base class: bad input or configuration, with a message that says what to change."""


class DataError(AnyclError):
    """A dataset, a column or an item cannot be used (empty, missing, wrong type, unreadable)."""


class ConfigError(AnyclError):
    """An option of ``fit``/``load`` is unknown or does not fit the data."""


class UnknownNameError(KeyError, AnyclError):
    """A name that is not in a registry (loss, adapter, sampler)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""
