"""``dtrain-predict split=train``: the train split's rows in order, although training shuffles them."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it

from tests.e2e.test_predict import _reference, dtrain_predict, wine_run  # noqa: E402, F401 - fixtures


def test_the_train_split_is_predicted_in_its_order_as_the_model_does(
        wine_run: dict[str, Any], dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:  # noqa: F811
    code, err = dtrain_predict(f"ckpt_path={wine_run['ckpt']}", "split=train", "output=train.csv")
    assert code == 0, err
    with (tmp_path / "train.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    data, logits = _reference(wine_run["ckpt"], lambda d: d.datasets["train"].tensors[0])
    assert [int(r["row"]) for r in rows] == data.row_ids("train")[1]
    probs = torch.tensor([[float(r[f"prob_{c}"]) for c in data.class_names] for r in rows], dtype=torch.float64)
    assert torch.allclose(probs, torch.softmax(logits.double(), 1), atol=1e-6)
    assert [r["prediction"] for r in rows] == [data.class_names[i] for i in logits.argmax(1).tolist()]
