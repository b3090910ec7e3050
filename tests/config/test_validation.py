"""Validation reports every problem with its key path before anything is built."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig, open_dict

from declarative_train.config.validate import collect_issues, validate_config
from declarative_train.errors import ConfigError


def _paths(cfg: DictConfig) -> dict[str, str]:
    return {issue.path: issue.message for issue in collect_issues(cfg)}


def test_default_config_is_valid(compose_cfg: Callable[..., DictConfig]) -> None:
    validate_config(compose_cfg())


def test_all_problems_are_reported_together(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["trainer.limit_train_batches=1.5", "trainer.gradient_clip_algorithm=nrom",
                       "accelerator.strategy=dpp", "precision.mode=fp8", "+optimizer.lrr=0.1"])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    paths = {issue.path for issue in info.value.issues}
    assert {"trainer.limit_train_batches", "trainer.gradient_clip_algorithm", "accelerator.strategy",
            "precision.mode", "optimizer.lrr"} <= paths
    message = str(info.value)
    assert "Did you mean 'lr'?" in message
    assert "Did you mean 'ddp'?" in message


def test_target_outside_allowed_packages_is_refused(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg()
    with open_dict(cfg):
        cfg.callbacks.evil = {"_target_": "os.system", "command": "echo pwned"}
    issues = _paths(cfg)
    assert "outside the allowed packages" in issues["callbacks.evil._target_"]


def test_user_packages_extend_the_allow_list(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["user_packages=[collections]"])
    with open_dict(cfg):
        cfg.callbacks.counter = {"_target_": "collections.Counter"}
    assert "callbacks.counter._target_" not in _paths(cfg)


def test_unimportable_target_and_unbound_signature(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["model.net._target_=declarative_train.models.MLPP", "+model.net.width=3"])
    issues = _paths(cfg)
    assert "has no attribute 'MLPP'" in issues["model.net._target_"]
    cfg = compose_cfg(["+model.net.width=3"])
    assert "takes no argument 'width'" in _paths(cfg)["model.net.width"]


def test_missing_required_constructor_argument(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["~model.net.out_features"])
    assert "missing a required argument: 'out_features'" in _paths(cfg)["model.net"]


def test_missing_mandatory_value_and_bad_interpolation(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["data.batch_size=???", "model.net.in_features=${data.nope}"])
    issues = _paths(cfg)
    assert "missing mandatory value" in issues["data.batch_size"]
    assert "cannot resolve" in issues["model.net.in_features"]


def test_monitor_that_is_never_logged(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["callbacks.model_checkpoint.monitor=val/acc_", "metrics=classification"])
    assert "Did you mean 'val/acc'?" in _paths(cfg)["callbacks.model_checkpoint.monitor"]


def test_gpu_without_cuda_says_what_is_missing(compose_cfg: Callable[..., DictConfig]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    issues = _paths(compose_cfg(["accelerator=gpu"]))
    assert "not available here" in issues["accelerator.name"]
    assert "install" in issues["accelerator.name"] or "CUDA" in issues["accelerator.name"]
