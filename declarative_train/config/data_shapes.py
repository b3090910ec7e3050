"""Put what the data module found (``data_shapes``) into the config, before the model is built.

Keys of ``data`` left null (or absent) are filled; a value that contradicts the data is an
issue naming the key and both values. A classifier on a regression target (or the other way
round), and classification metrics without a class count, are issues too.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from declarative_train.config.targets import locate
from declarative_train.data.shapes import SHAPE_KEYS
from declarative_train.errors import ConfigIssue
from declarative_train.tasks import Classification, Regression

log = logging.getLogger("declarative_train")

_REGRESSION_HINT = "model=mlp_regressor metrics=regression callbacks.model_checkpoint.monitor=val/loss"


def apply_shapes(cfg: DictConfig, found: dict[str, Any]) -> list[ConfigIssue]:
    """Fill ``cfg.data``'s null shape keys from ``found``; the contradictions as issues."""
    issues, filled = [], {}
    node = cfg.data
    for key, value in found.items():
        if key not in SHAPE_KEYS or key == "task" or value is None:
            continue
        current = OmegaConf.select(node, key, default=None)
        if current is None:
            filled[key] = value
        elif _plain(current) != value:
            issues.append(ConfigIssue(f"data.{key}", f"is {_plain(current)!r} in the config, but the data has "
                                                     f"{value!r}: leave it null to take the data's"))
    with open_dict(node):
        for key, value in filled.items():
            node[key] = value
    issues += _task_issues(cfg, found.get("task"))
    if filled and not issues:
        log.info("from the data: %s", ", ".join(f"data.{key}={_short(value)}" for key, value in filled.items()))
    return issues


def _task_issues(cfg: DictConfig, task: str | None) -> list[ConfigIssue]:
    """A model or metrics that do not fit the target's task."""
    if task is None:
        return []
    kind = _task_class(OmegaConf.select(cfg, "model._target_", default=None))
    issues = []
    if task == "regression" and kind is Classification:
        issues.append(ConfigIssue("data.task", f"the target {cfg.data.get('target')!r} is a regression target, but "
                                               f"the model is a classifier: use {_REGRESSION_HINT} "
                                               f"(or data.task=classification)"))
    elif task == "classification" and kind is Regression:
        issues.append(ConfigIssue("data.task", f"the target {cfg.data.get('target')!r} is a classification target, "
                                               f"but the model is a regressor: use model=mlp metrics=classification "
                                               f"(or data.task=regression)"))
    if task == "regression" and not issues:
        for name, metric in (cfg.get("metrics") or {}).items():
            if isinstance(metric, DictConfig) and "num_classes" in metric and \
                    OmegaConf.select(metric, "num_classes", default=None) is None:
                issues.append(ConfigIssue(f"metrics.{name}", "is a classification metric, but the target is a "
                                                             "regression target: use metrics=regression"))
    return issues


def _task_class(target: Any) -> type | None:
    """``Classification`` or ``Regression`` when the model's task is one of them (or a subclass)."""
    try:
        obj = locate(str(target)) if target else None
    except ImportError:
        return None
    for kind in (Classification, Regression):
        if isinstance(obj, type) and issubclass(obj, kind):
            return kind
    return None


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
