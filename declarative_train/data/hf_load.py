"""Loading a Hugging Face dataset from local files only; its splits, columns and array columns.

Two sources: a folder written by ``Dataset.save_to_disk``/``DatasetDict.save_to_disk`` (read
with ``datasets.load_from_disk``), or local files read by one of the packaged file builders
(``datasets.load_dataset("csv", data_files=...)``). Nothing is downloaded: the offline switches
are set before ``datasets`` loads anything, a builder that is not a local file format is refused,
and every data file must exist. ``datasets`` is imported only here, when data is loaded; without
it the error names the extra that installs it.

Problems with the user's input raise :class:`~declarative_train.errors.ArgumentError` naming the
data module's argument, which the builder reports as ``data.<argument>``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from declarative_train.errors import ArgumentError, ConfigError, ConfigIssue
from declarative_train.utils.text import did_you_mean, first_line

OWNER = "HFData"
INSTALL_HINT = "pip install 'declarative_train[hf]'"
#: ``data.builder`` values: the packaged builders that read local files.
LOCAL_BUILDERS = ("csv", "json", "parquet", "arrow")
#: Our split names, and the dataset split names each one takes by default (first found wins).
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid", "dev"), "test": ("test",)}
#: Files ``save_to_disk`` writes: a DatasetDict's, a Dataset's.
_SAVED_MARKERS = ("dataset_dict.json", "state.json")
_ARRAYS = ("List", "LargeList", "Sequence", "Array2D", "Array3D", "Array4D", "Array5D")


def datasets_module() -> Any:
    """``datasets`` with its offline switches on, or a :class:`ConfigError` (exit 2) naming the extra."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import datasets
        import datasets.config
    except ImportError:
        raise ConfigError([ConfigIssue("data", f"data=hf reads datasets with Hugging Face datasets, which is not "
                                               f"installed: {INSTALL_HINT}")]) from None
    # An earlier import in this process read the environment before it was set.
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    return datasets


def check_builder(builder: str | None, data_files: Any) -> None:
    """``builder`` is a local file format with ``data_files``; every file exists (checked when loading)."""
    if builder is None:
        if data_files is not None:
            raise ArgumentError(OWNER, "data_files", f"is set, but data.builder is not: give data.builder="
                                                     f"{'|'.join(LOCAL_BUILDERS)} to read them")
        return
    if builder not in LOCAL_BUILDERS:
        raise ArgumentError(OWNER, "builder", f"{builder!r} is not a local file format (one of "
                                              f"{', '.join(LOCAL_BUILDERS)}).{did_you_mean(str(builder), LOCAL_BUILDERS)} "
                                              f"Nothing is downloaded: save a dataset with save_to_disk and give "
                                              f"data.path=DIR")
    if not data_files:
        raise ArgumentError(OWNER, "data_files", f"is not set: data.builder={builder} reads local files "
                                                 f"(data.data_files=FILE, a list, or {{train: FILE, test: FILE}})")


def local_files(data_files: str | Sequence[str] | Mapping[str, Any]) -> Any:
    """``data_files`` with every entry an existing local file (globs expanded), as absolute paths."""
    if isinstance(data_files, Mapping):
        return {str(split): local_files(files) for split, files in data_files.items()}
    found = []
    for entry in [data_files] if isinstance(data_files, str) else list(data_files):
        if "://" in str(entry):
            raise ArgumentError(OWNER, "data_files", f"{entry!r} is not a local file: nothing is downloaded")
        matches = sorted(glob.glob(os.path.expanduser(str(entry))))
        files = [m for m in matches if Path(m).is_file()]
        if not files:
            raise ArgumentError(OWNER, "data_files", f"{entry!r} matches no file (from {os.getcwd()!r})")
        found += [str(Path(f).resolve()) for f in files]
    return found


def load(path: str | None, builder: str | None, data_files: Any, cache_dir: str | None) -> dict[str, Any]:
    """The dataset's splits by name: a saved folder (``path``) or local files read by ``builder``."""
    datasets = datasets_module()
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ArgumentError(OWNER, "path", f"is not a folder: {str(folder.resolve())!r}")
        if not any((folder / marker).is_file() for marker in _SAVED_MARKERS):
            raise ArgumentError(OWNER, "path", f"{str(folder)!r} is not a dataset saved with save_to_disk (it "
                                               f"has neither {' nor '.join(_SAVED_MARKERS)})")
        try:
            loaded = datasets.load_from_disk(str(folder))
        except (OSError, ValueError) as exc:
            raise ArgumentError(OWNER, "path", f"cannot load the dataset saved in {str(folder)!r}: "
                                               f"{first_line(exc)}") from None
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    files = local_files(data_files)
    try:
        loaded = datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for an unreadable file
        raise ArgumentError(OWNER, "data_files", f"cannot read {files} with data.builder={builder}: "
                                                 f"{first_line(exc)}") from None
    return dict(loaded)


def choose_splits(available: Sequence[str], splits: Mapping[str, str] | None) -> dict[str, str]:
    """Our split (``train``/``val``/``test``) -> the dataset's split; splits left out are carved from train.

    ``splits`` given: exactly those. Else the train split is ``train`` (or the only split), and
    ``val``/``test`` take the first of :data:`SPLIT_NAMES` the dataset has.
    """
    names = list(available)
    listed = ", ".join(names)
    if splits is not None:
        for ours, theirs in splits.items():
            if ours not in SPLIT_NAMES:
                raise ArgumentError(OWNER, "splits", f"has the key {ours!r}, which is not one of "
                                                     f"{', '.join(SPLIT_NAMES)}.{did_you_mean(str(ours), SPLIT_NAMES)}")
            if theirs not in names:
                raise ArgumentError(OWNER, "splits", f"{ours}: {theirs!r} is not a split of the dataset (splits: "
                                                     f"{listed}).{did_you_mean(str(theirs), names)}")
        if "train" not in splits:
            raise ArgumentError(OWNER, "splits", f"names no train split (splits of the dataset: {listed})")
        return {ours: str(theirs) for ours, theirs in splits.items()}
    chosen = {ours: next(n for n in defaults if n in names)
              for ours, defaults in SPLIT_NAMES.items() if any(n in names for n in defaults)}
    if "train" not in chosen:
        if len(names) != 1:
            raise ArgumentError(OWNER, "splits", f"is not set, and the dataset has no 'train' split (splits: {listed}): "
                                                 f"name them, e.g. data.splits={{train: {names[0]}}}")
        chosen["train"] = names[0]
    return chosen


def check_columns(columns: Sequence[str], inputs: Sequence[str] | None, target: str) -> list[str]:
    """The input columns (default: every column but ``target``); unknown names with did-you-mean."""
    shown = ", ".join(columns[:30]) + (f", ... ({len(columns)} in all)" if len(columns) > 30 else "")

    def unknown(name: str) -> str:
        return f"{name!r} is not a column of the dataset.{did_you_mean(name, columns)} (columns: {shown})"

    if target not in columns:
        raise ArgumentError(OWNER, "target", unknown(target))
    missing = [name for name in inputs or [] if name not in columns]
    if missing:
        raise ArgumentError(OWNER, "inputs", "; ".join(unknown(name) for name in missing))
    if inputs is not None and target in inputs:
        raise ArgumentError(OWNER, "inputs", f"holds the target column {target!r}")
    chosen = list(inputs) if inputs is not None else [c for c in columns if c != target]
    if not chosen:
        raise ArgumentError(OWNER, "inputs", f"no input column is left (columns: {shown})")
    return chosen


@contextmanager
def as_ours(owner: str) -> Iterator[None]:
    """Errors of the shared table encoders named after this data module instead of ``owner``."""
    try:
        yield
    except ArgumentError as exc:
        message = str(exc).removeprefix(f"{owner}: {exc.argument} ")
        raise ArgumentError(OWNER, exc.argument, message) from None


@attrs.frozen
class ArrayCode:
    """A fixed-shape array column's encoding: its ``shape`` and per-element ``mean``/``std``."""

    name: str
    shape: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    @property
    def width(self) -> int:
        """Input features this column becomes."""
        return int(np.prod(self.shape))


def column_kind(feature: Any) -> str:
    """``number``, ``text``, ``label`` (a ``ClassLabel``), ``array`` or ``other`` for a datasets feature."""
    kind = type(feature).__name__
    if kind == "ClassLabel":
        return "label"
    if kind in _ARRAYS:
        return "array"
    if kind == "Value":
        dtype = str(feature.dtype)
        if dtype in ("string", "large_string"):
            return "text"
        if dtype == "bool" or dtype.startswith(("int", "uint", "float")):
            return "number"
    return "other"


def fit_array(name: str, values: np.ndarray, standardize: bool) -> ArrayCode:
    """An array column's encoding fitted on the train split's ``values``."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    shape = tuple(int(n) for n in values.shape[1:])
    if not standardize or len(flat) < 2:
        return ArrayCode(name, shape, np.zeros(flat.shape[1]), np.ones(flat.shape[1]))
    std = flat.std(axis=0, ddof=1)
    return ArrayCode(name, shape, flat.mean(axis=0), np.where(std > 1e-6, std, 1.0))  # constant: unit scale


def read_array(dataset: Any, name: str, split: str) -> np.ndarray:
    """A fixed-shape numeric array column as float32 ``(rows, *shape)``; images stored channels-last
    (``(H, W, C)`` with 1, 3 or 4 channels) become ``(C, H, W)``."""
    if dataset.select_columns([name]).with_format("arrow")[:].column(name).null_count:
        raise ArgumentError(OWNER, "inputs", f"array column {name!r} misses values in the {split} split")
    values = dataset.with_format("numpy", columns=[name])[:][name]
    if values.dtype.kind not in "biuf" or (len(values) and values.ndim < 2):
        raise ArgumentError(OWNER, "inputs", f"column {name!r} holds lists of different lengths or of non-numbers "
                                             f"({dataset.features[name]}); only fixed-shape numeric arrays are read")
    if values.ndim == 4 and values.shape[3] in (1, 3, 4) and values.shape[1] not in (1, 3, 4):
        values = values.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(values, dtype=np.float32)
