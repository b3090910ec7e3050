"""One job from a validated config: seed, build, fit, test the best checkpoint, write results.json."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train.build import build, seed_everything
from declarative_train.config.tuning import auto_placeholders
from declarative_train.engine import Executor
from declarative_train.engine.preemption import DEFAULT_SIGNALS, PreemptionHandler
from declarative_train.errors import (
    ConfigError,
    ConfigIssue,
    Interrupted,
    Preempted,
    RunFailed,
    SettingsError,
)
from declarative_train.jobs import provenance
from declarative_train.jobs.hparams import run_hparams
from declarative_train.jobs.resume import resume_checkpoint
from declarative_train.jobs.tune import tune_auto
from declarative_train.sweep.objective import objective_entry
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")


def run_job(cfg: DictConfig, on_executor: Callable[[Executor], None] | None = None) -> dict[str, Any]:
    """Run ``cfg`` (train and/or test) and return the ``results.json`` content.

    ``on_executor`` is called with the executor once it is built (to subscribe to its events).
    ``results.json`` is written also when the run fails or is stopped by a signal.
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    executor: Executor | None = None
    try:
        seed_everything(cfg.seed, cfg.trainer.deterministic)
        with auto_placeholders(cfg):  # optimizer.lr=auto, data.batch_size=auto: tuned below
            components = build(cfg)
        tuned = tune_auto(cfg, components)
        executor = components.executor()
        if on_executor is not None:
            on_executor(executor)
        _fit_and_test(cfg, executor, output_dir)
        results = _results(cfg, executor, started)
        if tuned:
            results["tuned"] = tuned
        for logger in executor.loggers:
            logger.log_hyperparams(run_hparams(cfg), {**results["val"], **results["test"]})
        _write(cfg, output_dir, executor, results)  # before the loggers finalize: they may upload it
    except (Preempted, Interrupted) as exc:
        resume_path = exc.ckpt_path if isinstance(exc, Preempted) else None
        stopped = {"status": exc.status, "error": str(exc), "resume_ckpt_path": resume_path}
        log.warning("%s", exc)
        if executor is not None:
            stopped = {**_results(cfg, executor, started), **stopped}
        _write(cfg, output_dir, executor, stopped)
        raise
    except (ConfigError, SettingsError) as exc:  # found once the components or the data exist: still exit 2
        error = _as_config_error(exc)
        log.error("%s", error.format())
        _write(cfg, output_dir, executor, {"status": "failed", "error": error.format(),
                                           "wall_time_s": round(time.perf_counter() - started, 3)})
        raise error from None
    except Exception as exc:
        raise _failed(cfg, output_dir, executor, started, exc) from exc
    finally:
        for logger in executor.loggers if executor is not None else []:
            logger.finalize()
    log.info("results: %s", {k: results[k] for k in ("status", "best_model_score", "test", "compilations") if k in results})
    return results


def _fit_and_test(cfg: DictConfig, executor: Executor, output_dir: Path) -> None:
    executor.checkpoint_extras["config"] = OmegaConf.to_container(cfg, resolve=True)
    meta = provenance.read(output_dir)  # written by the launching process (cli), absent in the Python API
    if meta is not None:
        executor.checkpoint_extras["meta"] = meta
    executor.setup()
    log.info("accelerator: %s | precision: %s | output: %s",
             executor.accelerator.describe(), executor.precision.mode, output_dir)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    for logger in executor.loggers:
        logger.log_text("config", config_yaml)
    if cfg.train:
        # Ranks of a multi-process job would have to agree on the step to stop at; their
        # launcher stops them instead (they resume from last.ckpt: max_restarts, resume=auto).
        signals = DEFAULT_SIGNALS if executor.distribution.world_size == 1 else ()
        preemption = PreemptionHandler(output_dir / "checkpoints", signals=signals)
        preemption.attach(executor)  # after the callbacks (attached in setup): they save first
        with preemption.installed():
            executor.fit(ckpt_path=resume_checkpoint(cfg))
        if executor.state.stop_reason:
            log.info("fit stopped early: %s", executor.state.stop_reason)
    if cfg.test and executor.data.has_split("test"):
        executor.test("best" if cfg.train else cfg.ckpt_path)


def _as_config_error(exc: ConfigError | SettingsError) -> ConfigError:
    if isinstance(exc, ConfigError):
        return exc
    return ConfigError([ConfigIssue(f"trainer.{exc.setting}", exc.message)])


def _failed(cfg: DictConfig, output_dir: Path, executor: Executor | None, started: float, exc: Exception) -> RunFailed:
    """Record a failed run in ``results.json`` and the log; the error to raise."""
    message = f"run failed{_where(executor)}: {type(exc).__name__}: {exc}"
    log.error("%s\n%s", message, traceback.format_exc())
    failed = {"status": "failed", "error": message, "wall_time_s": round(time.perf_counter() - started, 3)}
    if executor is not None:
        failed.update({k: v for k, v in _results(cfg, executor, started).items() if k not in ("status", "wall_time_s")})
    _write(cfg, output_dir, executor, failed)
    return RunFailed(message)


def objective(cfg: DictConfig, results: dict[str, Any]) -> float | None:
    """The value returned to a Hydra sweeper: ``results["objective"]["value"]`` (see ``sweep.objective``)."""
    entry = results.get("objective") or {}
    return entry.get("value")


def _results(cfg: DictConfig, executor: Executor, started: float) -> dict[str, Any]:
    metrics = executor.state.metrics
    compilations = executor.accelerator.num_compilations()
    checkpoint = executor.checkpoint_callback
    return {
        "status": "ok",
        "monitor": checkpoint.monitor if checkpoint is not None else None,
        "best_model_path": (checkpoint.best_model_path or None) if checkpoint is not None else None,
        "best_model_score": checkpoint.best_model_score if checkpoint is not None else None,
        "tested_ckpt_path": executor.tested_ckpt_path,
        "epochs": executor.state.epochs_run,
        "global_step": executor.state.global_step,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "stop_reason": executor.state.stop_reason or None,
        "objective": objective_entry(cfg.get("optimized_metric"), OmegaConf.select(cfg, "sweep.direction"),
                                     metrics, checkpoint, executor.higher_is_better),
        "train": {k: v for k, v in metrics.items() if k.startswith("train/")},
        "val": {k: v for k, v in metrics.items() if k.startswith("val/")},
        "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
        **({"compilations": compilations} if compilations is not None else {}),
    }


def _write(cfg: DictConfig, output_dir: Path, executor: Executor | None, results: dict[str, Any]) -> None:
    if executor is None or executor.distribution.is_global_zero:
        atomic_write_json(output_dir / "results.json", results)


def _where(executor: Executor | None) -> str:
    if executor is None:
        return " while building"
    state = executor.state
    rank = executor.distribution.rank
    return f" on rank {rank} in {state.stage} at epoch {state.epoch}, step {state.global_step}"
