"""Every attrs schema survives OmegaConf: structured -> YAML -> merge -> object, unchanged."""

from __future__ import annotations

import attrs
import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from declarative_train.config import schema

SCHEMAS = [schema.TrainerConfig, schema.AcceleratorConfig, schema.PrecisionConfig, schema.PathsConfig]


@pytest.mark.parametrize("cls", SCHEMAS, ids=lambda c: c.__name__)
def test_schema_round_trips_through_yaml(cls: type) -> None:
    structured = OmegaConf.structured(cls)
    reloaded = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.create(OmegaConf.to_yaml(structured)))
    assert _plain(reloaded) == _plain(structured)
    if cls is not schema.PathsConfig:  # its defaults interpolate ${hydra:...}, resolvable in a run only
        assert OmegaConf.to_object(reloaded) == cls()


def _plain(cfg: object) -> object:
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[arg-type]


def test_train_config_round_trips_with_components() -> None:
    components = {"model": {"_target_": "x.Y"}, "data": {"_target_": "x.D"}, "optimizer": {"_target_": "x.O"}}
    cfg = OmegaConf.merge(OmegaConf.structured(schema.TrainConfig), components)
    again = OmegaConf.merge(OmegaConf.structured(schema.TrainConfig), OmegaConf.create(OmegaConf.to_yaml(cfg)))
    assert _plain(again) == _plain(cfg)
    concrete = OmegaConf.merge(again, {"paths": {"root_dir": "/r", "data_dir": "/d", "output_dir": "/o"}})
    obj = OmegaConf.to_object(concrete)
    assert isinstance(obj, schema.TrainConfig)
    assert isinstance(obj.trainer, schema.TrainerConfig)
    assert obj.model == {"_target_": "x.Y"}
    assert attrs.asdict(obj.trainer) == attrs.asdict(schema.TrainerConfig())


def test_schema_rejects_unknown_keys_and_wrong_types_with_key_path() -> None:
    base = OmegaConf.structured(schema.TrainConfig)
    with pytest.raises(ConfigKeyError, match="full_key: trainer.max_epoch"):
        OmegaConf.merge(base, {"trainer": {"max_epoch": 3}})
    with pytest.raises(ValidationError, match="full_key: trainer.max_epochs"):
        OmegaConf.merge(base, {"trainer": {"max_epochs": "many"}})


def test_any_typed_limits_keep_int_versus_float() -> None:
    cfg = OmegaConf.merge(OmegaConf.structured(schema.TrainerConfig), {"limit_train_batches": 1})
    assert isinstance(cfg.limit_train_batches, int)  # 1 batch, not 100 %
    cfg = OmegaConf.merge(cfg, {"limit_train_batches": 0.5})
    assert isinstance(cfg.limit_train_batches, float)



def test_trainer_schema_mirrors_the_engine_settings() -> None:
    from declarative_train.engine import TrainerSettings

    mirror = {f.name: f.default for f in attrs.fields(schema.TrainerConfig)}
    assert mirror == {f.name: f.default for f in attrs.fields(TrainerSettings)}
