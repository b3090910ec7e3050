"""Explain a rejected command line: every bad override and config problem at once.

Hydra stops at the first problem it meets while composing. When it does, the CLI calls
:func:`diagnose`, which re-examines each override on its own against the config tree (unknown
group choices and keys with did-you-mean, values of the wrong type) and then validates what
composes, so the user sees everything to fix in one message.
"""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from declarative_train.config.overrides import normalize_overrides
from declarative_train.config.validate import collect_issues
from declarative_train.errors import ConfigIssue
from declarative_train.utils.text import did_you_mean


def diagnose(config_dir: str, config_name: str, overrides: list[str], extra_dirs: list[str] = ()) -> list[ConfigIssue]:  # type: ignore[assignment]
    """Problems with ``overrides`` applied to ``config_name`` in ``config_dir``."""
    overrides = normalize_overrides(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        return [ConfigIssue("command line", str(exc).splitlines()[0])]
    GlobalHydra.instance().clear()
    searchpath = [f"hydra.searchpath=[{','.join('file://' + d for d in extra_dirs)}]"] if extra_dirs else []
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = set(loader.list_groups(""))
        issues: list[ConfigIssue] = []
        good_groups: list[str] = []
        key_overrides: list[Override] = []
        for override in parsed:
            group = override.key_or_group
            if group.split("@")[0] in groups or group.startswith("hydra/"):
                problem = _check_group_choice(loader, override)
                if problem:
                    issues.append(problem)
                else:
                    good_groups.append(_line(override))
            else:
                key_overrides.append(override)
        try:
            # With the hydra node, so hydra.* overrides (e.g. hydra.sweeper.n_trials) are checked too.
            cfg = compose(config_name, overrides=[*searchpath, *good_groups], return_hydra_config=True)
        except Exception as exc:
            return [*issues, ConfigIssue("", str(exc).splitlines()[0])]
        with open_dict(cfg):
            # ${hydra:runtime.output_dir} resolves only inside a running app.
            cfg.paths.output_dir = "<run folder>"
        for override in key_overrides:
            issues.extend(_apply_key_override(cfg, override))
        with open_dict(cfg):
            del cfg["hydra"]
        if not issues:
            issues = collect_issues(cfg)
        else:
            issues += [i for i in collect_issues(cfg) if i.path not in {x.path for x in issues}]
    return issues


def _choices(override: Override) -> list[Any]:
    if override.is_sweep_override():
        return list(override.sweep_iterator())
    return [override.value()]


def _check_group_choice(loader: Any, override: Override) -> ConfigIssue | None:
    if override.is_delete():
        return None
    group = override.key_or_group.split("@")[0]
    options = loader.get_group_options(group)
    for choice in _choices(override):
        if choice is None or str(choice) in options:
            continue
        hint = did_you_mean(str(choice), options)
        return ConfigIssue(
            _line(override),
            f"'{choice}' is not a choice of group '{group}'.{hint} Choices: {', '.join(sorted(options))}",
        )
    return None


def _apply_key_override(cfg: DictConfig, override: Override) -> list[ConfigIssue]:
    key = override.key_or_group
    exists = OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT
    if override.is_delete():
        return [] if exists else [ConfigIssue(_line(override), f"cannot delete '{key}': no such key")]
    if override.is_add() and exists:
        return [ConfigIssue(_line(override), f"'{key}' exists already; override it without '+'")]
    if not exists and not (override.is_add() or override.is_force_add()):
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if isinstance(parent, DictConfig):
            hint = did_you_mean(leaf, [str(k) for k in parent])
            return [ConfigIssue(key, f"unknown key.{hint} (to add a new key use +{_line(override)})")]
        return [ConfigIssue(key, f"unknown key: '{parent_key}' is not a config node")]
    issues = []
    for value in _choices(override):
        try:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=True, force_add=override.is_add() or override.is_force_add())
        except OmegaConfBaseException as exc:
            reason = str(exc).splitlines()[0]
            issues.append(ConfigIssue(key, f"invalid value {value!r}: {reason}"))
    return issues


_ABSENT = object()


def _line(override: Override) -> str:
    """The override as the user typed it."""
    return override.input_line or override.key_or_group
