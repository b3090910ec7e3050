"""Every exception type the package raises on purpose, in one place.

The command-line layer (``cli.py``) alone turns them into exit codes: a :class:`ConfigError` is
exit 2, a :class:`RunFailed`, :class:`CheckpointError` or :class:`ExportError` exit 1,
:class:`Preempted` exit 75 (SIGTERM/SIGUSR1: requeue and resume) or 128 + N,
:class:`Interrupted` 128 + N. Lower layers raise them and never exit the process themselves.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable

import attrs

#: Signals after which a run is ``preempted`` (requeue and resume) rather than ``interrupted``.
REQUEUE_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@attrs.frozen
class ConfigIssue:
    """One configuration problem: where (a dotted key path, or a command-line override) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Invalid configuration; ``issues`` holds every problem found, each with its key path."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.format())

    def format(self) -> str:
        """The message users see: a header and one line per problem."""
        count = len(self.issues)
        header = f"Invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {issue}" for issue in self.issues)])


class SettingsError(ValueError):
    """A loop setting that does not fit the data, found once the data is loaded (``setting`` names it)."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting, self.message = setting, message
        super().__init__(f"{setting}: {message}")


class ArgumentError(ValueError):
    """A component's constructor argument out of range (``argument`` names the parameter)."""

    def __init__(self, owner: str, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{owner}: {argument} {message}")


class RunFailed(RuntimeError):
    """The run failed; the message names what failed and where (rank, epoch, step)."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used: unreadable, corrupt, or for another model."""


class ExportError(RuntimeError):
    """A model that cannot be exported, or whose exported file does not reproduce it."""


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite; the message names the step."""


class AcceleratorUnavailable(RuntimeError):
    """The configured accelerator cannot run on this machine."""


class JobSkipped(RuntimeError):
    """A sweep job did not run because an earlier job failed (``sweep.keep_going=false``)."""


class Preempted(Exception):
    """Fit stopped on a signal after saving ``ckpt_path``.

    ``status`` (for ``results.json``) is ``preempted`` after SIGTERM/SIGUSR1, else ``interrupted``.
    """

    def __init__(self, signum: int, ckpt_path: str, epoch: int, step: int) -> None:
        self.signum, self.ckpt_path = signum, ckpt_path
        self.status = "preempted" if signum in REQUEUE_SIGNALS else "interrupted"
        super().__init__(f"{signal.Signals(signum).name} received: saved {ckpt_path} at epoch {epoch}, "
                         f"step {step}; resume with ckpt_path={ckpt_path} (or resume=auto)")


class Interrupted(BaseException):
    """Leave now, without saving: a second signal, or a signal that stopped a job's workers.

    A ``BaseException``, so that nothing on the way out swallows it.
    """

    status = "interrupted"

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = signum
        super().__init__(message or f"second {signal.Signals(signum).name} received: exiting without saving")


class Abort(BaseException):
    """Carries ``error`` out of code that swallows ordinary exceptions (Hydra's callbacks).

    The command line reports ``error`` and exits as it would for it.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(str(error))


class MissingExtra(ImportError):
    """An optional dependency that ``what`` needs does not import; the message names the extra."""

    def __init__(self, what: str, module: str, extra: str, reason: str) -> None:
        self.what, self.module, self.extra = what, module, extra
        super().__init__(f"{what} needs {module}, which does not import here ({reason}): "
                         f"pip install 'declarative_train[{extra}]'")
