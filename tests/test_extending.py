"""docs/extending.md's examples, run for real: a task, a data module, a callback, a metric and a
logger of one's own, through ``dtrain --config-dir ... user_packages=[...]``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative_train.checkpoint import read

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "extending"
REPO = EXAMPLES.parents[1]


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("moons") / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([".", str(REPO)]), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "declarative_train", "--config-dir", "conf", "experiment=moons",
         "user_packages=[my_extensions]", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}"],
        cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_all_five_extensions_train_together(moons_run: Path) -> None:
    results = json.loads((moons_run / "results.json").read_text())
    assert results["status"] == "ok" and results["epochs"] == 3
    assert results["monitor"] == "val/balanced_acc"
    assert results["objective"]["mode"] == "max"  # from BalancedAccuracy.higher_is_better
    assert results["test"]["test/balanced_acc"] > 0.75


def test_the_logger_wrote_every_logged_value(moons_run: Path) -> None:
    rows = [json.loads(line) for line in (moons_run / "metrics.jsonl").read_text().splitlines()]
    keys = {key for row in rows for key in row}
    assert {"step", "train/loss", "val/balanced_acc", "test/balanced_acc", "weights/norm"} <= keys
    norm_steps = [row["step"] for row in rows if "weights/norm" in row]
    assert norm_steps[:3] == [5, 10, 15]  # the callback's every_n_steps=5
    assert json.loads((moons_run / "hparams.json").read_text())["metrics"]["test/balanced_acc"] > 0.75


def test_the_callback_state_is_checkpointed_under_its_name(moons_run: Path) -> None:
    checkpoint = read(str(moons_run / "checkpoints" / "last.ckpt"))
    assert checkpoint["callbacks"]["weight_norm"]["max_norm"] > 0
    assert checkpoint["callback_classes"]["weight_norm"] == "WeightNormMonitor"


def test_the_metric_equals_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score

    sys.path.insert(0, str(EXAMPLES))
    try:
        from my_extensions.metric import BalancedAccuracy
    finally:
        sys.path.remove(str(EXAMPLES))
    gen = torch.Generator().manual_seed(0)
    logits, target = torch.randn(300, 4, generator=gen), torch.randint(4, (300,), generator=gen)
    metric = BalancedAccuracy(num_classes=4)
    for chunk in range(3):
        metric.update(logits[chunk * 100:(chunk + 1) * 100], target[chunk * 100:(chunk + 1) * 100])
    expected = balanced_accuracy_score(target.numpy(), logits.argmax(1).numpy())
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-6)


def test_the_python_api_example_in_the_doc_runs() -> None:
    text = (REPO / "docs" / "extending.md").read_text()
    section = text[text.index("## Without Hydra"):]
    code = section[section.index("```python") + len("```python"):]
    code = code[:code.index("```")]
    sys.path.insert(0, str(EXAMPLES))
    try:
        namespace: dict[str, object] = {}
        exec(compile(code, "docs/extending.md", "exec"), namespace)  # noqa: S102 - our own doc
    finally:
        sys.path.remove(str(EXAMPLES))
    results = namespace["executor"].test()  # type: ignore[attr-defined]
    assert results["test/balanced_acc"] > 0.75
