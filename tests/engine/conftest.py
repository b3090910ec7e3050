"""Small executors for engine tests, built through the Python API (no Hydra)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

from declarative_train import Classification, Executor
from declarative_train.data import Digits
from declarative_train.models import MLP


@pytest.fixture
def make_executor() -> Callable[..., Executor]:
    def _make(**kwargs: Any) -> Executor:
        torch.manual_seed(0)
        data = kwargs.pop("data", None) or Digits(batch_size=kwargs.pop("batch_size", 64))
        task = kwargs.pop("task", None) or Classification(MLP(64, [64], 10), torch.nn.CrossEntropyLoss())
        lr = kwargs.pop("lr", 3e-3)
        return Executor(task=task, data=data, optimizer=partial(torch.optim.Adam, lr=lr), **kwargs)

    return _make
