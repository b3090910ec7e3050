"""A CSV written from one of sklearn's bundled datasets, for presets and tests of ``data=table``.

:func:`write_sklearn_csv` writes the dataset's features, one text column derived from a feature
(so that one-hot encoding is exercised) and the target (class names as text for classifiers);
:class:`SklearnTable` is ``data=table`` over that file, written when missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from declarative_train.data.table import TableData
from declarative_train.data.table_read import OWNER, pyarrow_module
from declarative_train.errors import ArgumentError
from declarative_train.utils.text import not_one_of

#: dataset -> (loader in sklearn.datasets, target column, the feature the text column bins, class names)
DATASETS: dict[str, tuple[str, str, str, list[str] | None]] = {
    # The wine data's three classes are three cultivars grown in the same region of Italy.
    "wine": ("load_wine", "cultivar", "alcohol", ["barolo", "grignolino", "barbera"]),
    "breast_cancer": ("load_breast_cancer", "diagnosis", "mean radius", ["malignant", "benign"]),
    "diabetes": ("load_diabetes", "progression", "bmi", None),
}


def write_sklearn_csv(dataset: str, path: str | Path) -> Path:
    """Write ``dataset`` as a CSV at ``path`` (atomically; kept when it exists) and return the path.

    Columns: the features (spaces in names become ``_``), ``<feature>_level`` (``low``/``mid``/
    ``high`` by the feature's terciles) and the target (class names for classifiers).
    """
    if dataset not in DATASETS:
        raise ArgumentError(OWNER, "dataset", not_one_of(dataset, DATASETS))
    file = Path(path)
    if file.is_file():
        return file
    loader, target, binned, classes = DATASETS[dataset]
    import sklearn.datasets

    pa = pyarrow_module()
    import pyarrow.csv as pa_csv

    bunch = getattr(sklearn.datasets, loader)()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    columns: dict[str, Any] = {name: bunch.data[:, i] for i, name in enumerate(names)}
    values = bunch.data[:, list(bunch.feature_names).index(binned)]
    low, high = np.quantile(values, [1 / 3, 2 / 3])
    columns[f"{binned.replace(' ', '_')}_level"] = np.where(values <= low, "low", np.where(values <= high, "mid", "high"))
    columns[target] = np.asarray(classes)[bunch.target] if classes is not None else bunch.target
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    pa_csv.write_csv(pa.table({k: pa.array(list(v)) for k, v in columns.items()}), partial)
    os.replace(partial, file)  # ranks or runs writing the same file at once each write a whole one
    return file


class SklearnTable(TableData):
    """``data=table`` over ``path``, written first from sklearn's bundled ``dataset``
    (``wine``, ``breast_cancer`` or ``diabetes``) when it does not exist."""

    def __init__(self, *, dataset: str = "wine", path: str, **kwargs: Any) -> None:
        if dataset not in DATASETS:
            raise ArgumentError(OWNER, "dataset", not_one_of(dataset, DATASETS))
        super().__init__(path=path, **kwargs)
        self.dataset = dataset

    def setup(self) -> None:
        if not self.datasets:
            write_sklearn_csv(self.dataset, str(self.files["path"]))
        super().setup()
