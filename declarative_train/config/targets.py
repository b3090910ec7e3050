"""Checks for ``_target_`` nodes: allowed package, safe (``trust.py``), importable, signature binds."""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from declarative_train.config import trust
from declarative_train.errors import ConfigIssue
from declarative_train.utils.extras import install_hint
from declarative_train.utils.text import did_you_mean

#: Packages ``_target_`` may import from unless the config adds more in ``user_packages``.
DEFAULT_ALLOWED_PACKAGES = ("torch", "declarative_train", "sklearn", "torchvision.transforms")
#: Hydra's own keys in a target node; never passed to the constructor by name.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})
#: Keys of the ``scheduler`` node that configure how the executor steps it.
SCHEDULER_KEYS = frozenset({"interval", "frequency", "monitor"})


def locate(target: str) -> Any:
    """Import ``a.b.C`` (module path, then attributes). Raises ImportError with the reason."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # this prefix is not a module; try a shorter one
            raise ImportError(f"importing '{module_name}' failed: {exc}") from exc
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise ImportError(f"module '{module_name}' has no attribute '{parts[split]}'") from None
        return obj
    raise ImportError(f"no module named '{parts[0]}'")


def is_allowed(target: str, packages: Sequence[str]) -> bool:
    """Whether ``target`` lies inside one of ``packages``."""
    return any(target == p or target.startswith(p + ".") for p in packages)


def iter_target_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(key path, node)`` for every mapping with a ``_target_`` key, depth first."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from iter_target_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_target_nodes(value, f"{path}[{index}]")


def check_target(
    path: str, node: dict[str, Any], packages: Sequence[str], extra_keys: frozenset[str] = frozenset(),
    trusted: Sequence[str] = (),
) -> list[ConfigIssue]:
    """Problems with one target node: not allowed, refused, not a component, unsafe arguments,
    not importable, arguments that do not bind.

    ``packages`` may be imported from; inside ``trusted`` (the user's own packages, for a config
    of the user's own) a target need not be a component class (see :mod:`.trust`).
    """
    target = node["_target_"]
    where = f"{path}._target_" if path else "_target_"
    if not isinstance(target, str) or not target:
        return [ConfigIssue(where, f"must be a dotted import path, got {target!r}")]
    if not is_allowed(target, packages):
        allowed = ", ".join(packages)
        return [
            ConfigIssue(
                where,
                f"'{target}' is outside the allowed packages ({allowed}); "
                "add its package to user_packages to allow it",
            )
        ]
    refused = trust.refused_path(target)  # before importing anything
    if refused:
        return [ConfigIssue(where, refused)]
    try:
        obj = locate(target)
    except ImportError as exc:
        return [ConfigIssue(where, f"cannot import '{target}': {exc}{install_hint(target)}")]
    problem = trust.refused_object(target, obj) or (
        None if is_allowed(target, trusted) else trust.kind_problem(target, obj))
    if problem:
        return [ConfigIssue(where, problem)]
    if not callable(obj):
        return [ConfigIssue(where, f"'{target}' is not callable")]
    unsafe = [ConfigIssue(key, reason) for key, reason in trust.unsafe_arguments(node, path)]
    return unsafe or _check_signature(path, target, obj, node, extra_keys)


def _check_signature(
    path: str, target: str, obj: Any, node: dict[str, Any], extra_keys: frozenset[str]
) -> list[ConfigIssue]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []  # builtins without a signature: nothing to check
    kwargs = {k: v for k, v in node.items() if k not in HYDRA_KEYS and k not in extra_keys}
    args = node.get("_args_") or []
    params = signature.parameters
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in params.values())
    issues = []
    if not takes_any_keyword:
        names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in params:
                hint = did_you_mean(key, names)
                issues.append(
                    ConfigIssue(f"{path}.{key}", f"'{target}' takes no argument '{key}'.{hint}")
                )
        issues += _check_value_kinds(path, target, params, kwargs)
    if issues:
        return issues
    try:
        if node.get("_partial_", False):
            signature.bind_partial(*args, **kwargs)
        else:
            signature.bind(*args, **kwargs)
    except TypeError as exc:
        return [ConfigIssue(path, f"arguments do not fit '{target}': {exc}")]
    return []


def _check_value_kinds(
    path: str, target: str, params: Mapping[str, inspect.Parameter], kwargs: dict[str, Any]
) -> list[ConfigIssue]:
    """A string given where the parameter's default is a number or a bool (``lr=fast``)."""
    issues = []
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None or not isinstance(value, str):
            continue
        default = param.default
        if isinstance(default, (bool, int, float)) and not isinstance(default, enum.Enum):
            kind = "a bool" if isinstance(default, bool) else "a number"
            issues.append(ConfigIssue(f"{path}.{key}", f"'{target}' expects {kind} for '{key}', got {value!r}"))
    return issues
