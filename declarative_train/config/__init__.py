"""Typed config schemas (attrs, registered in Hydra's ConfigStore) and validation."""

from declarative_train.config.schema import (
    AcceleratorConfig,
    PathsConfig,
    PrecisionConfig,
    TrainConfig,
    TrainerConfig,
)
from declarative_train.config.validate import ConfigError, validate_config

__all__ = [
    "AcceleratorConfig",
    "ConfigError",
    "PathsConfig",
    "PrecisionConfig",
    "TrainConfig",
    "TrainerConfig",
    "validate_config",
]
