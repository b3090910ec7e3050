"""Register the schemas in Hydra's ConfigStore so the primary configs can extend them."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from declarative_train.config.schema import EvalConfig, TrainConfig


def register_schemas() -> None:
    """Store ``train_schema`` and ``eval_schema``; ``train.yaml``/``eval.yaml`` list them first."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
