"""The GPT model: shapes, causality, tied head, initialisation, recomputation, bad arguments."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from declarative_train.errors import ArgumentError
from declarative_train.models import GPT, TransformerBlock
from declarative_train.tasks import LanguageModel


def _gpt(**kwargs) -> GPT:
    torch.manual_seed(0)
    return GPT(**{"vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32, **kwargs})


def _blocks(model: GPT) -> list[TransformerBlock]:
    blocks = list(model.blocks)
    assert all(type(b) is TransformerBlock for b in blocks)
    return blocks  # type: ignore[return-value]


def test_logits_shape_and_shorter_sequences() -> None:
    model = _gpt()
    assert model(torch.randint(0, 50, (3, 16))).shape == (3, 16, 50)
    assert model(torch.randint(0, 50, (2, 5))).shape == (2, 5, 50)


def test_a_sequence_longer_than_block_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="17 tokens is longer than block_size=16"):
        _gpt()(torch.zeros(1, 17, dtype=torch.long))


def test_logits_at_t_do_not_depend_on_later_tokens() -> None:
    model = _gpt().eval()
    idx = torch.randint(0, 50, (2, 16))
    changed = idx.clone()
    changed[:, 9:] = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])
    # and the gradient of position 4's logits reaches no embedding of a later token
    emb = model.tok_emb(idx).detach().requires_grad_(True)
    x = emb + model.pos_emb(torch.arange(16))
    for block in model.blocks:
        x = block(x)
    model.head(model.ln_f(x))[:, 4].sum().backward()
    assert emb.grad is not None
    assert emb.grad[:, 5:].abs().max() == 0 and emb.grad[:, :5].abs().max() > 0


def test_head_is_tied_to_the_token_embedding() -> None:
    model = _gpt()
    assert model.head.weight is model.tok_emb.weight
    names = [name for name, _ in model.named_parameters()]
    assert "head.weight" not in names  # counted once
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for _, p in model.named_parameters())


def test_blocks_and_initialisation() -> None:
    model = _gpt(n_layer=3, n_embd=64, n_head=4)
    blocks = _blocks(model)
    assert len(blocks) == 3
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    proj = torch.cat([b.mlp.proj.weight.flatten() for b in blocks])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(6), rel=0.1)
    assert blocks[0].attn.qkv.bias.abs().max() == 0
    assert _blocks(GPT(50, 8, 1, 1, 8, bias=False))[0].attn.qkv.bias is None


def test_a_block_recomputed_in_backward_gives_the_same_gradients() -> None:
    block = _blocks(_gpt())[0]
    x = torch.randn(2, 8, 32, requires_grad=True)
    block(x).square().sum().backward()
    plain = [p.grad.clone() for p in block.parameters() if p.grad is not None]
    block.zero_grad()
    checkpoint(block, x, use_reentrant=False).square().sum().backward()
    for want, param in zip(plain, block.parameters()):
        torch.testing.assert_close(param.grad, want)


def test_the_language_model_task_loss_and_eval_step() -> None:
    task = LanguageModel(_gpt())
    inputs, targets = torch.randint(0, 50, (2, 16)), torch.randint(0, 50, (2, 16))
    loss = task.training_step((inputs, targets), 0)
    logits = task(inputs)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)
    assert math.log(50) - 0.5 < loss.item() < math.log(50) + 0.5  # near uniform at initialisation
    out = task.validation_step((inputs, targets), 0)
    assert out.preds is not None and out.preds.shape == (2, 16, 50) and out.target is targets
    assert task.predict_step((inputs, targets), 0).shape == (2, 16, 50)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"n_embd": 30, "n_head": 4}, "n_embd"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"block_size": 2.5}, "block_size"),
    ({"n_layer": True}, "n_layer"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_arguments_name_themselves(kwargs: dict, argument: str) -> None:
    with pytest.raises(ArgumentError, match=f"GPT: {argument}") as info:
        _gpt(**kwargs)
    assert info.value.argument == argument
