"""attrs schemas for every config section that is not a ``_target_``.

OmegaConf turns these into typed nodes: unknown keys and wrong types are rejected when Hydra
composes. Fields typed ``Any`` accept several types (``limit_train_batches`` is a batch count
when an int, a fraction when a float); their ranges are checked in ``validate.py``.
Defaults are plain values, never ``attrs.Factory``: OmegaConf cannot read factories.

The ``trainer`` section is the engine's :class:`~declarative_train.engine.TrainerSettings`
itself, mirrored field by field (same names, defaults and documentation) with the types OmegaConf
can hold; the engine's checks validate it, so the command line and the Python API accept the same.
"""

from __future__ import annotations

import typing
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf needs typing generics

import attrs
from omegaconf import MISSING

from declarative_train.engine.settings import TrainerSettings

ACCELERATORS = ("auto", "cpu", "gpu", "tpu")
STRATEGIES = ("auto", "single", "ddp", "ddp_spawn", "fsdp", "xla")
#: Spellings of an objective's direction (Optuna's and the callbacks') -> ``max``/``min``.
DIRECTIONS = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


def omegaconf_mirror(settings: type, name: str) -> type:
    """An attrs class with the fields of ``settings`` typed for OmegaConf (unions become ``Any``).

    OmegaConf 2.3 holds ``int``, ``float``, ``bool``, ``str``, ``Optional`` of one of them and
    ``List`` (for ``tuple[str, ...]``), not ``int | float``; the mirror keeps each field's name
    and default, so overrides are checked against the engine's own field list.
    """
    hints = typing.get_type_hints(settings)

    def node_type(hint: Any) -> Any:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if not args:
            return hint
        if typing.get_origin(hint) is tuple and args[1:] == [Ellipsis]:
            return List[args[0]]  # type: ignore[valid-type]  # noqa: UP006 - OmegaConf reads typing.List
        if len(args) == 1 and type(None) in typing.get_args(hint):
            return Optional[args[0]]  # noqa: UP045 - OmegaConf reads typing.Optional
        return Any

    fields = {f.name: attrs.field(type=node_type(hints[f.name]), default=f.default) for f in attrs.fields(settings)}
    return attrs.make_class(name, fields, kw_only=True)


#: The ``trainer`` node: :class:`~declarative_train.engine.TrainerSettings` as OmegaConf types it.
TrainerConfig: Any = omegaconf_mirror(TrainerSettings, "TrainerConfig")


@attrs.define(kw_only=True)
class FSDPConfig:
    """``accelerator.strategy=fsdp``: how FSDP2 (``fully_shard``) shards the task."""

    wrap: Optional[List[str]] = None  # noqa: UP006, UP045 - OmegaConf reads typing generics
    """Class names of the submodules sharded as units (``None``: the repeated blocks, see ``distributed/fsdp.py``)."""
    reshard_after_forward: bool = True
    """Free the gathered parameters after forward (gather again in backward): less memory, more traffic."""
    cpu_offload: bool = False
    """Keep the sharded parameters, gradients and optimizer state in CPU memory (``CPUOffloadPolicy``)."""
    replicate: int = 1
    """HSDP: replicate over this many groups, shard within each (a 2-D mesh); must divide the world size."""
    state_dict_type: str = "sharded"
    """Checkpoints: ``sharded`` folders, each rank writing its shards (DCP); ``full``: single files of the
    gathered state, written by rank 0 (Lightning's FSDP ``state_dict_type``; its default is ``full``)."""
    rank0_init: bool = True
    """Only rank 0 builds the model with its weights; the other ranks build it on the meta device (no
    memory) and receive their shards from rank 0 after sharding. ``false``: every rank builds it whole."""


@attrs.define(kw_only=True)
class AcceleratorConfig:
    """Where and on how many processes the job runs."""

    name: str = "cpu"
    """``auto``, ``cpu``, ``gpu`` (CUDA) or ``tpu`` (torch-xla)."""
    devices: Any = 1
    """Number of devices, a list of device indices, -1 for all, or ``auto``."""
    num_nodes: int = 1
    """Number of machines."""
    strategy: str = "auto"
    """``auto``, ``single``, ``ddp``, ``ddp_spawn``, ``fsdp`` or ``xla``."""
    backend: str | None = None
    """torch.distributed backend (``None``: gloo on CPU, nccl on CUDA)."""
    timeout_s: int = 600
    """Timeout of collective operations, seconds."""
    find_unused_parameters: bool = False
    """Passed to DistributedDataParallel."""
    sync_batchnorm: bool = False
    """Convert BatchNorm layers to SyncBatchNorm under DDP."""
    rdzv_endpoint: str = "localhost:0"
    """Rendezvous ``host:port`` for multi-node runs (port 0: pick a free port, single node)."""
    max_restarts: int = 0
    """Elastic restarts of the worker group after a failure."""
    float32_matmul_precision: str | None = None
    """``highest``, ``high`` (TF32) or ``medium`` for ``torch.set_float32_matmul_precision``."""
    fsdp: FSDPConfig = FSDPConfig()
    """Settings of ``strategy=fsdp``."""


@attrs.define(kw_only=True)
class PrecisionConfig:
    """Numeric precision of the training step."""

    mode: str = "32"
    """``32``, ``64``, ``16-mixed``, ``bf16-mixed`` or ``bf16-true``."""


@attrs.define(kw_only=True)
class PathsConfig:
    """Where things are read and written."""

    root_dir: str = "."
    """The folder the command runs from."""
    data_dir: str = "${paths.root_dir}/data"
    """Where data modules that download or cache data keep it."""
    output_dir: str = "${hydra:runtime.output_dir}"
    """This run's folder (set by Hydra; workers receive it resolved)."""


@attrs.define(kw_only=True)
class SweepConfig:
    """How ``-m`` sweeps treat failures, resume, and name their jobs (ignored by single runs)."""

    keep_going: bool = True
    """A failed job does not stop the others (False: later jobs are skipped, Optuna stops)."""
    resume: bool = False
    """Re-run into an existing ``hydra.sweep.dir``: skip finished jobs, resume the rest from last.ckpt."""
    direction: str | None = None
    """``max``/``maximize`` or ``min``/``minimize`` for the objective (None: the monitoring callback's mode)."""
    job_overrides: list[str] = []
    """Set by dtrain in each sweep job: its own overrides (TensorBoard run name and hparams)."""


@attrs.define(kw_only=True)
class TuneConfig:
    """The learning-rate range test (``tune=lr_find``, ``optimizer.lr=auto``) and the batch-size
    search (``data.batch_size=auto``)."""

    mode: str | None = None
    """``lr_find``: run the range test, write ``lr_find.json``/``lr_find.png`` and exit (``None``: train)."""
    min_lr: float = 1e-7
    """The range test's first learning rate."""
    max_lr: float = 1.0
    """The range test's last learning rate (the ramp between them is exponential)."""
    num_steps: int = 100
    """Optimizer steps of the range test."""
    smoothing: float = 0.05
    """Weight of the newest loss in the smoothed loss (an exponential moving average, bias-corrected)."""
    divergence_factor: float = 4.0
    """Stop the range test once the smoothed loss exceeds this many times the best one."""
    suggestion: str = "steepest"
    """``steepest``: the lr where the smoothed loss falls fastest; ``min_loss``: a tenth of the lr of the lowest loss."""
    batch_size_start: int = 32
    """``data.batch_size=auto`` starts here and doubles."""
    batch_size_mode: str = "binsearch"
    """``power``: the largest power-of-two multiple of the start that fits; ``binsearch``: then refine
    between it and the first that did not; ``throughput``: the tried size with the most samples/s."""
    max_memory_gb: float | None = None
    """A batch size fits while one training step's memory stays under this (``None``: until out of memory
    on CUDA; on the CPU, until the train split's size)."""


@attrs.define(kw_only=True)
class TrainConfig:
    """The whole job. Component sections (``model``, ``data``, ...) are ``_target_`` nodes."""

    seed: int | None = 42
    """Seed for python, numpy and torch RNGs (``None``: do not seed)."""
    train: bool = True
    """Run fit."""
    test: bool = True
    """Run test after fit (on the best checkpoint when there is one)."""
    ckpt_path: str | None = None
    """Checkpoint to resume fit from (or to evaluate, for ``dtrain-eval``)."""
    resume: str | None = None
    """``auto``: resume fit from the newest ``last.ckpt`` under ``resume_dir`` (start fresh if none)."""
    resume_dir: str | None = None
    """Where ``resume=auto`` looks, recursively (``None``: this run's own folder)."""
    dry_run: bool = False
    """Validate and build everything, print the object graph, and exit without training."""
    task_name: str = "train"
    """Name of the job, used in log lines."""
    user_packages: list[str] = []
    """Extra module prefixes that ``_target_`` may import from."""
    optimized_metric: str | None = None
    """Metric returned to a Hydra sweeper (``None``: the checkpoint monitor)."""
    sweep: SweepConfig = SweepConfig()
    tune: TuneConfig = TuneConfig()
    trainer: Any = TrainerConfig()
    accelerator: AcceleratorConfig = AcceleratorConfig()
    precision: PrecisionConfig = PrecisionConfig()
    paths: PathsConfig = PathsConfig()
    model: Any = MISSING
    """The task (a ``declarative_train.tasks.Task``) with its network and loss."""
    data: Any = MISSING
    """The data module."""
    optimizer: Any = MISSING
    """A partial optimizer (``_partial_: true``); parameters are bound at build time."""
    scheduler: Any = None
    """A partial LR scheduler plus ``interval``/``frequency``/``monitor``; empty for none."""
    metrics: dict[str, Any] = {}
    """Metrics by name; logged as ``val/<name>`` and ``test/<name>``."""
    callbacks: dict[str, Any] = {}
    """Callbacks by name."""
    logger: dict[str, Any] = {}
    """Loggers by name."""
    profiler: Any = None
    """A profiler (``SimpleProfiler``, ``PyTorchProfiler``) run as the last callback; empty for none."""


@attrs.define(kw_only=True)
class EvalConfig(TrainConfig):
    """``dtrain-eval``: evaluate a checkpoint."""

    ckpt_path: str | None = MISSING
    """The checkpoint to evaluate (mandatory)."""

    split: str = "test"
    """``test`` or ``val``."""
    use_ckpt_config: bool = True
    """Take model/data/metrics/precision from the config stored in the checkpoint."""


@attrs.define(kw_only=True)
class PredictConfig(TrainConfig):
    """``dtrain-predict``: write a checkpoint's predictions on a data split to a file."""

    ckpt_path: str | None = MISSING
    """The checkpoint to predict with (mandatory)."""
    split: str = "predict"
    """The data module's split: ``predict`` (falls back to ``test``), ``test``, ``val`` or ``train``."""
    output: str | None = None
    """The file to write: ``.csv``, ``.jsonl`` or ``.parquet`` (``None``: ``predictions.csv`` in this command's run folder)."""
    use_ckpt_config: bool = True
    """Take model/data/metrics/precision from the config stored in the checkpoint."""


@attrs.define(kw_only=True)
class ExportConfig(TrainConfig):
    """``dtrain-export``: write a checkpoint's model as ONNX, a torch.export program, TorchScript or safetensors."""

    ckpt_path: str | None = MISSING
    """The checkpoint to export (mandatory)."""
    format: str = "onnx"
    """``onnx``, ``exported_program``, ``torchscript`` or ``safetensors``."""
    output: str | None = None
    """The file to write (``None``: ``model.<extension>`` in this command's run folder)."""
    opset: int = 18
    """The ONNX opset version."""
    input_shape: list[int] | None = None
    """One sample's shape without the batch dimension (``None``: taken from the data module)."""
    dtype: str = "float32"
    """The exported weights' and inputs' dtype: ``float32``, ``bfloat16`` or ``float16``."""
    tolerance: float | None = None
    """The largest max-abs difference to eager PyTorch accepted (``None``: 1e-5, 1e-2 for 16-bit)."""
    use_ckpt_config: bool = True
    """Take model/data/precision from the config stored in the checkpoint."""
