"""Data modules that read their own files, on 2 DDP workers: the same training as one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distributed._procs import DDP, only_run_dir, results, run

pytestmark = pytest.mark.ddp
MODULE = ["-m", "declarative_train"]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])


def test_hf_dataset_on_two_workers_trains_like_one_process_with_the_global_batch(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    # Each worker reads the saved dataset itself; full global batches of 64, synchronised batch norm, no dropout.
    common = ["experiment=hf_digits", "trainer.max_epochs=2", "trainer.limit_train_batches=8", "model.net.dropout=0.0",
              "logger=none", "~callbacks.progress_bar"]
    rc, _, err = run([*MODULE, *DDP, "data.batch_size=32", "accelerator.sync_batchnorm=true", *common], tmp_path / "ddp")
    assert rc == 0, err
    rc, _, err = run([*MODULE, "data.batch_size=64", *common], tmp_path / "one")
    assert rc == 0, err
    ddp_dir, one_dir = only_run_dir(tmp_path / "ddp"), only_run_dir(tmp_path / "one")
    ddp_state, one_state = _state(ddp_dir), _state(one_dir)
    assert ddp_state.keys() == one_state.keys()
    for key in one_state:
        torch.testing.assert_close(ddp_state[key], one_state[key], atol=1e-4, rtol=1e-3, msg=key)
    assert results(ddp_dir)["global_step"] == results(one_dir)["global_step"] == 16
    assert results(ddp_dir)["test"]["test/acc"] == pytest.approx(results(one_dir)["test"]["test/acc"], abs=1e-3)
