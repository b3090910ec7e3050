"""A config stored in a checkpoint is data from whoever wrote the file, never a program.

A command that rebuilds a model from a checkpoint (``dtrain-eval``) takes only the sections it
needs from the stored config (:data:`SECTIONS`), and only those the command line does not choose
itself. Before anything is built, every taken section must pass the strict target rule (every
``_target_`` a component class, whatever package it is in; nothing refused; no argument that
switches safe loading off) and must hold no interpolation: configs are stored resolved, so an
``${...}`` in one was put there by hand. Nothing else of the stored config is read: not its
``user_packages``, ``hydra``, callbacks, loggers, launchers or paths.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from declarative_train.config.targets import (
    DEFAULT_ALLOWED_PACKAGES,
    check_target,
    iter_target_nodes,
)
from declarative_train.errors import ConfigIssue

#: What a command may take from a stored config.
SECTIONS = ("model", "data", "metrics", "precision")
_ORIGIN = "stored in the checkpoint"


@attrs.frozen
class StoredSections:
    """The sections taken from a stored config, and what the command line chose instead."""

    taken: dict[str, Any]
    """Section name -> its stored (plain, resolved) content."""
    kept: list[str]
    """Sections the command line chose a group for (the stored ones are not used)."""

    def describe(self) -> str:
        """One line for the log: which stored sections are used, and what each builds."""
        parts = [f"{name} ({_summary(value)})" for name, value in self.taken.items()]
        line = "from the checkpoint's stored config: " + (", ".join(parts) or "nothing")
        return line + (f"; from the command line: {', '.join(self.kept)}" if self.kept else "")


def take_sections(stored: Mapping[str, Any], chosen_groups: Sequence[str] = ()) -> StoredSections:
    """The :data:`SECTIONS` of ``stored`` the command line did not choose a group for."""
    taken = {name: stored[name] for name in SECTIONS if name in stored and name not in chosen_groups}
    return StoredSections(taken=taken, kept=[name for name in SECTIONS if name in chosen_groups])


def stored_issues(sections: StoredSections, user_packages: Sequence[str]) -> list[ConfigIssue]:
    """Every reason not to build ``sections``, each with its key path and where it comes from.

    ``user_packages`` (from the command line, never from the checkpoint) widen where targets may
    come from; they do not waive the component rule.
    """
    packages = (*DEFAULT_ALLOWED_PACKAGES, *user_packages)
    issues = [ConfigIssue(f"{path} ({_ORIGIN})", f"holds an interpolation {value!r}; stored configs are "
                                                "resolved, so this one was edited: refused")
              for path, value in _interpolations(sections.taken)]
    for path, node in iter_target_nodes(sections.taken):
        issues += [attrs.evolve(issue, path=f"{issue.path} ({_ORIGIN})")
                   for issue in check_target(path, node, packages)]
    precision = sections.taken.get("precision")
    if precision is not None and (not isinstance(precision, dict) or set(precision) - {"mode"}):
        issues.append(ConfigIssue(f"precision ({_ORIGIN})", f"must be {{mode: ...}}, got {precision!r}"))
    return issues


def _interpolations(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        if "${" in node:
            yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _interpolations(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _interpolations(value, f"{path}[{index}]")


def _summary(section: Any) -> str:
    if isinstance(section, dict) and "_target_" in section:
        return str(section["_target_"])
    if isinstance(section, dict):
        return ", ".join(str(key) for key in section) or "empty"
    return repr(section)
