"""Validate a composed config before anything is built: every problem, each with its key path.

Hydra has already checked key names and types against the attrs schemas. Here: missing values,
interpolations that do not resolve, value ranges, ``_target_`` nodes (allowed, importable,
arguments bind), monitored metric names, and whether the accelerator exists on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from declarative_train.accelerators import accelerator_class
from declarative_train.config.schema import ACCELERATORS, DIRECTIONS, STRATEGIES
from declarative_train.config.targets import (
    DEFAULT_ALLOWED_PACKAGES,
    SCHEDULER_KEYS,
    check_target,
    iter_target_nodes,
)
from declarative_train.config.tuning import auto_placeholders, tune_issues
from declarative_train.distributed.plan import STATE_DICT_TYPES, check_plan
from declarative_train.engine.settings import settings_problems
from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.precision import PRECISION_MODES
from declarative_train.utils.text import did_you_mean, not_one_of

__all__ = ["ConfigError", "ConfigIssue", "collect_issues", "validate_config"]

REQUIRED_COMPONENTS = ("model", "data", "optimizer")


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every problem in ``cfg``; return if there is none."""
    issues = collect_issues(cfg)
    if issues:
        raise ConfigError(issues)


def collect_issues(cfg: DictConfig) -> list[ConfigIssue]:
    """Every problem in ``cfg``, in key order."""
    issues = _unresolvable(cfg)
    if issues:
        return issues  # the checks below need resolved values
    with auto_placeholders(cfg):  # optimizer.lr=auto, data.batch_size=auto are checked as numbers
        plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    for check in (_check_components, _check_trainer, _check_accelerator, _check_precision,
                  _check_targets, _check_monitors, _check_sweep, _check_resume, tune_issues):
        issues.extend(check(plain))
    return issues


def _unresolvable(cfg: Any, path: str = "") -> list[ConfigIssue]:
    """Missing mandatory values (``???``) and interpolations that fail to resolve."""
    issues: list[ConfigIssue] = []
    keys: list[Any]
    if isinstance(cfg, DictConfig):
        keys = [k for k in cfg if not (path == "" and k == "hydra")]
    elif isinstance(cfg, ListConfig):
        keys = list(range(len(cfg)))
    else:
        return issues
    for key in keys:
        child_path = f"{path}.{key}" if path and isinstance(key, str) else (
            f"{path}[{key}]" if path else str(key)
        )
        if OmegaConf.is_missing(cfg, key):
            issues.append(ConfigIssue(child_path, "missing mandatory value (set it on the command line)"))
            continue
        try:
            child = cfg[key]
        except OmegaConfBaseException as exc:
            reason = str(exc).splitlines()[0]
            issues.append(ConfigIssue(child_path, f"cannot resolve: {reason}"))
            continue
        issues.extend(_unresolvable(child, child_path))
    return issues


def _check_components(cfg: dict[str, Any]) -> list[ConfigIssue]:
    issues = []
    for name in REQUIRED_COMPONENTS:
        node = cfg.get(name)
        if not isinstance(node, dict) or "_target_" not in node:
            issues.append(ConfigIssue(name, "must be a config node with a _target_"))
    scheduler = cfg.get("scheduler") or {}
    if scheduler and "_target_" not in scheduler:
        issues.append(ConfigIssue("scheduler", "must be empty (no scheduler) or have a _target_"))
    if scheduler.get("interval", "epoch") not in ("epoch", "step"):
        issues.append(ConfigIssue("scheduler.interval", "must be 'epoch' or 'step'"))
    profiler = cfg.get("profiler")
    if profiler and (not isinstance(profiler, dict) or "_target_" not in profiler):
        issues.append(ConfigIssue("profiler", "must be empty (no profiler) or have a _target_"))
    for group in ("metrics", "callbacks", "logger"):
        for key, node in (cfg.get(group) or {}).items():
            if not isinstance(node, dict) or "_target_" not in node:
                issues.append(ConfigIssue(f"{group}.{key}", "must be a config node with a _target_"))
    return issues


def _check_trainer(cfg: dict[str, Any]) -> list[ConfigIssue]:
    """The engine's own checks of ``TrainerSettings``, with key paths."""
    return [ConfigIssue(f"trainer.{name}", message) for name, message in settings_problems(cfg["trainer"])]


def _choice(path: str, value: Any, choices: tuple[str, ...]) -> list[ConfigIssue]:
    return [] if value in choices else [ConfigIssue(path, not_one_of(value, choices))]


def _check_accelerator(cfg: dict[str, Any]) -> list[ConfigIssue]:
    acc = cfg["accelerator"]
    issues = _choice("accelerator.name", acc["name"], ACCELERATORS)
    issues += _choice("accelerator.strategy", acc["strategy"], STRATEGIES)
    issues += _choice("accelerator.fsdp.state_dict_type", acc["fsdp"]["state_dict_type"], STATE_DICT_TYPES)
    devices = acc["devices"]
    ok_devices = (
        devices == "auto"
        or (isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1))
        or (isinstance(devices, list) and devices and all(isinstance(d, int) and d >= 0 for d in devices))
    )
    if not ok_devices:
        issues.append(ConfigIssue("accelerator.devices", f"must be a count >= 1, -1, 'auto' or a list of indices, got {devices!r}"))
    if acc["num_nodes"] < 1:
        issues.append(ConfigIssue("accelerator.num_nodes", "must be >= 1"))
    if not issues:
        cls = accelerator_class(acc["name"])
        if not cls.is_available():
            issues.append(ConfigIssue("accelerator.name", f"'{acc['name']}' is not available here: {cls.missing_reason()}"))
    if not issues:
        issues += check_plan(acc)  # device counts, strategy, rendezvous, backend
    return issues


def _check_precision(cfg: dict[str, Any]) -> list[ConfigIssue]:
    return _choice("precision.mode", cfg["precision"]["mode"], PRECISION_MODES)


def _check_sweep(cfg: dict[str, Any]) -> list[ConfigIssue]:
    direction = (cfg.get("sweep") or {}).get("direction")
    return [] if direction is None else _choice("sweep.direction", direction, tuple(DIRECTIONS))


def _check_targets(cfg: dict[str, Any]) -> list[ConfigIssue]:
    user_packages = list(cfg.get("user_packages", []))
    packages = (*DEFAULT_ALLOWED_PACKAGES, *user_packages)
    issues = []
    for path, node in iter_target_nodes({k: v for k, v in cfg.items() if k != "hydra"}):
        extra = SCHEDULER_KEYS if path == "scheduler" else frozenset()
        issues.extend(check_target(path, node, packages, extra, trusted=user_packages))
    return issues


def _check_resume(cfg: dict[str, Any]) -> list[ConfigIssue]:
    resume, folder = cfg.get("resume"), cfg.get("resume_dir")
    if resume is None:
        return [ConfigIssue("resume_dir", "is only used with resume=auto")] if folder is not None else []
    if resume != "auto":
        return [ConfigIssue("resume", f"must be 'auto' or null, got {resume!r}")]
    issues = []
    if cfg.get("ckpt_path") is not None:
        issues.append(ConfigIssue("resume", "resume=auto and ckpt_path are both set: use one of them"))
    if folder is not None and not Path(folder).is_dir():
        issues.append(ConfigIssue("resume_dir", f"{folder!r} is not a folder"))
    return issues


def monitorable_names(cfg: dict[str, Any]) -> list[str]:
    """Metric names a callback or scheduler can monitor, for a config."""
    names = ["train/loss", "val/loss"]
    names += [f"val/{key}" for key in (cfg.get("metrics") or {})]
    return names


def _check_monitors(cfg: dict[str, Any]) -> list[ConfigIssue]:
    names = monitorable_names(cfg)
    issues = []
    watchers: list[tuple[str, Any]] = [
        (f"callbacks.{k}.monitor", v.get("monitor")) for k, v in (cfg.get("callbacks") or {}).items()
        if isinstance(v, dict)
    ]
    watchers.append(("scheduler.monitor", (cfg.get("scheduler") or {}).get("monitor")))
    for path, monitor in watchers:
        if monitor is not None and monitor not in names:
            issues.append(ConfigIssue(path, f"'{monitor}' is never logged.{did_you_mean(monitor, names)} "
                                            f"(available: {', '.join(names)})"))
    return issues


