"""The target rules of config/trust.py, one by one, through the validator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig, open_dict

from declarative_train.config.targets import DEFAULT_ALLOWED_PACKAGES, check_target
from declarative_train.config.validate import collect_issues

PACKAGES = DEFAULT_ALLOWED_PACKAGES


def _problem(node: dict[str, object], packages: tuple[str, ...] = PACKAGES, trusted: tuple[str, ...] = ()) -> str:
    issues = check_target("model", node, packages, trusted=trusted)
    return "; ".join(str(issue) for issue in issues)


@pytest.mark.parametrize("target,reason", [
    ("torch.load", "it loads pickled data"),
    ("torch.serialization.load", "it loads pickled data"),
    ("torch.hub.load", "downloads and runs code"),
    ("torch.jit.load", "imports, compiles or evaluates code"),
    ("torch.package.PackageImporter", "imports, compiles or evaluates code"),
    ("torch.utils.cpp_extension.load_inline", "native libraries"),
    ("torch.ops.load_library", "native libraries"),
    ("torch.multiprocessing.spawn", "runs processes"),
    ("torch._C._set_grad_enabled", "'_C' is private"),
    ("declarative_train.build.torch.load", "it is torch.serialization.load"),
    ("declarative_train.jobs.train.run_job", "is a function, not a component class"),
    ("declarative_train.engine.Executor", "is not a component"),
    ("torch.tensor", "not a component class"),
    ("sklearn.base.clone", "not a component class"),
])
def test_refused_targets(target: str, reason: str) -> None:
    assert reason in _problem({"_target_": target})


def test_refusals_hold_inside_user_packages() -> None:
    assert "runs processes" in _problem({"_target_": "os.system"}, (*PACKAGES, "os"), trusted=("os",))
    assert "it loads pickled data" in _problem({"_target_": "torch.load"}, trusted=("torch",))


def test_user_packages_are_trusted_code_in_the_users_own_config() -> None:
    # A function of one's own package may be a target (a factory), but not from a stored config.
    assert _problem({"_target_": "collections.namedtuple", "typename": "P", "field_names": "x"},
                    (*PACKAGES, "collections"), trusted=("collections",)) == ""
    assert "not a component class" in _problem({"_target_": "collections.namedtuple"}, (*PACKAGES, "collections"))


@pytest.mark.parametrize("argument,value", [("weights_only", False), ("allow_pickle", True), ("trust_repo", True),
                                            ("trust_repo", "check"), ("trust_remote_code", True),
                                            ("pickle_module", "pickle")])
def test_arguments_that_switch_safe_loading_off(argument: str, value: object) -> None:
    node = {"_target_": "torch.nn.Identity", argument: value}
    assert f"model.{argument}: '{argument}: {value!r}' would switch safe loading off" == _problem(node)


def test_components_pass() -> None:
    for node in ({"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 3},
                 {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.1},
                 {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True},
                 {"_target_": "declarative_train.data.Digits"},
                 {"_target_": "declarative_train.callbacks.ModelCheckpoint"},
                 {"_target_": "declarative_train.metrics.Accuracy", "task": "binary"},
                 {"_target_": "torch.nn.Identity", "weights_only": True}):
        assert _problem(node) == "", node


def test_a_refused_target_anywhere_in_the_config_is_reported(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg([])
    with open_dict(cfg):
        cfg.model.net = {"_target_": "torch.nn.Sequential", "_args_": [{"_target_": "torch.load", "f": "x"}]}
    issues = {issue.path: issue.message for issue in collect_issues(cfg)}
    assert "is refused: it loads pickled data" in issues["model.net._args_[0]._target_"]
