"""Entry points ``dtrain`` and ``dtrain-eval``: compose -> validate -> run, with exit codes.

Exit codes: 0 success; 2 invalid configuration or command line (one message, every problem with
its key path, no traceback unless ``HYDRA_FULL_ERROR=1``); 1 a failure during the run; 75 stopped
by SIGTERM/SIGUSR1 after saving ``last.ckpt`` (requeue and resume); 130 the same for SIGINT;
128 + N a second signal N (no save).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from declarative_train.config.issues import ConfigError
from declarative_train.config.store import register_schemas
from declarative_train.sweep import SweepSummary, close_sweep
from declarative_train.sweep.naming import job_overrides, run_name

EXIT_RUN_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_INTERRUPTED = 130
_RUN_TOKEN = secrets.token_hex(3)  # one per launching process: two runs never share a folder


def config_dir() -> str:
    """The shipped ``conf/``: inside the installed package, or at the repository root."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "conf", package_dir.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"declarative_train's conf/ folder is missing (looked next to {package_dir})")


#: Groups whose choice names are numbers (``precision=32``): Hydra would read those as ints.
NUMERIC_CHOICE_GROUPS = ("precision",)
#: Keys whose values are file paths, which may hold '=' (``epoch=3-step=80.ckpt``) or commas.
PATH_KEYS = ("ckpt_path", "resume_dir", "hydra.run.dir", "hydra.sweep.dir")
_NUMERIC_CHOICE = re.compile(r"^(?P<key>[+~]?(?:{}))=(?P<value>[0-9][0-9,]*(?:,[^,]+)*)$".format("|".join(NUMERIC_CHOICE_GROUPS)))
_PATH_VALUE = re.compile(r"^(?P<key>[+]{{0,2}}(?:{}))=(?P<value>[^'\"].*)$".format("|".join(re.escape(k) for k in PATH_KEYS)))


def normalize_overrides(args: list[str]) -> list[str]:
    """Quote what Hydra's override grammar would misread.

    ``precision=32`` -> ``precision='32'`` (a choice name, not an int) and
    ``ckpt_path=ckpts/epoch=3-step=80.ckpt`` -> ``ckpt_path='ckpts/epoch=3-step=80.ckpt'``.
    """
    out = []
    for arg in args:
        choice = _NUMERIC_CHOICE.match(arg)
        path = _PATH_VALUE.match(arg)
        if choice:
            items = [f"'{v}'" if v.isdigit() else v for v in choice["value"].split(",")]
            arg = f"{choice['key']}={','.join(items)}"
        elif path and path["value"] not in ("null", ""):
            arg = f"{path['key']}='{path['value']}'"
        out.append(arg)
    return out


def _register() -> None:
    register_schemas()
    resolvers: dict[str, Callable[..., Any]] = {
        "dt_unique": lambda: _RUN_TOKEN,
        "dt_job_overrides": job_overrides,
        "dt_run_name": run_name,
        # Optuna's max_failure_rate from sweep.keep_going: 1.0 lets every trial fail and go on.
        "dt_max_failure_rate": lambda keep_going: 1.0 if keep_going else 0.0,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _train_job(cfg: DictConfig) -> Any:
    from declarative_train.build import build, describe
    from declarative_train.config.validate import validate_config
    from declarative_train.distributed.launch import launch_job
    from declarative_train.engine.preemption import Interrupted, Preempted
    from declarative_train.run import RunFailed, objective
    from declarative_train.sweep.job import prepare_job, record_outcome

    _register()  # joblib and submitit run jobs in fresh processes: resolvers are per process
    multirun = _is_multirun()
    try:
        validate_config(cfg)
    except ConfigError as exc:
        if multirun:
            record_outcome(cfg, "failed", "invalid configuration: " + "; ".join(map(str, exc.issues)))
            raise  # the sweep records this job as failed and goes on
        print(exc.format(), file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    if cfg.dry_run:
        print(describe(build(cfg)))
        return None
    if multirun:
        finished = prepare_job(cfg, Path(HydraConfig.get().sweep.dir))
        if finished is not None:
            return objective(cfg, finished)
    try:
        results = launch_job(cfg)  # here, or on the workers the accelerator config asks for
    except RunFailed as exc:
        if multirun:
            raise
        print(f"error: {exc} (details in {cfg.paths.output_dir}/train.log)", file=sys.stderr)
        sys.exit(EXIT_RUN_FAILED)
    except (Preempted, Interrupted) as exc:
        if multirun:  # stop the whole sweep, as Ctrl-C does; this job resumes with sweep.resume=true
            raise KeyboardInterrupt(str(exc)) from exc
        print(f"stopped: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    return objective(cfg, results)


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
    except KeyboardInterrupt:
        stopped = close_sweep(stopped=True)
        if stopped is None:
            raise
        print(f"interrupted: add hydra.sweep.dir={stopped.sweep_dir} sweep.resume=true to the same command "
              "to finish the sweep", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
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


def _report_bad_command_line(config_name: str, exc: Exception) -> None:
    from hydra._internal.utils import get_args_parser

    from declarative_train.config.diagnose import diagnose

    args = get_args_parser().parse_known_args(sys.argv[1:])[0]
    extra = [str(Path(args.config_dir).resolve())] if args.config_dir else []
    try:
        issues = diagnose(config_dir(), args.config_name or config_name, args.overrides, extra)
    except Exception:  # the diagnosis itself must never hide Hydra's own message
        issues = []
    if issues:
        print(ConfigError(issues).format(), file=sys.stderr)
    else:
        print(f"Invalid command line or configuration: {exc}", file=sys.stderr)
    sys.exit(EXIT_BAD_CONFIG)


def train_main() -> None:
    """``dtrain``: fit, then test the best checkpoint."""
    from declarative_train.distributed.external import rank_roles

    with rank_roles():  # under torchrun/SLURM, ranks other than 0 follow rank 0's jobs
        _main("train", _train_job)


def eval_main() -> None:
    """``dtrain-eval ckpt_path=PATH``: evaluate a checkpoint."""
    from declarative_train.evaluate import eval_job

    _main("eval", eval_job)
