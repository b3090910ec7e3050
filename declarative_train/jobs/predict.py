"""``dtrain-predict``: a checkpoint's predictions on a data split, written to one file.

The checkpoint is read and its stored config taken exactly as ``dtrain-eval`` does
(:func:`~declarative_train.jobs.evaluate.use_checkpoint_config`). The model runs in eval mode
without gradients over the split in order; the file holds one row per input row: an id, the
prediction and, for classifiers, one ``prob_<class>`` column per class. It is written under a
temporary name and renamed, so a failed command leaves no partial file.

The launching process checks the command and takes the checkpoint's config
(:func:`check_predict_command`); :func:`predict_job` then runs in that process, or on every rank
of a multi-process launch (``strategy=ddp``: the launch layer starts the workers). Each rank
predicts its shard of the split (the distribution's non-repeating, ordered sampler), rank 0
gathers every rank's rows with their positions in the split (:func:`gather_rows`), puts them back
in order (:func:`merge_shards`) and writes the file once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from declarative_train import checkpoint
from declarative_train.build import build, seed_everything
from declarative_train.distributed import Distribution
from declarative_train.engine.executor import Executor, unwrapped
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


def check_predict_command(cfg: DictConfig) -> dict[str, Any]:
    """In the launching process: check the command and the output, take the checkpoint's config into ``cfg``.

    Returns the checkpoint read. Raises :class:`~declarative_train.errors.ConfigError` for a bad
    command line, an output that cannot be written, a refused stored config or data that does not
    fit the model (exit 2), and :class:`~declarative_train.errors.CheckpointError` for an unusable
    checkpoint.
    """
    _check_command(cfg)
    return checkpoint_command_config(cfg, "dtrain-predict")


def predict_job(cfg: DictConfig, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the task with the checkpoint's weights, predict this rank's rows; rank 0 writes the file.

    ``cfg`` has been through :func:`check_predict_command`; ``saved`` is the checkpoint it read (a
    worker reads it again). Returns what was written (on other ranks: the rows they predicted).
    """
    path = output_path(cfg)
    saved = checkpoint.read(cfg.ckpt_path) if saved is None else saved
    seed_everything(cfg.seed)
    executor = build(cfg).executor()
    executor.setup()
    data = executor.data
    if not data.has_split(cfg.split):
        raise ConfigError([ConfigIssue("split", f"{type(data).__name__} has no {cfg.split!r} split"
                                                + (" (nor a test split)" if cfg.split == "predict" else ""))])
    split = _predicted_split(data, cfg.split)
    task = unwrapped(executor.task)
    checkpoint.restore({"state_dict": checkpoint.ModuleState(task)}, saved, cfg.ckpt_path, LABELS)
    outputs = _stack([output.detach().float().cpu() for output in executor.predict(split)])  # a shard may be empty
    positions, size = shard_positions(executor, split, len(outputs))
    ordered = gather_rows(executor.distribution, positions, outputs, size)
    if ordered is None:  # rank 0 writes
        log.info("%d rows of the %s split predicted and sent to rank 0", len(outputs), cfg.split)
        return {"rows": len(outputs), "split": cfg.split, "rank": executor.distribution.rank}
    columns = prediction_columns(task, data, split, ordered)
    write_predictions(path, columns)
    rows = len(ordered)
    log.info("predictions of %s on the %s split: %d rows written to %s", cfg.ckpt_path, cfg.split, rows, path)
    print(f"wrote {rows} predictions ({cfg.split} split) to {path}")
    return {"output": str(path.resolve()), "rows": rows, "split": cfg.split, "columns": list(columns)}


def _predicted_split(data: Any, split: str) -> str:
    """The split whose rows are predicted: ``predict`` without a predict dataset is the test split.

    The executor serves every split in order, each row once (the train split too, not through the
    shuffling train loader, and under the data's evaluation transforms).
    """
    return "test" if split == "predict" and "predict" not in data.datasets else split


def shard_positions(executor: Executor, split: str, rows: int) -> tuple[torch.Tensor, int]:
    """The positions in ``split`` of this rank's ``rows`` predictions, and the split's size.

    One process predicts every row in order; a rank of several, the positions of the
    distribution's evaluation sampler, which the executor's loader of the split uses.
    """
    if executor.distribution.world_size == 1:
        return torch.arange(rows), rows
    dataset = executor.data.datasets[split]
    sampler = executor.distribution.sampler(dataset, shuffle=False, seed=executor.seed)
    positions = list(sampler) if sampler is not None else range(len(dataset))
    return torch.as_tensor(positions, dtype=torch.long), len(dataset)


def gather_rows(distribution: Distribution, positions: torch.Tensor, outputs: torch.Tensor,
                size: int) -> torch.Tensor | None:
    """Every rank's ``outputs`` (rows at ``positions`` of a split of ``size`` rows) on rank 0, in order.

    A collective: every rank calls it. Returns the ``size`` rows on rank 0 and ``None`` elsewhere;
    raises :class:`~declarative_train.errors.RunFailed` when the rows do not cover the split once.
    """
    if len(positions) != len(outputs):
        raise RunFailed(f"rank {distribution.rank}: the model gave {len(outputs)} predictions "
                        f"for {len(positions)} rows of its shard")
    if distribution.world_size == 1:
        return merge_shards([(positions, outputs)], size)
    shards: list[Any] | None = [None] * distribution.world_size if distribution.rank == 0 else None
    dist.gather_object((positions, outputs), shards, dst=0)
    return merge_shards(shards, size) if shards is not None else None


def merge_shards(shards: Sequence[tuple[torch.Tensor, torch.Tensor]], size: int) -> torch.Tensor:
    """The rows of ``(positions, outputs)`` shards put back in position order.

    Raises :class:`~declarative_train.errors.RunFailed` unless the shards hold each of the
    ``size`` positions exactly once.
    """
    positions = torch.cat([torch.as_tensor(p, dtype=torch.long).reshape(-1) for p, _ in shards])
    outputs = _stack([o for _, o in shards])
    if len(positions) != len(outputs):
        raise RunFailed(f"{len(outputs)} predictions for {len(positions)} positions")
    outside = positions[(positions < 0) | (positions >= size)]
    if len(outside):
        raise RunFailed(f"positions outside the split's {size} rows: {outside[:5].tolist()}")
    counts = torch.bincount(positions, minlength=size)
    if (counts != 1).any():
        missing, repeated = (counts == 0).nonzero().flatten(), (counts > 1).nonzero().flatten()
        raise RunFailed(f"the ranks' predictions do not cover the split's {size} rows once: "
                        f"{len(missing)} missing (first {missing[:5].tolist()}), "
                        f"{len(repeated)} repeated (first {repeated[:5].tolist()})")
    ordered = torch.empty_like(outputs)
    ordered[positions] = outputs
    return ordered


def _stack(parts: list[torch.Tensor]) -> torch.Tensor:
    """``parts`` concatenated along the rows, the empty ones left out (a rank may have had no rows)."""
    rows = [part for part in parts if len(part)]
    return torch.cat(rows) if rows else torch.empty(0)


def output_path(cfg: DictConfig) -> Path:
    """The file ``dtrain-predict`` writes: ``output``, else ``predictions.csv`` in the run folder."""
    return Path(cfg.output).expanduser() if cfg.output else Path(cfg.paths.output_dir) / DEFAULT_OUTPUT


def _check_command(cfg: DictConfig) -> Path:
    """The output file, once the command is known to be usable (nothing is read before)."""
    issues = []
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        issues.append(ConfigIssue("ckpt_path", "missing mandatory value (dtrain-predict ckpt_path=PATH)"))
    if cfg.split not in SPLITS:
        issues.append(ConfigIssue("split", not_one_of(cfg.split, SPLITS)))
    path = output_path(cfg)
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
