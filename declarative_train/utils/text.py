"""Small helpers for messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def not_one_of(value: object, choices: Iterable[str]) -> str:
    """``'x' is not one of a, b. Did you mean 'a'?``: the message for a value outside ``choices``."""
    options = [str(c) for c in choices]
    return f"{value!r} is not one of {', '.join(options)}.{did_you_mean(str(value), options)}"


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
