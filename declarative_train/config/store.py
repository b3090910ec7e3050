"""Register the schemas in Hydra's ConfigStore so the primary configs can extend them."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from declarative_train.config.schema import EvalConfig, ExportConfig, PredictConfig, TrainConfig


def register_schemas() -> None:
    """Store the schemas that ``train.yaml``, ``eval.yaml``, ``predict.yaml`` and ``export.yaml`` list first.

    Once per process: converting the schemas costs ~50 ms, and the job calls this again for
    launchers that run jobs in fresh processes.
    """
    store = ConfigStore.instance()
    if "train_schema.yaml" in store.repo:
        return
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="export_schema", node=ExportConfig)
