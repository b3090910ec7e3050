"""The ``tune`` section and the ``auto`` values through validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from declarative_train.config.tuning import auto_keys, auto_placeholders
from declarative_train.config.validate import validate_config
from declarative_train.errors import ConfigError


def test_every_bad_tune_value_is_reported_with_its_key(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["tune.min_lr=0.5", "tune.max_lr=0.1", "tune.num_steps=1", "tune.smoothing=0",
                       "tune.divergence_factor=1", "tune.suggestion=valley", "tune.batch_size_start=0",
                       "tune.batch_size_mode=fast", "tune.max_memory_gb=-1"])
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"tune.min_lr", "tune.num_steps", "tune.smoothing", "tune.divergence_factor", "tune.suggestion",
                     "tune.batch_size_start", "tune.batch_size_mode", "tune.max_memory_gb"}


def test_auto_values_validate_as_placeholders_and_come_back(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["optimizer.lr=auto", "data.batch_size=auto", "tune.batch_size_start=16"])
    validate_config(cfg)
    assert auto_keys(cfg) == ["data.batch_size", "optimizer.lr"]
    with auto_placeholders(cfg):
        assert cfg.optimizer.lr == cfg.tune.min_lr and cfg.data.batch_size == 16
    assert cfg.optimizer.lr == "auto" and cfg.data.batch_size == "auto"


def test_lr_find_runs_in_one_process(compose_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match="tune=lr_find runs in one process"):
        validate_config(compose_cfg(["tune=lr_find", "accelerator.devices=2"]))
