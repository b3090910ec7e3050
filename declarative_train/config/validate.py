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

from declarative_train.config.issues import ConfigError, ConfigIssue, did_you_mean
from declarative_train.config.schema import ACCELERATORS, PRECISION_MODES, STRATEGIES
from declarative_train.config.targets import (
    DEFAULT_ALLOWED_PACKAGES,
    SCHEDULER_KEYS,
    check_target,
    iter_target_nodes,
)
from declarative_train.sweep.objective import DIRECTIONS

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
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    for check in (_check_components, _check_trainer, _check_accelerator, _check_precision,
                  _check_targets, _check_monitors, _check_sweep, _check_resume):
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
    for group in ("metrics", "callbacks", "logger"):
        for key, node in (cfg.get(group) or {}).items():
            if not isinstance(node, dict) or "_target_" not in node:
                issues.append(ConfigIssue(f"{group}.{key}", "must be a config node with a _target_"))
    return issues


def _count_or_fraction(path: str, value: Any, *, allow_bool: bool = False) -> list[ConfigIssue]:
    if isinstance(value, bool):
        return [] if allow_bool else [ConfigIssue(path, f"must be an int or a float, got {value!r}")]
    if isinstance(value, int):
        return [] if value >= 0 else [ConfigIssue(path, f"must be >= 0, got {value}")]
    if isinstance(value, float):
        if 0.0 <= value <= 1.0:
            return []
        return [ConfigIssue(path, f"a float is a fraction and must be in [0, 1], got {value}")]
    return [ConfigIssue(path, f"must be an int (count) or a float (fraction), got {value!r}")]


def _check_trainer(cfg: dict[str, Any]) -> list[ConfigIssue]:
    t = cfg["trainer"]
    issues = []
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        issues += _count_or_fraction(f"trainer.{key}", t[key])
    issues += _count_or_fraction("trainer.fast_dev_run", t["fast_dev_run"], allow_bool=True)
    interval = t["val_check_interval"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        issues.append(ConfigIssue("trainer.val_check_interval", "must be a positive int or a float in (0, 1]"))
    elif isinstance(interval, float) and interval > 1.0:
        issues.append(ConfigIssue("trainer.val_check_interval", "a float must be in (0, 1]"))
    positive = ("check_val_every_n_epoch", "accumulate_grad_batches", "log_every_n_steps")
    for key in positive:
        if t[key] < 1:
            issues.append(ConfigIssue(f"trainer.{key}", f"must be >= 1, got {t[key]}"))
    if t["max_epochs"] < 0 and t["max_steps"] < 0:
        issues.append(ConfigIssue("trainer.max_epochs", "max_epochs and max_steps cannot both be -1"))
    if t["gradient_clip_algorithm"] not in ("norm", "value"):
        issues.append(ConfigIssue("trainer.gradient_clip_algorithm", "must be 'norm' or 'value'"))
    if t["gradient_clip_val"] is not None and t["gradient_clip_val"] <= 0:
        issues.append(ConfigIssue("trainer.gradient_clip_val", "must be > 0 (or null)"))
    return issues


def _choice(path: str, value: Any, choices: tuple[str, ...]) -> list[ConfigIssue]:
    if value in choices:
        return []
    hint = did_you_mean(str(value), choices)
    return [ConfigIssue(path, f"{value!r} is not one of {', '.join(choices)}.{hint}")]


def _check_accelerator(cfg: dict[str, Any]) -> list[ConfigIssue]:
    from declarative_train.accelerators import accelerator_class

    acc = cfg["accelerator"]
    issues = _choice("accelerator.name", acc["name"], ACCELERATORS)
    issues += _choice("accelerator.strategy", acc["strategy"], STRATEGIES)
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
        from declarative_train.distributed.plan import check_plan

        issues += check_plan(acc)  # device counts, strategy, rendezvous, backend
    return issues


def _check_precision(cfg: dict[str, Any]) -> list[ConfigIssue]:
    return _choice("precision.mode", cfg["precision"]["mode"], PRECISION_MODES)


def _check_sweep(cfg: dict[str, Any]) -> list[ConfigIssue]:
    direction = (cfg.get("sweep") or {}).get("direction")
    return [] if direction is None else _choice("sweep.direction", direction, tuple(DIRECTIONS))


def _check_targets(cfg: dict[str, Any]) -> list[ConfigIssue]:
    packages = (*DEFAULT_ALLOWED_PACKAGES, *cfg.get("user_packages", []))
    issues = []
    for path, node in iter_target_nodes({k: v for k, v in cfg.items() if k != "hydra"}):
        extra = SCHEDULER_KEYS if path == "scheduler" else frozenset()
        issues.extend(check_target(path, node, packages, extra))
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


