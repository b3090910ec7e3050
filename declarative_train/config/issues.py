"""A configuration problem with its key path, and the error that carries all of them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs


@attrs.frozen
class ConfigIssue:
    """One problem: where (a dotted key path, or a command-line override) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Invalid configuration; ``issues`` holds every problem found, each with its key path."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.format())

    def format(self) -> str:
        """The message users see: a header and one line per problem."""
        count = len(self.issues)
        header = f"Invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {issue}" for issue in self.issues)])


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""
