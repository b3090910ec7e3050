"""The resolved config in the run folder: written once by the launching process, read by workers.

Workers are fresh interpreters that never see the command line: everything they need is this file,
with every interpolation (``${hydra:runtime.output_dir}``, ``${now:...}``) already resolved, and
``resolved_job.txt`` beside it naming the job they run (``train`` or ``predict``; a folder without
it is a training run's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train.config.schema import PredictConfig, TrainConfig
from declarative_train.utils.io import atomic_write_bytes
from declarative_train.utils.text import not_one_of

FILENAME = "resolved_config.yaml"
JOB_FILENAME = "resolved_job.txt"
#: The schema that types each job's config again (the worker's job table has the same names).
SCHEMAS: dict[str, type] = {"train": TrainConfig, "predict": PredictConfig}


def write_resolved(cfg: DictConfig | dict[str, Any], run_dir: str | Path, job: str = "train") -> Path:
    """Write ``cfg`` (resolved) to ``run_dir/resolved_config.yaml`` and the job's name beside it; return the path."""
    if job not in SCHEMAS:
        raise ValueError(f"job {not_one_of(job, SCHEMAS)}")
    path = Path(run_dir) / FILENAME
    atomic_write_bytes(Path(run_dir) / JOB_FILENAME, f"{job}\n".encode())
    atomic_write_bytes(path, OmegaConf.to_yaml(cfg, resolve=True).encode())
    return path


def resolved_job(run_dir: str | Path) -> str:
    """The job the launching process wrote into ``run_dir`` (``train`` without ``resolved_job.txt``)."""
    path = Path(run_dir) / JOB_FILENAME
    job = path.read_text().strip() if path.is_file() else "train"
    if job not in SCHEMAS:
        raise ValueError(f"{path}: the job {not_one_of(job, SCHEMAS)}")
    return job


def load_resolved(run_dir: str | Path) -> DictConfig:
    """The config a launching process wrote into ``run_dir``, typed by its job's schema again."""
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: workers read the resolved config the launching process writes there")
    return from_container(OmegaConf.to_container(OmegaConf.load(path)), resolved_job(run_dir))


def from_container(data: Any, job: str = "train") -> DictConfig:
    """A plain (resolved) config dict as a schema-typed config of ``job``, as ``build`` expects it."""
    cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS[job]), data)
    assert isinstance(cfg, DictConfig)
    return cfg
