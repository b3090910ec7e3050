"""The resolved config in the run folder: written once by the launching process, read by workers.

Workers are fresh interpreters that never see the command line: everything they need is this file,
with every interpolation (``${hydra:runtime.output_dir}``, ``${now:...}``) already resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train.config.schema import TrainConfig
from declarative_train.utils.io import atomic_write_bytes

FILENAME = "resolved_config.yaml"


def write_resolved(cfg: DictConfig | dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``cfg`` (resolved) to ``run_dir/resolved_config.yaml``; return the path."""
    path = Path(run_dir) / FILENAME
    atomic_write_bytes(path, OmegaConf.to_yaml(cfg, resolve=True).encode())
    return path


def load_resolved(run_dir: str | Path) -> DictConfig:
    """The config a launching process wrote into ``run_dir``, typed by the schema again."""
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: workers read the resolved config the launching process writes there")
    return from_container(OmegaConf.to_container(OmegaConf.load(path)))


def from_container(data: Any) -> DictConfig:
    """A plain (resolved) config dict as a schema-typed config, as ``build`` expects it."""
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), data)
    assert isinstance(cfg, DictConfig)
    return cfg
