"""``resume=auto`` / ``resume_dir``: validated before anything runs; the newest last.ckpt is found."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from declarative_train.config.validate import collect_issues
from declarative_train.jobs.resume import newest_last_checkpoint, resume_checkpoint


def _issues(cfg: DictConfig) -> dict[str, str]:
    return {issue.path: issue.message for issue in collect_issues(cfg)}


@pytest.mark.parametrize("overrides,path,message", [
    (["resume=always"], "resume", "must be 'auto' or null, got 'always'"),
    (["resume=auto", "ckpt_path=x.ckpt"], "resume", "resume=auto and ckpt_path are both set"),
    (["resume=auto", "resume_dir=/no/such/folder"], "resume_dir", "'/no/such/folder' is not a folder"),
    (["resume_dir=/tmp"], "resume_dir", "is only used with resume=auto"),
])
def test_bad_resume_settings_are_reported(compose_cfg: Callable[..., DictConfig], overrides: list[str], path: str, message: str) -> None:
    assert message in _issues(compose_cfg(overrides))[path]


def test_resume_auto_picks_the_newest_last_ckpt(compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    older, newer = tmp_path / "a" / "checkpoints" / "last.ckpt", tmp_path / "b" / "checkpoints" / "last.ckpt"
    for i, path in enumerate((newer, older)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, ns=(10**18 - i, 10**18 - i))
    (tmp_path / "b" / "checkpoints" / "epoch=3-step=9.ckpt").write_bytes(b"x")
    assert newest_last_checkpoint(tmp_path) == newer
    cfg = compose_cfg(["resume=auto", f"resume_dir={tmp_path}"])
    assert not _issues(cfg)
    assert resume_checkpoint(cfg) == str(newer)


def test_resume_auto_without_a_checkpoint_starts_fresh(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["resume=auto"])  # this run's own (empty) folder
    assert resume_checkpoint(cfg) is None
    assert resume_checkpoint(compose_cfg(["ckpt_path=some.ckpt"])) == "some.ckpt"
