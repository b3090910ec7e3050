"""Every shipped config file composes, validates and builds, without training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from declarative_train.accelerators import accelerator_class
from declarative_train.build import build, describe
from declarative_train.cli import config_dir
from declarative_train.config.validate import validate_config
from declarative_train.errors import ConfigError
from declarative_train.utils.extras import vision_available

GROUPS = ["model", "data", "optimizer", "scheduler", "accelerator", "precision", "metrics",
          "callbacks", "logger", "profiler", "trainer", "tune", "experiment", "hparams_search", "debug", "paths"]
#: Some choices need a particular partner choice to make sense.
PARTNERS = {("model", "mlp_regressor"): ["data=diabetes", "metrics=regression",
                                         "callbacks.model_checkpoint.monitor=val/loss"],
            ("model", "linear_regressor"): ["data=diabetes", "metrics=regression",
                                            "callbacks.model_checkpoint.monitor=val/loss"],
            ("metrics", "regression"): ["model=mlp_regressor", "data=diabetes",
                                        "callbacks.model_checkpoint.monitor=val/loss"],
            ("metrics", "none"): ["callbacks.model_checkpoint.monitor=val/loss"],
            ("data", "diabetes"): ["model=mlp_regressor", "metrics=regression",
                                   "callbacks.model_checkpoint.monitor=val/loss"],
            # data=table needs a file: the preset writes one into the run folder.
            ("data", "table"): ["experiment=table_wine"],
            # data=image_folder needs a folder: the preset draws one into the run folder.
            ("data", "image_folder"): ["experiment=shapes_folder"],
            # data=hf needs a saved dataset: the preset saves sklearn's digits into the run folder.
            ("data", "hf"): ["experiment=hf_digits"],
            # data=text needs a file, model=gpt and metrics=language_model a language model's data:
            # the preset writes Python's own sources into the run folder.
            ("data", "text"): ["experiment=gpt_text"],
            ("model", "gpt"): ["experiment=gpt_text"],
            ("metrics", "language_model"): ["experiment=gpt_text"]}
#: Choices that need the [vision] extra: without torchvision they must say how to install it.
VISION = {("data", "image_folder"), ("model", "torchvision"), ("model", "timm"), ("experiment", "shapes_folder")}


def _choices() -> list[tuple[str, str]]:
    root = Path(config_dir())
    return [(group, path.stem) for group in GROUPS for path in sorted((root / group).glob("*.yaml"))]


def test_every_group_of_the_design_exists_with_its_choices() -> None:
    choices = _choices()
    groups = {group for group, _ in choices}
    assert groups == set(GROUPS)
    found = set(choices)
    for group, names in {"accelerator": ["auto", "cpu", "gpu", "tpu"],
                         "precision": ["32", "64", "16-mixed", "bf16-mixed", "bf16-true"],
                         "debug": ["fast_dev_run", "overfit", "limit"],
                         "scheduler": ["none"], "metrics": ["none"], "callbacks": ["none"], "logger": ["none"]}.items():
        for name in names:
            assert (group, name) in found, f"{group}/{name}.yaml missing"


@pytest.mark.parametrize("group,choice", _choices(), ids=lambda x: x if isinstance(x, str) else None)
def test_config_choice_composes_validates_and_builds(
    compose_cfg: Callable[..., DictConfig], group: str, choice: str
) -> None:
    if (group, choice) in (("data", "table"), ("experiment", "table_wine")):
        pytest.importorskip("pyarrow")  # the [tables] extra
    if (group, choice) in (("data", "hf"), ("experiment", "hf_digits")):
        pytest.importorskip("datasets")  # the [hf] extra
    cfg = compose_cfg([f"{group}={choice}", *PARTNERS.get((group, choice), [])])
    if (group, choice) in VISION and not vision_available():
        with pytest.raises(ConfigError, match=r"pip install 'declarative_train\[vision\]'"):
            validate_config(cfg)
            build(cfg)
        return
    if group == "accelerator" and not accelerator_class(choice).is_available():
        with pytest.raises(ConfigError, match="accelerator.name: .* not available here: .*install"):
            validate_config(cfg)
        return
    validate_config(cfg)
    components = build(cfg)
    graph = describe(components)
    assert "task: declarative_train.tasks." in graph
    assert components.optimizer.func.__module__.startswith("torch.optim")
