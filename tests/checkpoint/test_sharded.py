"""Sharded checkpoint folders in one process: round trips, damage, crashes, untrusted content, consolidation.

The 2- and 3-rank runs are in ``test_sharded_ddp.py``; here a folder is written without a process
group or by a 1-rank gloo group (an FSDP2 ``fully_shard`` model, the DTensor path of DCP).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.state_dict import get_state_dict
from torch.distributed.fsdp import fully_shard

from declarative_train import checkpoint
from declarative_train.checkpoint import file as ckpt_file
from declarative_train.checkpoint import sharded_folder, sharded_manifest
from declarative_train.checkpoint.sharded import load_sharded, read_full, save_sharded
from declarative_train.cli import consolidate_main
from declarative_train.errors import CheckpointError
from declarative_train.utils.tree import map_tensors


def _module_state_dict(tensors: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """A state dict as ``Module.state_dict()`` returns it: an OrderedDict with ``_metadata``."""
    state = OrderedDict(tensors)
    state._metadata = {"": {"version": 1}}  # type: ignore[attr-defined]
    return state


def _state(version: int = 0) -> dict[str, Any]:
    torch.manual_seed(version)
    return {
        "format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION,
        "state_dict": _module_state_dict({"w": torch.randn(64, 32), "b": torch.randn(32)}),
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(32)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]},
        "loop": {"epoch": version, "global_step": 10 * version},
        "rng": {"python": (3, tuple(range(7)), None), "torch": torch.get_rng_state()},
        "callbacks": {"model_checkpoint": {"best_k_models": {"a.ckpt": 0.5}}},
        "config": {"model": {"_target_": "x.Y", "hidden": [64, 32]}},
    }


def _save(state: dict[str, Any], folder: Path) -> None:
    save_sharded(state, folder, rank=0, barrier=lambda: None)


def assert_same(a: Any, b: Any) -> None:
    """Equal trees: same containers and keys, bit-identical tensors (dtype too), equal values."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b) and getattr(a, "__dict__", None) == getattr(b, "__dict__", None)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpts" / "epoch=0-step=0"
    _save(_state(), folder)
    return folder


def test_round_trip_keeps_every_value_and_leaves_no_temp_folder(saved: Path) -> None:
    assert_same(read_full(saved), _state())
    assert checkpoint.is_sharded(saved)
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
    assert sorted(p.name for p in saved.iterdir()) == [".metadata", "__0_0.distcp", "manifest.json", "state.ckpt"]
    files = json.loads((saved / "manifest.json").read_text())["files"]
    assert sorted(files) == [".metadata", "__0_0.distcp", "state.ckpt"]


def test_load_fills_the_callers_tensors_in_place_and_replaces_the_rest(saved: Path) -> None:
    target = _state(version=1)
    weight = target["state_dict"]["w"]
    loaded = load_sharded(saved, target)
    assert loaded is target and target["state_dict"]["w"] is weight  # in place
    assert_same(target, _state())


def test_loading_only_the_given_parts_leaves_the_other_tensors_unread(saved: Path) -> None:
    weights = _state(version=1)["state_dict"]
    loaded = load_sharded(saved, {"state_dict": weights}, only_given=True)
    assert_same(loaded["state_dict"], _state()["state_dict"])
    assert loaded["state_dict"]["w"] is weights["w"]  # in place
    assert loaded["optimizer"]["state"][0]["exp_avg"] is None  # not read
    assert loaded["loop"] == _state()["loop"]  # plain values come along


def test_saving_again_replaces_the_folder(saved: Path) -> None:
    _save(_state(version=2), saved)
    assert_same(read_full(saved), _state(version=2))
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]


def test_a_state_that_does_not_fit_loads_nothing(saved: Path) -> None:
    target = _state(version=1)
    target["state_dict"]["w"] = torch.zeros(64, 31)
    with pytest.raises(CheckpointError, match=r"does not fit: shape mismatches \[\[\"state_dict\", \"w\"\]"):
        load_sharded(saved, target)
    target = _state(version=1)
    target["state_dict"]["extra"] = torch.zeros(3)
    before = target["state_dict"]["b"].clone()
    with pytest.raises(CheckpointError, match=r"lacks \[\[\"state_dict\", \"extra\"\]\]"):
        load_sharded(saved, target)
    assert torch.equal(target["state_dict"]["b"], before) and target["loop"]["epoch"] == 1


def _truncate(folder: Path) -> str:
    shard = folder / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:-100])
    return r"__0_0.distcp is truncated \(\d+ bytes, \d+ written\)"


def _flip(folder: Path) -> str:
    shard = folder / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 4
    shard.write_bytes(bytes(data))
    return r"__0_0.distcp is corrupt"


def _extra(folder: Path) -> str:
    (folder / "__1_0.distcp").write_bytes(b"x")
    return r"__1_0.distcp is not in its manifest"


def _missing(folder: Path) -> str:
    (folder / ".metadata").unlink()
    return r"\.metadata is missing"


def _no_manifest(folder: Path) -> str:
    (folder / "manifest.json").unlink()
    return r"manifest.json is missing"


def _bad_manifest(folder: Path) -> str:
    (folder / "manifest.json").write_text("{")
    return r"manifest.json cannot be read"


@pytest.mark.parametrize("damage", [_truncate, _flip, _extra, _missing, _no_manifest, _bad_manifest])
def test_damage_is_reported_naming_the_file_before_anything_loads(saved: Path, damage: Any) -> None:
    pattern = damage(saved)
    target = _state(version=1)
    with pytest.raises(CheckpointError, match=pattern):
        load_sharded(saved, target)
    assert_same(target, _state(version=1))
    with pytest.raises(CheckpointError, match=str(saved)):
        read_full(saved)


# --- crashes: a child process saves version 2 over version 1 and dies at a chosen moment ----------

def _save_and_die_at(folder: Path, crash_at: int) -> int:
    """Fork; the child saves version 2, calling ``os._exit`` at its ``crash_at``-th rename (0: never)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            calls = [0]
            real_rename, real_replace = os.rename, os.replace

            def counting(real: Any) -> Any:
                def rename(*args: Any, **kwargs: Any) -> None:
                    calls[0] += 1
                    if calls[0] == crash_at:
                        os._exit(9)
                    real(*args, **kwargs)
                return rename

            os.rename, os.replace = counting(real_rename), counting(real_replace)
            _save(_state(version=2), folder)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_crash_at_any_rename_leaves_the_old_or_the_new_complete_folder(tmp_path: Path) -> None:
    folder = tmp_path / "last"
    outcomes = []
    for crash_at in range(1, 20):
        shutil.rmtree(tmp_path)
        _save(_state(version=1), folder)
        code = _save_and_die_at(folder, crash_at)
        content = read_full(folder)  # reading never changes anything, even after a crash
        assert content["loop"]["epoch"] in (1, 2)
        assert_same(content, _state(version=content["loop"]["epoch"]))
        checkpoint.recover_interrupted(folder)
        for stale in checkpoint.stale_temp_folders(tmp_path):
            shutil.rmtree(stale)
        assert [p.name for p in tmp_path.iterdir()] == ["last"]
        assert_same(read_full(folder), content)
        outcomes.append(content["loop"]["epoch"])
        if code == 0:
            break
    # Every rename of a save was a crash point once: the new version appears only at the end.
    assert code == 0 and outcomes == sorted(outcomes) and outcomes[0] == 1 and len(outcomes) >= 5


def test_a_failing_write_reports_the_folder_and_leaves_the_old_one(
        saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sharded_manifest, "write_rank_digests", full_disk)
    with pytest.raises(CheckpointError, match=f"cannot write sharded checkpoint {saved} \\(rank 0\\): No space left on device; the folder"):
        _save(_state(version=2), saved)
    assert_same(read_full(saved), _state())
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_a_failing_rename_reports_the_folder_and_leaves_the_old_one(
        saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sharded_folder, "commit", refuse)
    with pytest.raises(CheckpointError, match=f"cannot write sharded checkpoint {saved}: Permission denied; "
                       "the folder already there is unchanged"):
        save_sharded(_state(version=2), saved, rank=0, barrier=lambda: None, broadcast_object=lambda obj: obj)
    monkeypatch.setattr(sharded_folder, "recover_interrupted", refuse)  # before anything is written
    with pytest.raises(CheckpointError, match=f"cannot write sharded checkpoint {saved}: Permission denied"):
        save_sharded(_state(version=2), saved, rank=0, barrier=lambda: None, broadcast_object=lambda obj: obj)
    monkeypatch.undo()
    assert_same(read_full(saved), _state())
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_a_leftover_of_an_interrupted_replacement_is_found_and_recovered(saved: Path) -> None:
    aside = saved.parent / f".{saved.name}.0123456789ab.old"
    saved.rename(aside)  # a crash right after moving the old folder aside, before the new one was complete
    assert checkpoint.is_sharded(saved) and checkpoint.stale_temp_folders(saved.parent) == []
    assert_same(read_full(saved), _state())
    checkpoint.recover_interrupted(saved)
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_delete_removes_checkpoint_folders_only(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        checkpoint.delete_sharded(other)
    with pytest.raises(CheckpointError, match="not a sharded checkpoint folder"):
        checkpoint.delete_sharded(other / "keep.txt")
    checkpoint.delete_sharded(saved)
    assert not saved.parent.exists() or list(saved.parent.iterdir()) == []
    assert (other / "keep.txt").exists()


# --- untrusted content: a folder whose manifest is right but whose files carry a payload ----------

class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's code would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _plant_metadata_payload(folder: Path, marker: Path) -> str:
    (folder / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    return "cannot be loaded safely: UnpicklingError: pathlib.Path.touch is not allowed"


def _plant_state_payload(folder: Path, marker: Path) -> str:
    (folder / "state.ckpt").unlink()
    ckpt_file.write({"format": sharded_manifest.SHARDED_FORMAT, "content": _Payload(marker)}, [folder / "state.ckpt"])
    return "state.ckpt cannot be loaded safely"


def _plant_pickled_entry(folder: Path, marker: Path) -> str:
    """DCP's own way of storing objects: a byte-stream entry, unpickled with ``weights_only=False``."""
    with open(folder / ".metadata", "rb") as handle:
        metadata = pickle.load(handle)  # our own fresh file
    key = next(iter(metadata.state_dict_metadata))
    metadata.state_dict_metadata[key] = dcp_metadata.BytesStorageMetadata()
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    return "BytesStorageMetadata is not allowed"


def _plant_path_out_of_the_folder(folder: Path, marker: Path) -> str:
    with open(folder / ".metadata", "rb") as handle:
        metadata = pickle.load(handle)
    for info in metadata.storage_data.values():
        info.relative_path = "../outside.distcp"
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    return "points to '../outside.distcp', which is not a shard of its manifest"


@pytest.mark.parametrize("plant", [_plant_metadata_payload, _plant_state_payload, _plant_pickled_entry,
                                   _plant_path_out_of_the_folder])
def test_planted_pickles_never_run_even_with_a_correct_manifest(saved: Path, tmp_path: Path, plant: Any) -> None:
    marker = tmp_path / "pwned"
    message = plant(saved, marker)
    (saved / "manifest.json").unlink()
    sharded_manifest.write_manifest(saved)  # the attacker rewrites the manifest too
    sharded_manifest.verify(saved)
    for read in (read_full, lambda f: load_sharded(f, _state(version=1)), checkpoint.read_any):
        with pytest.raises(CheckpointError, match=message):
            read(saved)
    assert not marker.exists()


# --- FSDP2 on a 1-rank gloo group; consolidation; the optimizer layouts -------------------------

@contextlib.contextmanager
def one_rank_group() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=60))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _net(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    generator = torch.Generator().manual_seed(7)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 8, generator=generator)).square().mean().backward()
        optimizer.step()


def test_fsdp_folder_reads_whole_and_consolidates_into_a_file_a_plain_model_resumes_from(tmp_path: Path) -> None:
    folder, out = tmp_path / "sharded", tmp_path / "consolidated.ckpt"
    with one_rank_group():
        model = _net(0)
        fully_shard(model[0])
        fully_shard(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        _train(model, optimizer, 2)
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state = {**_state(), "state_dict": model_state, "optimizer": optimizer_state}
        save_sharded(state, folder, rank=0, barrier=dist.barrier,
                     broadcast_object=lambda obj: obj)
    reference, reference_opt = _net(0), None
    reference_opt = torch.optim.Adam(reference.parameters(), lr=0.01)
    _train(reference, reference_opt, 2)
    full = read_full(folder)
    assert_same(dict(full["state_dict"]), dict(reference.state_dict()))
    assert_same(full["loop"], _state()["loop"])

    consolidate_main([str(folder), str(out)])
    saved = checkpoint.read(str(out), for_resume=True)
    assert_same(saved["optimizer"], checkpoint.plain_optimizer_state(full["optimizer"]))
    assert_same({k: v for k, v in saved.items() if k != "optimizer"}, {k: v for k, v in full.items() if k != "optimizer"})
    assert_same(dict(saved["optimizer"]["state"]), dict(reference_opt.state_dict()["state"]))

    resumed = _net(1)
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=0.01)
    checkpoint.restore({"state_dict": checkpoint.ModuleState(resumed), "optimizer": checkpoint.OptimizerState(resumed_opt)},
                       saved, str(out))
    _train(resumed, resumed_opt, 1)
    _train(reference, reference_opt, 1)
    assert_same(dict(resumed.state_dict()), dict(reference.state_dict()))


def _two_group_adam(model: torch.nn.Sequential) -> torch.optim.Adam:
    weights: dict[str, Any] = {"params": [model[0].weight, model[2].weight]}
    biases: dict[str, Any] = {"params": [model[0].bias, model[2].bias], "lr": 0.5}
    return torch.optim.Adam([weights, biases], lr=0.01)


def test_plain_optimizer_state_loads_into_a_plain_adam_that_steps_identically() -> None:
    model = _net(0)
    optimizer = _two_group_adam(model)
    _train(model, optimizer, 2)
    fqn_state = map_tensors(get_state_dict(model, optimizer)[1], torch.clone)  # as from a file: not shared
    assert fqn_state["param_groups"][0]["params"] == ["0.weight", "2.weight"]
    plain = checkpoint.plain_optimizer_state(fqn_state)
    assert plain["param_groups"][1]["params"] == [2, 3]

    copy = _net(5)
    copy.load_state_dict(model.state_dict())
    copy_opt = _two_group_adam(copy)
    copy_opt.load_state_dict(plain)
    assert_same(copy_opt.state_dict(), optimizer.state_dict())
    _train(model, optimizer, 2)
    _train(copy, copy_opt, 2)
    assert_same(dict(copy.state_dict()), dict(model.state_dict()))


def test_read_any_reads_files_and_folders_with_the_same_checks(saved: Path, tmp_path: Path) -> None:
    file = tmp_path / "single.ckpt"
    ckpt_file.write(_state(), [file])
    assert_same(checkpoint.read_any(file), checkpoint.read_any(saved))
    weights_only = tmp_path / "weights"
    _save({k: v for k, v in _state().items() if k not in ("optimizer", "rng")}, weights_only)
    checkpoint.read_any(weights_only)
    with pytest.raises(CheckpointError, match=f"checkpoint {weights_only} cannot be resumed from: it lacks optimizer, rng"):
        checkpoint.read_any(weights_only, for_resume=True)
    foreign = tmp_path / "foreign"
    _save({"state_dict": {"w": torch.ones(2)}}, foreign)
    with pytest.raises(CheckpointError, match=f"checkpoint {foreign} was not written by declarative_train"):
        checkpoint.read_any(foreign)


def test_consolidate_command_exit_codes(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.ckpt"
    consolidate_main([str(saved), str(out)])
    assert_same(checkpoint.read(str(out)), _state())
    with pytest.raises(SystemExit) as exit_info:
        consolidate_main([str(tmp_path / "nowhere"), str(out)])
    assert exit_info.value.code == 2 and "is not a sharded checkpoint folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        consolidate_main([str(saved)])
    assert exit_info.value.code == 2
    _truncate(saved)
    with pytest.raises(SystemExit) as exit_info:
        consolidate_main([str(saved), str(tmp_path / "other.ckpt")])
    assert exit_info.value.code == 1 and f"{saved}/__0_0.distcp is truncated" in capsys.readouterr().err
    assert not (tmp_path / "other.ckpt").exists()
