"""Every shipped preset still reaches the floor the README's "Preset scores" table gives it.

The presets and their floors live in ``bench/bench_presets.py``, the script that measures the
table; the slow tests run each preset once (seed 1) as a user would, and the fast test keeps the
README's table listing exactly those presets and floors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.bench_presets import BEGIN, END, PRESETS, Outcome, Preset, ridge_r2, run_preset

README = Path(__file__).resolve().parents[2] / "README.md"
_outcomes: dict[Preset, Outcome] = {}


def _outcome(preset: Preset, scratch: Path) -> Outcome:
    """The preset's seed-1 run, run once per session."""
    if preset not in _outcomes:
        _outcomes[preset] = run_preset(preset, 1, scratch / "_".join(preset.overrides or ("default",)))
    return _outcomes[preset]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("presets")


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.command)
def test_preset_reaches_its_floor(preset: Preset, scratch: Path) -> None:
    value = _outcome(preset, scratch).metric(preset.metric)
    assert value >= preset.floor, f"`{preset.command} seed=1`: {preset.metric}={value:.4f} < floor {preset.floor}"


@pytest.mark.slow
def test_the_cnn_preset_beats_the_mlp(scratch: Path) -> None:
    mlp, cnn = (next(p for p in PRESETS if p.overrides == o) for o in ((), ("experiment=digits_cnn",)))
    assert _outcome(cnn, scratch).metric("test/acc") > _outcome(mlp, scratch).metric("test/acc")


@pytest.mark.slow
def test_the_regression_preset_matches_ridge(scratch: Path) -> None:
    preset = next(p for p in PRESETS if p.overrides == ("experiment=diabetes_regression",))
    _, ridge = ridge_r2()
    assert _outcome(preset, scratch).metric("test/r2") >= ridge - 0.01


def test_the_readme_table_lists_every_preset_with_its_floor() -> None:
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    rows = [line for line in text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines() if line.startswith("| `dtrain")]
    listed = [(re.findall(r"`([^`]+)`", row)[0], float(row.split("|")[5])) for row in rows]
    assert listed == [(p.command, p.floor) for p in PRESETS]
