"""Resolved config -> components -> executor. The only place that calls ``instantiate``."""

from __future__ import annotations

import logging
import os
import random
import re
from typing import Any

import attrs
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from declarative_train.accelerators import Accelerator, accelerator_class, resolve_accelerator_name
from declarative_train.accelerators.cuda import parse_cuda_devices
from declarative_train.callbacks.model_summary import ModelSummary, summarize
from declarative_train.config.data_shapes import apply_shapes
from declarative_train.config.targets import SCHEDULER_KEYS, locate
from declarative_train.data.shapes import SHAPE_KEYS, ReportsShapes
from declarative_train.distributed import DDPDistribution, Distribution, SingleProcess
from declarative_train.distributed.env import detect
from declarative_train.engine import Executor, TrainerSettings
from declarative_train.engine.activation_checkpointing import check_class_names
from declarative_train.engine.scheduling import SchedulerSpec
from declarative_train.errors import (
    ArgumentError,
    ConfigError,
    ConfigIssue,
    MissingExtra,
    SettingsError,
)
from declarative_train.precision import Precision
from declarative_train.tasks import Task

log = logging.getLogger(__name__)


@attrs.define
class Components:
    """Everything a run is made of, built from the config and not yet started."""

    task: Task
    data: Any
    optimizer: Any
    scheduler: SchedulerSpec | None
    metrics: dict[str, Any]
    callbacks: dict[str, Any]
    loggers: dict[str, Any]
    accelerator: Accelerator
    distribution: Distribution
    precision: Precision
    settings: TrainerSettings
    seed: int

    def executor(self) -> Executor:
        """An executor wired from these components."""
        return Executor(
            task=self.task, data=self.data, optimizer=self.optimizer, scheduler=self.scheduler,
            metrics=self.metrics, callbacks=self.callbacks, loggers=list(self.loggers.values()),
            accelerator=self.accelerator, distribution=self.distribution, precision=self.precision,
            settings=self.settings, seed=self.seed,
        )


def seed_everything(seed: int | None, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic algorithms."""
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def _make(node: Any, root: Any = None) -> Any:
    """Instantiate ``node`` (a node of the config ``root``); a constructor's ValueError/TypeError
    becomes a :class:`ConfigError` naming the key path (and the argument, when the error names
    one of the node's keys)."""
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        issue = _constructor_issue(root, exc)
        if issue is None:
            raise
        raise ConfigError([issue]) from None


#: Component sections built by :func:`check_components` (optimizer and scheduler are partials).
COMPONENT_SECTIONS = ("model", "data", "metrics", "callbacks", "logger", "profiler")


def check_components(cfg: DictConfig) -> None:
    """Build every component once on the meta device (no memory, no data) to catch bad arguments.

    A constructor that rejects its arguments (``data.batch_size=-4``, ``model.net.dropout=2``)
    raises :class:`ConfigError` naming the key before any process or file exists; other failures
    (a constructor that cannot run on the meta device) are left to the real build. The built model
    also checks ``trainer.activation_checkpointing`` (class names it must have).
    """
    issues: list[ConfigIssue] = []
    with torch.device("meta"):
        for section in COMPONENT_SECTIONS:
            node = cfg.get(section)
            single = section in ("model", "data", "profiler")
            nodes = ([node] if node else []) if single else list((node or {}).values())
            for child in nodes:
                try:
                    component = _make(child, cfg)
                    if section == "model":  # a trainer setting that names the model's module classes
                        check_class_names(component, OmegaConf.select(cfg, "trainer.activation_checkpointing") or [])
                        _check_fsdp_wrap(component, cfg)
                except ConfigError as exc:
                    issues += exc.issues
                except SettingsError as exc:
                    issues.append(ConfigIssue(f"trainer.{exc.setting}", exc.message))
                except Exception:  # noqa: S112 - not an argument problem; the real build reports it
                    continue
    if issues:
        raise ConfigError(issues)


def _check_fsdp_wrap(model: Any, cfg: DictConfig) -> None:
    """``accelerator.fsdp.wrap`` names module classes ``model`` has (under ``strategy=fsdp``)."""
    if OmegaConf.select(cfg, "accelerator.strategy") != "fsdp":
        return
    # Imported here: torch's FSDP modules load only for strategy=fsdp.
    from declarative_train.distributed.fsdp import wrap_issue

    issue = wrap_issue(model, OmegaConf.select(cfg, "accelerator.fsdp.wrap"))
    if issue is not None:
        raise ConfigError([issue])


def _constructor_issue(root: Any, exc: InstantiationException) -> ConfigIssue | None:
    cause = exc.__cause__
    text = str(exc)  # Hydra ends it with "full_key: <the failing node's key path>"
    path = text.rpartition("full_key: ")[2].strip() if "full_key: " in text else ""
    if isinstance(cause, MissingExtra):
        return ConfigIssue(path, str(cause))
    if not isinstance(cause, (ValueError, TypeError)) or isinstance(cause, ConfigError):
        return None
    failing = OmegaConf.select(root, path) if path and OmegaConf.is_config(root) else None
    target = failing.get("_target_") if isinstance(failing, DictConfig) else None
    message = str(cause)
    argument = cause.argument if isinstance(cause, ArgumentError) else _named_key(failing, message)
    where = f"{path}.{argument}" if path and argument else (path or argument or "")
    owner = str(target).rpartition(".")[2] if target else ""
    return ConfigIssue(where, message if not owner or message.startswith(owner) else f"{owner}: {message}")


def _named_key(node: Any, message: str) -> str | None:
    """The argument of ``node`` that ``message`` names (``argument `x```), or the only one it mentions."""
    if not isinstance(node, DictConfig):
        return None
    quoted = re.search(r"argument [`'\"]?(\w+)", message)
    if quoted and quoted.group(1) in node:
        return quoted.group(1)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    named = [str(key) for key in node if not str(key).startswith("_") and str(key) in words]
    return named[0] if len(named) == 1 else None


def infer_data_shapes(cfg: DictConfig) -> None:
    """Fill ``cfg.data``'s null shape keys (``num_features``, ``num_classes``, ...) from the data.

    Only data modules that implement :class:`~declarative_train.data.shapes.ReportsShapes` are
    asked; they read their data to answer. Problems (a file that is missing, an unknown column, a
    value that contradicts the data, a classifier on a regression target, a missing extra) raise
    :class:`ConfigError` naming the ``data.<key>``. Called by ``dtrain`` after validation, so the
    launching process resolves the values once and workers read them from the resolved config.
    """
    target = cfg.data.get("_target_") if isinstance(cfg.get("data"), DictConfig) else None
    try:
        cls = locate(str(target)) if target else None
    except ImportError:
        return  # validation reports it
    if not (isinstance(cls, type) and issubclass(cls, ReportsShapes)):
        return
    data = _make(cfg.data, cfg)
    try:
        found = data.data_shapes()
    except ArgumentError as exc:
        raise ConfigError([ConfigIssue(f"data.{exc.argument}", str(exc))]) from None
    except MissingExtra as exc:
        raise ConfigError([ConfigIssue("data", str(exc))]) from None
    issues = apply_shapes(cfg, found)
    if issues:
        raise ConfigError(issues)
    _inferred_data.clear()
    _inferred_data[_data_key(cfg)] = data


#: The data module :func:`infer_data_shapes` read, for the :func:`build` of the same config that
#: follows in this process (a table is read once). Taken by that build; replaced by the next job's.
_inferred_data: dict[str, Any] = {}


def _data_key(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg.data, resolve=True)


def forget_inferred_data() -> None:
    """Drop the data module kept for a build in this process (the job runs in other processes)."""
    _inferred_data.clear()


def _shapes_unknown(cfg: DictConfig) -> bool:
    """Whether ``cfg.data`` still waits for values from the data (its ``num_features`` or, for
    text, ``vocab_size`` is null)."""
    data = cfg.get("data")
    return isinstance(data, DictConfig) and any(key in data and data[key] is None
                                                for key in ("num_features", "vocab_size"))


def build_accelerator(cfg: DictConfig) -> Accelerator:
    """The accelerator for ``cfg.accelerator`` in this process."""
    acc = cfg.accelerator
    name = resolve_accelerator_name(acc.name)
    if acc.name == "auto":
        log.info("accelerator=auto picked '%s'", name)
    cls = accelerator_class(name)
    if name == "gpu":
        devices = OmegaConf.to_object(acc.devices) if OmegaConf.is_config(acc.devices) else acc.devices
        process = detect()
        local_rank = process.local_rank if process is not None else 0
        # One device per process: this rank's entry of a list, else the local rank's index.
        index = parse_cuda_devices(devices)[local_rank] if isinstance(devices, list) else local_rank
        return cls(torch.device("cuda", index), float32_matmul_precision=acc.float32_matmul_precision)  # type: ignore[call-arg]
    return cls()  # type: ignore[call-arg]


def build_distribution(cfg: DictConfig) -> Distribution:
    """The distribution of this process: DDP (or FSDP under ``strategy=fsdp``) when it is one rank
    of several, else one process (``strategy=fsdp`` with one process: a warning, nothing sharded)."""
    process = detect()
    acc = cfg.accelerator
    if process is None or process.world_size < 2:
        if acc.strategy == "fsdp":
            log.warning("accelerator.strategy=fsdp with one process: training in this process, nothing sharded")
        return SingleProcess()
    if acc.strategy == "fsdp":
        from declarative_train.distributed.fsdp import FSDPDistribution

        fsdp = acc.fsdp
        return FSDPDistribution(
            process, wrap=list(fsdp.wrap) if fsdp.wrap is not None else None,
            reshard_after_forward=fsdp.reshard_after_forward, cpu_offload=fsdp.cpu_offload,
            replicate=fsdp.replicate, precision=cfg.precision.mode, state_dict_type=fsdp.state_dict_type,
            rank0_init=fsdp.rank0_init,
            backend=acc.backend, timeout_s=acc.timeout_s, seed=cfg.seed,
        )
    return DDPDistribution(
        process, backend=acc.backend, timeout_s=acc.timeout_s,
        find_unused_parameters=acc.find_unused_parameters, sync_batchnorm=acc.sync_batchnorm,
        seed=cfg.seed,
    )


def build_settings(node: Any) -> TrainerSettings:
    """The engine's settings from the (validated) ``trainer`` node."""
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else attrs.asdict(node)
    assert isinstance(values, dict)
    return TrainerSettings(**{str(key): value for key, value in values.items()})


def build_scheduler(node: Any) -> SchedulerSpec | None:
    """A :class:`SchedulerSpec` from the scheduler node (``None`` when empty)."""
    if not node:
        return None
    container = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    assert isinstance(container, dict)
    options = {key: container.pop(key) for key in list(container) if key in SCHEDULER_KEYS}
    return SchedulerSpec(factory=_make(container), **options)


def build(cfg: DictConfig) -> Components:
    """Instantiate every component of ``cfg`` (already validated), its data shapes filled first
    when ``data.num_features`` is still null (:func:`infer_data_shapes`)."""
    if _shapes_unknown(cfg):
        infer_data_shapes(cfg)
    accelerator = build_accelerator(cfg)
    return Components(
        task=build_task(cfg),
        data=_inferred_data.pop(_data_key(cfg), None) or _make(cfg.data, cfg),
        optimizer=_make(cfg.optimizer, cfg),
        scheduler=build_scheduler(cfg.get("scheduler")),
        metrics={name: _make(node, cfg) for name, node in (cfg.get("metrics") or {}).items()},
        callbacks=_callbacks(cfg),
        loggers={name: _make(node, cfg) for name, node in (cfg.get("logger") or {}).items()},
        accelerator=accelerator,
        distribution=build_distribution(cfg),
        precision=Precision(cfg.precision.mode, accelerator.autocast_device_type),
        settings=build_settings(cfg.trainer),
        seed=cfg.seed if cfg.seed is not None else 0,
    )


def build_task(cfg: DictConfig) -> Task:
    """The task of ``cfg.model``; under FSDP's rank-0 init, on the meta device on every rank but 0.

    With ``accelerator.fsdp.rank0_init`` (the default) only rank 0 builds the weights; the other
    ranks build the same modules without memory and receive their shards from rank 0 once the
    task is sharded (``FSDPDistribution.wrap_training_step``). Every rank's RNG states are put back
    after the build, so the global streams are the same on all ranks whatever rank 0's init drew.
    """
    process = detect()
    if not (_rank0_init(cfg) and process is not None and process.world_size > 1):
        return _make(cfg.model, cfg)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        if process.rank == 0:
            return _make(cfg.model, cfg)
        with torch.device("meta"):
            return _make(cfg.model, cfg)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _rank0_init(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "accelerator.strategy") == "fsdp"
                and OmegaConf.select(cfg, "accelerator.fsdp.rank0_init", default=True))


def _callbacks(cfg: DictConfig) -> dict[str, Any]:
    """The callbacks by name, then the profiler (``profiler``) last: it times every other handler."""
    callbacks = {name: _make(node, cfg) for name, node in (cfg.get("callbacks") or {}).items()}
    if cfg.get("profiler"):
        callbacks["profiler"] = _make(cfg.profiler, cfg)
    return callbacks


def describe(components: Components) -> str:
    """The object graph, one line per component, for ``dry_run=true``."""
    def name(obj: Any) -> str:
        target = getattr(obj, "func", obj)  # partials
        kind = getattr(target, "__qualname__", type(target).__qualname__)
        return f"{getattr(target, '__module__', type(obj).__module__)}.{kind}"

    lines = ["Object graph:"]
    lines.append(f"  task: {name(components.task)}")
    for child_name, child in components.task.named_children():
        params = sum(p.numel() for p in child.parameters())
        lines.append(f"    {child_name}: {name(child)} ({params:,} parameters)")
    shapes = "".join(f", {key}={getattr(components.data, key)}" for key in SHAPE_KEYS
                     if key != "task" and getattr(components.data, key, None) is not None)
    lines.append(f"  data: {name(components.data)} (batch_size={getattr(components.data, 'batch_size', '?')}{shapes})")
    keywords = getattr(components.optimizer, "keywords", {})
    lines.append(f"  optimizer: {name(components.optimizer)} {keywords}")
    if components.scheduler is not None:
        spec = components.scheduler
        lines.append(f"  scheduler: {name(spec.factory)} (interval={spec.interval}, frequency={spec.frequency})")
    for group in ("metrics", "callbacks", "loggers"):
        for key, obj in getattr(components, group).items():
            lines.append(f"  {group}.{key}: {name(obj)}")
    lines.append(f"  accelerator: {components.accelerator.describe()}")
    lines.append(f"  distribution: {type(components.distribution).__name__} (world_size={components.distribution.world_size})")
    lines.append(f"  precision: {components.precision.mode}")
    summary = next((cb for cb in components.callbacks.values() if isinstance(cb, ModelSummary)), None)
    depth = summary.max_depth if summary is not None else 1
    if depth:
        table = summarize(components.task, depth).render()
        lines += ["", "Model summary (output shapes come with the first training step):",
                  *(f"  {line}" if line else "" for line in table.splitlines())]
    return "\n".join(lines)
