"""sklearn's bundled datasets: the same arrays as sklearn's loaders, without importing sklearn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from declarative_train.data import Digits
from declarative_train.data.sklearn_data import load_digits_arrays


def test_digits_read_from_the_bundled_file_equal_load_digits() -> None:
    features, target = load_digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(features, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)
    assert features.dtype == bunch.data.dtype and target.dtype == bunch.target.dtype


def test_loading_digits_does_not_import_sklearn() -> None:
    code = ("import sys; from declarative_train.data import Digits; d = Digits(batch_size=8); d.setup(); "
            "print(len(d.datasets['train']), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    size, imported = out.stdout.split()
    assert int(size) > 1000 and imported == "False"


def test_digits_module_shapes() -> None:
    data = Digits(batch_size=8)
    data.setup()
    x, y = data.datasets["train"][0]
    assert x.shape == (64,) and 0 <= int(y) < 10


@pytest.mark.parametrize("arguments,message", [
    ({"batch_size": -4}, "Digits: batch_size must be an int >= 1, got -4"),
    ({"num_workers": -1}, "Digits: num_workers must be an int >= 0, got -1"),
    ({"val_fraction": 1.5}, "Digits: val_fraction must be in [0, 1), got 1.5"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "Digits: val_fraction + test_fraction must be < 1"),
])
def test_bad_arguments_are_refused_by_the_constructor(arguments: dict[str, float], message: str) -> None:
    from declarative_train.data import Digits
    from declarative_train.errors import ArgumentError

    with pytest.raises(ArgumentError) as info:
        Digits(**arguments)  # type: ignore[arg-type]
    assert str(info.value).startswith(message) and info.value.argument in arguments
