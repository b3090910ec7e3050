"""An MLP trains on sklearn's digits through XLAAccelerator's methods, with bounded compilation."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from declarative_train.accelerators.xla import XLAAccelerator

pytestmark = pytest.mark.xla

BATCH = 64
EPOCHS = 16  # 19 steps per epoch -> 304 steps


def digits_loaders() -> tuple[DataLoader, DataLoader]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    train = TensorDataset(
        torch.tensor(scaler.transform(x_train), dtype=torch.float32), torch.tensor(y_train)
    )
    test = TensorDataset(
        torch.tensor(scaler.transform(x_test), dtype=torch.float32), torch.tensor(y_test)
    )
    generator = torch.Generator().manual_seed(0)
    # drop_last keeps every batch the same shape, so the step graph compiles once.
    return (
        DataLoader(train, batch_size=BATCH, shuffle=True, drop_last=True, generator=generator),
        DataLoader(test, batch_size=BATCH, drop_last=True),
    )


def test_mlp_trains_on_digits_with_bounded_compilations() -> None:
    torch.manual_seed(0)
    acc = XLAAccelerator(recompile_warmup_steps=5)
    acc.setup()
    train_loader, test_loader = digits_loaders()
    model = acc.prepare_model(
        torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    step = 0
    compiles_after_warmup = None
    warnings = []
    for _ in range(EPOCHS):
        model.train()
        for x, y in acc.wrap_loader(train_loader):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            acc.optimizer_step(optimizer)
            acc.mark_step()
            step += 1
            if step == 5:
                compiles_after_warmup = acc.num_compilations()
            warnings.append(acc.warn_if_recompiling(step))
    assert step >= 300

    # Evaluate on the device: sums stay lazy, one transfer at the end.
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=acc.device)
    seen = 0
    with torch.no_grad():
        for x, y in acc.wrap_loader(test_loader):
            correct += (model(x).argmax(dim=1) == y).sum()
            seen += y.shape[0]
            acc.mark_step()
    accuracy = correct.item() / seen
    assert accuracy >= 0.95, accuracy

    total = acc.num_compilations()
    assert compiles_after_warmup is not None and compiles_after_warmup <= 4
    # Training added nothing after warm-up; evaluation adds at most a couple of graphs.
    assert total <= compiles_after_warmup + 3, (compiles_after_warmup, total)
    assert [w for w in warnings if w] == []
