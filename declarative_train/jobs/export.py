"""``dtrain-export``: a checkpoint's model as a file other runtimes load, with ``export.json`` beside it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from declarative_train import checkpoint
from declarative_train._version import __version__
from declarative_train.build import build, seed_everything
from declarative_train.config.validate import validate_config
from declarative_train.engine.training_state import LABELS
from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.export import FORMATS, ExportReport, export_model
from declarative_train.export.formats import INPUT_NAME, OUTPUT_NAME, metadata_config
from declarative_train.jobs.evaluate import command_line_overrides, use_checkpoint_config
from declarative_train.jobs.provenance import package_version
from declarative_train.tasks import Classification
from declarative_train.utils.io import atomic_write_json
from declarative_train.utils.text import not_one_of

log = logging.getLogger("declarative_train")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
EXAMPLE_ROWS, CHECK_ROWS = 2, 3  # traced on one batch size, checked on another


def export_job(cfg: DictConfig) -> dict[str, Any]:
    """Check the command, build the task from the checkpoint, export it, write ``export.json``.

    Raises :class:`~declarative_train.errors.ConfigError` for a bad command line, a refused
    stored config or a missing optional package, :class:`~declarative_train.errors.CheckpointError`
    for an unusable checkpoint, and :class:`~declarative_train.errors.ExportError` when the model
    cannot be exported or the file does not reproduce it.
    """
    _check_command(cfg)
    saved = checkpoint.read(cfg.ckpt_path)
    _check_model_source(cfg, saved)
    if cfg.use_ckpt_config:
        use_checkpoint_config(cfg, saved, "dtrain-export")
    validate_config(cfg)
    seed_everything(cfg.seed)
    components = build(cfg)
    task = components.task
    checkpoint.restore({"state_dict": checkpoint.ModuleState(task)}, saved, cfg.ckpt_path, LABELS)
    dtype = DTYPES[cfg.dtype]
    task = task.to(dtype).eval()
    example, check = _inputs(cfg, components.data)
    example, check = (t.to(dtype) if t.is_floating_point() else t for t in (example, check))
    fmt = FORMATS[cfg.format]
    path = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / f"model{fmt.extension}"
    tolerance = cfg.tolerance if cfg.tolerance is not None else (1e-5 if dtype == torch.float32 else 1e-2)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    report = export_model(task, example, check, cfg.format, path, tolerance=tolerance, opset=cfg.opset,
                          metadata=metadata_config({"model": model_config, "dtype": cfg.dtype}))
    description = _description(cfg, report, components.task, components.data)
    atomic_write_json(path.parent / "export.json", description)
    log.info("exported %s as %s to %s (max abs difference to eager PyTorch %.3g)",
             cfg.ckpt_path, cfg.format, path, report.max_abs_diff)
    print(f"wrote {path} ({cfg.format}); max abs difference to eager PyTorch: {report.max_abs_diff:.3g} "
          f"(tolerance {tolerance:g}); {path.parent / 'export.json'}")
    return description


def _check_command(cfg: DictConfig) -> None:
    issues = []
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        issues.append(ConfigIssue("ckpt_path", "missing mandatory value (dtrain-export ckpt_path=PATH)"))
    if cfg.format not in FORMATS:
        issues.append(ConfigIssue("format", not_one_of(cfg.format, FORMATS)))
    elif missing := FORMATS[cfg.format].missing_packages():
        issues.append(ConfigIssue("format", f"{cfg.format} needs {', '.join(missing)}: "
                                            f"pip install 'declarative_train[{FORMATS[cfg.format].extra}]'"))
    if cfg.dtype not in DTYPES:
        issues.append(ConfigIssue("dtype", not_one_of(cfg.dtype, DTYPES)))
    if cfg.input_shape is not None and (not cfg.input_shape or any(size < 1 for size in cfg.input_shape)):
        issues.append(ConfigIssue("input_shape", f"must list sizes >= 1 (one sample, no batch dimension), "
                                                 f"got {list(cfg.input_shape)}"))
    if cfg.tolerance is not None and not cfg.tolerance >= 0:
        issues.append(ConfigIssue("tolerance", f"must be >= 0, got {cfg.tolerance}"))
    if issues:
        raise ConfigError(issues)


def _check_model_source(cfg: DictConfig, saved: dict[str, Any]) -> None:
    """A checkpoint without a stored config needs the model named on the command line."""
    if cfg.use_ckpt_config and isinstance(saved.get("config"), dict):
        return
    if not any(o.key_or_group == "model" for o in command_line_overrides()):
        why = "has no stored config" if cfg.use_ckpt_config else "is read without its stored config (use_ckpt_config=false)"
        raise ConfigError([ConfigIssue("model", f"the checkpoint {cfg.ckpt_path} {why}: name the model and its "
                                                "data on the command line (model=... data=...)")])


def _inputs(cfg: DictConfig, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch to trace on and the batch (of another size) to check the file on."""
    rows = EXAMPLE_ROWS + CHECK_ROWS
    if cfg.input_shape is not None:
        inputs = torch.randn(rows, *cfg.input_shape, generator=torch.Generator().manual_seed(0))
    else:
        inputs = _data_inputs(data)
        inputs = inputs.repeat(-(-rows // len(inputs)), *([1] * (inputs.ndim - 1)))[:rows]
    return inputs[:EXAMPLE_ROWS], inputs[EXAMPLE_ROWS:]


def _data_inputs(data: Any) -> torch.Tensor:
    data.setup()
    split = next((s for s in ("test", "val", "train") if data.has_split(s)), None)
    batch = next(iter(data.dataloader(split)), None) if split is not None else None
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or len(inputs) == 0:
        raise ConfigError([ConfigIssue("input_shape", f"the data module {type(data).__name__} gives no tensor "
                                                      "batch to trace on: set input_shape=[...] (one sample)")])
    return inputs


def _description(cfg: DictConfig, report: ExportReport, task: Any, data: Any) -> dict[str, Any]:
    """``export.json``: what the file is, what it takes and gives, and how closely it was checked."""
    description: dict[str, Any] = {
        "format": report.format,
        "file": str(report.path.resolve()),
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "inputs": [{"name": INPUT_NAME, "shape": report.input_shape, "dtype": report.input_dtype}],
        "outputs": [{"name": OUTPUT_NAME, "shape": report.output_shape}],
        "max_abs_diff": report.max_abs_diff,
        "tolerance": report.tolerance,
        "check_batch_size": report.check_batch_size,
        "dtype": cfg.dtype,
        "versions": _versions(FORMATS[cfg.format].packages),
    }
    if report.format == "onnx":
        description["opset"] = cfg.opset
    classes = _class_names(task, data)
    if classes is not None:
        description["class_names"] = classes
    return description


def _class_names(task: Any, data: Any) -> list[str] | None:
    """The data module's ``class_names``, else class indices, for classifiers; ``None`` otherwise."""
    if not isinstance(task, Classification):
        return None
    names = getattr(data, "class_names", None)
    if names is not None:
        return [str(name) for name in names]
    count = getattr(data, "num_classes", None)
    return [str(index) for index in range(count)] if isinstance(count, int) else None


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    versions = {"declarative_train": __version__, "torch": torch.__version__}
    installed = {package: package_version(package) for package in packages}
    return {**versions, **{package: version for package, version in installed.items() if version}}
