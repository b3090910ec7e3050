"""The executor: fit / validate / test / predict for any :class:`~declarative_train.tasks.Task`.

It knows nothing about Hydra, files or TensorBoard: devices, processes and precision are objects
it calls, and everything else (checkpoints, logging, progress, early stopping) subscribes to its
events. Usable without Hydra::

    ex = Executor(task=task, data=datamodule, optimizer=partial(torch.optim.Adam, lr=1e-3),
                  max_epochs=5)
    ex.fit()
    results = ex.test()
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import attrs
import torch

from declarative_train.accelerators import Accelerator, CPUAccelerator
from declarative_train.config.schema import TrainerConfig
from declarative_train.data.resumable import ResumableSampler, train_loader
from declarative_train.distributed import Distribution, SingleProcess
from declarative_train.engine import checkpointing
from declarative_train.engine.batches import (
    fast_dev_run_batches,
    limit_batches,
    validation_interval,
)
from declarative_train.engine.ckpt_writer import CheckpointWriter
from declarative_train.engine.events import Event, EventBus
from declarative_train.engine.loss_guard import LossGuard
from declarative_train.engine.scheduling import SchedulerSpec, is_plateau
from declarative_train.engine.state import LoopState
from declarative_train.precision import Precision
from declarative_train.tasks import StepOutput, Task

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
_LOW_PRECISION = (torch.float16, torch.bfloat16)


class Executor:
    """Runs a task on data with an optimizer, firing events that callbacks and loggers follow.

    Args:
        task: the model and its step logic.
        data: a :class:`~declarative_train.data.DataModule`.
        optimizer: a factory taking parameters (e.g. ``functools.partial(torch.optim.Adam, lr=1e-3)``).
        scheduler: a :class:`SchedulerSpec`, or ``None``.
        metrics: metrics by name, computed on validation and test as ``val/<name>``, ``test/<name>``.
        callbacks: objects with ``attach(executor)``, ``state_dict()``, ``load_state_dict()``.
        loggers: objects with ``log_metrics(metrics, step)`` (rank zero only).
        accelerator / distribution / precision: device, processes, numerics (defaults: CPU, one
            process, float32). ``precision`` may be a mode string such as ``"bf16-mixed"``.
        settings: a :class:`TrainerConfig`; or pass its fields as keyword arguments.
    """

    def __init__(
        self,
        *,
        task: Task,
        data: Any,
        optimizer: OptimizerFactory = partial(torch.optim.Adam, lr=1e-3),  # noqa: B008
        scheduler: SchedulerSpec | None = None,
        metrics: Mapping[str, Any] | None = None,
        callbacks: Mapping[str, Any] | Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        accelerator: Accelerator | None = None,
        distribution: Distribution | None = None,
        precision: Precision | str = "32",
        settings: TrainerConfig | None = None,
        seed: int = 0,
        **trainer_kwargs: Any,
    ) -> None:
        self.settings = attrs.evolve(settings or TrainerConfig(), **trainer_kwargs)
        self.accelerator = accelerator or CPUAccelerator()
        self.distribution = distribution or SingleProcess()
        if isinstance(precision, str):
            precision = Precision(precision, self.accelerator.autocast_device_type)
        self.precision = precision
        self.task = task
        self.data = data
        self.optimizer_factory = optimizer
        self.scheduler_spec = scheduler
        self.seed = seed
        self.events = EventBus()
        self.state = LoopState()
        self.callbacks: dict[str, Any] = (
            dict(callbacks) if isinstance(callbacks, Mapping)
            else {type(cb).__name__: cb for cb in callbacks}
        )
        self.fast_dev_run = fast_dev_run_batches(self.settings.fast_dev_run)
        self.loggers = list(loggers) if self.distribution.is_global_zero and not self.fast_dev_run else []
        # Every rank takes part in averaging the logged loss, so every rank knows whether it is logged.
        self._logs_train_loss = bool(loggers) and not self.fast_dev_run
        self._metric_specs = dict(metrics or {})
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self._set_up = False
        self._loaders: dict[str, Any] = {}
        #: The train loader's sampler when the loader uses it (resuming then skips without loading).
        self.train_sampler: ResumableSampler | None = None
        #: Extra entries stored in every checkpoint (the run layer adds the resolved config).
        self.checkpoint_extras: dict[str, Any] = {}
        self.checkpoint_writer = CheckpointWriter()
        self.tested_ckpt_path: str | None = None
        self._stage_metrics: dict[str, Any] = {}

    # ---------------------------------------------------------------- public entry points
    def fit(self, ckpt_path: str | None = None) -> None:
        """Train for ``max_epochs``/``max_steps``, validating as configured."""
        self.setup()
        if ckpt_path:
            self.load_checkpoint(ckpt_path)
        self.state.stage = "fit"
        s = self.settings
        max_epochs = 1 if self.fast_dev_run else s.max_epochs
        try:
            self.events.fire(Event.FIT_START, self)
            while not self.state.should_stop:
                if max_epochs >= 0 and self.state.epoch >= max_epochs:
                    break
                self._train_epoch()
                if not self.state.should_stop or self.state.batch_idx >= self.state.num_train_batches:
                    self.state.epoch += 1
                    self.state.batch_idx, self.state.epoch_finished = 0, False
            self.events.fire(Event.FIT_END, self)
            self.flush_checkpoints()
        except BaseException:
            self.events.fire(Event.EXCEPTION, self)
            self.checkpoint_writer.close(quietly=True)  # the last good checkpoint lands; this error wins
            raise

    def validate(self, ckpt_path: str | None = None) -> dict[str, float]:
        """Run the validation split once (with the weights of ``ckpt_path`` if given)."""
        self.setup()
        if ckpt_path:
            self.checkpoint_writer.wait()
            checkpointing.load_weights(self, ckpt_path)
        return self._evaluate("val")

    def test(self, ckpt_path: str | None = "best") -> dict[str, float]:
        """Run the test split. ``ckpt_path="best"`` loads the best checkpoint first when one exists."""
        self.setup()
        path = self.best_model_path if ckpt_path == "best" else ckpt_path
        if path:
            self.checkpoint_writer.wait()
            checkpointing.load_weights(self, path)
        self.tested_ckpt_path = path
        return self._evaluate("test")

    def predict(self, split: str = "predict") -> list[Any]:
        """Return ``task.predict_step`` outputs for every batch of ``split``."""
        self.setup()
        self.task.eval()
        outputs = []
        with torch.no_grad():
            for batch_idx, batch in enumerate(self._loader(split)):
                batch = self._prepare_batch(batch)
                with self.precision.autocast():
                    outputs.append(self.task.predict_step(batch, batch_idx))
        return outputs

    @property
    def best_model_path(self) -> str | None:
        """The best checkpoint a checkpoint callback saved (``None`` without one)."""
        for callback in self.callbacks.values():
            path = getattr(callback, "best_model_path", None)
            if path:
                return str(path)
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Send scalar metrics to every logger at ``step`` (default: the global step)."""
        step = self.state.global_step if step is None else step
        for logger in self.loggers:
            logger.log_metrics(dict(metrics), step)

    def save_checkpoint(
        self, *paths: str, background: bool = False, then: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save the complete training state to each path (serialised once, written atomically).

        The files are in place when this returns, unless ``background``: then the state is
        captured now and written on a thread while training goes on (:meth:`flush_checkpoints`
        waits for it; fit does at its end). On rank zero, ``then`` runs once the files are in
        place, and ``on_failure`` before a failed background write's error is raised (at the
        next save or flush). Raises instead if a training loss since the last check was not finite.
        """
        if self._set_up:
            self._loss_guard.check(self)
        checkpointing.save(self, paths, background=background, then=then, on_failure=on_failure)
        if not background:
            self.distribution.barrier()  # other ranks may read these files next

    def flush_checkpoints(self) -> None:
        """Wait until every checkpoint write is in place, on every rank; raise a failed write's error.

        Also stops the writer thread (the next background save starts another).
        """
        self.checkpoint_writer.close()
        self.distribution.barrier()  # other ranks read rank zero's files next (test on the best one)

    def load_checkpoint(self, path: str) -> None:
        """Restore the complete training state saved by :meth:`save_checkpoint`."""
        self.setup()
        self.checkpoint_writer.wait()
        checkpointing.restore(self, path)

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        """Start the device and process group, load data, build the optimizer (once; fit/test call it)."""
        if self._set_up:
            return
        self.accelerator.setup()
        self.accelerator.attach(self)
        self.distribution.setup(self.accelerator.device)
        self.data.setup()
        model = self.precision.convert_module(self.accelerator.prepare_model(self.task))
        if self.settings.compile:
            model.compile()
        self.task = model  # type: ignore[assignment]
        self._training_step = self.distribution.wrap_training_step(self.task)
        self._train_loader = self._loader("train") if self.data.has_split("train") else None
        self.state.num_train_batches = self._count("train", self._train_loader)
        val_loader = self._loader("val") if self.data.has_split("val") or self._overfitting else None
        self.state.num_val_batches = self._count("val", val_loader)
        self.optimizer = self.optimizer_factory(self.task.parameters())
        if self.scheduler_spec is not None:
            self.scheduler = self.scheduler_spec.build(self.optimizer, self._estimated_steps())
        self._stage_metrics = self._build_metrics()
        self._loss_guard = LossGuard(self.settings.log_every_n_steps, self.precision.scaler is not None)
        self._loss_guard.attach(self)
        for callback in self.callbacks.values():
            if self.fast_dev_run and not getattr(callback, "runs_in_fast_dev_run", True):
                continue
            callback.attach(self)
        for logger in self.loggers:
            logger.setup()
        if self._logs_train_loss:
            self.events.on(Event.STEP_END, _log_train_loss, every=self.settings.log_every_n_steps)
        self._set_up = True

    def _build_metrics(self) -> dict[str, Any]:
        if not self._metric_specs:
            return {}
        from declarative_train.metrics import MetricCollection

        base = MetricCollection(dict(self._metric_specs)).to(self.accelerator.device)
        return {stage: base.clone(prefix=f"{stage}/") for stage in ("val", "test")}

    @property
    def _overfitting(self) -> bool:
        return self.settings.overfit_batches not in (0, 0.0)

    def _loader(self, split: str) -> Any:
        """The (cached) loader for ``split``; built once so persistent workers survive epochs."""
        if split not in self._loaders:
            self._loaders[split] = self._build_loader(split)
        return self._loaders[split]

    def _build_loader(self, split: str) -> Any:
        overfit = self._overfitting
        if overfit and split == "val":
            split = "train"  # overfitting validates on the very batches it trains on
        shuffle = split == "train" and not overfit
        sampler = self.distribution.sampler(self.data.datasets[split], shuffle=shuffle, seed=self.seed) \
            if split in self.data.datasets else None
        if split != "train":
            return self.accelerator.wrap_loader(self.data.dataloader(split, shuffle=shuffle, sampler=sampler))
        # Under DDP the order comes from the distributed sampler; this seed then only seeds the
        # DataLoader workers, which should differ per rank (augmentations).
        loader, self.train_sampler = train_loader(self.data, sampler, shuffle=shuffle,
                                                  seed=self.seed + self.distribution.rank)
        return self.accelerator.wrap_loader(loader)

    def _count(self, split: str, loader: Any) -> int:
        if loader is None:
            return 0
        s = self.settings
        if self.fast_dev_run:
            return min(len(loader), self.fast_dev_run)
        if self._overfitting and split in ("train", "val"):
            return limit_batches(len(loader), s.overfit_batches)
        limit = {"train": s.limit_train_batches, "val": s.limit_val_batches, "test": s.limit_test_batches}
        return limit_batches(len(loader), limit.get(split, 1.0))

    def _estimated_steps(self) -> int:
        per_epoch = -(-self.state.num_train_batches // self.settings.accumulate_grad_batches)
        epochs = 1 if self.fast_dev_run else self.settings.max_epochs
        by_epochs = per_epoch * epochs if epochs >= 0 else None
        if self.settings.max_steps >= 0:
            return min(self.settings.max_steps, by_epochs) if by_epochs is not None else self.settings.max_steps
        return by_epochs or 1

    def _prepare_batch(self, batch: Any) -> Any:
        if not self.accelerator.loader_moves_data:
            batch = self.accelerator.to_device(batch)
        return self.precision.convert_input(batch)

    # ---------------------------------------------------------------- training
    def _train_epoch(self) -> None:
        state, s = self.state, self.settings
        loader = self._train_loader
        if loader is None:
            raise ValueError(f"{type(self.data).__name__} has no 'train' split to fit on")
        n = state.num_train_batches
        accumulate = s.accumulate_grad_batches
        validate_now = self._validates_in_epoch(state.epoch)
        val_every = validation_interval(n, s.val_check_interval)
        max_steps = 1 if self.fast_dev_run else s.max_steps
        self.task.train()
        start = state.batch_idx  # > 0 when resuming mid-epoch
        if not start or state.epoch_loss_sum is None:
            state.epoch_loss_sum = torch.zeros((), device=self.accelerator.device)
        loss_sum = state.epoch_loss_sum
        state.epoch_finished = False
        self.events.fire(Event.EPOCH_START, self)
        for batch_idx, batch in self._epoch_batches(loader, start):
            if batch_idx >= n:
                break
            batch = self._prepare_batch(batch)
            boundary = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == n
            with self.distribution.no_sync(self._training_step) if not boundary else _NULL:
                with self.precision.autocast():
                    loss = self._training_step(batch, batch_idx)
                self.precision.backward(loss / accumulate if accumulate > 1 else loss)
            loss = loss.detach()
            # A GradScaler skips steps with non-finite losses; keep them out of the epoch mean.
            loss_sum += loss if self.precision.scaler is None else loss.nan_to_num(0.0, 0.0, 0.0)
            state.batch_idx = batch_idx + 1
            self._loss_guard.record(loss, state)  # keeps a reference; checked on logging steps
            if boundary:
                self._optimizer_step()
                state.global_step += 1
                state.loss = loss
                self.events.fire(Event.STEP_END, self)
                self._step_scheduler("step")
                if max_steps >= 0 and state.global_step >= max_steps:
                    state.should_stop, state.stop_reason = True, f"max_steps={max_steps} reached"
            self.accelerator.mark_step()
            if validate_now and state.batch_idx % val_every == 0:
                self._evaluate("val")
                self.task.train()
            if boundary:
                self.events.fire(Event.STEP_CHECKPOINT, self)
            if state.should_stop:
                break
        # One host sync per epoch: the mean training loss over all ranks, for monitors and the log.
        if state.batch_idx:
            state.metrics["train/loss"] = float(self.distribution.reduce_sum(loss_sum)) / (
                state.batch_idx * self.distribution.world_size)
        if state.batch_idx >= n:
            self._step_scheduler("epoch")
            state.epoch_finished = True
        self.events.fire(Event.EPOCH_END, self)
        self.events.fire(Event.EPOCH_CHECKPOINT, self)

    def _epoch_batches(self, loader: Any, start: int) -> Iterable[tuple[int, Any]]:
        """``(batch_idx, batch)`` of this epoch from ``start``, in the order fixed by (seed, epoch)."""
        epoch = self.state.epoch
        if self.train_sampler is not None:
            self.train_sampler.start_epoch(epoch, skip_batches=start)
            return enumerate(loader, start)
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        return itertools.islice(enumerate(loader), start, None)  # loads the skipped batches

    def _validates_in_epoch(self, epoch: int) -> bool:
        if self.state.num_val_batches == 0:
            return False
        return self.fast_dev_run > 0 or (epoch + 1) % self.settings.check_val_every_n_epoch == 0

    def _optimizer_step(self) -> None:
        optimizer = self.optimizer
        assert optimizer is not None
        clip = self.settings.gradient_clip_val
        if clip is not None:
            self.precision.unscale(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if self.settings.gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, clip)
            else:
                torch.nn.utils.clip_grad_norm_(params, clip)
        self.precision.optimizer_step(optimizer, self.accelerator.optimizer_step)
        optimizer.zero_grad(set_to_none=True)

    def _step_scheduler(self, interval: str) -> None:
        spec, scheduler = self.scheduler_spec, self.scheduler
        if scheduler is None or spec is None or spec.interval != interval:
            return
        count = self.state.global_step if interval == "step" else self.state.epoch + 1
        if count % spec.frequency:
            return
        if is_plateau(scheduler):
            value = self.state.metrics.get(spec.monitor or "val/loss")
            if value is None:
                log.warning("scheduler monitor %r has no value yet; ReduceLROnPlateau not stepped", spec.monitor)
                return
            scheduler.step(value)
        else:
            scheduler.step()

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, stage: str) -> dict[str, float]:
        loader = self._loader(stage)
        n = self._count(stage, loader)
        outer_stage, self.state.stage = self.state.stage, stage
        metrics = self._stage_metrics.get(stage)
        if metrics is not None:
            metrics.reset()
        self.task.eval()
        self.events.fire(Event.EVAL_START, self)
        totals = self.distribution.reduce_sum(self._eval_batches(stage, loader, n, metrics))
        # Host sync at the end of evaluation only.
        evaluated = bool(totals[1] > 0)  # the same on every rank, so all of them sync the metrics
        results = {f"{stage}/loss": float(totals[0] / totals[1])} if evaluated else {}
        if metrics is not None and evaluated:
            results.update({k: float(v) for k, v in metrics.compute().items() if v.numel() == 1})
        self.state.metrics.update(results)
        self.log_metrics(results)
        self.events.fire(Event.EVAL_END, self)
        self.state.stage = outer_stage
        return results

    def _eval_batches(self, stage: str, loader: Any, n: int, metrics: Any) -> torch.Tensor:
        """Run ``n`` evaluation batches; return ``[loss sum, sample count]`` on the device.

        Metric inputs are checked on the first batch only: each check costs a host sync.
        """
        step = self.task.test_step if stage == "test" else self.task.validation_step
        device = self.accelerator.device
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        count = torch.zeros((), device=device, dtype=torch.float64)
        checked: list[Any] = []
        try:
            with torch.no_grad():
                for batch_idx, batch in enumerate(loader):
                    if batch_idx >= n:
                        break
                    batch = self._prepare_batch(batch)
                    with self.precision.autocast():
                        out = _as_step_output(step(batch, batch_idx))
                    size = len(out.target) if out.target is not None and out.target.ndim else 1
                    loss_sum += out.loss.detach().double() * size
                    count += size
                    if metrics is not None and out.preds is not None:
                        preds = out.preds.float() if out.preds.dtype in _LOW_PRECISION else out.preds
                        metrics.update(preds, out.target)
                        if batch_idx == 0:
                            checked = _skip_input_checks(metrics)
                    self.accelerator.mark_step()
        finally:
            for metric in checked:
                metric.validate_args = True
        return torch.stack([loss_sum, count])


_NULL = contextlib.nullcontext()


def _as_step_output(out: Any) -> StepOutput:
    if isinstance(out, StepOutput):
        return out
    if isinstance(out, Mapping):
        return StepOutput(out["loss"], out.get("preds"), out.get("target"))
    if isinstance(out, torch.Tensor):
        return StepOutput(out)
    raise TypeError(f"an evaluation step must return StepOutput, a dict or a loss tensor, got {type(out).__name__}")


def _skip_input_checks(metrics: Any) -> list[Any]:
    """Turn off per-batch input checks (each costs a host sync) once the first batch passed them.

    Returns the metrics to switch back on after the evaluation.
    """
    switched = [m for m in metrics.values() if getattr(m, "validate_args", False)]
    for metric in switched:
        metric.validate_args = False
    return switched


def _log_train_loss(executor: Executor) -> None:
    loss = executor.state.loss
    if loss is not None:
        distribution = executor.distribution
        mean = distribution.reduce_sum(loss) / distribution.world_size if distribution.world_size > 1 else loss
        executor.log_metrics({"train/loss": float(mean)})  # host sync: logging steps only
