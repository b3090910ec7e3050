"""Explicit constructor signatures for metric classes that forward ``**kwargs`` to their base."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def with_base_params(base: Callable[..., Any]) -> Callable[[F], F]:
    """Give an ``__init__`` that passes ``**kwargs`` on to ``base`` the signature of both.

    ``inspect.signature`` then lists the named parameters of ``base`` (keyword-only, after the
    function's own) in place of ``**kwargs``, so tools that bind a class signature (the config
    validator) see every accepted name and reject misspelt ones. Calls are unaffected.
    """

    def decorate(fn: F) -> F:
        own = inspect.signature(fn)
        params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in params}
        inherited = [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in list(inspect.signature(base).parameters.values())[1:]  # drop ``self``
            if p.kind in _NAMED and p.name not in names
        ]
        fn.__signature__ = own.replace(parameters=params + inherited)  # type: ignore[attr-defined]
        return fn

    return decorate
