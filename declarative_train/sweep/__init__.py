"""Sweeps (``dtrain -m``): objective, job preparation (resume, keep going), summaries, run names.

``summary.py`` reads a sweep folder into a table; ``callback.py`` is the Hydra callback that
writes it at the end of a sweep; ``job.py`` runs inside each job; ``summary_cli.py`` is
``dtrain-summary``.
"""

from declarative_train.sweep.callback import SweepSummaryCallback, close_sweep
from declarative_train.sweep.summary import JobRow, SweepSummary, summarize

__all__ = ["JobRow", "SweepSummary", "SweepSummaryCallback", "close_sweep", "summarize"]
