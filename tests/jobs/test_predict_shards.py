"""``dtrain-predict`` across ranks without processes: the shard merge, the rows' positions, the worker's job table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from declarative_train.distributed import SingleProcess
from declarative_train.distributed.samplers import EvalShardSampler
from declarative_train.errors import RunFailed
from declarative_train.jobs.predict import gather_rows, merge_shards, predict_job
from declarative_train.jobs.train import run_job
from declarative_train.launch import resolved
from declarative_train.launch.worker import JOBS, resume_from_last


def _shards(size: int, world: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What each rank of ``world`` predicts for a split of ``size`` rows whose row i is ``[i, -i]``."""
    rows = torch.stack([torch.arange(size), -torch.arange(size)], dim=1).float()
    shards = []
    for rank in range(world):
        positions = torch.tensor(list(EvalShardSampler(range(size), rank=rank, world_size=world)), dtype=torch.long)
        shards.append((positions, rows[positions]))
    return shards


@pytest.mark.parametrize(("size", "world"), [(7, 2), (10, 3), (1, 2), (5, 5)])
def test_shards_of_every_rank_merge_back_into_split_order(size: int, world: int) -> None:
    expected = torch.stack([torch.arange(size), -torch.arange(size)], dim=1).float()
    shards = _shards(size, world)
    assert torch.equal(merge_shards(shards, size), expected)
    assert torch.equal(merge_shards(shards[::-1], size), expected)  # the order shards arrive in does not matter


def test_an_empty_shard_is_left_out() -> None:
    (positions, outputs), empty = _shards(1, 2)
    assert len(empty[0]) == 0
    assert torch.equal(merge_shards([(positions, outputs), (empty[0], torch.empty(0))], 1), outputs)


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s[:1], r"do not cover the split's 7 rows once: 3 missing \(first \[1, 3, 5\]\), 0 repeated"),
    (lambda s: [s[0], s[0], s[1]], r"4 repeated \(first \[0, 2, 4, 6\]\)"),
    (lambda s: [(s[0][0] + 1, s[0][1]), s[1]], r"positions outside the split's 7 rows: \[7\]"),
    (lambda s: [(s[0][0], s[0][1][:-1]), s[1]], "6 predictions for 7 positions"),
])
def test_shards_that_miss_or_repeat_rows_fail_naming_them(change: Any, message: str) -> None:
    with pytest.raises(RunFailed, match=message):
        merge_shards(change(_shards(7, 2)), 7)


def test_one_process_keeps_its_rows_and_checks_their_count() -> None:
    outputs = torch.randn(5, 3)
    assert torch.equal(gather_rows(SingleProcess(), torch.arange(5), outputs, 5), outputs)  # type: ignore[arg-type]
    with pytest.raises(RunFailed, match="rank 0: the model gave 5 predictions for 4 rows of its shard"):
        gather_rows(SingleProcess(), torch.arange(4), outputs, 4)


def test_the_job_table_and_the_schemas_name_the_same_jobs() -> None:
    assert set(JOBS) == set(resolved.SCHEMAS) == {"train", "predict"}
    assert JOBS["train"].run is run_job and JOBS["train"].on_restart is resume_from_last
    assert JOBS["predict"].run is predict_job and JOBS["predict"].on_restart is None


def test_the_resolved_config_names_its_job_and_is_typed_by_its_schema(compose_cfg: Any, tmp_path: Path) -> None:
    cfg = compose_cfg(["ckpt_path=model.ckpt", "output=p.jsonl"], config_name="predict")
    resolved.write_resolved(cfg, tmp_path, "predict")
    assert (tmp_path / resolved.JOB_FILENAME).read_text() == "predict\n"
    assert resolved.resolved_job(tmp_path) == "predict"
    loaded = resolved.load_resolved(tmp_path)
    assert (loaded.ckpt_path, loaded.output, loaded.split) == ("model.ckpt", "p.jsonl", "predict")
    assert OmegaConf.get_type(loaded) is resolved.SCHEMAS["predict"]

    train = compose_cfg([])
    resolved.write_resolved(train, tmp_path / "train")
    (tmp_path / "train" / resolved.JOB_FILENAME).unlink()  # a folder written before jobs were named
    assert resolved.resolved_job(tmp_path / "train") == "train"
    assert "output" not in resolved.load_resolved(tmp_path / "train")


def test_an_unknown_job_is_refused_when_written_and_when_read(compose_cfg: Any, tmp_path: Path) -> None:
    cfg = compose_cfg([])
    with pytest.raises(ValueError, match="job 'predcit' is not one of train, predict. Did you mean 'predict'"):
        resolved.write_resolved(cfg, tmp_path, "predcit")
    assert not (tmp_path / resolved.FILENAME).exists()
    (tmp_path / resolved.JOB_FILENAME).write_text("export\n")
    with pytest.raises(ValueError, match="the job 'export' is not one of train, predict"):
        resolved.resolved_job(tmp_path)
    with open_dict(cfg):
        cfg.output = "x.csv"  # a key the train schema does not have
    resolved.write_resolved(cfg, tmp_path, "predict")
    assert resolved.load_resolved(tmp_path).output == "x.csv"
