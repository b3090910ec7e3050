"""``dtrain-summary SWEEP_DIR``: write ``summary.csv``/``summary.md`` of a sweep folder and print it.

Works while the sweep runs and after it crashed. Exit codes: 0 written, 2 not a sweep folder.
"""

from __future__ import annotations

import argparse
import os
import sys

from declarative_train.sweep.summary import summarize


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``dtrain-summary``."""
    parser = argparse.ArgumentParser(prog="dtrain-summary", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. outputs/sweeps/2024-05-01_12-00-00")
    args = parser.parse_args(argv)
    summary = summarize(args.sweep_dir)
    if not summary.rows:
        print(f"error: {args.sweep_dir} is not a sweep folder (no job folders with .hydra/ or results.json)",
              file=sys.stderr)
        sys.exit(2)
    _, md_path = summary.write()
    try:
        print(summary.to_markdown())
        print(f"written: {md_path} and summary.csv", flush=True)
    except BrokenPipeError:  # piped into head or less and closed early: the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
