"""Checkpoints from someone else, tested like an attacker would write them.

Every malicious checkpoint here is a real, sealed file written with the project's own writer;
each payload would create a marker file if it ever ran. Every command that reads a checkpoint
must refuse the payload (``dtrain-eval``: exit 2 naming the key and why) or ignore it (``dtrain``
resuming reads only tensors), and the marker never appears.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from declarative_train.checkpoint import file as ckpt_file
from declarative_train.config.stored import stored_issues, take_sections
from tests.conftest import cli_env, run_entry_point

LIMIT = ["debug=limit", "logger=none", "~callbacks.progress_bar"]


class _Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _run(cwd: Path, *args: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / command), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A good run's last.ckpt (as a dict), a pickle payload, and the marker it would create."""
    folder = tmp_path_factory.mktemp("untrusted")
    run_dir = folder / "run"
    proc = _run(folder, *LIMIT, f"hydra.run.dir={run_dir}", command="dtrain")
    assert proc.returncode == 0, proc.stderr
    marker = folder / "PWNED"
    payload = folder / "payload.pt"
    torch.save(_Payload(marker), payload)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return {"folder": folder, "checkpoint": checkpoint, "marker": marker, "payload": str(payload)}


def _evil(trained: dict[str, Any], folder: Path, mutate: Any) -> Path:
    """The good checkpoint with its stored config changed by ``mutate(config, payload, marker)``."""
    checkpoint = copy.deepcopy(trained["checkpoint"])
    mutate(checkpoint["config"], trained["payload"], str(trained["marker"]))
    path = folder / "evil.ckpt"
    ckpt_file.write(checkpoint, [path])  # sealed: the file is intact, its content is the attack
    return path


def _torch_load(payload: str) -> dict[str, Any]:
    return {"_target_": "torch.load", "f": payload, "weights_only": False}


# (id, mutation of the stored config, the key path and the reason the refusal must name)
ROUTES = [
    ("model", lambda c, p, m: c.update(model=_torch_load(p)),
     "model._target_ (stored in the checkpoint): 'torch.load' is refused: it loads pickled data"),
    ("nested-net", lambda c, p, m: c["model"].update(net=_torch_load(p)),
     "model.net._target_ (stored in the checkpoint): 'torch.load' is refused"),
    ("metric", lambda c, p, m: c["metrics"].update(evil={"_target_": "torch.hub.load", "repo_or_dir": "x/y",
                                                         "model": "m", "trust_repo": True}),
     "metrics.evil._target_ (stored in the checkpoint): 'torch.hub.load' is refused: it downloads"),
    ("transform-list", lambda c, p, m: c["data"].update(transforms=[{"_target_": "subprocess.run",
                                                                      "args": ["touch", m]}]),
     "data.transforms[0]._target_ (stored in the checkpoint): 'subprocess.run' is outside the allowed packages"),
    ("partial", lambda c, p, m: c["model"].update(loss={"_target_": "torch.load", "_partial_": True, "f": p}),
     "model.loss._target_ (stored in the checkpoint): 'torch.load' is refused"),
    ("args", lambda c, p, m: c["model"].update(net={"_target_": "torch.nn.Sequential", "_args_": [
        {"_target_": "builtins.exec", "_args_": [f"open({m!r}, 'w')"]}]}),
     "model.net._args_[0]._target_ (stored in the checkpoint): 'builtins.exec' is outside the allowed packages"),
    ("interpolation", lambda c, p, m: c["model"].update(_target_="${oc.decode:torch.load}"),
     "model._target_ (stored in the checkpoint): holds an interpolation"),
    ("alias", lambda c, p, m: c.update(model={**_torch_load(p), "_target_": "declarative_train.build.torch.load"}),
     "it is torch.serialization.load, and it loads pickled data"),
    ("unsafe-argument", lambda c, p, m: c["model"]["loss"].update(weights_only=False),
     "model.loss.weights_only (stored in the checkpoint): 'weights_only: False' would switch safe loading off"),
    ("native-code", lambda c, p, m: c.update(model={"_target_": "torch.utils.cpp_extension.load_inline",
                                                    "name": "x", "cpp_sources": "int x;"}),
     "'torch.utils.cpp_extension.load_inline' is refused: it builds or loads native libraries"),
    ("function", lambda c, p, m: c.update(model={"_target_": "declarative_train.launch.worker.run_worker",
                                                 "run_dir": m}),
     "'declarative_train.launch.worker.run_worker' is a function, not a component class"),
    ("stored-user-packages", lambda c, p, m: (c.update(user_packages=["os"]),
                                              c["model"]["net"].update(_target_="os.system", command=f"touch {m}")),
     "model.net._target_ (stored in the checkpoint): 'os.system' is outside the allowed packages"),
    ("precision", lambda c, p, m: c.update(precision={"mode": "32", **_torch_load(p)}),
     "precision (stored in the checkpoint): must be {mode: ...}"),
]


def _eval_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Any, str]:
    """``dtrain-eval ARGS`` run in this process (the same entry point, without a new interpreter)."""
    from declarative_train import cli

    return run_entry_point(monkeypatch, capsys, cli.eval_main, ["dtrain-eval", *args])


def test_the_reported_checkpoint_is_refused_by_the_command(trained: dict[str, Any], tmp_path: Path) -> None:
    """The issue's example, through the installed ``dtrain-eval``: exit 2, the payload never runs."""
    path = _evil(trained, tmp_path, ROUTES[0][1])
    proc = _run(tmp_path, f"ckpt_path={path}", command="dtrain-eval")
    assert proc.returncode == 2, proc.stderr
    assert ROUTES[0][2] in proc.stderr and "Traceback" not in proc.stderr
    assert not trained["marker"].exists()


@pytest.mark.parametrize("mutate,expected", [pytest.param(m, e, id=i) for i, m, e in ROUTES])
def test_dtrain_eval_refuses_every_route(trained: dict[str, Any], tmp_path: Path, mutate: Any, expected: str,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _evil(trained, tmp_path, mutate)
    code, stderr = _eval_in_process(monkeypatch, capsys, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'out'}")
    assert code == 2, stderr
    assert expected in stderr and "Traceback" not in stderr
    assert not trained["marker"].exists()


def test_nothing_but_the_model_data_metrics_and_precision_is_read(
        trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def mutate(config: dict[str, Any], payload: str, marker: str) -> None:
        evil = {"_target_": "subprocess.run", "args": ["touch", marker]}
        config.update(user_packages=["subprocess"], callbacks={"evil": evil}, logger={"evil": evil},
                      hydra={"callbacks": {"evil": evil}}, paths={"output_dir": "/"})

    path = _evil(trained, tmp_path, mutate)
    code, stderr = _eval_in_process(monkeypatch, capsys, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'out'}")
    assert code == 0, stderr
    assert (tmp_path / "out" / "results.json").is_file() and not trained["marker"].exists()


def test_the_command_line_wins_over_the_stored_config(
        trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _evil(trained, tmp_path, lambda c, p, m: None)
    code, stderr = _eval_in_process(monkeypatch, capsys, f"ckpt_path={path}", "data.batch_size=7",
                                    f"hydra.run.dir={tmp_path / 'out'}")
    assert code == 0, stderr
    log = (tmp_path / "out" / "train.log").read_text()
    assert ("from the checkpoint's stored config: model (declarative_train.tasks.Classification), data "
            "(declarative_train.data.Digits), metrics (acc, f1), precision (mode)") in log
    assert "the command line sets data.batch_size=7" in log


def test_resuming_from_a_malicious_checkpoint_reads_only_tensors(trained: dict[str, Any], tmp_path: Path) -> None:
    path = _evil(trained, tmp_path, ROUTES[0][1])
    proc = _run(tmp_path, *LIMIT, f"ckpt_path={path}", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'out'}",
                command="dtrain")
    assert proc.returncode == 0, proc.stderr
    assert not trained["marker"].exists()


# ---------------------------------------------------------------- mutations at random, in-process

_DANGEROUS_TARGETS = ["torch.load", "torch.hub.load", "torch.jit.load", "torch.package.PackageImporter",
                      "torch.utils.cpp_extension.load", "os.system", "subprocess.Popen", "builtins.eval",
                      "declarative_train.build.torch.load", "declarative_train.jobs.train.run_job",
                      "torch.serialization.load", "torch.ops.load_library", "torch._C._jit_set_profiling_mode",
                      "sklearn.utils.fixes.parse_version", "declarative_train.launch.worker.main"]


def _nodes(config: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict inside ``config``."""
    found = [path] if isinstance(config, dict) else []
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else []
    for key, value in items:
        found += _nodes(value, (*path, key))
    return found


def _at(config: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        config = config[key]
    return config


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_never_run_a_payload(trained: dict[str, Any], data: st.DataObject) -> None:
    config = {k: copy.deepcopy(v) for k, v in trained["checkpoint"]["config"].items()
              if k in ("model", "data", "metrics", "precision")}
    marker, payload = str(trained["marker"]), trained["payload"]
    target = data.draw(st.sampled_from(_DANGEROUS_TARGETS))
    evil: dict[str, Any] = {"_target_": target, "f": payload, "weights_only": False, "command": f"touch {marker}"}
    wrap = data.draw(st.sampled_from(["plain", "partial", "args", "list", "interpolated", "flag"]))
    if wrap == "partial":
        evil["_partial_"] = True
    elif wrap == "args":
        evil = {"_target_": "torch.nn.Sequential", "_args_": [evil]}
    elif wrap == "list":
        evil = {"_target_": "torch.nn.ModuleList", "modules": [evil]}
    elif wrap == "interpolated":
        evil = {"_target_": "${oc.decode:'" + target + "'}"}
    elif wrap == "flag":  # a harmless class, with an argument that would switch safe loading off
        flag, value = data.draw(st.sampled_from([("weights_only", False), ("allow_pickle", True),
                                                 ("trust_repo", True), ("trust_repo", "check"),
                                                 ("trust_remote_code", True), ("pickle_module", "pickle")]))
        evil = {"_target_": "torch.nn.Identity", flag: value}
    where = data.draw(st.sampled_from(_nodes(config)[1:]))  # inside one of the sections
    node = _at(config, where)
    if data.draw(st.booleans()) and "_target_" in node:
        node.clear()
        node.update(evil)  # the node itself becomes the payload
    else:
        node["extra"] = evil
    sections = take_sections(config)
    issues = stored_issues(sections, [])
    assert issues, f"not refused: {where} <- {evil}"
    assert not Path(marker).exists()


def test_command_line_keys_are_applied_over_the_stored_sections(compose_cfg: Any) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from declarative_train.jobs.evaluate import _use_sections

    cfg = compose_cfg(["data.batch_size=7", "model=linear"], config_name="eval")
    stored = {"model": {"_target_": "declarative_train.tasks.Classification"},
              "data": {"_target_": "declarative_train.data.Digits", "batch_size": 64}, "precision": {"mode": "64"}}
    overrides = OverridesParser.create().parse_overrides(["data.batch_size=7", "model=linear"])
    sections = take_sections(stored, ["model"])
    assert sorted(sections.taken) == ["data", "precision"] and sections.kept == ["model"]
    assert _use_sections(cfg, sections, overrides) == ["data.batch_size=7"]
    assert cfg.data.batch_size == 7 and cfg.precision.mode == "64"
    assert cfg.model.net._target_ == "declarative_train.models.Linear"  # the command line's choice
