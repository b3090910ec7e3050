"""What a ``_target_`` may be: judged by what the object is, not only by the package it lives in.

The package allow-list (``torch``, ``declarative_train``, ``sklearn``,
``torchvision.transforms`` + ``user_packages``) says
where a target may come from; inside those packages sit callables that unpickle files, compile
code or start processes. So a target must also be

- a class derived from a component base (:data:`component_bases`: ``nn.Module`` (tasks, losses,
  metrics), optimizers, LR schedulers, datasets, data modules, callbacks, loggers), or one of
  the explicit :data:`FACTORIES`;
- outside :data:`REFUSED` (code-loading and process-running entry points), judged both by the
  path as written and by where the object really lives (``declarative_train.build.torch.load``
  is ``torch.load``), and not private (``torch._C``);
- free of arguments that switch safe loading off (:data:`UNSAFE_ARGUMENTS`).

Targets inside the command line's own ``user_packages`` are the user's code: the component rule
is waived for them when the config is the user's own, never for a config stored in a checkpoint
(see ``config/stored.py``). :data:`REFUSED` and :data:`UNSAFE_ARGUMENTS` hold wherever a target
appears.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

#: Functions (not classes) a target may name. The shipped configs need none today.
FACTORIES: frozenset[str] = frozenset()

_LOADS_PICKLES = "it loads pickled data, which runs code"
_RUNS_CODE = "it imports, compiles or evaluates code"
_NATIVE = "it builds or loads native libraries"
_NETWORK = "it downloads and runs code from the network"
_SYSTEM = "it runs processes or changes files and the system"

#: Module prefixes and names refused as targets wherever they appear, with the reason.
REFUSED: dict[str, str] = {
    **dict.fromkeys(("torch.load", "torch.serialization", "pickle", "_pickle", "marshal", "shelve", "dill",
                     "cloudpickle", "joblib", "numpy.load", "numpy.lib.npyio", "pandas.read_pickle"),
                    _LOADS_PICKLES),
    **dict.fromkeys(("torch.jit", "torch.package", "torch.export", "torch.fx", "torch.onnx", "torch.compiler",
                     "builtins", "importlib", "runpy", "code", "codeop", "pkgutil", "zipimport"), _RUNS_CODE),
    **dict.fromkeys(("torch.utils.cpp_extension", "torch.library", "torch.ops", "torch.classes", "ctypes"), _NATIVE),
    **dict.fromkeys(("torch.hub", "torch.utils.model_zoo", "urllib", "http", "requests"), _NETWORK),
    **dict.fromkeys(("os", "posix", "sys", "subprocess", "shutil", "pty", "socket", "signal", "multiprocessing",
                     "torch.multiprocessing", "torch.distributed.rpc", "tempfile", "pathlib", "io"), _SYSTEM),
}

#: Arguments that switch safe loading off: ``name -> test of the value`` (refused when true).
UNSAFE_ARGUMENTS: dict[str, Any] = {
    "weights_only": lambda value: value is not True and value is not None,
    "allow_pickle": bool,
    "trust_repo": lambda value: value not in (False, None),
    "trust_remote_code": bool,
    "pickle_module": lambda value: True,
}


@functools.cache
def component_bases() -> tuple[type, ...]:
    """The classes a target class must derive from (imported on first use)."""
    import torch
    from torch.utils.data import Dataset

    from declarative_train.callbacks import Callback
    from declarative_train.data import DataModule
    from declarative_train.loggers import Logger

    return (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler,
            torch.optim.lr_scheduler.ReduceLROnPlateau, Dataset, DataModule, Callback, Logger)


def refused_path(target: str) -> str | None:
    """Why ``target`` (a dotted path as written, or where an object lives) is refused, or ``None``."""
    for prefix, reason in REFUSED.items():
        if target == prefix or target.startswith(prefix + "."):
            return f"'{target}' is refused: {reason}"
    private = next((part for part in target.split(".") if part.startswith("_")), None)
    if private is not None:
        return f"'{target}' is refused: '{private}' is private"
    return None


def refused_object(target: str, obj: Any) -> str | None:
    """Why the object ``target`` resolved to is refused because of where it really lives."""
    module = getattr(inspect.getmodule(obj), "__name__", None) or getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
    if not module:
        return None
    for where in (f"{module}.{name}", module):
        for prefix, reason in REFUSED.items():
            if where == prefix or where.startswith(prefix + "."):
                return f"'{target}' is refused: it is {module}.{name}, and {reason}"
    return None


def kind_problem(target: str, obj: Any) -> str | None:
    """Why ``obj`` is not something a config may build (a component class or a listed factory)."""
    if inspect.isclass(obj):
        if issubclass(obj, component_bases()):
            return None
        return (f"'{target}' is not a component: a target class must derive from one of "
                f"{', '.join(base.__name__ for base in component_bases())}")
    if target in FACTORIES:
        return None
    return (f"'{target}' is a {type(obj).__name__}, not a component class; only classes (modules, optimizers, "
            "schedulers, datasets, data modules, callbacks, loggers) may be targets, or a package of your "
            "own named in user_packages")


def unsafe_arguments(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """``(key path, reason)`` for each argument of ``node`` that would switch safe loading off."""
    for key, value in node.items():
        test = UNSAFE_ARGUMENTS.get(key) if isinstance(key, str) else None
        if test is not None and test(value):
            yield f"{path}.{key}" if path else key, f"'{key}: {value!r}' would switch safe loading off"
