"""Perplexity: a hand computation, torch's cross_entropy, batches, ignore_index, 2 gloo ranks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as nnf

import declarative_train.metrics as M
from declarative_train.metrics import functional as F


def _data(seed: int = 0, batch: int = 6, length: int = 5, vocab: int = 7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, vocab, generator=gen), torch.randint(0, vocab, (batch, length), generator=gen)


def test_hand_computation():
    # two tokens: p(target) = 1/2 and 1/4 -> mean NLL = (ln 2 + ln 4) / 2 -> perplexity sqrt(8)
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]]))
    target = torch.tensor([[0, 1]])
    assert M.Perplexity()(logits, target).item() == pytest.approx(math.sqrt(8), rel=1e-6)
    assert F.perplexity(logits, target).item() == pytest.approx(math.sqrt(8), rel=1e-6)


def test_uniform_logits_give_the_vocabulary_size():
    assert F.perplexity(torch.zeros(3, 4, 11), torch.randint(0, 11, (3, 4))).item() == pytest.approx(11.0)


def test_accumulates_over_updates_as_one_shot_and_matches_cross_entropy():
    logits, target = _data()
    expected = math.exp(nnf.cross_entropy(logits.flatten(0, 1), target.flatten()).item())
    metric = M.Perplexity()
    values = [metric(logits[:1], target[:1]), metric(logits[1:4], target[1:4])]
    metric.update(logits[4:], target[4:])
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    assert values[1].item() == pytest.approx(F.perplexity(logits[1:4], target[1:4]).item(), rel=1e-6)
    assert metric.nll_sum.dtype == torch.float64
    assert metric.count.item() == target.numel()
    metric.reset()
    assert metric.count.item() == 0 and math.isnan(metric.compute().item())


def test_ignore_index_leaves_tokens_out():
    logits, target = _data(1)
    masked = target.clone()
    masked[:, -2:] = -100
    expected = math.exp(nnf.cross_entropy(logits.flatten(0, 1), masked.flatten(), ignore_index=-100).item())
    metric = M.Perplexity(ignore_index=-100)
    metric.update(logits[:3], masked[:3])
    metric.update(logits[3:], masked[3:])
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    assert metric.count.item() == target.numel() - 2 * target.shape[0]
    with pytest.raises(ValueError, match=r"outside \[0, 7\)"):  # not silently counted as certain
        M.Perplexity().update(logits, masked)


def test_bf16_logits_are_counted_in_float():
    logits, target = _data(2)
    got = F.perplexity(logits.bfloat16(), target).item()
    assert got == pytest.approx(F.perplexity(logits.bfloat16().float(), target).item(), rel=1e-6)


def test_bad_inputs_and_arguments():
    logits, target = _data()
    with pytest.raises(ValueError, match="argument `preds` must have shape"):
        M.Perplexity().update(logits[:, :-1], target)
    with pytest.raises(ValueError, match="argument `target` must be an integer"):
        M.Perplexity().update(logits, target.float())
    with pytest.raises(ValueError, match="argument `preds` must hold float logits"):
        M.Perplexity().update(target, target)
    with pytest.raises(ValueError, match="ignore_index"):
        M.Perplexity(ignore_index=0.5)  # type: ignore[arg-type]
    assert M.Perplexity.higher_is_better is False


def _rank(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        logits, target = _data(3, batch=10)
        lo, hi = [(0, 7), (7, 10)][rank]  # uneven shards
        metric = M.Perplexity(ignore_index=0)
        metric.update(logits[lo:hi], target[lo:hi])
        torch.save({"synced": metric.compute(), "local_count": metric.count.clone()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_synced_across_two_gloo_ranks(tmp_path):
    mp.start_processes(_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="spawn")
    logits, target = _data(3, batch=10)
    expected = F.perplexity(logits, target, ignore_index=0)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in results:
        assert result["synced"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert sum(r["local_count"].item() for r in results) == (target != 0).sum().item()  # unsynced after compute
