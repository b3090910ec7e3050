"""Packaging: conf/ ships inside the wheel, an installed dtrain works anywhere, conda recipe in step."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]
#: PyPI name -> conda-forge name where they differ.
CONDA_NAMES = {"torch": "pytorch"}


def _pyproject_requirements() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    parsed = {}
    for dep in deps:
        name, spec = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", dep).groups()  # type: ignore[union-attr]
        parsed[CONDA_NAMES.get(name.lower(), name.lower())] = spec.replace(" ", "")
    return parsed


def _recipe_requirements() -> dict[str, str]:
    text = (ROOT / "recipe" / "meta.yaml").read_text()
    run = text.split("  run:\n", 1)[1].split("\n\n", 1)[0]
    parsed = {}
    for line in run.splitlines():
        name, _, spec = line.strip().lstrip("- ").partition(" ")
        if name != "python":
            parsed[name.lower()] = spec.replace(" ", "")
    return parsed


def test_conda_recipe_run_requirements_match_pyproject() -> None:
    assert _recipe_requirements() == _pyproject_requirements()


def test_conda_recipe_entry_points_match_pyproject() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = (ROOT / "recipe" / "meta.yaml").read_text()
    for name, target in scripts.items():
        assert f"- {name} = {target}" in text


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (path,) = out.glob("declarative_train-*.whl")
    return path


def test_wheel_ships_the_whole_conf_tree(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped
    for rel in shipped:
        assert f"declarative_train/conf/{rel}" in names, rel


@pytest.mark.slow
def test_installed_dtrain_runs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    # Install the wheel alone into a folder put first on PYTHONPATH (its dependencies come from
    # the test environment), then run dtrain from an unrelated folder.
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, timeout=300, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**cli_env(), "PYTHONPATH": str(target)}
    check = subprocess.run([sys.executable, "-c", "import declarative_train.cli as c; print(c.config_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == str(target / "declarative_train" / "conf"), check.stderr
    proc = subprocess.run([sys.executable, "-m", "declarative_train", "debug=fast_dev_run", "logger=none"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "outputs" / "runs").is_dir()
