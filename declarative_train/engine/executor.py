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

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import attrs
import torch

from declarative_train.accelerators import Accelerator, CPUAccelerator
from declarative_train.checkpoint import CheckpointWriter, ShardedCheckpointWriter
from declarative_train.distributed import Distribution, SingleProcess
from declarative_train.engine.activation_checkpointing import apply_activation_checkpointing
from declarative_train.engine.batches import check_validation_interval
from declarative_train.engine.context import CheckpointProvider, TrainingContext
from declarative_train.engine.evaluation import Evaluator, stage_metrics
from declarative_train.engine.events import Event, EventBus
from declarative_train.engine.loaders import StageLoaders
from declarative_train.engine.loop import TrainingLoop, log_train_loss
from declarative_train.engine.loss_guard import LossGuard
from declarative_train.engine.optimization import Optimization
from declarative_train.engine.phases import PhaseTimer, instrument_fit
from declarative_train.engine.scheduling import SchedulerSpec
from declarative_train.engine.settings import TrainerSettings
from declarative_train.engine.state import LoopState
from declarative_train.engine.training_state import TrainingState, load_weights
from declarative_train.precision import Precision
from declarative_train.tasks import Task

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class Executor:
    """Runs a task on data with an optimizer, firing events that callbacks and loggers follow.

    Args:
        task: the model and its step logic.
        data: a :class:`~declarative_train.data.DataModule`.
        optimizer: a factory taking parameters (e.g. ``functools.partial(torch.optim.Adam, lr=1e-3)``).
        scheduler: a :class:`SchedulerSpec`, or ``None``.
        metrics: metrics by name, computed on validation and test as ``val/<name>``, ``test/<name>``.
        callbacks: objects with ``attach(context)``, and ``state_dict()``/``load_state_dict()`` for
            state that checkpoints keep (by the callback's name).
        loggers: objects with ``log_metrics(metrics, step)`` (rank zero only).
        accelerator / distribution / precision: device, processes, numerics (defaults: CPU, one
            process, float32). ``precision`` may be a mode string such as ``"bf16-mixed"``.
        settings: :class:`TrainerSettings`; or pass its fields as keyword arguments. Invalid
            values raise ``ValueError`` naming the setting and what it accepts.
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
        settings: TrainerSettings | None = None,
        seed: int = 0,
        **trainer_kwargs: Any,
    ) -> None:
        self.settings = attrs.evolve(settings or TrainerSettings(), **trainer_kwargs)
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
        self.events: EventBus[TrainingContext] = EventBus()
        self.state = LoopState()
        self.callbacks: dict[str, Any] = (
            dict(callbacks) if isinstance(callbacks, Mapping)
            else {type(cb).__name__: cb for cb in callbacks}
        )
        self.loaders = StageLoaders(data, self.settings, self.accelerator, self.distribution, seed)
        self.fast_dev_run = self.loaders.fast_dev_run
        self.loggers = list(loggers) if self.distribution.is_global_zero and not self.fast_dev_run else []
        # Every rank takes part in averaging the logged loss, so every rank knows whether it is logged.
        self._logs_train_loss = bool(loggers) and not self.fast_dev_run
        self.metric_definitions: dict[str, Any] = dict(metrics or {})
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        #: Extra entries stored in every checkpoint (the run layer adds the resolved config).
        self.checkpoint_extras: dict[str, Any] = {}
        self.checkpoint_writer: CheckpointWriter | ShardedCheckpointWriter = (
            ShardedCheckpointWriter(self.distribution.rank, self.distribution.barrier, self.distribution.broadcast_object,
                                    timeout=getattr(self.distribution, "timeout", None))
            if self.distribution.shards_checkpoints else CheckpointWriter())
        self.tested_ckpt_path: str | None = None
        self._set_up = False

    # ---------------------------------------------------------------- public entry points
    def fit(self, ckpt_path: str | None = None) -> None:
        """Train for ``max_epochs``/``max_steps``, validating as configured."""
        self.setup()
        if ckpt_path:
            self.load_checkpoint(ckpt_path)
        if self._train_loader is None:
            raise ValueError(f"{type(self.data).__name__} has no 'train' split to fit on")
        self.state.stage = "fit"
        max_epochs = 1 if self.fast_dev_run else self.settings.max_epochs
        try:
            self.events.fire(Event.FIT_START, self)
            while not self.state.should_stop:
                if max_epochs >= 0 and self.state.epoch >= max_epochs:
                    break
                self._loop.run_epoch(self._train_loader)
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
            self._load_weights(ckpt_path)
        return self._evaluator.run("val")

    def test(self, ckpt_path: str | None = "best") -> dict[str, float]:
        """Run the test split. ``ckpt_path="best"`` loads the best checkpoint first when one exists.

        A callback whose ``tests_final_weights`` is true (SWA, once fit put the averaged weights in
        the model) makes ``"best"`` test the model as it is.
        """
        self.setup()
        if ckpt_path == "best" and any(getattr(cb, "tests_final_weights", False) for cb in self.callbacks.values()):
            ckpt_path = None
        path = self.best_model_path if ckpt_path == "best" else ckpt_path
        if path:
            self._load_weights(path)
        self.tested_ckpt_path = path
        return self._evaluator.run("test")

    def predict(self, split: str = "predict") -> list[Any]:
        """Return ``task.predict_step`` outputs for every batch of ``split``, in the split's order.

        Every split is served in order, each row once, as evaluated: the train split too (not
        through the shuffling train loader; image folders apply their evaluation transforms).
        With several ranks each rank predicts its ordered shard (positions ``rank, rank +
        world_size, ...``).
        """
        self.setup()
        self.task.eval()
        outputs = []
        with torch.no_grad():
            for batch_idx, batch in enumerate(self.loaders.in_order(split)):
                batch = self._prepare_batch(batch)
                with self.precision.autocast():
                    outputs.append(self.task.predict_step(batch, batch_idx))
        return outputs

    # ---------------------------------------------------------------- what subscribers use
    @property
    def device(self) -> torch.device:
        """The device the task runs on."""
        return self.accelerator.device

    @property
    def checkpoint_callback(self) -> CheckpointProvider | None:
        """The callback that keeps the run's checkpoints (the first :class:`CheckpointProvider`)."""
        return next((cb for cb in self.callbacks.values() if isinstance(cb, CheckpointProvider)), None)

    @property
    def best_model_path(self) -> str | None:
        """The best checkpoint the checkpoint callback saved (``None`` without one)."""
        provider = self.checkpoint_callback
        return str(provider.best_model_path) if provider is not None and provider.best_model_path else None

    def batches(self, split: str) -> Iterator[Any]:
        """The batches of ``split`` a stage runs (its limits applied), on the device, ready for a step.

        For subscribers that need another pass over a split (SWA's BatchNorm statistics).
        """
        self.setup()
        loader = self.loaders.get(split)
        count = self.loaders.count(split, loader)
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= count:
                break
            yield self._prepare_batch(batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Send scalar metrics to every logger at ``step`` (default: the global step)."""
        step = self.state.global_step if step is None else step
        for logger in self.loggers:
            logger.log_metrics(dict(metrics), step)

    def request_stop(self, reason: str) -> None:
        """End fit after the current step, recording ``reason`` (the first request's reason is kept)."""
        if not self.state.should_stop:
            self.state.should_stop, self.state.stop_reason = True, reason

    def higher_is_better(self, name: str) -> bool | None:
        """Whether a larger value of the logged metric ``name`` (``val/acc``, ``train/loss``) is better.

        Losses are lower-is-better; ``<stage>/<metric>`` takes the configured metric's
        ``higher_is_better``; anything else is unknown (``None``).
        """
        key = name.rpartition("/")[2]
        if key == "loss":
            return False
        metric = self.metric_definitions.get(key)
        return getattr(metric, "higher_is_better", None) if metric is not None else None

    def instrument(self, timer: PhaseTimer) -> Callable[[], None]:
        """Time fit's parts by phase with ``timer`` (profilers); return the call that removes the timing.

        See :mod:`declarative_train.engine.phases`; without it, fit runs no timing code.
        """
        self.setup()
        return instrument_fit(timer, self._loop, self.events, self)

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(
        self, *paths: str, background: bool = False, then: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save the complete training state to each path (serialised once, written atomically).

        Under a distribution that shards checkpoints (FSDP) each path is a folder every rank writes
        its shards into (``checkpoint.sharded``). The files or folders are in place when this
        returns, unless ``background``: then the state is captured now and written on a thread
        while training goes on (:meth:`flush_checkpoints` waits for it; fit does at its end).
        On rank zero, ``then`` runs once the files are in place, and ``on_failure`` before a failed
        background write's error is raised (at the next save or flush). Raises instead if a
        training loss since the last check was not finite.
        """
        self.setup()
        self._loss_guard.check(self)
        distribution = self.distribution
        # Sharded checkpoints: every rank writes its shards. Otherwise rank zero writes, and with several
        # ranks every rank collects (taking the state is a collective: RNG states, FSDP's full state).
        # Every rank calls this at the same checkpoint points with the same paths.
        writes = bool(paths) and (distribution.is_global_zero or distribution.shards_checkpoints)
        if writes or (paths and distribution.gathers_state):
            state = self.accelerator.checkpoint_state(self.training_state.collect())
            if writes:
                self.checkpoint_writer.write(state, paths, background=background, then=then, on_failure=on_failure)
        if not background:
            self.distribution.barrier()  # other ranks may read these files next

    def wait_for_checkpoints(self) -> None:
        """Wait for a background checkpoint write; raise its error if it failed."""
        self.checkpoint_writer.wait()

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
        self.training_state.restore(path)

    def _load_weights(self, path: str) -> None:
        self.checkpoint_writer.wait()
        load_weights(unwrapped(self.task), path, self.distribution)

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        """Start the device and process group, load data, build the optimizer (once; fit/test call it)."""
        if self._set_up:
            return
        self.accelerator.setup()
        self.distribution.setup(self.accelerator.device)
        self.data.setup()
        placed = self.distribution.places_model  # FSDP: unit by unit as it shards (meta-device ranks: their shards)
        model = self.precision.convert_module(self.task if placed else self.accelerator.prepare_model(self.task))
        if self.settings.activation_checkpointing:  # before compile and the distribution's wrapping
            apply_activation_checkpointing(model, self.settings.activation_checkpointing)
        if self.settings.compile:
            model.compile()
        self.task = model  # type: ignore[assignment]
        training_step = self.distribution.wrap_training_step(self.task)
        self._train_loader = self.loaders.get("train") if self.data.has_split("train") else None
        self.state.num_train_batches = self.loaders.count("train", self._train_loader)
        val_loader = self.loaders.get("val") if self.loaders.has("val") else None
        self.state.num_val_batches = self.loaders.count("val", val_loader)
        if self.state.num_val_batches and not self.fast_dev_run:
            check_validation_interval(self.settings.val_check_interval, self.settings.check_val_every_n_epoch,
                                      self.state.num_train_batches)
        self.optimizer = self.optimizer_factory(self.task.parameters())
        if self.scheduler_spec is not None:
            self.scheduler = self.scheduler_spec.build(
                self.optimizer, self.loaders.estimated_steps(self.state.num_train_batches))
        optimization = Optimization(self.optimizer, self.scheduler, self.scheduler_spec, self.settings,
                                    self.precision, self.accelerator)
        self.training_state = TrainingState(
            model=unwrapped(self.task), optimizer=self.optimizer, scheduler=self.scheduler,
            precision=self.precision, loop=self.state, device=self.accelerator.device,
            sampler=self.loaders.train_sampler, callbacks=self.callbacks, extras=self.checkpoint_extras,
            distribution=self.distribution,
        )
        self._evaluator = Evaluator(self, self.loaders, stage_metrics(self.metric_definitions, self.device),
                                    prepare=self._prepare_batch, precision=self.precision,
                                    accelerator=self.accelerator, distribution=self.distribution)
        self._loss_guard = LossGuard(self.settings.log_every_n_steps, self.precision.scaler is not None)
        self._loop = TrainingLoop(self, loaders=self.loaders, training_step=training_step,
                                  optimization=optimization, loss_guard=self._loss_guard, evaluator=self._evaluator,
                                  prepare=self._prepare_batch, precision=self.precision,
                                  accelerator=self.accelerator, distribution=self.distribution)
        self._subscribe()
        self._set_up = True

    def _subscribe(self) -> None:
        every_log = self.settings.log_every_n_steps
        self._loss_guard.attach(self)  # before the callbacks: an epoch's check runs before anything saves
        self.events.on(Event.STEP_END, self._watch_accelerator, every=every_log)
        for callback in self.callbacks.values():
            if self.fast_dev_run and not getattr(callback, "runs_in_fast_dev_run", True):
                continue
            callback.attach(self)
        for logger in self.loggers:
            logger.setup()
        if self._logs_train_loss:
            self.events.on(Event.STEP_END, log_train_loss, every=every_log)

    def _watch_accelerator(self, _: TrainingContext) -> None:
        self.accelerator.on_logging_step(self.state.global_step)

    @property
    def train_sampler(self) -> Any:
        """The train loader's resumable sampler, when the loader uses one."""
        return self.loaders.train_sampler

    def _prepare_batch(self, batch: Any) -> Any:
        if not self.accelerator.loader_moves_data:
            batch = self.accelerator.to_device(batch)
        return self.precision.convert_input(batch)


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The task inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)
