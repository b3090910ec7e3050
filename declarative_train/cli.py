"""Entry points ``dtrain``, ``dtrain-eval``, ``dtrain-predict``, ``dtrain-export``, ``dtrain-summary``,
``dtrain-consolidate``.

This module alone turns errors into exit codes (:func:`exit_code`): 0 success; 2 invalid
configuration or command line (one message, every problem with its key path, no traceback
unless ``HYDRA_FULL_ERROR=1``); 1 a failure during the run; 75 stopped by SIGTERM/SIGUSR1 after
saving ``last.ckpt`` (requeue and resume); 130 the same for SIGINT; 128 + N a second signal N
(no save).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from declarative_train.config.overrides import normalize_overrides, stored_section_overrides
from declarative_train.config.store import register_schemas
from declarative_train.errors import (
    REQUEUE_SIGNALS,
    Abort,
    CheckpointError,
    ConfigError,
    ExportError,
    Interrupted,
    Preempted,
    RunFailed,
)
from declarative_train.launch import external
from declarative_train.sweep import SweepSummary, close_sweep
from declarative_train.sweep.naming import job_overrides, run_name
from declarative_train.sweep.summary import summarize

EXIT_RUN_FAILED = 1
EXIT_BAD_CONFIG = 2
#: A run stopped by SIGTERM/SIGUSR1 after saving ``last.ckpt`` (``EX_TEMPFAIL``: try again).
EXIT_PREEMPTED = 75
EXIT_INTERRUPTED = 130
_RUN_TOKEN = secrets.token_hex(3)  # one per launching process: two runs never share a folder


def exit_code(error: BaseException) -> int:
    """The exit status for an error that ends a command."""
    if isinstance(error, Abort):
        return exit_code(error.error)
    if isinstance(error, ConfigError):
        return EXIT_BAD_CONFIG
    if isinstance(error, Preempted):
        return EXIT_PREEMPTED if error.signum in REQUEUE_SIGNALS else 128 + error.signum
    if isinstance(error, Interrupted):
        return 128 + error.signum
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_RUN_FAILED


def _exit_with(error: BaseException, prefix: str = "error: ") -> NoReturn:
    """Print ``error`` the way users read it and exit with its code."""
    inner = error.error if isinstance(error, Abort) else error
    print(inner.format() if isinstance(inner, ConfigError) else f"{prefix}{inner}", file=sys.stderr)
    sys.exit(exit_code(error))


def config_dir() -> str:
    """The shipped ``conf/``: inside the installed package, or at the repository root."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "conf", package_dir.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"declarative_train's conf/ folder is missing (looked next to {package_dir})")


def _register() -> None:
    register_schemas()
    resolvers: dict[str, Callable[..., Any]] = {
        "dt_unique": lambda: _RUN_TOKEN,
        "dt_job_overrides": job_overrides,
        "dt_run_name": run_name,
        # The sweep folder in a multirun, else "" (logger=mlflow puts a sweep's jobs under one parent run).
        "dt_sweep_dir": lambda: str(HydraConfig.get().sweep.dir) if _is_multirun() else "",
        # Optuna's max_failure_rate from sweep.keep_going: 1.0 lets every trial fail and go on.
        "dt_max_failure_rate": lambda keep_going: 1.0 if keep_going else 0.0,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _train_job(cfg: DictConfig) -> Any:
    from declarative_train.build import build, check_components, describe, infer_data_shapes
    from declarative_train.config.tuning import auto_placeholders
    from declarative_train.config.validate import validate_config
    from declarative_train.jobs.provenance import record_end, record_start
    from declarative_train.jobs.train import objective
    from declarative_train.launch.dispatch import launch_job
    from declarative_train.sweep.job import prepare_job, record_outcome

    _register()  # joblib and submitit run jobs in fresh processes: resolvers are per process
    multirun = _is_multirun()
    try:
        validate_config(cfg)
        with auto_placeholders(cfg):  # optimizer.lr=auto, data.batch_size=auto: the job tunes them
            infer_data_shapes(cfg)  # values the data knows (data=table: num_features, ...), resolved once here
            check_components(cfg)  # constructors' own argument checks, on the meta device
    except ConfigError as exc:
        if multirun:
            record_outcome(cfg, "failed", "invalid configuration: " + "; ".join(map(str, exc.issues)))
            raise  # the sweep records this job as failed and goes on
        _exit_with(exc)
    if cfg.dry_run:
        with auto_placeholders(cfg):
            print(describe(build(cfg)))
        return None
    if cfg.tune.mode == "lr_find":
        return _lr_find_job(cfg)
    if multirun:
        finished = prepare_job(cfg, Path(HydraConfig.get().sweep.dir))
        if finished is not None:
            return objective(cfg, finished)
    record_start(cfg)  # meta.json: command, code, environment; the workers copy it into checkpoints
    try:
        results = launch_job(cfg)  # here, or on the workers the accelerator config asks for
    except ConfigError as exc:  # a setting that does not fit the data, found once it is loaded
        if multirun:
            raise
        _exit_with(exc)
    except RunFailed as exc:
        if multirun:
            raise
        print(f"error: {exc} (details in {cfg.paths.output_dir}/train.log)", file=sys.stderr)
        sys.exit(exit_code(exc))
    except (Preempted, Interrupted) as exc:
        if multirun:  # stop the whole sweep, as Ctrl-C does; this job resumes with sweep.resume=true
            raise KeyboardInterrupt(str(exc)) from exc
        _exit_with(exc, prefix="stopped: ")
    finally:
        record_end(cfg)
    return objective(cfg, results)


def _lr_find_job(cfg: DictConfig) -> Any:
    from declarative_train.jobs.tune import lr_find_job

    try:
        lr_find_job(cfg)
    except ConfigError as exc:
        if _is_multirun():
            raise
        _exit_with(exc)
    return None


def _eval_job(cfg: DictConfig) -> Any:
    from declarative_train.jobs.evaluate import eval_job

    try:
        return eval_job(cfg)
    except (ConfigError, CheckpointError) as exc:
        _exit_with(exc)


def _predict_job(cfg: DictConfig) -> Any:
    from declarative_train.jobs.predict import check_predict_command
    from declarative_train.launch.dispatch import launch_predict

    try:
        saved = check_predict_command(cfg)
        return launch_predict(cfg, saved)  # here, or on the workers the accelerator config asks for
    except (ConfigError, CheckpointError) as exc:
        _exit_with(exc)
    except RunFailed as exc:
        print(f"error: {exc} (details in {cfg.paths.output_dir}/train.log)", file=sys.stderr)
        sys.exit(exit_code(exc))
    except Interrupted as exc:
        _exit_with(exc, prefix="stopped: ")


def _export_job(cfg: DictConfig) -> Any:
    from declarative_train.jobs.export import export_job

    try:
        return export_job(cfg)
    except (ConfigError, CheckpointError, ExportError) as exc:
        _exit_with(exc)


def _main(config_name: str, job: Callable[[DictConfig], Any]) -> None:
    _register()
    sys.argv[1:] = normalize_overrides(sys.argv[1:])
    show_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Let Hydra raise instead of printing, so its errors can be reported our way (exit 2).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    entered = False

    @hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")
    def hydra_entry(cfg: DictConfig) -> Any:
        nonlocal entered
        entered = True
        return job(cfg)

    try:
        hydra_entry()
    except Abort as exc:
        close_sweep(stopped=True)
        _exit_with(exc)
    except KeyboardInterrupt:
        stopped = close_sweep(stopped=True)
        if stopped is None:
            raise
        print(f"interrupted: add hydra.sweep.dir={stopped.sweep_dir} sweep.resume=true to the same command "
              "to finish the sweep", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # --help or --cfg piped into head or less, closed early: nothing went wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        if show_tracebacks:
            raise
        summary = close_sweep(stopped=True)
        if not entered and not (summary and summary.rows):
            _report_bad_command_line(config_name, exc)
        if not _report_unsuccessful(summary):
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(EXIT_RUN_FAILED)
    if _report_unsuccessful(close_sweep()):
        sys.exit(EXIT_RUN_FAILED)


def _report_unsuccessful(summary: SweepSummary | None) -> bool:
    """Print which sweep jobs failed or were skipped; whether there were any."""
    bad = summary.unsuccessful if summary is not None else []
    if summary is not None and bad:
        first = bad[0]
        print(f"error: {len(bad)} of {len(summary.rows)} sweep jobs did not succeed (job {first.job}: "
              f"{first.status_text}); see {summary.sweep_dir / 'summary.md'}", file=sys.stderr)
    return bool(bad)


def _report_bad_command_line(config_name: str, exc: Exception) -> NoReturn:
    from hydra._internal.utils import get_args_parser

    from declarative_train.config.diagnose import diagnose

    args = get_args_parser().parse_known_args(sys.argv[1:])[0]
    extra = [str(Path(args.config_dir).resolve())] if args.config_dir else []
    try:
        issues = diagnose(config_dir(), args.config_name or config_name, args.overrides, extra)
    except Exception:  # the diagnosis itself must never hide Hydra's own message
        issues = []
    if issues:
        _exit_with(ConfigError(issues))
    print(f"Invalid command line or configuration: {exc}", file=sys.stderr)
    sys.exit(EXIT_BAD_CONFIG)


def train_main() -> None:
    """``dtrain``: fit, then test the best checkpoint."""
    follower = external.follower()
    if follower is not None:  # under torchrun/SLURM, ranks other than 0 follow rank 0's jobs
        sys.exit(external.follow(follower))
    with external.leading():
        _main("train", _train_job)


def eval_main() -> None:
    """``dtrain-eval ckpt_path=PATH``: evaluate a checkpoint."""
    _main("eval", _eval_job)


def predict_main() -> None:
    """``dtrain-predict ckpt_path=PATH [data.KEY=VALUE ...] [output=FILE]``: write a checkpoint's predictions."""
    follower = external.follower()
    if follower is not None:  # under torchrun/SLURM, ranks other than 0 predict what rank 0 publishes
        sys.exit(external.follow(follower))
    sys.argv[1:] = stored_section_overrides(sys.argv[1:])
    with external.leading():
        _main("predict", _predict_job)


def export_main() -> None:
    """``dtrain-export ckpt_path=PATH format=...``: write a checkpoint's model for other runtimes."""
    _main("export", _export_job)


def summary_main(argv: list[str] | None = None) -> None:
    """``dtrain-summary SWEEP_DIR``: write ``summary.csv``/``summary.md`` of a sweep folder and print it.

    Works while the sweep runs and after it crashed. Exit codes: 0 written, 2 not a sweep folder.
    """
    parser = argparse.ArgumentParser(prog="dtrain-summary", description=(summary_main.__doc__ or "").splitlines()[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. outputs/sweeps/2024-05-01_12-00-00")
    args = parser.parse_args(argv)
    summary = summarize(args.sweep_dir)
    if not summary.rows:
        print(f"error: {args.sweep_dir} is not a sweep folder (no job folders with .hydra/ or results.json)",
              file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    _, md_path = summary.write()
    try:
        print(summary.to_markdown())
        print(f"written: {md_path} and summary.csv", flush=True)
    except BrokenPipeError:  # piped into head or less and closed early: the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def consolidate_main(argv: list[str] | None = None) -> None:
    """``dtrain-consolidate CKPT_DIR OUT.ckpt``: write a sharded checkpoint folder as one checkpoint file.

    The file loads like any ``.ckpt`` (a model without FSDP resumes from it). Exit codes: 0
    written, 1 a damaged or unreadable folder (the message names the file), 2 bad arguments.
    """
    from declarative_train.checkpoint import consolidate, is_sharded

    parser = argparse.ArgumentParser(prog="dtrain-consolidate",
                                     description=(consolidate_main.__doc__ or "").splitlines()[0])
    parser.add_argument("ckpt_dir", help="a sharded checkpoint folder, e.g. outputs/runs/.../checkpoints/last.ckpt")
    parser.add_argument("out", help="the checkpoint file to write, e.g. model.ckpt")
    args = parser.parse_args(argv)
    if not is_sharded(args.ckpt_dir):
        print(f"error: {args.ckpt_dir} is not a sharded checkpoint folder", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    if Path(args.out).is_dir():
        print(f"error: {args.out} is a folder; give the path of the file to write", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    try:
        consolidate(args.ckpt_dir, args.out)
    except CheckpointError as exc:
        _exit_with(exc)
    print(f"written: {args.out}")
