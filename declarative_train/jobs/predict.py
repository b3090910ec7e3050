"""``dtrain-predict``: a checkpoint's predictions on a data split, written to one file.

The checkpoint is read and its stored config taken exactly as ``dtrain-eval`` does
(:func:`~declarative_train.jobs.evaluate.use_checkpoint_config`). The model runs in eval mode
without gradients over the split in order; the file holds one row per input row: an id, the
prediction and, for classifiers, one ``prob_<class>`` column per class. It is written under a
temporary name and renamed, so a failed command leaves no partial file.

Predictions run in one process, as ``dtrain-eval`` does: ``accelerator.devices`` > 1 is not split
across processes (the first device is used), so rows need no gathering and keep their order.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from omegaconf import DictConfig, OmegaConf

from declarative_train import checkpoint
from declarative_train.build import build, seed_everything
from declarative_train.distributed.plan import make_plan
from declarative_train.engine.executor import unwrapped
from declarative_train.engine.training_state import LABELS
from declarative_train.errors import ConfigError, ConfigIssue, RunFailed
from declarative_train.jobs.evaluate import checkpoint_command_config
from declarative_train.tasks import Classification, Regression
from declarative_train.utils.io import atomic_write_bytes
from declarative_train.utils.text import not_one_of

log = logging.getLogger("declarative_train")

SPLITS = ("predict", "test", "val", "train")
#: Output formats by file extension.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
DEFAULT_OUTPUT = "predictions.csv"


@runtime_checkable
class IdentifiesRows(Protocol):
    """A data module that names its rows (``data=table``: an id column or the row's index in its file)."""

    def row_ids(self, split: str) -> tuple[str, list[Any]]:
        """``(column name, one value per row of split)``."""
        ...


def predict_job(cfg: DictConfig) -> dict[str, Any]:
    """Check the command, build the task from the checkpoint, predict, write the file; describe it.

    Raises :class:`~declarative_train.errors.ConfigError` for a bad command line, an output that
    cannot be written, a refused stored config or data that does not fit the model (exit 2), and
    :class:`~declarative_train.errors.CheckpointError` for an unusable checkpoint.
    """
    path = _check_command(cfg)
    saved = checkpoint_command_config(cfg, "dtrain-predict")
    plan = make_plan(cfg.accelerator)
    if plan.world_size > 1:
        log.info("dtrain-predict runs in one process: %d devices asked for, the first one is used", plan.world_size)
    seed_everything(cfg.seed)
    executor = build(cfg).executor()
    executor.setup()
    data = executor.data
    if not data.has_split(cfg.split):
        raise ConfigError([ConfigIssue("split", f"{type(data).__name__} has no {cfg.split!r} split"
                                                + (" (nor a test split)" if cfg.split == "predict" else ""))])
    task = unwrapped(executor.task)
    checkpoint.restore({"state_dict": checkpoint.ModuleState(task)}, saved, cfg.ckpt_path, LABELS)
    outputs = torch.cat([output.detach().float().cpu() for output in executor.predict(cfg.split)])
    columns = prediction_columns(task, data, cfg.split, outputs)
    write_predictions(path, columns)
    rows = len(outputs)
    log.info("predictions of %s on the %s split: %d rows written to %s", cfg.ckpt_path, cfg.split, rows, path)
    print(f"wrote {rows} predictions ({cfg.split} split) to {path}")
    return {"output": str(path.resolve()), "rows": rows, "split": cfg.split, "columns": list(columns)}


def _check_command(cfg: DictConfig) -> Path:
    """The output file, once the command is known to be usable (nothing is read before)."""
    issues = []
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        issues.append(ConfigIssue("ckpt_path", "missing mandatory value (dtrain-predict ckpt_path=PATH)"))
    if cfg.split not in SPLITS:
        issues.append(ConfigIssue("split", not_one_of(cfg.split, SPLITS)))
    path = Path(cfg.output).expanduser() if cfg.output else Path(cfg.paths.output_dir) / DEFAULT_OUTPUT
    problem = _output_problem(path)
    if problem:
        issues.append(ConfigIssue("output", problem))
    if issues:
        raise ConfigError(issues)
    return path


def _output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written (format, pyarrow for Parquet, a folder there, permissions)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        return f"{str(path)!r}: the extension {path.suffix!r} is {not_one_of(path.suffix, FORMATS)}"
    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return "Parquet is written with pyarrow, which is not installed: pip install 'declarative_train[tables]'"
    if path.is_dir():
        return f"{str(path)!r} is a folder"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the first folder that exists is created in
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {str(path)!r}: {str(folder)!r} is not a writable folder"
    return None


def prediction_columns(task: torch.nn.Module, data: Any, split: str, outputs: torch.Tensor) -> dict[str, list[Any]]:
    """The file's columns: the row id, ``prediction`` and (classification) ``prob_<class>``.

    Classifiers give the class name (from the data's ``class_names``) or index, and softmax
    probabilities; regression predictions are put back in the target's units (the data's
    ``target_mean``/``target_std``, when it standardised the target).
    """
    rows = len(outputs)
    name, ids = data.row_ids(split) if isinstance(data, IdentifiesRows) else ("row", list(range(rows)))
    if len(ids) != rows:
        raise RunFailed(f"the model gave {rows} predictions for {len(ids)} rows of the {split} split")
    columns: dict[str, list[Any]] = {name: ids}
    if isinstance(task, Classification):
        probs = torch.softmax(outputs.reshape(rows, -1).double(), dim=-1)
        classes = _class_names(data, probs.shape[1])
        columns["prediction"] = [classes[i] for i in probs.argmax(dim=-1).tolist()]
        columns.update({f"prob_{label}": probs[:, i].tolist() for i, label in enumerate(classes)})
        return columns
    values = outputs.reshape(rows, -1).double()
    if isinstance(task, Regression):
        values = values * float(getattr(data, "target_std", 1.0)) + float(getattr(data, "target_mean", 0.0))
    if values.shape[1] == 1:
        columns["prediction"] = values[:, 0].tolist()
    else:
        columns.update({f"prediction_{i}": values[:, i].tolist() for i in range(values.shape[1])})
    return columns


def _class_names(data: Any, count: int) -> list[Any]:
    names = getattr(data, "class_names", None)
    return [str(n) for n in names] if names is not None and len(names) == count else list(range(count))


def write_predictions(path: Path, columns: dict[str, list[Any]]) -> None:
    """Write ``columns`` as CSV, JSON Lines or Parquet (by ``path``'s extension), atomically."""
    kind = FORMATS[path.suffix.lower()]
    names = list(columns)
    rows = list(zip(*columns.values()))
    if kind == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        data = text.getvalue().encode()
    elif kind == "jsonl":
        data = "".join(json.dumps(dict(zip(names, row))) + "\n" for row in rows).encode()
    else:
        data = _parquet_bytes(columns)
    atomic_write_bytes(path, data)


def _parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return bytes(sink.getvalue().to_pybytes())
