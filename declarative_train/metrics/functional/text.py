"""Text metrics: perplexity of a language model, ``exp`` of the mean negative log-likelihood per token."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import Tensor

from declarative_train.metrics.functional._checks import fail


def check_perplexity_inputs(name: str, preds: Tensor, target: Tensor) -> None:
    """Raise unless ``preds`` are float logits ``[..., V]`` and ``target`` integer ids ``[...]``."""
    if not preds.is_floating_point():
        raise fail(name, "preds", f"must hold float logits, got dtype {preds.dtype}")
    if target.is_floating_point() or target.is_complex():
        raise fail(name, "target", f"must be an integer tensor of token ids, got dtype {target.dtype}")
    if preds.ndim < 1 or preds.shape[:-1] != target.shape:
        raise fail(name, "preds", f"must have shape (..., V) for target (...); got {tuple(preds.shape)} "
                                  f"and target {tuple(target.shape)}")


def perplexity_update(
    preds: Tensor, target: Tensor, ignore_index: int | None = None, name: str = "perplexity",
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    """``(summed negative log-likelihood as float64, number of counted tokens)`` of one batch.

    Tokens whose target is ``ignore_index`` are left out of both.
    """
    if validate_args:
        check_perplexity_inputs(name, preds, target)
    logits = preds.reshape(-1, preds.shape[-1])
    labels = target.reshape(-1).long()
    if ignore_index is not None:
        keep = labels != ignore_index
        logits, labels = logits[keep], labels[keep]
    if validate_args and labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[-1]):
        raise fail(name, "target", f"holds ids outside [0, {logits.shape[-1]}) (ids to leave out: "
                                   f"ignore_index), got {labels.min().item()}..{labels.max().item()}")
    # per token in float32 (bf16 logits upcast), summed in float64: many tokens lose no digits
    nll = nnf.cross_entropy(logits.float(), labels, reduction="none")
    return nll.double().sum(), torch.tensor(labels.numel(), dtype=torch.long, device=preds.device)


def perplexity_from_sums(nll_sum: Tensor, count: Tensor) -> Tensor:
    """``exp(nll_sum / count)`` as float32 (``nan`` when nothing was counted)."""
    return torch.exp(nll_sum / count).float()


def perplexity(preds: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Perplexity of logits ``preds[..., V]`` for token ids ``target[...]``.

    Example:
        >>> import torch
        >>> perplexity(torch.zeros(1, 4, 8), torch.zeros(1, 4, dtype=torch.long))  # uniform over 8
        tensor(8.)
    """
    return perplexity_from_sums(*perplexity_update(preds, target, ignore_index))
