"""trainer.activation_checkpointing: same numbers, fewer saved activations, same checkpoints."""

from __future__ import annotations

import contextlib
import copy
import pickle
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from declarative_train import Classification, Executor
from declarative_train.data import Digits
from declarative_train.engine import TrainerSettings
from declarative_train.engine.activation_checkpointing import (
    apply_activation_checkpointing,
    is_checkpointed,
)
from declarative_train.engine.training_state import load_weights
from declarative_train.errors import SettingsError
from declarative_train.models import MLP


class ResidualBlock(nn.Module):
    """``x + mlp(norm(x))`` with dropout on the branch: the kind of block one recomputes."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.proj(torch.nn.functional.gelu(self.fc(self.norm(x)))))


class ResidualNet(nn.Module):
    def __init__(self, width: int = 32, depth: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(16, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, dropout) for _ in range(depth)))
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(x)))


def _loss_and_grads(model: nn.Module, seed: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)  # the inputs and the dropout masks
    x, y = torch.randn(8, 16), torch.randint(0, 3, (8,))
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _pair(dropout: float = 0.0) -> tuple[ResidualNet, ResidualNet]:
    torch.manual_seed(0)
    plain = ResidualNet(dropout=dropout)
    return plain, copy.deepcopy(plain)


@contextlib.contextmanager
def _block_forward_calls() -> Iterator[list[int]]:
    """Count calls of ``ResidualBlock.forward`` (the class's: what a recomputation runs) in ``[count]``."""
    calls, original = [0], ResidualBlock.forward

    def counted(self: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return original(self, x)

    ResidualBlock.forward = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        ResidualBlock.forward = original  # type: ignore[method-assign]


def _assert_same(expected: tuple[torch.Tensor, dict[str, torch.Tensor]],
                 actual: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> None:
    torch.testing.assert_close(actual[0], expected[0])
    assert actual[1].keys() == expected[1].keys() and expected[1]
    for name, grad in expected[1].items():
        torch.testing.assert_close(actual[1][name], grad, msg=name)


def test_residual_blocks_give_the_same_loss_and_gradients() -> None:
    plain, checkpointed = _pair()
    assert apply_activation_checkpointing(checkpointed, ["ResidualBlock"]) == 4
    with _block_forward_calls() as plain_calls:
        reference = _loss_and_grads(plain)
    with _block_forward_calls() as checkpointed_calls:
        _assert_same(reference, _loss_and_grads(checkpointed))
    assert (plain_calls, checkpointed_calls) == ([4], [8])  # the 4 blocks run again in backward


def test_dropout_draws_the_same_mask_when_recomputed() -> None:
    plain, checkpointed = _pair(dropout=0.5)
    plain.train(), checkpointed.train()
    apply_activation_checkpointing(checkpointed, ["ResidualBlock"])
    reference = _loss_and_grads(plain)
    _assert_same(reference, _loss_and_grads(checkpointed))
    # The masks matter: another draw gives other gradients, so the equality above is not vacuous.
    other = _loss_and_grads(plain, seed=2)
    assert not torch.allclose(other[1]["blocks.0.fc.weight"], reference[1]["blocks.0.fc.weight"])


def test_nested_classes_and_the_count_of_wrapped_modules() -> None:
    plain, checkpointed = _pair(dropout=0.1)
    assert apply_activation_checkpointing(checkpointed, ["ResidualBlock", "LayerNorm", "Linear"]) == 4 + 4 + 4 * 2 + 2
    assert apply_activation_checkpointing(checkpointed, ["ResidualBlock"]) == 4  # again: nothing changes
    assert sum(is_checkpointed(m) for m in checkpointed.modules()) == 18
    _assert_same(_loss_and_grads(plain), _loss_and_grads(checkpointed))


def test_unknown_class_name_suggests_the_closest_module_class() -> None:
    model = ResidualNet()
    with pytest.raises(SettingsError, match=r"'ResidualBlok'\. Did you mean 'ResidualBlock'\?") as info:
        apply_activation_checkpointing(model, ["ResidualBlock", "ResidualBlok"])
    assert info.value.setting == "activation_checkpointing"
    assert "Module classes: " in str(info.value) and "LayerNorm" in str(info.value)
    assert not any(is_checkpointed(m) for m in model.modules())  # checked before anything changes


def test_the_setting_is_validated_and_frozen() -> None:
    assert TrainerSettings(activation_checkpointing=["Block"]).activation_checkpointing == ("Block",)
    with pytest.raises(ValueError, match="activation_checkpointing: must be a list of module class names"):
        TrainerSettings(activation_checkpointing="Block")


def test_fewer_activation_bytes_are_saved_for_backward() -> None:
    def saved_bytes(model: nn.Module) -> int:
        total = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        x = torch.randn(64, 16)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = model(x).sum()
        loss.backward()  # recomputation's own saved tensors are not counted: they live during backward only
        return total

    plain, checkpointed = _pair(dropout=0.1)
    apply_activation_checkpointing(checkpointed, ["ResidualBlock"])
    without, with_ac = saved_bytes(plain), saved_bytes(checkpointed)
    # Each block keeps its input only, instead of its LayerNorm, 4x-wide hidden and dropout activations.
    assert with_ac < without / 3, (with_ac, without)


def test_evaluation_copies_and_pickles_are_unaffected() -> None:
    plain, checkpointed = _pair(dropout=0.5)
    apply_activation_checkpointing(checkpointed, ["ResidualBlock"])
    x = torch.randn(4, 16)
    plain.eval(), checkpointed.eval()
    with torch.no_grad(), _block_forward_calls() as calls:
        torch.testing.assert_close(checkpointed(x), plain(x))
    assert calls == [8]  # 4 blocks of each model once: nothing to recompute without gradients
    with torch.no_grad():
        pickled = pickle.loads(pickle.dumps(checkpointed))  # spawned workers, torch.save of a module
        assert all(is_checkpointed(block) for block in pickled.blocks.children())
        torch.testing.assert_close(pickled(x), plain(x))
        twin = copy.deepcopy(checkpointed)  # EMA/SWA copy the model: the copy must run its own weights
        for p in twin.parameters():
            p.mul_(0.5)
        assert all(is_checkpointed(block) for block in twin.blocks.children())
        assert not torch.allclose(twin(x), checkpointed(x))
    twin.train()
    twin(x).sum().backward()  # the copy's checkpointed blocks put gradients on the copy's parameters
    name = "blocks.0.fc.weight"
    assert dict(twin.named_parameters())[name].grad is not None
    assert dict(checkpointed.named_parameters())[name].grad is None


def _executor(steps: int, dropout: float = 0.2, **settings: Any) -> Executor:
    torch.manual_seed(0)
    task = Classification(MLP(64, [64, 32], 10, dropout=dropout), nn.CrossEntropyLoss())
    return Executor(task=task, data=Digits(batch_size=32), optimizer=partial(torch.optim.Adam, lr=1e-2),
                    max_steps=steps, max_epochs=-1, limit_val_batches=0, **settings)


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_close_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                          rtol: float | None = None, atol: float | None = None) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, msg=name, rtol=rtol, atol=atol)


def test_training_with_it_matches_and_checkpoints_load_either_way(tmp_path: Path) -> None:
    plain = _executor(6)
    plain.fit()
    checkpointed = _executor(6, activation_checkpointing=["Linear"])  # the same seed: the same dropout masks
    checkpointed.fit()
    assert sum(is_checkpointed(m) for m in checkpointed.task.modules()) == 3
    _assert_close_weights(_weights(checkpointed.task), _weights(plain.task))  # dropout (train mode) included

    with_ac, without_ac = str(tmp_path / "with_ac.ckpt"), str(tmp_path / "without_ac.ckpt")
    checkpointed.save_checkpoint(with_ac)
    plain.save_checkpoint(without_ac)
    fresh = Classification(MLP(64, [64, 32], 10, dropout=0.2), nn.CrossEntropyLoss())
    load_weights(fresh, with_ac)  # strict: every key of a model without the setting
    _assert_close_weights(_weights(fresh), _weights(checkpointed.task), rtol=0, atol=0)
    # Resume (optimizer, loop, sampler: the whole state) across the setting, both ways.
    resumed_without = _executor(8)
    resumed_without.fit(ckpt_path=with_ac)
    resumed_with = _executor(8, activation_checkpointing=["Linear"])
    resumed_with.fit(ckpt_path=without_ac)
    assert resumed_without.state.global_step == resumed_with.state.global_step == 8
    _assert_close_weights(_weights(resumed_with.task), _weights(resumed_without.task))
    assert not torch.equal(_weights(resumed_with.task)["net.0.weight"], _weights(checkpointed.task)["net.0.weight"])


def test_compile_traces_the_checkpointed_blocks_in_one_graph() -> None:
    model = ResidualNet()
    apply_activation_checkpointing(model, ["ResidualBlock"])
    explained = torch._dynamo.explain(model)(torch.randn(8, 16))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    regions = [node for graph in explained.graphs for node in graph.graph.nodes
               if "tag_activation_checkpoint" in str(node.target)]
    assert len(regions) == 4


@pytest.mark.slow
def test_it_composes_with_compile() -> None:
    # Without dropout: compiled code draws its random numbers differently from eager code.
    eager = _executor(4, dropout=0.0)
    eager.fit()
    compiled = _executor(4, dropout=0.0, activation_checkpointing=["Linear"], compile=True)
    compiled.fit()
    assert sum(is_checkpointed(m) for m in compiled.task.modules()) == 3
    _assert_close_weights(_weights(compiled.task), _weights(eager.task), rtol=1e-4, atol=1e-5)


def _fsdp_rank(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    try:
        model, _ = _pair()
        apply_activation_checkpointing(model, ["ResidualBlock"])  # first, as Executor.setup does
        mesh = init_device_mesh("cpu", (world,))
        for block in model.blocks.children():
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        torch.manual_seed(1)
        x, y = torch.randn(8, 16), torch.randint(0, 3, (8,))
        half = slice(4 * rank, 4 * rank + 4)
        with _block_forward_calls() as calls:
            nn.functional.cross_entropy(model(x[half]), y[half]).backward()  # FSDP averages the halves' grads
        grads = {name: p.grad.full_tensor() for name, p in model.named_parameters()}  # type: ignore[union-attr]
        if rank == 0:
            torch.save({"grads": grads, "forward_calls": calls[0]}, f"{out}/grads.pt")
        dist.barrier()  # no rank tears the group down while the other still uses it
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_fsdp_shards_the_checkpointed_blocks_with_the_same_gradients(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.start_processes(_fsdp_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="spawn")
    plain, _ = _pair()
    _, expected = _loss_and_grads(plain)
    sharded = torch.load(tmp_path / "grads.pt")
    _assert_same((torch.zeros(()), expected), (torch.zeros(()), sharded["grads"]))
    assert sharded["forward_calls"] == 8  # the 4 sharded blocks recomputed in backward
