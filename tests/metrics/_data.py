"""Seeded random inputs, including edge cases, shared by the metric tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Case:
    task: str
    n: int  # classes (multiclass) or labels (multilabel); 2 for binary
    preds: torch.Tensor  # scores (probabilities or logits)
    target: torch.Tensor
    pred_labels: np.ndarray  # what a correct implementation predicts from ``preds``
    true_labels: np.ndarray
    note: str


def _binary(rng: np.random.Generator, size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    target = rng.integers(0, 2, size)
    probs = rng.random(size)
    if mode == "one_class":
        target[:] = 1
    if mode == "no_pos_pred":
        probs = probs * 0.4
    return probs, target


def classification_cases(seeds: range = range(3)) -> list[Case]:
    """Binary, multiclass and multilabel cases: random, absent class, one sample, one class."""
    cases: list[Case] = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for mode, size in (("random", 37), ("one", 1), ("one_class", 12), ("no_pos_pred", 15)):
            probs, target = _binary(rng, size, mode)
            logits = seed % 2 == 1  # odd seeds feed logits
            scores = np.log(probs / (1 - probs)) if logits else probs
            # a batch of logits that all fall inside [0, 1] is read as probabilities (documented rule)
            seen = probs if not logits or ((scores < 0) | (scores > 1)).any() else scores
            cases.append(
                Case(
                    "binary",
                    2,
                    torch.tensor(scores, dtype=torch.float32),
                    torch.tensor(target),
                    (seen > 0.5).astype(int),
                    target,
                    f"binary-{mode}-{seed}",
                )
            )
        for mode, size in (("random", 41), ("one", 1), ("absent", 30), ("one_class", 9)):
            c = 4
            logits = rng.normal(size=(size, c))
            target = rng.integers(0, c, size)
            if mode == "absent":  # class 3 never predicted, class 2 never a target
                logits[:, 3] = -10
                target[target == 2] = 0
            if mode == "one_class":
                target[:] = 1
            cases.append(
                Case(
                    "multiclass",
                    c,
                    torch.tensor(logits, dtype=torch.float32),
                    torch.tensor(target),
                    logits.argmax(1),
                    target,
                    f"multiclass-{mode}-{seed}",
                )
            )
        for mode, size in (("random", 33), ("one", 1), ("absent", 20)):
            n_labels = 3
            probs = rng.random((size, n_labels))
            target = rng.integers(0, 2, (size, n_labels))
            if mode == "absent":
                target[:, 1] = 0
                probs[:, 1] = 0.1
            cases.append(
                Case(
                    "multilabel",
                    n_labels,
                    torch.tensor(probs, dtype=torch.float32),
                    torch.tensor(target),
                    (probs > 0.5).astype(int),
                    target,
                    f"multilabel-{mode}-{seed}",
                )
            )
    return cases


def task_kwargs(case: Case) -> dict:
    if case.task == "multiclass":
        return {"task": "multiclass", "num_classes": case.n}
    if case.task == "multilabel":
        return {"task": "multilabel", "num_labels": case.n}
    return {"task": "binary"}
