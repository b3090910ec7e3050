"""A real TensorBoard server on a sweep folder serves every job as its own, readably named run,
with its scalars, histograms and hparams (checked through TensorBoard's HTTP data API)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIResult, cli_env

pytestmark = pytest.mark.slow
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


@pytest.fixture
def tensorboard(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Start ``tensorboard --logdir DIR`` on 127.0.0.1 (the OS picks a free port); yield its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(logdir: Path) -> str:
        log = tmp_path / "tensorboard.log"
        exe = str(Path(sys.executable).parent / "tensorboard")
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                [exe, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", "--load_fast=false",
                 "--reload_interval", "1"], stdout=out, stderr=subprocess.STDOUT, env=cli_env()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace"))
            if found:
                return f"http://127.0.0.1:{found.group(1)}"
            assert procs[-1].poll() is None, log.read_text()
            time.sleep(0.2)
        raise AssertionError(f"tensorboard did not start within 120 s:\n{log.read_text()}")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_for_runs(url: str, count: int) -> list[str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = _get(f"{url}/data/runs")
        if len(runs) >= count:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"tensorboard lists {runs}, expected {count} runs")


def test_tensorboard_serves_each_sweep_job_with_scalars_and_hparams(
    run_cli: Callable[..., CLIResult], tmp_path: Path, tensorboard: Callable[[Path], str],
) -> None:
    result = run_cli("-m", "optimizer.lr=0.01,0.02", "model=mlp,cnn", "debug=limit",
                     "callbacks=[default,histograms]", "callbacks.histograms.every_n_epochs=1", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    url = tensorboard(tmp_path / "sweep")
    runs = _wait_for_runs(url, 4)
    # Each run is named by what its job sweeps; what every job shares (debug=limit) is left out.
    expected = {f"{num}/tb/optimizer.lr={lr},model={model}"
                for num, (lr, model) in enumerate([(lr, m) for lr in ("0.01", "0.02") for m in ("mlp", "cnn")])}
    assert set(runs) == expected

    tags = _get(f"{url}/data/plugin/scalars/tags")
    for run in runs:
        assert {"train/loss", "val/loss", "val/acc", "test/acc", "lr-Adam"} <= set(tags[run]), run
    histograms = _get(f"{url}/data/plugin/histograms/tags")
    for run in runs:
        assert any(tag.startswith("weights/") for tag in histograms[run]), run
        assert any(tag.startswith("grads/") for tag in histograms[run]), run

    experiment = _post(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {info["name"] for info in experiment["hparamInfos"]} == {"optimizer.lr", "model"}
    assert {"val/acc", "test/acc"} <= {info["name"]["tag"] for info in experiment["metricInfos"]}
    groups = _post(f"{url}/data/plugin/hparams/session_groups",
                   {"experimentName": "", "allowedStatuses": STATUSES, "startIndex": 0, "sliceSize": 100})
    assert groups["totalSize"] == 4
    seen = set()
    for group in groups["sessionGroups"]:
        hparams = group["hparams"]
        seen.add((hparams["optimizer.lr"], hparams["model"]))
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        job = tmp_path / "sweep" / group["name"].split("/")[0]
        final = json.loads((job / "results.json").read_text())
        assert metrics["test/acc"] == pytest.approx(final["test"]["test/acc"], rel=1e-6)
    assert seen == {(0.01, "mlp"), (0.01, "cnn"), (0.02, "mlp"), (0.02, "cnn")}
