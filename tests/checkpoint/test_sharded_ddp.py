"""Sharded checkpoints of an FSDP2 (``fully_shard``) model + Adam across real gloo ranks.

Saved on 2 ranks; loaded on 2, 1 and 3 (resharded) with bit-identical parameters and optimizer
state; read whole and consolidated in one process; a rank killed in the middle of a save leaves
the previous folder as it was.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard

from declarative_train import checkpoint
from declarative_train.checkpoint import sharded_dcp
from declarative_train.checkpoint.sharded import load_sharded, read_full, save_sharded
from declarative_train.checkpoint.sharded_writer import ShardedCheckpointWriter
from declarative_train.distributed.group import leave_process_group
from declarative_train.errors import CheckpointError
from declarative_train.utils.tree import map_tensors
from tests.checkpoint.test_sharded import _net, _train, assert_same

pytestmark = pytest.mark.ddp
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _sharded_model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = _net(seed)
    fully_shard(model[0])
    fully_shard(model[2])
    fully_shard(model)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _broadcast(obj: Any) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> dict[str, Any]:
    model_state, optimizer_state = get_state_dict(model, optimizer)
    return {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION,
            "state_dict": model_state, "optimizer": optimizer_state, "loop": {"global_step": step},
            "rng": {"torch": torch.get_rng_state()}, "config": {"trainer": {"max_steps": 9}}}


def _save(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: Path, step: int) -> None:
    save_sharded(_training_state(model, optimizer, step), folder, rank=dist.get_rank(), barrier=dist.barrier,
                 broadcast_object=_broadcast)


def _full(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    model_state, optimizer_state = get_state_dict(model, optimizer, options=FULL)
    # A copy: the optimizer's step counters would change with the next step.
    return map_tensors({"state_dict": model_state, "optimizer": optimizer_state}, torch.clone)


def _scenario_save(folder: Path, out: Path) -> None:
    model, optimizer = _sharded_model(0)
    _train(model, optimizer, 2)
    _save(model, optimizer, folder, step=2)
    full = _full(model, optimizer)
    _train(model, optimizer, 1)
    after = _full(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"saved": full, "after_step": after}, out / "reference.pt")


def _scenario_load(folder: Path, out: Path) -> None:
    model, optimizer = _sharded_model(1)
    state = _training_state(model, optimizer, step=0)
    load_sharded(folder, state)
    set_state_dict(model, optimizer, model_state_dict=state["state_dict"], optim_state_dict=state["optimizer"])
    loaded = _full(model, optimizer)
    _train(model, optimizer, 1)
    after = _full(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"loaded": loaded, "after_step": after, "loop": state["loop"]},
                   out / f"loaded_{dist.get_world_size()}.pt")


def _scenario_save_and_kill_rank_1(folder: Path, out: Path) -> None:
    model, optimizer = _sharded_model(0)
    _train(model, optimizer, 3)
    if dist.get_rank() == 1:
        def die(*args: Any) -> None:
            os._exit(3)  # killed in the middle of the save: rank 0 is writing its shard

        sharded_dcp.DigestingWriter.write_data = die  # type: ignore[method-assign,assignment]
    try:
        _save(model, optimizer, folder, step=3)
    except CheckpointError as exc:
        (out / "rank0_error.txt").write_text(str(exc))
        os._exit(1)  # the group is broken: leave without tearing it down


def _scenario_background(folder: Path, out: Path) -> None:
    """A background write at step 2 and a copy to ``last``, while training goes on with its own collectives."""
    model, optimizer = _sharded_model(0)
    _train(model, optimizer, 2)
    trained, write_data = threading.Event(), sharded_dcp.DigestingWriter.write_data

    def write_after_training(*args: Any, **kwargs: Any) -> Any:  # the shards are written once training changed them
        assert trained.wait(60)
        return write_data(*args, **kwargs)

    sharded_dcp.DigestingWriter.write_data = write_after_training  # type: ignore[method-assign]
    writer = ShardedCheckpointWriter(dist.get_rank(), dist.barrier, _broadcast, timeout=timedelta(seconds=30))
    events: list[str] = []
    writer.write(_training_state(model, optimizer, step=2), [folder, folder.parent / "last"], background=True,
                 then=lambda: events.append(f"then: {sorted(p.name for p in folder.parent.iterdir())}"))
    saved = _full(model, optimizer)  # gathers on the default group while the writer's group saves
    _train(model, optimizer, 2)  # changes every parameter and moment in place
    events.append(f"busy after training: {writer.busy}")
    trained.set()
    writer.wait()
    writer.write(_training_state(model, optimizer, step=4), [folder.parent / "epoch=0-step=4"], background=True)
    writer.close()
    after = _full(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"saved": saved, "after": after, "events": events}, out / "background.pt")


SCENARIOS: dict[str, Callable[[Path, Path], None]] = {
    "save": _scenario_save, "load": _scenario_load, "kill": _scenario_save_and_kill_rank_1,
    "background": _scenario_background,
}


def _worker(rank: int, world: int, init_file: str, scenario: str, folder: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=30))
    try:
        SCENARIOS[scenario](Path(folder), Path(out))
        dist.barrier()  # leave together: a rank tearing gloo down while another still sends can abort
    finally:
        # A rank aborted now and then at exit ("terminate called without an active exception"). The
        # likely cause: FSDP's modules sit in reference cycles that hold the group, which was then
        # destroyed during interpreter teardown; leave_process_group collects them first.
        leave_process_group()


def _run(scenario: str, world: int, folder: Path, out: Path, timeout: float = 150) -> list[int | None]:
    """Run ``scenario`` on ``world`` spawned ranks; their exit codes."""
    out.mkdir(parents=True, exist_ok=True)
    init_file = out / f"init_{scenario}_{world}"
    init_file.unlink(missing_ok=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(rank, world, str(init_file), scenario, str(folder), str(out)))
             for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return [proc.exitcode for proc in procs]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sharded_ddp")
    folder = tmp / "checkpoints" / "epoch=0-step=2"
    assert _run("save", 2, folder, tmp) == [0, 0]
    return folder, torch.load(tmp / "reference.pt", weights_only=True)


@pytest.mark.parametrize("world", [2, 1, 3])
def test_loading_on_any_number_of_ranks_restores_bit_identical_state(
        saved: tuple[Path, dict[str, Any]], tmp_path: Path, world: int) -> None:
    folder, reference = saved
    assert _run("load", world, folder, tmp_path) == [0] * world
    result = torch.load(tmp_path / f"loaded_{world}.pt", weights_only=True)
    assert_same(result["loaded"], reference["saved"])
    assert result["loop"] == {"global_step": 2}
    if world == 2:  # the same reduce-scatter: the next step is bit-identical too
        assert_same(result["after_step"], reference["after_step"])
    else:
        for key, value in reference["after_step"]["state_dict"].items():
            torch.testing.assert_close(result["after_step"]["state_dict"][key], value)


def test_one_process_reads_the_whole_folder_and_consolidates_it(
        saved: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    folder, reference = saved
    full = read_full(folder)
    assert_same(dict(full["state_dict"]), reference["saved"]["state_dict"])
    assert_same(full["optimizer"], reference["saved"]["optimizer"])
    assert full["loop"] == {"global_step": 2} and full["config"] == {"trainer": {"max_steps": 9}}
    out = tmp_path / "consolidated.ckpt"
    checkpoint.consolidate(folder, out)
    single = checkpoint.read(str(out), for_resume=True)
    assert_same(single["optimizer"], checkpoint.plain_optimizer_state(full["optimizer"]))
    assert_same({k: v for k, v in single.items() if k != "optimizer"},
                {k: v for k, v in full.items() if k != "optimizer"})


def test_a_rank_killed_in_the_middle_of_a_save_leaves_the_previous_folder(
        saved: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    source, reference = saved
    folder = tmp_path / "checkpoints" / "last"
    shutil.copytree(source, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    codes = _run("kill", 2, folder, tmp_path, timeout=90)
    assert codes[1] == 3 and codes[0] != 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # not a byte changed
    assert_same(dict(read_full(folder)["state_dict"]), reference["saved"]["state_dict"])
    stale = checkpoint.stale_temp_folders(folder.parent)
    assert [p.name for p in stale] == [p.name for p in folder.parent.iterdir() if p.name != "last"]
    error = (tmp_path / "rank0_error.txt").read_text()  # rank 0 reports it (gloo: connection reset)
    assert error.startswith(f"cannot write sharded checkpoint {folder}") and "unchanged" in error


def test_a_background_write_saves_the_state_of_its_step_while_training_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints" / "epoch=0-step=2"
    assert _run("background", 2, folder, tmp_path) == [0, 0]
    result = torch.load(tmp_path / "background.pt", weights_only=True)
    for path in (folder, folder.parent / "last"):  # both folders hold step 2, not what training did after
        full = read_full(path)
        assert full["loop"] == {"global_step": 2}
        assert_same(dict(full["state_dict"]), result["saved"]["state_dict"])
        assert_same(full["optimizer"], result["saved"]["optimizer"])
    later = read_full(folder.parent / "epoch=0-step=4")
    assert later["loop"] == {"global_step": 4}
    assert_same(dict(later["state_dict"]), result["after"]["state_dict"])
    assert "busy after training: True" in result["events"]
    then = [event for event in result["events"] if event.startswith("then")]
    assert then == ["then: ['epoch=0-step=2', 'last']"]  # on rank 0, once both folders were in place
