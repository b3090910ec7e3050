"""Typed config schemas (attrs, registered in Hydra's ConfigStore), override grammar and validation."""

from declarative_train.config.schema import (
    AcceleratorConfig,
    PathsConfig,
    PrecisionConfig,
    TrainConfig,
    TrainerConfig,
)
from declarative_train.config.validate import validate_config
from declarative_train.errors import ConfigError

__all__ = [
    "AcceleratorConfig",
    "ConfigError",
    "PathsConfig",
    "PrecisionConfig",
    "TrainConfig",
    "TrainerConfig",
    "validate_config",
]
